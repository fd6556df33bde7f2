"""A benchmark floor, never a product setting: encryption at rest taken out of every Python process.

With this directory on ``PYTHONPATH``, each interpreter (the hub and the web workers it spawns)
starts inside ``bench.privacy.encryption_off()``: rows written in clear as before sealing (see that
module's docstring). It lets the webhook benchmark compare the whole stack, encryption on (its
default) against off (the variant), with its own harness::

    .venv/bin/python bench/ingest.py --compare PYTHONPATH=bench/encryption_off --pairs 4 --seconds 6
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from bench.privacy import encryption_off

# Held for the life of the process: a context manager collected unreferenced would restore the hub.
FLOOR = encryption_off()
FLOOR.__enter__()
