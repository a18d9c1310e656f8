"""Real servers for the tests, started from the Debian packages that scripts/install-services.sh
installs, each in a throwaway directory on a free port."""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _pg_bin(name: str) -> str:
    found = shutil.which(name) or next(iter(sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"), reverse=True)), None)
    if not found:
        raise RuntimeError(f"PostgreSQL's `{name}` is missing: run scripts/install-services.sh")
    return found


@contextmanager
def postgres() -> Iterator[str]:
    """A fresh PostgreSQL cluster; yields its connection URL."""
    root = os.geteuid() == 0
    work = tempfile.mkdtemp(prefix="ferrogate-pg-")
    data, sock = os.path.join(work, "data"), os.path.join(work, "sock")
    os.mkdir(sock)
    if root:
        # PostgreSQL refuses to run as root; the Debian package creates the `postgres` user.
        shutil.chown(work, "postgres")
        shutil.chown(sock, "postgres")
    run_as = ["runuser", "-u", "postgres", "--"] if root else []
    port = _free_port()
    subprocess.run([*run_as, _pg_bin("initdb"), "-D", data, "-A", "trust", "-U", "postgres", "--no-sync"],
                   check=True, capture_output=True)
    subprocess.run(
        [*run_as, _pg_bin("pg_ctl"), "-D", data, "-l", os.path.join(work, "log"), "-w", "-t", "30", "start",
         "-o", f"-p {port} -k {sock} -c listen_addresses=127.0.0.1 -c fsync=off"],
        check=True, capture_output=True,
    )
    try:
        yield f"postgres://postgres@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run([*run_as, _pg_bin("pg_ctl"), "-D", data, "-m", "immediate", "stop"], capture_output=True)
        time.sleep(0.1)
        shutil.rmtree(work, ignore_errors=True)
