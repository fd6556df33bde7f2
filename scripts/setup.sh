#!/usr/bin/env bash
# Create .venv (Python 3.11+) and install the hub with its development tools. Idempotent.
# Debian packages: only python3-venv, installed here when the interpreter lacks venv/ensurepip.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
  if ! "$PYTHON" -m venv .venv 2>/dev/null; then
    rm -rf .venv
    if command -v apt-get >/dev/null && [ "$(id -u)" = 0 ]; then
      apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv
    fi
    "$PYTHON" -m venv .venv
  fi
fi
.venv/bin/python -m pip install --quiet --upgrade pip
.venv/bin/python -m pip install --quiet -e '.[dev]'
# The example plug-in's source (plugins/saleshub-peppol/src) on the path of the hub's checks (mypy,
# import contracts, its contract suite), not installed: without its entry points the hub does not
# load it; `pip install ./plugins/saleshub-peppol` does (see "Adding a source system" in README.md).
.venv/bin/python - <<'PY'
import pathlib, sysconfig
site = pathlib.Path(sysconfig.get_paths()["purelib"])
(site / "saleshub-plugins-src.pth").write_text(str(pathlib.Path("plugins/saleshub-peppol/src").resolve()) + "\n")
PY
