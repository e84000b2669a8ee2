#!/usr/bin/env bash
# A real OCI registry on this machine, for the tests that push and pull job modules:
# Debian's docker-registry (the CNCF distribution, 2.8), serving plain HTTP on 127.0.0.1,
# everything kept in a state directory.
#
#   scripts/registry.sh install             install what is missing (docker-registry, and
#                                           apache2-utils for htpasswd)
#   scripts/registry.sh start DIR [--auth]  start a registry on a free port of 127.0.0.1,
#                                           storing in DIR, wait until it answers, and print
#                                           its address (127.0.0.1:PORT) on stdout. With
#                                           --auth it asks for a user name and password:
#                                           user `wasp`, the password in DIR/password
#   scripts/registry.sh stop DIR            stop the registry started in DIR (idempotent)
#
#   registry=$(scripts/registry.sh start /tmp/registry)   # then wasp push FILE oci://$registry/jobs:1
#
# Packages are installed with apt-get when missing, as root or with passwordless sudo; if
# that cannot be done it fails. Every wait is bounded. Messages go to stderr.
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

readonly PACKAGES=(docker-registry apache2-utils)
readonly READY_TIMEOUT=30
export PATH=$PATH:/usr/sbin:/sbin

say() { echo "registry: $*" >&2; }
fail() {
    say "error: $*"
    exit 1
}
usage() {
    echo "usage: $0 install | start DIR [--auth] | stop DIR" >&2
    exit 2
}

install_missing() {
    apt_install registry "${PACKAGES[@]}" || fail "cannot install ${PACKAGES[*]}"
}

# The pid of the registry started in $dir, if it runs.
running() {
    local pid
    [[ -s $dir/registry.pid ]] || return 1
    pid=$(<"$dir/registry.pid")
    [[ $pid =~ ^[0-9]+$ && $(cat "/proc/$pid/comm" 2>/dev/null) == docker-registry ]] || return 1
    echo "$pid"
}

stop() {
    local pid i
    pid=$(running) || {
        rm -f "$dir/registry.pid"
        return 0
    }
    kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < 50; i++)); do
        [[ -d /proc/$pid ]] || break
        sleep 0.1
    done
    [[ -d /proc/$pid ]] && kill -KILL "$pid" 2>/dev/null || true
    rm -f "$dir/registry.pid"
}

# The HTTP status of GET http://$1/v2/.
status() {
    python3 - "$1" <<'EOF'
import sys, urllib.request, urllib.error
try:
    print(urllib.request.urlopen(f"http://{sys.argv[1]}/v2/", timeout=2).status)
except urllib.error.HTTPError as error:
    print(error.code)
except OSError:
    print(0)
EOF
}

start() {
    local auth=$1 address="" i
    install_missing
    stop
    mkdir -p "$dir/data"
    {
        echo "version: 0.1"
        echo "log: {level: info}"
        echo "storage: {filesystem: {rootdirectory: $dir/data}, delete: {enabled: true}}"
        echo "http: {addr: '127.0.0.1:0', secret: $(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')}"
        if [[ $auth == yes ]]; then
            (umask 077 && od -An -N16 -tx1 /dev/urandom | tr -d ' \n' >"$dir/password")
            htpasswd -Bbn wasp "$(<"$dir/password")" >"$dir/htpasswd" 2>/dev/null
            echo "auth: {htpasswd: {realm: wasp-test, path: $dir/htpasswd}}"
        fi
    } >"$dir/config.yml"
    : >"$dir/registry.log"
    setsid docker-registry serve "$dir/config.yml" >>"$dir/registry.log" 2>&1 </dev/null &
    local pid=$!
    echo "$pid" >"$dir/registry.pid"
    for ((i = 0; i < READY_TIMEOUT * 10; i++)); do
        [[ -d /proc/$pid ]] || fail "docker-registry exited; its log: $(tail -n 5 "$dir/registry.log")"
        address=$(sed -n 's/.*msg="listening on \(127\.0\.0\.1:[0-9]*\)".*/\1/p' "$dir/registry.log" | head -n 1)
        if [[ -n $address ]]; then
            case $(status "$address") in
                200 | 401)
                    say "docker-registry $(docker-registry --version 2>/dev/null | awk '{print $NF}') on $address (storage $dir/data)"
                    echo "$address"
                    return 0
                    ;;
            esac
        fi
        sleep 0.1
    done
    stop
    fail "docker-registry did not answer within ${READY_TIMEOUT} s; its log: $(tail -n 5 "$dir/registry.log")"
}

[[ $# -ge 1 ]] || usage
case $1 in
    install)
        [[ $# -eq 1 ]] || usage
        install_missing
        ;;
    start)
        [[ $# -eq 2 || ($# -eq 3 && $3 == --auth) ]] || usage
        mkdir -p -- "$2"
        dir=$(cd -- "$2" && pwd -P)
        [[ $dir != *[[:space:]]* ]] || fail "no spaces in the state directory, please: $dir"
        start "$([[ $# -eq 3 ]] && echo yes || echo no)"
        ;;
    stop)
        [[ $# -eq 2 ]] || usage
        [[ -d $2 ]] || exit 0
        dir=$(cd -- "$2" && pwd -P)
        stop
        ;;
    *) usage ;;
esac
