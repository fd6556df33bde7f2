"""The Helm chart ``deploy/helm/saleshub``: rendered offline, validated against the Kubernetes schemas.

Rendered by Helm v4 itself (``helm-python-sdk``: Helm's Go library, no cluster, no binary) with the
default values and with ``values-production.example.yaml``; every object is validated against the
Kubernetes API schemas (``kubernetes-validate``, strict: unknown fields are errors). Then the
invariants an operator relies on: one workload per role running a real command, non-root with a
read-only root filesystem and no privilege escalation, three probes and resources on every
long-running container, the migration as a pre-install/pre-upgrade hook under its own service
account, no secret value in any manifest, and every ``SALESHUB_*`` setting reachable from values.
"""

from __future__ import annotations

import itertools
from functools import cache
from pathlib import Path
from typing import Any

import helm_python as helm
import kubernetes_validate
import pytest
import yaml
from pydantic import BaseModel, SecretStr

from saleshub.cli import load_command
from saleshub.platform.metrics import PROCESS_QUEUE_DEPTH
from saleshub.platform.settings import CONFIG_FILE_VARIABLE, Settings, known_environment_names
from tests.conftest import ROOT

CHART = ROOT / "deploy" / "helm" / "saleshub"
PRODUCTION = CHART / "values-production.example.yaml"
KUBERNETES = "1.33"  # GKE's regular channel
ROLES = {
    "receiver": ["serve", "--receive-only"],
    "processor": ["process"],
    "relay": ["kafka", "relay"],
    "consumer": ["kafka", "consume"],
    "poller": ["poll", "serve"],
}
Manifest = dict[str, Any]
JSON_SETTINGS = {
    "SALESHUB_KAFKA__CLIENT_CONFIG",
    "SALESHUB_KAFKA__CONSUMER_CONFIG",
    "SALESHUB_KAFKA__INBOUND_TOPICS",
    "SALESHUB_POLLERS__SYSTEMS",
    "SALESHUB_RETENTION__RAW_BODY_DAYS_BY_SYSTEM",
}


@cache
def chart() -> helm.Chart:
    return helm.Chart.load(CHART)


def render(values: dict[str, Any] | None = None) -> list[Manifest]:
    rendered = chart().render(values=values or {}, name="saleshub", namespace="sales", is_install=True)
    return [
        document
        for path, text in sorted(rendered.items())
        if path.endswith(".yaml")
        for document in yaml.safe_load_all(text)
        if isinstance(document, dict)
    ]


def production() -> dict[str, Any]:
    values: dict[str, Any] = yaml.safe_load(PRODUCTION.read_text())
    return values


def everything_on() -> dict[str, Any]:
    values = production()
    for role in ("consumer", "poller"):
        values[role] = {"replicas": 1}
    return values


def pod_specs(manifests: list[Manifest]) -> dict[str, Manifest]:
    """``{kind/name: pod spec}`` of every workload."""
    specs = {}
    for manifest in manifests:
        spec = manifest.get("spec", {})
        template = spec.get("template") or spec.get("jobTemplate", {}).get("spec", {}).get("template")
        if template:
            specs[f"{manifest['kind']}/{manifest['metadata']['name']}"] = template["spec"]
    return specs


def deployments(manifests: list[Manifest]) -> dict[str, Manifest]:
    return {
        manifest["metadata"]["labels"]["app.kubernetes.io/component"]: manifest
        for manifest in manifests
        if manifest["kind"] == "Deployment"
    }


def cronjobs(manifests: list[Manifest]) -> dict[str, Manifest]:
    return {
        manifest["metadata"]["labels"]["app.kubernetes.io/component"]: manifest
        for manifest in manifests
        if manifest["kind"] == "CronJob"
    }


def env_of(container: Manifest) -> dict[str, Manifest]:
    return {variable["name"]: variable for variable in container.get("env", [])}


@pytest.mark.parametrize("values", [None, PRODUCTION], ids=["defaults", "production"])
def test_every_rendered_object_validates_against_the_kubernetes_schemas(values: Path | None) -> None:
    manifests = render(yaml.safe_load(values.read_text()) if values else None)
    kinds = {manifest["kind"] for manifest in manifests}
    assert {"Deployment", "Job", "ServiceAccount", "Service", "PodDisruptionBudget"} <= kinds
    assert {"HorizontalPodAutoscaler", "NetworkPolicy"} <= kinds
    for manifest in manifests:
        kubernetes_validate.validate(manifest, KUBERNETES, strict=True)
    assert "Secret" not in kinds, "the chart holds no secret: it names existing Secrets"


def test_the_schema_check_can_fail() -> None:
    deployment = next(m for m in render() if m["kind"] == "Deployment")
    deployment["spec"]["template"]["spec"]["containers"][0]["readOnlyRootFileSystem"] = True  # a typo
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, KUBERNETES, strict=True)


