#!/usr/bin/env bash
# berth's main job on a fresh Debian 12 machine, as root: install everything, start berthd, make a base image
# offline (from the host's busybox-static), and run a container from it.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh
export PATH="$PWD/.venv/bin:$PATH"
ROOT=${BERTH_ROOT:-/var/lib/berth}
SOCK=${BERTH_SOCK:-/run/berth/berth.sock}
export BERTH_HOST="unix://$SOCK"

if ! berth version >/dev/null 2>&1; then
    echo "== starting berthd (root $ROOT, socket $SOCK)"
    mkdir -p /var/log
    nohup berthd --host "unix://$SOCK" --root "$ROOT" >>/var/log/berthd.log 2>&1 &
    for _ in $(seq 100); do berth version >/dev/null 2>&1 && break; sleep 0.1; done
fi
berth version

echo "== making a base image offline from /bin/busybox"
berth image bootstrap busybox
berth images

echo "== running a container from it (the real docker CLI, talking to berthd)"
DOCKER=$(command -v docker)
"$DOCKER" -H "$BERTH_HOST" run --rm busybox sh -c 'echo "hello from a berth container: $(hostname), pid $$"'
"$DOCKER" -H "$BERTH_HOST" ps -a

echo "== the same with berth's own CLI, on the default bridge network"
berth run --rm busybox sh -c 'ip -o -4 addr show eth0 | awk "{print \"eth0:\", \$4}"; echo "hello from berth run"'
