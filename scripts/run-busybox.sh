#!/usr/bin/env bash
# Runs one command in a container of an image, with berth-runtime on an overlay of the image's unpacked layers.
# (Until `berth run` lands, this is how the demo runs a container: the same isolation, one bundle by hand.)
# usage: run-busybox.sh ROOT IMAGE CMD...
set -euo pipefail
ROOT=$1 IMAGE=$2; shift 2
export PATH="$(cd "$(dirname "$0")/.." && pwd)/.venv/bin:$PATH"
lower=$(berth image inspect --format '{{.GraphDriver.Data.UpperDir}}' "$IMAGE")
below=$(berth image inspect --format '{{if .GraphDriver.Data.LowerDir}}{{.GraphDriver.Data.LowerDir}}{{end}}' "$IMAGE")
[ -n "$below" ] && lower="$lower:$below"
work=$(mktemp -d /tmp/berth-demo-XXXXXX)
cleanup() { umount "$work/bundle/rootfs" 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT
mkdir -p "$work/upper" "$work/work" "$work/bundle/rootfs"
mount -t overlay overlay -o "lowerdir=$lower,upperdir=$work/upper,workdir=$work/work" "$work/bundle/rootfs"
cd "$work/bundle"
berth-runtime spec >/dev/null
python3 - "$@" <<'PY'
import json, sys
spec = json.load(open("config.json"))
spec["process"]["args"] = sys.argv[1:]
spec["process"]["terminal"] = False
spec["root"]["readonly"] = False
json.dump(spec, open("config.json", "w"), indent=1)
PY
berth-runtime --root "$work/state" run --bundle "$work/bundle" "demo-$$"
