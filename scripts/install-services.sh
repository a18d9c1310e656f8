#!/usr/bin/env bash
# Installs the servers the test suites start (Debian packages): PostgreSQL for the request log
# store tests. Does nothing when they are already there.
set -euo pipefail

have_postgres() {
  command -v initdb >/dev/null 2>&1 || compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null
}

if ! have_postgres; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "PostgreSQL is not installed and this is not root: install the Debian package postgresql" >&2
    exit 1
  fi
  echo "installing PostgreSQL (Debian package postgresql)"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q
  apt-get install -y -q --no-install-recommends postgresql >/dev/null
fi