def test_helm_lints_the_chart_without_errors() -> None:
    report = helm.lint(CHART, production(), strict=True)
    assert report["errors"] == []
    assert [m for m in report["messages"] if m["severity"] >= 2] == []


def _command(args: list[str]) -> Any:
    """The click command that ``saleshub ARGS`` runs (the words before the first option)."""
    first, *rest = itertools.takewhile(lambda word: not word.startswith("-"), args)
    command: Any = load_command(first)  # the command line imports a command when it runs
    for word in rest:
        assert hasattr(command, "commands"), f"{word}: not a command group"
        command = command.commands[word]
    return command


def test_one_workload_per_role_each_running_a_real_command() -> None:
    workloads = deployments(render(everything_on()))
    assert set(workloads) == set(ROLES)
    for role, expected in ROLES.items():
        (container,) = workloads[role]["spec"]["template"]["spec"]["containers"]
        assert container["args"][: len(expected)] == expected
        options = {name for parameter in _command(container["args"]).params for name in parameter.opts}
        for option in (word for word in container["args"] if word.startswith("--")):
            assert option in options, f"{role}: saleshub {' '.join(expected)} has no {option}"
        if role != "receiver":
            assert "--health-port" in container["args"], role


@pytest.mark.parametrize("values", [None, PRODUCTION], ids=["defaults", "production"])
def test_every_pod_runs_unprivileged_on_a_read_only_root_with_resources(values: Path | None) -> None:
    specs = pod_specs(render(yaml.safe_load(values.read_text()) if values else everything_on()))
    assert specs
    for name, spec in specs.items():
        pod = spec["securityContext"]
        assert pod["runAsNonRoot"] is True and pod["runAsUser"] != 0, name
        for container in spec["containers"]:
            security = container["securityContext"]
            assert security["allowPrivilegeEscalation"] is False, name
            assert security["readOnlyRootFilesystem"] is True, name
            assert security["capabilities"]["drop"] == ["ALL"], name
            assert container["resources"]["requests"]["cpu"], name
            assert container["resources"]["requests"]["memory"], name
            assert container["resources"]["limits"]["memory"], name
            mounts = {mount["mountPath"] for mount in container["volumeMounts"]}
            assert {"/tmp", "/var/lib/saleshub"} <= mounts, f"{name}: the image's writable paths"


def test_every_long_running_container_has_startup_liveness_and_readiness_probes() -> None:
    manifests = render(everything_on())
    for role, deployment in deployments(manifests).items():
        spec = deployment["spec"]["template"]["spec"]
        for container in spec["containers"]:
            ports = {port["name"]: port["containerPort"] for port in container["ports"]}
            for probe, path in (
                ("startupProbe", "/health/live"),
                ("livenessProbe", "/health/live"),
                ("readinessProbe", "/health/ready"),
            ):
                assert container[probe]["httpGet"]["path"] == path, (role, probe)
                assert container[probe]["httpGet"]["port"] in ports, (role, probe)
            startup = container["startupProbe"]
            assert startup["periodSeconds"] * startup["failureThreshold"] >= 60, "import time and a busy node"
        assert spec["terminationGracePeriodSeconds"] >= 30, role
    budgets = {m["metadata"]["name"] for m in manifests if m["kind"] == "PodDisruptionBudget"}
    assert budgets == {f"saleshub-{role}" for role in ROLES}


def test_graceful_termination_outlasts_a_relay_round() -> None:
    settings = Settings()
    workloads = deployments(render(production()))
    relay = workloads["relay"]["spec"]["template"]["spec"]
    assert relay["terminationGracePeriodSeconds"] > settings.relay.message_timeout_ms / 1000
    (receiver,) = workloads["receiver"]["spec"]["template"]["spec"]["containers"]
    assert receiver["lifecycle"]["preStop"]["exec"]["command"][0] == "sleep"


def test_the_migration_runs_db_upgrade_as_a_hook_under_its_own_service_account() -> None:
    manifests = render(production())
    (job,) = [m for m in manifests if m["kind"] == "Job"]
    annotations = job["metadata"]["annotations"]
    assert set(annotations["helm.sh/hook"].split(",")) == {"pre-install", "pre-upgrade"}
    spec = job["spec"]["template"]["spec"]
    (container,) = spec["containers"]
    assert container["args"] == ["db", "upgrade"]
    runtime = {d["spec"]["template"]["spec"]["serviceAccountName"] for d in deployments(manifests).values()}
    assert spec["serviceAccountName"] not in runtime, "never as the runtime's identity"
    env = env_of(container)
    assert env["SALESHUB_SECRETS__VAULT_ROLE"]["value"] == "saleshub-owner"
    assert env["SALESHUB_SECRETS__VAULT_PATH"]["value"] == "saleshub-owner"
    assert "SALESHUB_SECRETS__VAULT_DATABASE_ROLE" not in env, "never the runtime's leased user"
    assert (
        env["SALESHUB_DATABASE__URL"]
        == env_of(deployments(manifests)["processor"]["spec"]["template"]["spec"]["containers"][0])[
            "SALESHUB_DATABASE__URL"
        ]
    )
    (account,) = [
        m
        for m in manifests
        if m["kind"] == "ServiceAccount" and m["metadata"]["name"] == spec["serviceAccountName"]
    ]
    # Hooks run before the release's ordinary objects exist: its service account must be a hook too.
    assert int(account["metadata"]["annotations"]["helm.sh/hook-weight"]) < int(
        annotations["helm.sh/hook-weight"]
    )


