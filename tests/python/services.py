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


def _wait_port(port: int, proc: subprocess.Popen[bytes], what: str, log: str) -> None:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited with {proc.returncode}: {open(log, errors='replace').read()}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"{what} did not listen on port {port}")


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _tool(name: str) -> str:
    found = shutil.which(name) or next((p for p in (f"/usr/sbin/{name}", f"/usr/bin/{name}") if os.path.exists(p)), None)
    if not found:
        raise RuntimeError(f"`{name}` is missing: run scripts/install-services.sh")
    return found


class ThrowawayCA:
    """A throwaway certificate authority (openssl) and a server certificate it signed for
    ``localhost`` and ``127.0.0.1``."""

    def __init__(self, work: str, name: str = "ferrogate test CA") -> None:
        self.ca_cert = os.path.join(work, "ca.pem")
        self.cert = os.path.join(work, "server.pem")
        self.key = os.path.join(work, "server.key")
        ca_key, csr, ext = (os.path.join(work, n) for n in ("ca.key", "server.csr", "server.ext"))
        with open(ext, "w") as f:
            f.write("subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\n"
                    "keyUsage=digitalSignature\nextendedKeyUsage=serverAuth\n")
        ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"]
        openssl = _tool("openssl")
        for args in (
            ["req", "-x509", *ec, "-keyout", ca_key, "-out", self.ca_cert, "-days", "2", "-subj", f"/CN={name}"],
            ["req", *ec, "-keyout", self.key, "-out", csr, "-subj", "/CN=localhost"],
            ["x509", "-req", "-in", csr, "-CA", self.ca_cert, "-CAkey", ca_key, "-CAcreateserial",
             "-out", self.cert, "-days", "2", "-extfile", ext],
        ):
            subprocess.run([openssl, *args], check=True, capture_output=True)


_NGINX_TLS_CONF = """\
worker_processes 1;
daemon off;
pid {work}/nginx.pid;
error_log {work}/error.log warn;
events {{ worker_connections 256; }}
http {{
    log_format conn '$connection $server_protocol $request_method $uri $status';
    access_log {work}/access.log conn;
    client_body_temp_path {work}/client_body;
    proxy_temp_path {work}/proxy;
    fastcgi_temp_path {work}/fastcgi;
    uwsgi_temp_path {work}/uwsgi;
    scgi_temp_path {work}/scgi;
    server {{
        listen 127.0.0.1:{port} ssl http2;
        ssl_certificate {cert};
        ssl_certificate_key {key};
        location / {{
            proxy_pass {upstream};
            proxy_http_version 1.1;
            proxy_buffering off;
        }}
    }}
    server {{
        # Closes each connection gracefully (GOAWAY) after a few requests, as servers do.
        listen 127.0.0.1:{port_recycled} ssl http2;
        keepalive_requests 10;
        ssl_certificate {cert};
        ssl_certificate_key {key};
        access_log {work}/access_recycled.log conn;
        location / {{
            proxy_pass {upstream};
            proxy_http_version 1.1;
            proxy_buffering off;
        }}
    }}
    server {{
        listen 127.0.0.1:{port_h1} ssl;
        ssl_certificate {cert};
        ssl_certificate_key {key};
        access_log {work}/access_h1.log conn;
        location / {{
            proxy_pass {upstream};
            proxy_http_version 1.1;
            proxy_buffering off;
        }}
    }}
}}
"""


