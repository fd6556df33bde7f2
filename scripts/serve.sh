#!/usr/bin/env bash
# The hub's main job on a fresh machine: install, then `saleshub serve` on an embedded PostgreSQL
# (data in .saleshub/postgres) unless SALESHUB_DATABASE__URL is set. With no webhook secret
# configured, a local secrets file with one random secret per registered system (built-in and
# installed plug-ins) is made once (.saleshub/secrets.yaml, mode 600) so signed webhooks work at
# once; share it with the senders.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
if [ -z "${SALESHUB_SECRETS__BACKEND:-}" ] && ! env | grep -q '^SALESHUB_SECRET_WEBHOOK_'; then
  export SALESHUB_SECRETS__BACKEND=file SALESHUB_SECRETS__FILE=.saleshub/secrets.yaml
  if [ ! -f .saleshub/secrets.yaml ]; then
    mkdir -p .saleshub
    (umask 077 && .venv/bin/python -c '
import base64, secrets
from adapters.registry import AdapterRegistry
print("webhook:")
for system in AdapterRegistry.default().names():  # built-in and installed plug-in systems
    print(f"  {system}: [whsec_{base64.b64encode(secrets.token_bytes(32)).decode()}]")
' > .saleshub/secrets.yaml)
    echo "made .saleshub/secrets.yaml (one webhook secret per system)"
  fi
fi
exec .venv/bin/saleshub serve "$@"
