"""The ``ferrogate`` console script. The command line itself is implemented in Rust."""

from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> int:
    from . import _core

    args = ["ferrogate", *(sys.argv[1:] if argv is None else argv)]
    try:
        code = _core.cli_main(args)
        # The SIGINT that stopped a server is also pending for Python: let it surface here.
        sys.stdout.flush()
    except KeyboardInterrupt:
        code = 0
    return int(code)


if __name__ == "__main__":
    raise SystemExit(main())
