"""deploy/: the Kubernetes manifests validate against the Kubernetes schemas (offline), and
everything they name exists in omnirouter: settings, CLI commands, probe paths, topics,
consumer groups, metrics. The Strimzi and compose files are checked for the same, by structure
(their schemas are not Kubernetes')."""

from __future__ import annotations

import copy
import importlib.util
import inspect
import re
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import httpx
import kubernetes_validate
import pytest
import yaml
from starlette.routing import Match

from omnirouter import assembly
from omnirouter.cli import _parser
from omnirouter.desktop.api import desk_router
from omnirouter.desktop.pages import desk_pages_router
from omnirouter.events.topics import TOPICS
from omnirouter.http import create_http_app
from omnirouter.ingress.app import channel_routers
from omnirouter.ingress.context import ChannelContext
from omnirouter.ops.http import ops_router
from omnirouter.ops.lag import LagReport, lag_metrics
from omnirouter.ops.worker_metrics import serve_worker_metrics
from omnirouter.runtime import catalogue_topics
from omnirouter.settings import ApiSettings, KafkaSettings, OpsSettings, Settings, load_settings
from support.settings_env import clear_ambient_settings

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
KUBERNETES = DEPLOY / "kubernetes"
KUBERNETES_VERSION = "1.31"
_PLACEHOLDER = "placeholder-from-a-secret"


def _documents(path: Path) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]


def _manifests() -> list[tuple[str, dict[str, Any]]]:
    files = sorted(KUBERNETES.glob("*.yaml"))
    return [(f.name, doc) for f in files if f.name != "kustomization.yaml" for doc in _documents(f)]


def _of_kind(kind: str) -> list[dict[str, Any]]:
    return [doc for _, doc in _manifests() if doc["kind"] == kind]


def _named(kind: str, name: str) -> dict[str, Any]:
    found = [doc for doc in _of_kind(kind) if doc["metadata"]["name"] == name]
    assert found, f"no {kind} {name} in deploy/kubernetes"
    return found[0]


def _containers() -> Iterator[tuple[dict[str, Any], dict[str, Any]]]:
    for deployment in _of_kind("Deployment"):
        for container in deployment["spec"]["template"]["spec"]["containers"]:
            yield deployment, container


@pytest.fixture(autouse=True)
def _no_ambient_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    clear_ambient_settings(monkeypatch)


# -- Kubernetes schemas -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "manifest"),
    _manifests(),
    ids=[f"{n}:{d['kind']}/{d['metadata']['name']}" for n, d in _manifests()],
)
def test_manifest_validates_against_the_kubernetes_schema(
    name: str, manifest: dict[str, Any]
) -> None:
    """Strict: an unknown or misplaced field fails too. The schemas ship with the package."""
    assert "namespace" not in manifest["metadata"], f"{name}: manifests are namespace-agnostic"
    validated = kubernetes_validate.validate(manifest, KUBERNETES_VERSION, strict=True)
    assert validated.startswith(KUBERNETES_VERSION)


def test_the_schema_check_catches_a_misplaced_field() -> None:
    """(The check above is not a formality: strict validation refuses what the API would.)"""
    deployment = copy.deepcopy(_named("Deployment", "omnirouter-worker"))
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    container["livenessProbe"]["httpGet"]["paht"] = container["livenessProbe"]["httpGet"].pop(
        "path"
    )
    with pytest.raises(kubernetes_validate.ValidationError, match="paht"):
        kubernetes_validate.validate(deployment, KUBERNETES_VERSION, strict=True)


def test_kustomization_lists_every_manifest_but_the_secret_example() -> None:
    kustomization = yaml.safe_load((KUBERNETES / "kustomization.yaml").read_text())
    on_disk = {p.name for p in KUBERNETES.glob("*.yaml")} - {"kustomization.yaml"}
    assert set(kustomization["resources"]) == on_disk - {"secret.example.yaml"}
    assert "namespace" not in kustomization
    images = {image["name"] for image in kustomization["images"]}
    for _, container in _containers():
        assert container["image"].rsplit(":", 1)[0] in images


