#!/usr/bin/env bash
# Installs everything berth and its tests need on a fresh Debian 12 machine (run as root), idempotently:
# Debian packages, a virtualenv at .venv with berth (editable) and its test tools.
set -euo pipefail
cd "$(dirname "$0")/.."

APT_PACKAGES=(python3 python3-venv python3-dev gcc libc6-dev busybox-static docker.io skopeo runc crun umoci
              debootstrap mmdebstrap hyperfine nftables iproute2 libseccomp2 zstd util-linux procps psmisc
              docker-registry apache2-utils chromium chromium-driver tini docker-compose)
missing=()
for p in "${APT_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
    echo "installing Debian packages: ${missing[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
# dockerd from docker.io must not start on its own and take the host's docker.sock for tests; berth's
# interop tests start private ones.
if command -v systemctl >/dev/null && systemctl is-enabled docker.service >/dev/null 2>&1; then
    systemctl disable --now docker.service docker.socket >/dev/null 2>&1 || true
fi

PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
    "$PY" -m venv .venv
fi
.venv/bin/pip install -q --upgrade pip >/dev/null 2>&1 || true
.venv/bin/pip install -q -e ".[test]" 2> >(grep -v "^WARNING: Location" >&2)

# docker-compose 1.29 (the Python one, for tests/compose) pins libraries that clash with the test venv's (PyYAML<6,
# jsonschema<4, websocket-client<1, docker<7 for kwargs_from_env(ssl_version=)): its own venv. PyYAML 5.4.1 has no
# wheel for Python 3.11 and its C extension does not build with Cython 3, hence the build without isolation.
if ! .venv-compose/bin/python -c "import importlib.metadata as m, sys; sys.exit(m.version('docker-compose') != '1.29.2')" \
        2>/dev/null || [ ! -x .venv-compose/bin/docker-compose ]; then
    echo "installing docker-compose 1.29.2 into .venv-compose"
    rm -rf .venv-compose
    "$PY" -m venv .venv-compose
    .venv-compose/bin/pip install -q "cython<3" wheel "setuptools<70" 2> >(grep -v "^WARNING: Location" >&2)
    .venv-compose/bin/pip install -q --no-build-isolation "pyyaml==5.4.1" 2> >(grep -v "^WARNING: Location" >&2)
    .venv-compose/bin/pip install -q "docker-compose==1.29.2" "docker[ssh]==6.1.3" "requests==2.31.0" \
        "urllib3<2" 2> >(grep -v "^WARNING: Location" >&2)
fi