class TlsFront:
    """nginx terminating TLS in front of a plain-HTTP upstream: at ``url`` with HTTP/1.1 and HTTP/2 by
    ALPN, at ``url_recycled`` the same but closing each connection after 10 requests, at ``url_h1``
    with HTTP/1.1 only."""

    def __init__(self, url: str, url_recycled: str, url_h1: str, ca: ThrowawayCA, work: str) -> None:
        self.url = url
        self.url_recycled = url_recycled
        self.url_h1 = url_h1
        self.ca = ca
        self.work = work

    def _entries(self, name: str) -> list[tuple[str, str]]:
        """(nginx's connection number, ``<protocol> <method> <path> <status>``) per logged request."""
        path = os.path.join(self.work, name)
        if not os.path.exists(path):
            return []
        with open(path) as f:
            return [(line.split(" ", 1)[0], line.split(" ", 1)[1].strip()) for line in f if line.strip()]

    def requests(self) -> list[str]:
        """Access log lines of ``url``: ``<protocol> <method> <path> <status>``."""
        return [line for _, line in self.requests_by_connection()]

    def requests_by_connection(self) -> list[tuple[str, str]]:
        """Access log lines of ``url`` with the number of the connection each came on."""
        return self._entries("access.log")

    def requests_recycled(self) -> list[tuple[str, str]]:
        """Access log lines of ``url_recycled`` with the number of the connection each came on."""
        return self._entries("access_recycled.log")

    def requests_h1(self) -> list[tuple[str, str]]:
        """Access log lines of ``url_h1`` with the number of the connection each came on."""
        return self._entries("access_h1.log")


@contextmanager
def nginx_tls(upstream: str) -> Iterator[TlsFront]:
    work = tempfile.mkdtemp(prefix="ferrogate-nginx-")
    try:
        ca = ThrowawayCA(work)
        ports: set[int] = set()
        while len(ports) < 3:
            ports.add(_free_port())
        port, port_recycled, port_h1 = ports
        conf = os.path.join(work, "nginx.conf")
        with open(conf, "w") as f:
            f.write(_NGINX_TLS_CONF.format(work=work, port=port, port_recycled=port_recycled, port_h1=port_h1,
                                           cert=ca.cert, key=ca.key, upstream=upstream))
        log = os.path.join(work, "stderr.log")
        with open(log, "wb") as out:
            proc = subprocess.Popen([_tool("nginx"), "-p", work, "-c", conf], stdout=out, stderr=out)
        try:
            for p in ports:
                _wait_port(p, proc, "nginx", log)
            yield TlsFront(f"https://localhost:{port}", f"https://localhost:{port_recycled}",
                           f"https://localhost:{port_h1}", ca, work)
        finally:
            _stop(proc)
    finally:
        shutil.rmtree(work, ignore_errors=True)


class ForwardProxy:
    def __init__(self, port: int, log: str) -> None:
        self.port = port
        self.log = log

    def url(self, user: str | None = None, password: str | None = None) -> str:
        auth = f"{user}:{password}@" if user is not None else ""
        return f"http://{auth}127.0.0.1:{self.port}"

    def requests(self) -> list[str]:
        """The request lines tinyproxy logged (``CONNECT host:port HTTP/1.1``, ``POST http://...``)."""
        with open(self.log, errors="replace") as f:
            return [line.split("): ", 1)[1].strip() for line in f if "Request (file descriptor" in line]


@contextmanager
def tinyproxy(user: str, password: str) -> Iterator[ForwardProxy]:
    """A forward proxy (tinyproxy) asking for HTTP basic credentials, CONNECT to any port."""
    work = tempfile.mkdtemp(prefix="ferrogate-tinyproxy-")
    if os.geteuid() == 0:
        # tinyproxy drops root for this user; it writes its log in the work directory.
        shutil.chown(work, "nobody")
    port = _free_port()
    log = os.path.join(work, "tinyproxy.log")
    conf = os.path.join(work, "tinyproxy.conf")
    run_as = "User nobody\nGroup nogroup\n" if os.geteuid() == 0 else ""
    with open(conf, "w") as f:
        f.write(f'{run_as}Port {port}\nListen 127.0.0.1\nTimeout 30\nLogFile "{log}"\nLogLevel Info\n'
                f"MaxClients 64\nAllow 127.0.0.1\nDisableViaHeader Yes\nBasicAuth {user} {password}\n")
    stderr = os.path.join(work, "stderr.log")
    with open(stderr, "wb") as out:
        proc = subprocess.Popen([_tool("tinyproxy"), "-d", "-c", conf], stdout=out, stderr=out)
    try:
        _wait_port(port, proc, "tinyproxy", stderr)
        yield ForwardProxy(port, log)
    finally:
        _stop(proc)
        shutil.rmtree(work, ignore_errors=True)