def test_the_secret_example_holds_placeholders_only() -> None:
    for secret in _documents(KUBERNETES / "secret.example.yaml"):
        for key, value in secret["stringData"].items():
            assert "change-me" in value or "(the PEM" in value, key


# -- What the manifests name exists in omnirouter --------------------------------------------


def _container_environment(container: dict[str, Any], files: dict[str, str]) -> dict[str, str]:
    env: dict[str, str] = {}
    for source in container.get("envFrom", []):
        if "configMapRef" in source:
            env |= _named("ConfigMap", source["configMapRef"]["name"])["data"]
        else:
            secrets = _documents(KUBERNETES / "secret.example.yaml")
            name = source["secretRef"]["name"]
            env |= next(s for s in secrets if s["metadata"]["name"] == name)["stringData"]
    for item in container.get("env", []):
        env[item["name"]] = item.get("value", _PLACEHOLDER)
    # Mounted files (CA certificates) exist in the pod, not here: stand-ins that do.
    return {key: files.get(value, value) for key, value in env.items()}


def _mounted_files(tmp_path: Path) -> dict[str, str]:
    data = _named("ConfigMap", "omnirouter-settings")["data"]
    files = {}
    for value in data.values():
        if value.startswith("/etc/omnirouter/"):
            stand_in = tmp_path / value.strip("/").replace("/", "_")
            stand_in.write_text("-----BEGIN CERTIFICATE-----\n")
            files[value] = str(stand_in)
    return files


def _load(monkeypatch: pytest.MonkeyPatch, env: dict[str, str]) -> Settings:
    with monkeypatch.context() as patched:
        for key, value in env.items():
            patched.setenv(key, str(value))
        return load_settings()


