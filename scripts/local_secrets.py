"""Make the local secrets file of ``scripts/serve.sh``: one random webhook secret per registered system.

``<data_dir>/secrets.yaml`` (``SALESHUB_DATABASE__DATA_DIR``, default ``.saleshub``, the file
``saleshub serve`` finds by itself when no secret backend is chosen), mode 600. A system that
already has a secret keeps it; a system installed later (a plug-in) gets one at the next run.
Prints the systems it made a secret for.
"""

from __future__ import annotations

import base64
import os
import secrets
from pathlib import Path

import yaml

from adapters.registry import AdapterRegistry


def main() -> None:
    """Add a secret for every registered system that has none."""
    path = Path(os.environ.get("SALESHUB_DATABASE__DATA_DIR") or ".saleshub") / "secrets.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    stored = (yaml.safe_load(path.read_text(encoding="utf-8")) if path.is_file() else None) or {}
    webhook = stored.setdefault("webhook", {})
    made = [system for system in AdapterRegistry.default().names() if system not in webhook]
    for system in made:
        webhook[system] = [f"whsec_{base64.b64encode(secrets.token_bytes(32)).decode()}"]
    if made:
        old_umask = os.umask(0o077)
        try:
            path.write_text(yaml.safe_dump(stored, default_flow_style=None), encoding="utf-8")
        finally:
            os.umask(old_umask)
        path.chmod(0o600)
        print(f"made a webhook secret in {path} for {', '.join(made)}")


if __name__ == "__main__":
    main()
