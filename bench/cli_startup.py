"""CPU time of ``saleshub`` commands, against a bare interpreter (``python -c pass``) in the same run.

Each round runs, one after the other, ``python -c pass`` (the floor: the interpreter's own start),
``saleshub --help`` and ``saleshub status`` (against a migrated embedded PostgreSQL the bench starts
once, handed over as ``SALESHUB_DATABASE__URL`` so status connects and reads like on a running hub),
and takes each child's CPU time (user + system, from ``wait4``): CPU, not wall time, so a busy machine
changes the figures less. The median of the rounds is printed per command, absolute and above the
floor, with the targets: ``--help`` <= 0.3 s and ``status`` <= 1.5 s of CPU.

    .venv/bin/python bench/cli_startup.py [--rounds 7]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from saleshub.platform.settings import Settings  # noqa: E402
from saleshub.store.database import open_database  # noqa: E402
from saleshub.store.migrate import upgrade  # noqa: E402

TARGETS = {"saleshub --help": 0.3, "saleshub status": 1.5}


def cpu_seconds(command: list[str], env: dict[str, str]) -> float:
    """The CPU time (user + system) of one run of ``command``, which must succeed."""
    process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(status)
    stderr = process.stderr.read().decode() if process.stderr else ""
    if process.returncode != 0:
        raise SystemExit(f"{' '.join(command)} exited {process.returncode}: {stderr}")
    return usage.ru_utime + usage.ru_stime


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    saleshub = str(Path(sys.executable).with_name("saleshub"))
    with tempfile.TemporaryDirectory(prefix="saleshub-cli-bench-") as data_dir:
        db = open_database(Settings(database={"data_dir": Path(data_dir)}))  # type: ignore[arg-type]
        try:
            upgrade(db.engine)
            env = {
                **os.environ,
                "SALESHUB_DATABASE__URL": db.url.get_secret_value(),
                "SALESHUB_LOG_LEVEL": "WARNING",
                "COLUMNS": "120",
            }
            commands = {
                "python -c pass": [sys.executable, "-c", "pass"],
                "saleshub --help": [saleshub, "--help"],
                "saleshub status": [saleshub, "status"],
            }
            figures: dict[str, list[float]] = {name: [] for name in commands}
            for _ in range(args.rounds):
                for name, command in commands.items():
                    figures[name].append(cpu_seconds(command, env))
        finally:
            db.close()
    floor = statistics.median(figures["python -c pass"])
    print(f"CPU time per command, median of {args.rounds} rounds (user + system):")
    for name, values in figures.items():
        median = statistics.median(values)
        target = TARGETS.get(name)
        verdict = (
            "" if target is None else f"  target <= {target:.1f} s: {'met' if median <= target else 'MISSED'}"
        )
        print(
            f"  {name:<16} {median:6.3f} s  (min {min(values):.3f}, max {max(values):.3f}; "
            f"{median - floor:+.3f} s over the floor){verdict}"
        )


if __name__ == "__main__":
    main()