def test_roles_run_only_where_configured() -> None:
    assert set(deployments(render())) == {"receiver", "processor"}, "no relay without Kafka"
    with pytest.raises(helm.HelmError, match=r"poller.replicas is 1, but settings.pollers.systems is empty"):
        render({"poller": {"replicas": 1}})
    with pytest.raises(helm.HelmError, match=r"consumer.replicas is 2, but settings.kafka"):
        render({"consumer": {"replicas": 2}, "settings": {"kafka": {"bootstrap_servers": "k:9092"}}})


def test_the_owners_settings_keep_numbers_as_written() -> None:
    values = production()
    values["settings"]["web"]["max_body_bytes"] = 10485760
    (job,) = [m for m in render(values) if m["kind"] == "Job"]
    env = env_of(job["spec"]["template"]["spec"]["containers"][0])
    assert env["SALESHUB_WEB__MAX_BODY_BYTES"]["value"] == "10485760"


def test_partitions_are_created_monthly_as_the_owner_and_retention_runs_as_the_runtime() -> None:
    manifests = render(production())
    (job,) = [m for m in manifests if m["kind"] == "Job"]
    owner = job["spec"]["template"]["spec"]["serviceAccountName"]
    jobs = cronjobs(manifests)
    partitions = jobs["partitions"]["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    assert partitions["containers"][0]["args"] == ["db", "upgrade"]
    assert partitions["serviceAccountName"] == owner
    assert env_of(partitions["containers"][0])["SALESHUB_SECRETS__VAULT_ROLE"]["value"] == "saleshub-owner"
    retention = jobs["retention"]["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    assert retention["containers"][0]["args"][:2] == ["db", "retention"]
    assert retention["serviceAccountName"] != owner
    options = {
        name for parameter in _command(retention["containers"][0]["args"]).params for name in parameter.opts
    }
    assert {word for word in retention["containers"][0]["args"] if word.startswith("--")} <= options


def test_pollers_leave_the_nightly_reconciliation_to_the_cronjob() -> None:
    manifests = render(production())
    cron = cronjobs(manifests)["reconciliation"]
    assert cron["spec"]["concurrencyPolicy"] == "Forbid"
    (container,) = cron["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"]
    assert container["args"] == ["reconcile", "nightly"]
    workloads = deployments(manifests)
    (poller,) = workloads["poller"]["spec"]["template"]["spec"]["containers"]
    assert env_of(poller)["SALESHUB_POLLERS__RECONCILE_AT"]["value"] == "off"
    (processor,) = workloads["processor"]["spec"]["template"]["spec"]["containers"]
    assert "SALESHUB_POLLERS__RECONCILE_AT" not in env_of(processor)


def test_datadog_tags_agent_host_and_the_autoscalers() -> None:
    manifests = render(production())
    for role, deployment in deployments(manifests).items():
        labels = deployment["spec"]["template"]["metadata"]["labels"]
        assert labels["tags.datadoghq.com/env"] == "prod", role
        assert labels["tags.datadoghq.com/service"] == "saleshub", role
        assert labels["tags.datadoghq.com/version"] == "0.1.0", role
        (container,) = deployment["spec"]["template"]["spec"]["containers"]
        env = env_of(container)
        assert env["DD_AGENT_HOST"]["valueFrom"]["fieldRef"]["fieldPath"] == "status.hostIP"
        assert env["SALESHUB_TELEMETRY__STATSD_HOST"]["value"] == "$(DD_AGENT_HOST)"
    scalers = {
        m["spec"]["scaleTargetRef"]["name"]: m for m in manifests if m["kind"] == "HorizontalPodAutoscaler"
    }
    assert set(scalers) == {"saleshub-receiver", "saleshub-processor"}
    assert scalers["saleshub-receiver"]["spec"]["metrics"][0]["resource"]["name"] == "cpu"
    external = scalers["saleshub-processor"]["spec"]["metrics"][0]["external"]
    assert external["metric"]["name"] == PROCESS_QUEUE_DEPTH
    for name in scalers:
        assert (
            "replicas"
            not in next(m for m in manifests if m["kind"] == "Deployment" and m["metadata"]["name"] == name)[
                "spec"
            ]
        ), "the autoscaler owns the replica count"


def _fields() -> dict[str, tuple[str, ...]]:
    """``{SALESHUB_ variable: path in settings values}`` of every setting of the model."""
    paths: dict[str, tuple[str, ...]] = {}
    for name, field in Settings.model_fields.items():
        group = field.annotation
        if isinstance(group, type) and issubclass(group, BaseModel):
            for inner in group.model_fields:
                paths[f"SALESHUB_{name.upper()}__{inner.upper()}"] = (name, inner)
        else:
            paths[f"SALESHUB_{name.upper()}"] = (name,)
    groups = {f"SALESHUB_{name.upper()}" for name in Settings.model_fields} - set(paths)
    assert set(paths) == known_environment_names() - {CONFIG_FILE_VARIABLE} - groups
    return paths


def _secret_settings() -> set[str]:
    secret = set()
    for name, field in Settings.model_fields.items():
        group = field.annotation
        if isinstance(group, type) and issubclass(group, BaseModel):
            for inner, sub in group.model_fields.items():
                if sub.annotation == SecretStr | None and (name, inner) != ("database", "url"):
                    secret.add(f"SALESHUB_{name.upper()}__{inner.upper()}")
    return secret


def test_every_setting_is_a_value_and_reaches_every_hub_container() -> None:
    paths = _fields()
    secret = _secret_settings()
    assert secret == {"SALESHUB_SECRETS__VAULT_TOKEN", "SALESHUB_SECRETS__VAULT_SECRET_ID"}
    defaults = yaml.safe_load((CHART / "values.yaml").read_text())["settings"]
    for variable, path in paths.items():
        node = defaults
        for part in path[:-1]:
            node = node[part]
        assert (path[-1] in node) is (variable not in secret), f"values.yaml settings: {'.'.join(path)}"

    values = everything_on()
    values["migration"]["settings"] = {}  # the owner's pods then get every setting too
    values["settings"] = {}
    for variable, path in paths.items():
        if variable in secret:
            continue
        node = values["settings"]
        for part in path[:-1]:
            node = node.setdefault(part, {})
        # JSON settings get a map, the others a string naming the variable
        node[path[-1]] = {"probe": variable} if variable in JSON_SETTINGS else f"v-{variable.lower()}"
    values["settings"]["database"]["url"] = "postgresql+psycopg://db.sales.svc/saleshub"
    values["secretEnv"] = [
        {"name": name, "secretName": "saleshub-vault", "key": name.lower()} for name in secret
    ]
    manifests = render(values)
    for name, spec in pod_specs(manifests).items():
        owner = spec["serviceAccountName"].endswith("-migration")  # the owner's own secretEnv
        for container in spec["containers"]:
            env = env_of(container)
            missing = set(paths) - set(env) - (secret if owner else set())
            assert not missing, f"{name}: {sorted(missing)}"
            for variable in set() if owner else secret:
                assert env[variable]["valueFrom"]["secretKeyRef"]["name"] == "saleshub-vault"


@pytest.mark.parametrize(
    ("settings", "refusal"),
    [
        ({"database": {"url": "postgresql+psycopg://hub:hunter2@db/saleshub"}}, "holds a password"),
        ({"database": {"url": None}}, "settings.database.url is required"),
        ({"secrets": {"vault_token": "s.canary"}}, "vault_token is a secret"),
        ({"secrets": {"vault_secret_id": "canary"}}, "vault_secret_id is a secret"),
        ({"kafka": {"client_config": {"sasl.password": "canary"}}}, "is a credential"),
        (
            {"privacy": {"keys": "vault"}},
            "settings.privacy.keys is vault, but settings.secrets.backend is not",
        ),
    ],
)
def test_values_the_chart_refuses(settings: dict[str, Any], refusal: str) -> None:
    with pytest.raises(helm.HelmError, match=refusal):
        render({"settings": settings})


def test_no_secret_value_in_any_manifest() -> None:
    manifests = render(everything_on())
    for manifest in manifests:
        for spec in pod_specs([manifest]).values():
            for container in spec["containers"]:
                for variable in container.get("env", []):
                    if any(
                        word in variable["name"] for word in ("PASSWORD", "TOKEN", "SECRET_ID", "SECRET_")
                    ):
                        if variable["name"].endswith("_FILE"):
                            continue
                        assert "value" not in variable, f"{manifest['metadata']['name']}: {variable['name']}"
    text = yaml.safe_dump_all(manifests)
    for word in ("whsec_", "hunter2", "password:", "BEGIN PRIVATE KEY"):
        assert word not in text