def test_every_container_environment_is_accepted_by_the_settings_model(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Loaded the way the process loads it: an unknown or invalid name would fail here."""
    files = _mounted_files(tmp_path)
    for deployment, container in _containers():
        env = _container_environment(container, files)
        assert all(key.startswith("OMNIROUTER_") for key in env), deployment["metadata"]["name"]
        settings = _load(monkeypatch, env)
        assert settings.kafka.security_protocol == "SASL_SSL"
        assert settings.kafka.sasl_password is not None
        assert settings.redis.password is not None
        assert settings.redis.url is not None and settings.redis.url.startswith("rediss://")
        assert settings.api.host == "0.0.0.0"  # noqa: S104 - a pod listens on its interfaces


def test_mounted_settings_files_are_mounted_in_every_container() -> None:
    paths = [v for v in _named("ConfigMap", "omnirouter-settings")["data"].values() if v[:1] == "/"]
    assert paths
    for deployment, container in _containers():
        mounts = {m["mountPath"] for m in container["volumeMounts"]}
        for path in paths:
            assert str(Path(path).parent) in mounts, (deployment["metadata"]["name"], path)


def test_containers_run_omnirouter_commands_the_cli_knows() -> None:
    dockerfile = (DEPLOY / "docker" / "Dockerfile").read_text()
    assert 'ENTRYPOINT ["omnirouter"]' in dockerfile
    parser = _parser()
    commands = {}
    for deployment, container in _containers():
        assert "command" not in container, "the image's entrypoint is omnirouter"
        parsed = parser.parse_args(container["args"])
        commands[deployment["metadata"]["name"]] = parsed.command
    assert commands == {
        "omnirouter-gateway": "serve",
        "omnirouter-desktop": "serve",
        "omnirouter-lag-monitor": "serve",
        "omnirouter-worker": "worker",
    }


def test_containers_are_locked_down_and_sized() -> None:
    dockerfile = (DEPLOY / "docker/Dockerfile").read_text()
    run_as = re.search(r"^USER (\d+):(\d+)$", dockerfile, re.M)
    assert run_as is not None, "the image runs as a numeric non-root user"
    workdir = re.findall(r"^WORKDIR (\S+)$", dockerfile, re.M)[-1]  # the final stage's
    for deployment, container in _containers():
        pod = deployment["spec"]["template"]["spec"]
        assert pod["securityContext"]["runAsNonRoot"] is True
        assert pod["securityContext"]["runAsUser"] == int(run_as.group(1)) != 0
        context = container["securityContext"]
        assert context["readOnlyRootFilesystem"] is True
        assert context["allowPrivilegeEscalation"] is False
        assert context["capabilities"]["drop"] == ["ALL"]
        assert {"cpu", "memory"} <= set(container["resources"]["requests"])
        assert {"cpu", "memory"} <= set(container["resources"]["limits"])
        # faust writes its data directory into the working directory: a writable mount.
        assert workdir in {m["mountPath"] for m in container["volumeMounts"]}


def _serve_app() -> Any:
    """The route table `omnirouter serve` mounts (assembly.serve_http), on stand-in services."""
    stub = SimpleNamespace(store=None, rules=None)
    settings = Settings()
    routers = [
        *channel_routers(ChannelContext(stub, settings, stub)),  # type: ignore[arg-type]
        desk_router(stub, stub, None),  # type: ignore[arg-type]
        desk_pages_router(),
        ops_router(settings, "127.0.0.1:9", stub, sample=False),  # type: ignore[arg-type]
    ]
    return create_http_app(
        settings.api,
        identity=stub,  # type: ignore[arg-type]
        cases=stub,  # type: ignore[arg-type]
        routing=stub,  # type: ignore[arg-type]
        extra_routers=routers,
    )


def _served(app: Any, path: str) -> bool:
    scope = {"type": "http", "method": "GET", "path": path, "root_path": "", "path_params": {}}
    return any(route.matches(scope)[0] is Match.FULL for route in app.router.routes)


def _probes(container: dict[str, Any]) -> list[dict[str, Any]]:
    kinds = ("startupProbe", "readinessProbe", "livenessProbe")
    assert all(kind in container for kind in kinds), container["name"]
    return [container[kind]["httpGet"] for kind in kinds]


def _port_number(container: dict[str, Any], port: str | int) -> int:
    if isinstance(port, int):
        return port
    return next(p["containerPort"] for p in container["ports"] if p["name"] == port)


def test_serve_probes_and_scrape_paths_are_routes_serve_has() -> None:
    app = _serve_app()
    settings = _named("ConfigMap", "omnirouter-settings")["data"]
    for deployment, container in _containers():
        if container["args"][0] != "serve":
            continue
        annotations = deployment["spec"]["template"]["metadata"]["annotations"]
        assert _served(app, annotations["prometheus.io/path"])
        assert annotations["prometheus.io/port"] == settings["OMNIROUTER_API__PORT"]
        for probe in _probes(container):
            assert _served(app, probe["path"]), probe
            assert str(_port_number(container, probe["port"])) == settings["OMNIROUTER_API__PORT"]


def test_worker_probes_get_200_from_the_worker_metrics_server() -> None:
    (deployment, container), *_ = [dc for dc in _containers() if dc[1]["args"] == ["worker"]]
    configured = _named("ConfigMap", "omnirouter-settings")["data"]
    paths = {probe["path"] for probe in _probes(container)}
    paths.add(deployment["spec"]["template"]["metadata"]["annotations"]["prometheus.io/path"])
    for probe in _probes(container):
        port = _port_number(container, probe["port"])
        assert str(port) == configured["OMNIROUTER_OPS__WORKER_METRICS_PORT"]
    # The real server the worker starts, on a free loopback port.
    server = serve_worker_metrics(
        Settings(api=ApiSettings(host="127.0.0.1"), ops=OpsSettings(worker_metrics_port=0))
    )
    try:
        for path in paths:
            assert httpx.get(server.url.replace("/metrics", path), timeout=5).status_code == 200
    finally:
        server.stop()


def test_services_pdbs_and_the_ingress_point_at_what_exists() -> None:
    pod_labels = [d["spec"]["template"]["metadata"]["labels"] for d in _of_kind("Deployment")]

    def selects_pods(selector: dict[str, str]) -> bool:
        return any(selector.items() <= labels.items() for labels in pod_labels)

    for service in _of_kind("Service"):
        assert selects_pods(service["spec"]["selector"]), service["metadata"]["name"]
    for budget in _of_kind("PodDisruptionBudget"):
        assert selects_pods(budget["spec"]["selector"]["matchLabels"])
    app = _serve_app()
    public = set(app.openapi()["paths"])
    for rule in _named("Ingress", "omnirouter")["spec"]["rules"]:
        for path in rule["http"]["paths"]:
            backend = path["backend"]["service"]
            service = _named("Service", backend["name"])
            assert backend["port"]["name"] in {p["name"] for p in service["spec"]["ports"]}
            prefix = path["path"]
            assert _served(app, prefix) or any(p.startswith(prefix + "/") for p in public)
            assert prefix not in ("/", "/metrics", "/healthz"), "internal endpoints stay internal"


def test_the_worker_autoscaler_reads_lag_the_lag_monitor_exports() -> None:
    hpa = _named("HorizontalPodAutoscaler", "omnirouter-worker")
    target = hpa["spec"]["scaleTargetRef"]
    assert _named(target["kind"], target["name"])["spec"]["template"]["spec"]["containers"][0][
        "args"
    ] == ["worker"]
    exported = {family.name for family in lag_metrics(LagReport())}
    worker_source = inspect.getsource(assembly.run_workers)
    groups = set()
    for metric in hpa["spec"]["metrics"]:
        assert metric["type"] == "External"
        assert metric["external"]["metric"]["name"] in exported
        group = metric["external"]["metric"]["selector"]["matchLabels"]["group"]
        assert f'"{group}"' in worker_source, f"{group} is not a faust app id of the workers"
        groups.add(group)
    assert groups == {"omnirouter-pipeline", "omnirouter-dispatcher"}
    # More consumers than partitions idle: the cap is the widest topic's partition count.
    assert hpa["spec"]["maxReplicas"] <= max(spec.partitions for spec in TOPICS)
    assert 1 <= hpa["spec"]["minReplicas"] <= hpa["spec"]["maxReplicas"]


# -- Strimzi ---------------------------------------------------------------------------------


def _strimzi(kind: str) -> list[dict[str, Any]]:
    docs = _documents(DEPLOY / "strimzi" / "kafka.yaml") + _documents(
        DEPLOY / "strimzi" / "topics.yaml"
    )
    for doc in docs:
        assert doc["apiVersion"] == "kafka.strimzi.io/v1beta2"
        assert doc["metadata"]["name"] and "namespace" not in doc["metadata"]
    return [doc for doc in docs if doc["kind"] == kind]


def test_strimzi_cluster_is_kraft_with_three_brokers_and_the_replication_omnirouter_needs() -> None:
    (kafka,) = _strimzi("Kafka")
    cluster = kafka["metadata"]["name"]
    pools = _strimzi("KafkaNodePool")
    assert all(pool["metadata"]["labels"]["strimzi.io/cluster"] == cluster for pool in pools)
    brokers = sum(p["spec"]["replicas"] for p in pools if "broker" in p["spec"]["roles"])
    controllers = sum(p["spec"]["replicas"] for p in pools if "controller" in p["spec"]["roles"])
    assert brokers == 3 and controllers == 3
    assert all(p["spec"]["storage"]["type"] for p in pools)
    spec = kafka["spec"]["kafka"]
    assert "zookeeper" not in kafka["spec"]
    assert spec["config"]["default.replication.factor"] == 3
    assert spec["config"]["min.insync.replicas"] == 2
    assert spec["authorization"]["type"] == "simple"
    (listener,) = spec["listeners"]
    assert listener["tls"] is True
    assert listener["authentication"]["type"] == "scram-sha-512"
    pom = (DEPLOY / "kafka" / "pom.xml").read_text()
    assert f"<kafka.version>{spec['version']}</kafka.version>" in pom


def test_omnirouter_settings_match_what_strimzi_creates() -> None:
    (kafka,) = _strimzi("Kafka")
    (user,) = _strimzi("KafkaUser")
    cluster = kafka["metadata"]["name"]
    (listener,) = kafka["spec"]["kafka"]["listeners"]
    settings = _named("ConfigMap", "omnirouter-settings")["data"]
    assert settings["OMNIROUTER_KAFKA__BOOTSTRAP_SERVERS"] == (
        f"{cluster}-kafka-bootstrap:{listener['port']}"
    )
    assert settings["OMNIROUTER_KAFKA__SASL_USERNAME"] == user["metadata"]["name"]
    assert settings["OMNIROUTER_KAFKA__SASL_MECHANISM"] == "SCRAM-SHA-512"
    assert user["spec"]["authentication"]["type"] == "scram-sha-512"
    assert user["metadata"]["labels"]["strimzi.io/cluster"] == cluster
    for deployment, container in _containers():
        password = next(e for e in container["env"] if e["name"].endswith("SASL_PASSWORD"))
        assert password["valueFrom"]["secretKeyRef"] == {
            "name": user["metadata"]["name"],
            "key": "password",
        }
        volumes = deployment["spec"]["template"]["spec"]["volumes"]
        secrets = {v["secret"]["secretName"] for v in volumes if "secret" in v}
        assert f"{cluster}-cluster-ca-cert" in secrets


def test_the_kafka_user_may_use_omnirouters_topics_and_groups() -> None:
    (user,) = _strimzi("KafkaUser")
    acls = user["spec"]["authorization"]["acls"]

    def allowed(kind: str, name: str) -> set[str]:
        granted: set[str] = set()
        for acl in acls:
            resource = acl["resource"]
            if resource["type"] != kind:
                continue
            literal = resource.get("patternType", "literal") == "literal"
            if kind == "cluster" or (
                name == resource["name"] if literal else name.startswith(resource["name"])
            ):
                granted |= set(acl["operations"])
        return granted

    prefix = _named("ConfigMap", "omnirouter-settings")["data"]["OMNIROUTER_KAFKA__TOPIC_PREFIX"]
    for spec in TOPICS:
        assert {"Describe", "Read", "Write", "Create"} <= allowed("topic", spec.name(prefix))
    for group in ("omnirouter-pipeline", "omnirouter-dispatcher"):
        assert {"Describe", "Read"} <= allowed("group", group)
    assert "Describe" in allowed("cluster", "kafka-cluster")


def test_strimzi_topics_file_is_rendered_from_the_current_catalogue() -> None:
    script = DEPLOY / "strimzi" / "render_topics.py"
    spec = importlib.util.spec_from_file_location("render_topics", script)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert (DEPLOY / "strimzi" / "topics.yaml").read_text() == module.render_topics(), (
        "the topic catalogue changed: run .venv/bin/python deploy/strimzi/render_topics.py"
    )


def test_strimzi_topics_are_the_catalogue_with_the_cluster_replication() -> None:
    settings = _named("ConfigMap", "omnirouter-settings")["data"]
    kafka = KafkaSettings(
        topic_prefix=settings["OMNIROUTER_KAFKA__TOPIC_PREFIX"],
        replication_factor=int(settings["OMNIROUTER_KAFKA__REPLICATION_FACTOR"]),
        min_insync_replicas=int(settings["OMNIROUTER_KAFKA__MIN_INSYNC_REPLICAS"]),
    )
    wanted = {t.name: t for t in catalogue_topics(Settings(kafka=kafka))}
    declared = {t["spec"]["topicName"]: t["spec"] for t in _strimzi("KafkaTopic")}
    assert set(declared) == set(wanted)
    for name, spec in declared.items():
        assert spec["partitions"] == wanted[name].partitions, name
        assert spec["replicas"] == wanted[name].replication_factor == 3, name
        assert {k: str(v) for k, v in spec["config"].items()} == wanted[name].configs, name


# -- Compose ---------------------------------------------------------------------------------

COMPOSE = DEPLOY / "compose"


def _compose() -> dict[str, Any]:
    return yaml.safe_load((COMPOSE / "compose.yaml").read_text())


def _default(value: str) -> str:
    """``${VAR:-default}`` as compose resolves it with VAR unset."""
    return re.sub(r"\$\{[A-Z_]+:-([^}]*)\}", r"\1", value)


def test_compose_runs_the_project_stack() -> None:
    services = _compose()["services"]
    assert {"kafka", "redis", "serve", "worker", "prometheus", "grafana"} <= set(services)
    pom = (DEPLOY / "kafka" / "pom.xml").read_text()
    version = services["kafka"]["image"].removeprefix("apache/kafka:")
    assert f"<kafka.version>{version}</kafka.version>" in pom
    assert services["redis"]["image"] == "redis:7.4"
    assert services["topics"]["build"]["dockerfile"] == "deploy/docker/Dockerfile"
    assert (COMPOSE / services["topics"]["build"]["context"] / "pyproject.toml").is_file()
    parser = _parser()
    for name in ("serve", "worker"):
        assert services[name]["image"] == services["topics"]["image"]
        assert parser.parse_args(services[name]["command"]).command == name
    for name, service in services.items():
        for dependency in service.get("depends_on", {}):
            assert dependency in services, f"{name} depends on unknown {dependency}"
        for volume in service.get("volumes", []):
            source = volume.split(":", 1)[0]
            if source.startswith("."):
                assert (COMPOSE / source).is_file(), f"{name}: {source} is missing"


def test_the_topics_jobs_run_the_cli_command_that_creates_the_catalogue() -> None:
    parser = _parser()
    parsed = parser.parse_args(_compose()["services"]["topics"]["command"])
    assert (parsed.command, parsed.action) == ("topics", "ensure")
    [job] = _of_kind("Job")
    [container] = job["spec"]["template"]["spec"]["containers"]
    parsed = parser.parse_args(container["args"])
    assert (parsed.command, parsed.action) == ("topics", "ensure")
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert {"cpu", "memory"} <= set(container["resources"]["limits"])


def test_compose_settings_are_accepted_and_match_redis_acl(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    services = _compose()["services"]
    for name in ("topics", "serve", "worker"):
        env = {key: _default(str(value)) for key, value in services[name]["environment"].items()}
        settings = _load(monkeypatch, env)
        assert settings.kafka.bootstrap_servers == "kafka:9092"
        redis_command = [_default(str(arg)) for arg in services["redis"]["command"]]
        assert settings.redis.password is not None
        assert f">{settings.redis.password.get_secret_value()}" in redis_command
        assert settings.redis.username in redis_command


def test_compose_prometheus_scrapes_the_compose_services() -> None:
    services = _compose()["services"]
    config = yaml.safe_load((COMPOSE / "prometheus.yml").read_text())
    targets = {
        target
        for job in config["scrape_configs"]
        for static in job["static_configs"]
        for target in static["targets"]
    }
    api_port = services["serve"]["environment"]["OMNIROUTER_API__PORT"]
    metrics_port = services["worker"]["environment"]["OMNIROUTER_OPS__WORKER_METRICS_PORT"]
    assert targets == {f"serve:{api_port}", f"worker:{metrics_port}"}
    assert config["rule_files"] == ["rules.yml"]
