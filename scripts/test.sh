#!/usr/bin/env bash
# The whole test suite: install, lint, format check, type check, mapping checks, pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
# Headless Chromium (Debian) for the reconciliation report's browser test.
command -v chromium >/dev/null || (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium)
echo "== ruff"; .venv/bin/ruff check . && .venv/bin/ruff format --check .
echo "== mypy --strict"; .venv/bin/mypy
echo "== import contracts"; .venv/bin/lint-imports
echo "== saleshub mappings validate"; .venv/bin/saleshub mappings validate
echo "== saleshub mappings test"; .venv/bin/saleshub mappings test
echo "== pytest"; .venv/bin/pytest "$@"
