"""The ``ferrogate`` console script. The command line itself is implemented in Rust.

``ferrogate serve`` hands the process over to the native executable bundled in the wheel
(``ferrogate/_bin/ferrogate``) when it can: the server then runs without a Python interpreter
around it (less memory, faster start). It stays in-process when the config loads Python plugins,
when no native executable is bundled, or when ``FERROGATE_IN_PROCESS=1`` is set.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

NATIVE = Path(__file__).resolve().parent / "_bin" / "ferrogate"


def native_executable() -> Path | None:
    """The bundled native ``ferrogate`` executable, if this installation has one."""
    return NATIVE if os.access(NATIVE, os.X_OK) else None


def main(argv: list[str] | None = None) -> int:
    from . import _core

    args = ["ferrogate", *(sys.argv[1:] if argv is None else argv)]
    # Only as the program itself (not when called from other Python code) is the process replaced.
    native = native_executable() if argv is None else None
    if native is not None and os.environ.get("FERROGATE_IN_PROCESS") != "1" and _core.runs_natively(args):
        sys.stdout.flush()
        sys.stderr.flush()
        os.execv(native, args)
    try:
        code = _core.cli_main(args)
        # The SIGINT that stopped a server is also pending for Python: let it surface here.
        sys.stdout.flush()
    except KeyboardInterrupt:
        code = 0
    return int(code)


if __name__ == "__main__":
    raise SystemExit(main())
