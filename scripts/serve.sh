#!/usr/bin/env bash
# The hub's main job on a fresh machine: install, then `saleshub serve` on an embedded PostgreSQL
# (data in .saleshub/postgres, or under SALESHUB_DATABASE__DATA_DIR) unless SALESHUB_DATABASE__URL
# is set. With no webhook secret configured, a local secrets file (<data dir>/secrets.yaml, mode
# 600, made by scripts/local_secrets.py) holds one random secret per registered system, built-in or
# installed plug-in (a system installed later gets its secret at the next start, the others keep
# theirs), so signed webhooks work at once; share it with the senders.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
if [ -z "${SALESHUB_SECRETS__BACKEND:-}" ] && ! env | grep -q '^SALESHUB_SECRET_WEBHOOK_'; then
  # <data_dir>/secrets.yaml, which `saleshub serve` finds by itself when no backend is chosen.
  .venv/bin/python scripts/local_secrets.py
fi
exec .venv/bin/saleshub serve "$@"
