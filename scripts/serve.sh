#!/usr/bin/env bash
# The hub's main job on a fresh machine: install, then `saleshub serve` on an embedded PostgreSQL
# (data in .saleshub/postgres) unless SALESHUB_DATABASE__URL is set. With no webhook secret
# configured, a local secrets file (.saleshub/secrets.yaml, mode 600) holds one random secret per
# registered system, built-in or installed plug-in (a system installed later gets its secret at the
# next start, the others keep theirs), so signed webhooks work at once; share it with the senders.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
if [ -z "${SALESHUB_SECRETS__BACKEND:-}" ] && ! env | grep -q '^SALESHUB_SECRET_WEBHOOK_'; then
  export SALESHUB_SECRETS__BACKEND=file SALESHUB_SECRETS__FILE=.saleshub/secrets.yaml
  mkdir -p .saleshub
  (umask 077 && .venv/bin/python -c '
import base64, pathlib, secrets, yaml
from adapters.registry import AdapterRegistry
path = pathlib.Path(".saleshub/secrets.yaml")
stored = (yaml.safe_load(path.read_text()) if path.is_file() else None) or {}
webhook = stored.setdefault("webhook", {})
made = [s for s in AdapterRegistry.default().names() if s not in webhook]
for system in made:
    webhook[system] = [f"whsec_{base64.b64encode(secrets.token_bytes(32)).decode()}"]
if made:
    path.write_text(yaml.safe_dump(stored, default_flow_style=None))
    print(f"made a webhook secret in {path} for {', '.join(made)}")
')
fi
exec .venv/bin/saleshub serve "$@"
