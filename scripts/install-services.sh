#!/usr/bin/env bash
# Installs the servers the test suites and benchmarks start (Debian packages), each run by them
# with its own config in a throwaway directory:
#   postgresql  the request log store tests
#   nginx       TLS (and HTTP/2) in front of the mock upstream in the transport tests; the
#               one-proxy-hop baseline of the server load benchmark
#   tinyproxy   the forward proxy of the transport tests (HTTPS_PROXY / HTTP_PROXY)
#   openssl     the throwaway certificate authority of the transport tests
# Idempotent and cheap when everything is there: installs only what is missing.
set -euo pipefail
export PATH="$PATH:/usr/sbin:/sbin"

have() { command -v "$1" >/dev/null 2>&1; }
have_postgres() { have initdb || compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null; }

missing=()
have_postgres || missing+=(postgresql)
if ! have nginx; then
    # nginx-light is the smallest build on Debian (bookworm: a transitional package pulling
    # nginx); newer releases have only `nginx`.
    if apt-cache show nginx-light >/dev/null 2>&1; then missing+=(nginx-light); else missing+=(nginx); fi
fi
have tinyproxy || missing+=(tinyproxy)
have openssl || missing+=(openssl)
[ ${#missing[@]} -eq 0 ] && exit 0

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    have sudo || { echo "install-services: not root and no sudo; install the Debian packages: ${missing[*]}" >&2; exit 1; }
    SUDO="sudo"
fi
echo "install-services: installing ${missing[*]} (Debian packages)" >&2
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null

# The suites run their own instances; the packaged services (started by the packages where there
# is an init system) are not wanted.
for service in nginx tinyproxy; do
    if have systemctl && systemctl is-system-running >/dev/null 2>&1; then
        $SUDO systemctl disable --now "$service" >/dev/null 2>&1 || true
    else
        $SUDO service "$service" stop >/dev/null 2>&1 || true
        have update-rc.d && $SUDO update-rc.d "$service" disable >/dev/null 2>&1 || true
    fi
done
