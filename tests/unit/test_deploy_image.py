"""``deploy/Containerfile`` agrees with what the tests build and the chart assumes; the lock is whole.

No container runtime runs here (``tests/integration/test_image_layout.py`` builds and runs the same
layout in a directory), so these checks hold the file to that layout: the build stage runs
``deploy/install.sh`` with the paths the final stage uses, the user is the chart's non-root uid,
the writable paths are the chart's mounts, and the runtime lock pins every dependency of
``pyproject.toml`` within its range and nothing of the development tools.
"""

from __future__ import annotations

import json
import re
import shlex
import tomllib

import yaml
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from tests.conftest import ROOT

CONTAINERFILE = ROOT / "deploy" / "Containerfile"
LOCK = ROOT / "deploy" / "requirements.lock"
CHART_VALUES = ROOT / "deploy" / "helm" / "saleshub" / "values.yaml"


def stages() -> list[list[tuple[str, str]]]:
    """The Containerfile's instructions, per stage, continuation lines joined."""
    text = re.sub(r"\\\n\s*", " ", CONTAINERFILE.read_text())
    result: list[list[tuple[str, str]]] = []
    for line in text.splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        instruction, _, argument = line.strip().partition(" ")
        if instruction == "FROM":
            result.append([])
        if result:
            result[-1].append((instruction, argument.strip()))
    return result


def locked() -> dict[str, str]:
    pins = {}
    for line in LOCK.read_text().splitlines():
        if line and not line.startswith("#"):
            name, _, version = line.partition("==")
            pins[canonicalize_name(name)] = version
    return pins


def test_the_build_stage_runs_install_sh_and_the_final_stage_only_copies() -> None:
    build, final = stages()
    assert ("RUN", "sh deploy/install.sh /opt/saleshub /srv/saleshub") in build
    for instruction, argument in build:
        if instruction == "COPY":
            *sources, _ = shlex.split(argument)
            for source in sources:
                assert (ROOT / source).exists(), source
    copies = [argument for instruction, argument in final if instruction == "COPY"]
    assert copies == ["--from=build /opt/saleshub /opt/saleshub", "--from=build /srv/saleshub /srv/saleshub"]
    runs = " ".join(argument for instruction, argument in final if instruction == "RUN")
    for tool in ("pip", "apt-get", "gcc", "make"):
        assert tool not in runs, f"the final stage installs nothing ({tool})"


def test_the_final_stage_is_the_layout_the_chart_runs() -> None:
    final = dict(stages()[1])
    values = yaml.safe_load(CHART_VALUES.read_text())
    user = final["USER"].split(":")[0]
    assert user.isdigit() and int(user) != 0
    assert int(user) == values["podSecurityContext"]["runAsUser"]
    assert final["WORKDIR"] == "/srv/saleshub"
    assert "PATH=/opt/saleshub/bin:" in final["ENV"]
    data_dir = values["settings"]["database"]["data_dir"]
    assert f"SALESHUB_DATABASE__DATA_DIR={data_dir}" in final["ENV"]
    assert set(json.loads(final["VOLUME"])) == {data_dir, "/tmp"}
    assert json.loads(final["ENTRYPOINT"]) == ["saleshub"]
    assert 'org.opencontainers.image.version="${VERSION}"' in final["LABEL"]
    assert "/health/live" in final["HEALTHCHECK"]


def test_the_lock_pins_every_runtime_dependency_within_its_range_and_no_dev_tool() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    pins = locked()
    for line in project["dependencies"]:
        requirement = Requirement(line)
        name = canonicalize_name(requirement.name)
        assert name in pins, f"{name} is not in {LOCK.name}: run deploy/lock.py"
        assert requirement.specifier.contains(pins[name], prereleases=True), f"{name}=={pins[name]}"
    for line in project["optional-dependencies"]["dev"]:
        name = canonicalize_name(Requirement(line).name)
        if name not in {canonicalize_name(Requirement(dep).name) for dep in project["dependencies"]}:
            assert name not in pins, f"{name} is a development tool"
