#!/usr/bin/env bash
# Tools the server load benchmark (benches/server_load.py, `make bench`) needs:
#   nginx       the one-proxy-hop baseline (Debian's, through scripts/install-services.sh)
#   oha         the load generator (~/.cargo/bin/oha)
#   matplotlib  the plot, in the project's virtualenv
#   valgrind    callgrind, for the instruction counts of benches/instructions.sh
# Idempotent: installs only what is missing, so it is cheap to run before every benchmark.
# VENV_BIN (default .venv/bin) is the virtualenv's bin directory.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV_BIN="${VENV_BIN:-.venv/bin}"
export PATH="$PATH:$HOME/.cargo/bin:/usr/sbin"
SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"

# nginx (and the other servers the suites start) come from the shared services script.
scripts/install-services.sh

# valgrind (callgrind) for benches/instructions.sh; present on most machines of this kind.
if ! command -v valgrind >/dev/null; then
    echo "install-bench-tools: installing valgrind" >&2
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq valgrind >/dev/null
fi

if ! command -v oha >/dev/null && [ ! -x "$HOME/.cargo/bin/oha" ]; then
    # A cargo build of oha (a few minutes; only on a fresh machine). --locked: oha's newest
    # dependencies may want a newer rustc than its lock file does.
    echo "install-bench-tools: installing oha with cargo" >&2
    cargo install --locked oha
fi

if ! "$VENV_BIN/python" -c "import matplotlib" 2>/dev/null; then
    echo "install-bench-tools: installing matplotlib into $VENV_BIN/.." >&2
    "$VENV_BIN/pip" install -q matplotlib
fi

echo "install-bench-tools: nginx $(nginx -v 2>&1 | sed 's/.*nginx\///'), $(oha --version), matplotlib $("$VENV_BIN/python" -c 'import matplotlib; print(matplotlib.__version__)')" >&2
