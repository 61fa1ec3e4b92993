#!/usr/bin/env bash
# Runs berth's whole test suite: static checks (ruff, mypy, import layering), then pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh
export PATH="$PWD/.venv/bin:$PATH"
echo "== ruff";          ruff check src tests bench
echo "== mypy";          mypy
echo "== import layers"; lint-imports
echo "== pytest"
set +e
python -m pytest "$@"
rc=$?
set -e
if [ $rc -eq 5 ]; then
    echo "pytest collected no tests: that is a failure" >&2
    exit 1
fi
exit $rc
