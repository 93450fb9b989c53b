"""The Kubernetes manifests in deploy/k8s agree with the code and with docker-compose.yml.

Parsed with PyYAML; when kubectl is installed, ``kubectl kustomize`` must also build them (and
the ServiceMonitor overlay, also with a standalone kustomize). The compose file's own checks
are at the end.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from stream_rec.cli import build_parser
from stream_rec.config import Settings, load_settings, settings_reference
from stream_rec.core.durations import parse_duration_ms
from stream_rec.rerank import RerankPolicy
from stream_rec.worker.security import open_http_refusal

REPO = Path(__file__).resolve().parents[2]
K8S = REPO / "deploy" / "k8s"
ENV_NAMES = {env for _, env, _, _ in settings_reference()}


def load(name: str) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all((K8S / name).read_text()) if doc]


def manifests() -> dict[tuple[str, str], dict[str, Any]]:
    """(kind, name) -> manifest, for every file in deploy/k8s."""
    out: dict[tuple[str, str], dict[str, Any]] = {}
    for path in sorted(K8S.glob("*.yaml")):
        for doc in load(path.name):
            if doc["kind"] != "Kustomization":
                out[(doc["kind"], doc["metadata"]["name"])] = doc
    return out


ALL = manifests()
CONFIG: dict[str, str] = ALL[("ConfigMap", "stream-rec-config")]["data"]
SECRET: dict[str, str] = ALL[("Secret", "stream-rec-secrets")]["stringData"]
WORKER = ALL[("StatefulSet", "stream-rec-worker")]
TRAINER = ALL[("CronJob", "stream-rec-trainer")]
WORKER_POD = WORKER["spec"]["template"]
TRAINER_POD = TRAINER["spec"]["jobTemplate"]["spec"]["template"]
TOPICS_POD = ALL[("Job", "stream-rec-topics")]["spec"]["template"]
PODS = {"worker": WORKER_POD, "trainer": TRAINER_POD, "topics": TOPICS_POD}
COMPOSE = yaml.safe_load((REPO / "docker-compose.yml").read_text())


def container(pod: dict[str, Any]) -> dict[str, Any]:
    [only] = pod["spec"]["containers"]
    return dict(only)


def test_every_manifest_has_kind_and_name_and_kustomization_lists_them() -> None:
    [kustomization] = load("kustomization.yaml")
    listed = set(kustomization["resources"])
    on_disk = {p.name for p in K8S.glob("*.yaml")} - {"kustomization.yaml"}
    # The Secret is an example to copy, never applied with placeholder values.
    assert listed == on_disk - {"secret.example.yaml"}
    for doc in ALL.values():
        assert doc["apiVersion"] and doc["metadata"]["name"]


def test_images_are_the_ones_docker_compose_builds() -> None:
    services = COMPOSE["services"]
    assert container(WORKER_POD)["image"] == services["worker"]["image"]
    assert container(TRAINER_POD)["image"] == services["trainer"]["image"]
    assert container(WORKER_POD)["args"][0] == "worker"
    assert container(TRAINER_POD)["args"][0] == "trainer"


def test_every_variable_is_a_real_setting_and_the_config_parses() -> None:
    named = set(CONFIG) | set(SECRET)
    for pod in PODS.values():
        named |= {e["name"] for e in container(pod).get("env", [])}
    unknown = {n for n in named if n.startswith("STREAM_REC_")} - ENV_NAMES
    assert not unknown, f"not settings in stream_rec/config.py: {sorted(unknown)}"
    assert named <= ENV_NAMES
    settings = load_settings({**CONFIG, **SECRET})
    RerankPolicy.parse(settings.rerank_policy)
    assert settings.standby_replicas >= 1 and settings.partitions >= WORKER["spec"]["replicas"]


def test_secrets_stay_out_of_the_config_map() -> None:
    for name in ("STREAM_REC_SASL_PASSWORD", "STREAM_REC_SASL_USERNAME"):
        assert name not in CONFIG and name in SECRET
    assert not SECRET["STREAM_REC_SASL_PASSWORD"]
    # No token is committed, not even an empty one: a committed token is a known token.
    assert "STREAM_REC_HTTP_TOKEN" not in CONFIG and "STREAM_REC_HTTP_TOKEN" not in SECRET
    assert "STREAM_REC_HTTP_OPEN" not in CONFIG and "STREAM_REC_HTTP_OPEN" not in SECRET


def test_the_worker_takes_its_token_from_a_required_secret_key() -> None:
    [token] = [e for e in container(WORKER_POD)["env"] if e["name"] == "STREAM_REC_HTTP_TOKEN"]
    ref = token["valueFrom"]["secretKeyRef"]
    assert ref["name"] == "stream-rec-secrets" and ref["key"] == "STREAM_REC_HTTP_TOKEN"
    assert ref.get("optional", False) is False  # the pod does not start without the key


def test_a_worker_pod_without_a_token_would_refuse_to_start() -> None:
    pod_env = {**CONFIG, **SECRET, "STREAM_REC_WEB_HOST": "10.4.0.17"}  # status.podIP
    assert open_http_refusal(load_settings(pod_env)) is not None
    assert open_http_refusal(load_settings({**pod_env, "STREAM_REC_HTTP_TOKEN": "t"})) is None


@pytest.mark.parametrize("pod", PODS.values(), ids=PODS.keys())
def test_pods_read_the_config_map_and_secret(pod: dict[str, Any]) -> None:
    sources = container(pod)["envFrom"]
    assert {"configMapRef": {"name": "stream-rec-config"}} in sources
    assert {"secretRef": {"name": "stream-rec-secrets"}} in sources


def _mounts(pod: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {m["mountPath"]: m for m in container(pod)["volumeMounts"]}


def _claim_of(pod: dict[str, Any], volume: str) -> str:
    [spec] = [v for v in pod["spec"]["volumes"] if v["name"] == volume]
    return str(spec["persistentVolumeClaim"]["claimName"])


def test_state_lives_on_the_statefulsets_own_volume() -> None:
    mount = _mounts(WORKER_POD)[CONFIG["STREAM_REC_STATE_DIR"]]
    templates = {t["metadata"]["name"]: t for t in WORKER["spec"]["volumeClaimTemplates"]}
    assert mount["name"] in templates and not mount.get("readOnly")
    assert templates[mount["name"]]["spec"]["accessModes"] == ["ReadWriteOnce"]
    # The same folders as the compose file and the images use.
    compose_env = COMPOSE["services"]["worker"]["environment"]
    assert compose_env["STREAM_REC_STATE_DIR"] == CONFIG["STREAM_REC_STATE_DIR"]
    assert compose_env["STREAM_REC_REGISTRY_DIR"] == CONFIG["STREAM_REC_REGISTRY_DIR"]


def test_registry_is_one_shared_volume_written_by_the_trainer_read_by_workers() -> None:
    registry = CONFIG["STREAM_REC_REGISTRY_DIR"]
    worker_mount = _mounts(WORKER_POD)[registry]
    trainer_mount = _mounts(TRAINER_POD)[registry]
    claim = _claim_of(WORKER_POD, worker_mount["name"])
    assert claim == _claim_of(TRAINER_POD, trainer_mount["name"])
    assert ALL[("PersistentVolumeClaim", claim)]["spec"]["accessModes"] == ["ReadWriteMany"]
    assert worker_mount.get("readOnly") is True and not trainer_mount.get("readOnly")


def test_probes_ask_health_on_the_configured_port() -> None:
    worker = container(WORKER_POD)
    ports = {p["name"]: p["containerPort"] for p in worker["ports"]}
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        get = worker[probe]["httpGet"]
        assert get["path"] == "/health/", probe
        assert ports[get["port"]] == int(CONFIG["STREAM_REC_WEB_PORT"]), probe


def test_web_host_is_the_pod_ip_so_other_workers_can_forward_requests() -> None:
    [web_host] = [e for e in container(WORKER_POD)["env"] if e["name"] == "STREAM_REC_WEB_HOST"]
    assert web_host["valueFrom"]["fieldRef"]["fieldPath"] == "status.podIP"
    assert "STREAM_REC_WEB_HOST" not in CONFIG  # a shared value would override nothing useful


def test_statefulset_identity_comes_from_the_headless_service() -> None:
    headless = ALL[("Service", WORKER["spec"]["serviceName"])]
    assert headless["spec"]["clusterIP"] == "None"
    labels = WORKER_POD["metadata"]["labels"]
    assert WORKER["spec"]["selector"]["matchLabels"].items() <= labels.items()
    assert headless["spec"]["selector"].items() <= labels.items()


def test_api_service_selects_the_worker_pods_http_port() -> None:
    api = ALL[("Service", "stream-rec-api")]
    assert api["spec"].get("clusterIP") != "None"
    assert api["spec"]["selector"].items() <= WORKER_POD["metadata"]["labels"].items()
    assert {p["targetPort"] for p in api["spec"]["ports"]} == {"http"}
    budget = ALL[("PodDisruptionBudget", "stream-rec-worker")]
    assert budget["spec"]["selector"]["matchLabels"].items() <= WORKER_POD["metadata"][
        "labels"].items()


@pytest.mark.parametrize("pod", PODS.values(), ids=PODS.keys())
def test_pods_run_as_non_root_with_resources(pod: dict[str, Any]) -> None:
    security = pod["spec"]["securityContext"]
    assert security["runAsNonRoot"] is True and security["runAsUser"] != 0
    if pod["spec"].get("volumes"):
        assert security["fsGroup"] == security["runAsGroup"]  # volumes writable by that user
    box = container(pod)
    assert box["securityContext"]["allowPrivilegeEscalation"] is False
    assert box["securityContext"]["capabilities"]["drop"] == ["ALL"]
    for kind in ("requests", "limits"):
        assert {"cpu", "memory"} <= set(box["resources"][kind]), kind


def test_worker_root_filesystem_is_read_only_with_a_scratch_tmp() -> None:
    worker = container(WORKER_POD)
    assert worker["securityContext"]["readOnlyRootFilesystem"] is True
    assert "/tmp" in _mounts(WORKER_POD)


def test_trainer_runs_one_round_at_a_time_on_the_events_topic() -> None:
    spec = TRAINER["spec"]
    assert spec["concurrencyPolicy"] == "Forbid"
    assert TRAINER_POD["spec"]["restartPolicy"] == "Never"
    args = build_parser().parse_args(container(TRAINER_POD)["args"])
    assert args.once is True  # a CronJob run must end, not loop
    assert args.data == f"kafka:{CONFIG['STREAM_REC_EVENTS_TOPIC']}"
    assert parse_duration_ms(args.window) > 0 and parse_duration_ms(args.every) > 0


def test_worker_arguments_are_what_the_cli_accepts() -> None:
    assert build_parser().parse_args(container(WORKER_POD)["args"]).command == "worker"


def test_topics_job_runs_the_projects_own_topic_layout(monkeypatch: pytest.MonkeyPatch,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    topics = container(TOPICS_POD)
    assert topics["image"] == COMPOSE["services"]["worker"]["image"]
    created: list[Settings] = []

    def fake_ensure_topics(settings: Settings) -> list[str]:
        created.append(settings)
        return [settings.events_topic]

    monkeypatch.setattr("stream_rec.topics.ensure_topics", fake_ensure_topics)
    for name, value in {**CONFIG, **SECRET}.items():
        monkeypatch.setenv(name, value)
    assert "command" not in topics  # the image's entry point: stream-rec
    from stream_rec.cli import main

    assert main(topics["args"]) == 0
    assert [s.partitions for s in created] == [int(CONFIG["STREAM_REC_PARTITIONS"])]
    assert CONFIG["STREAM_REC_EVENTS_TOPIC"] in capsys.readouterr().out


@pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl is not installed")
def test_kustomize_builds_the_manifests() -> None:
    built = subprocess.run(["kubectl", "kustomize", str(K8S)], capture_output=True, text=True,
                           timeout=60, check=False)
    assert built.returncode == 0, built.stderr
    kinds = sorted(d["kind"] for d in yaml.safe_load_all(built.stdout) if d)
    assert kinds == sorted(kind for kind, _ in ALL if kind != "Secret")


# --- metrics: scrape annotations and the ServiceMonitor overlay ------------------------------

OVERLAY = K8S / "servicemonitor"
HEADLESS = ALL[("Service", "stream-rec-worker-headless")]


def _overlay(name: str) -> dict[str, Any]:
    [doc] = [d for d in yaml.safe_load_all((OVERLAY / name).read_text()) if d]
    return dict(doc)


def test_worker_pods_carry_the_prometheus_scrape_annotations() -> None:
    annotations = WORKER_POD["metadata"]["annotations"]
    ports = {p["name"]: p["containerPort"] for p in container(WORKER_POD)["ports"]}
    assert annotations["prometheus.io/scrape"] == "true"
    # Annotation values are strings: a bare 6066 would make the manifest invalid.
    assert annotations["prometheus.io/port"] == str(ports["http"])
    assert int(annotations["prometheus.io/port"]) == int(CONFIG["STREAM_REC_WEB_PORT"])
    assert annotations["prometheus.io/path"] == "/metrics/"
    views = (REPO / "stream_rec/worker/views.py").read_text()
    assert f'@app.page("{annotations["prometheus.io/path"]}")' in views


def test_the_overlay_lists_a_service_monitor_and_the_alert_rules() -> None:
    kustomization = _overlay("kustomization.yaml")
    assert kustomization["kind"] == "Kustomization"
    on_disk = {p.name for p in OVERLAY.glob("*.yaml")} - {"kustomization.yaml"}
    assert set(kustomization["resources"]) == on_disk
    for name in on_disk:
        assert _overlay(name)["apiVersion"] == "monitoring.coreos.com/v1", name


def test_service_monitor_scrapes_every_worker_with_the_token() -> None:
    monitor = _overlay("servicemonitor.yaml")
    assert monitor["kind"] == "ServiceMonitor"
    spec = monitor["spec"]
    selector = spec["selector"]["matchLabels"]
    services = [doc for (kind, _), doc in ALL.items() if kind == "Service"
                and selector.items() <= doc["metadata"].get("labels", {}).items()]
    # Only the headless Service: it lists every worker pod, those restoring their tables too.
    assert services == [HEADLESS] and HEADLESS["spec"]["publishNotReadyAddresses"] is True
    # job = the Service's label named by jobLabel: the job the alert rules and dashboard use
    assert HEADLESS["metadata"]["labels"][spec["jobLabel"]] == "stream-rec-worker"
    [endpoint] = spec["endpoints"]
    assert endpoint["port"] in {p["name"] for p in HEADLESS["spec"]["ports"]}
    assert endpoint["path"] == WORKER_POD["metadata"]["annotations"]["prometheus.io/path"]
    [token] = [e for e in container(WORKER_POD)["env"] if e["name"] == "STREAM_REC_HTTP_TOKEN"]
    assert endpoint["authorization"]["type"] == "Bearer"
    assert endpoint["authorization"]["credentials"] == {
        "name": token["valueFrom"]["secretKeyRef"]["name"],
        "key": token["valueFrom"]["secretKeyRef"]["key"]}


def test_prometheus_rule_has_the_same_groups_as_the_monitoring_rules() -> None:
    rule = _overlay("prometheusrule.yaml")
    assert rule["kind"] == "PrometheusRule"
    alerts = yaml.safe_load((REPO / "deploy/monitoring/alerts.yaml").read_text())
    assert rule["spec"]["groups"] == alerts["groups"], (
        "deploy/k8s/servicemonitor/prometheusrule.yaml differs from deploy/monitoring/"
        "alerts.yaml: copy alerts.yaml's groups into its spec")


def _kustomize() -> list[str] | None:
    if shutil.which("kubectl"):
        return ["kubectl", "kustomize"]
    if shutil.which("kustomize"):
        return ["kustomize", "build"]
    return None


@pytest.mark.skipif(_kustomize() is None, reason="neither kubectl nor kustomize is installed")
def test_kustomize_builds_the_overlay() -> None:
    built = subprocess.run([*(_kustomize() or []), str(OVERLAY)], capture_output=True, text=True,
                           timeout=60, check=False)
    assert built.returncode == 0, built.stderr
    docs = [d for d in yaml.safe_load_all(built.stdout) if d]
    kinds = sorted(d["kind"] for d in docs)
    assert kinds == ["PrometheusRule", "ServiceMonitor"]
    assert all(d["metadata"]["labels"]["app.kubernetes.io/part-of"] == "stream-rec"
               for d in docs)


# --- docker-compose.yml ----------------------------------------------------------------------

SERVICES: dict[str, dict[str, Any]] = COMPOSE["services"]
STREAM_REC_SERVICES = ("worker", "trainer", "storefront")


def _dockerfile_uids() -> set[int]:
    uids = set()
    for name in ("Dockerfile.worker", "Dockerfile.trainer"):
        text = (REPO / "deploy" / name).read_text()
        [uid] = re.findall(r"useradd --uid (\d+) [^\n]*streamrec", text)
        assert re.search(r"^USER streamrec$", text, re.MULTILINE), name
        uids.add(int(uid))
    return uids


def test_compose_runs_the_configured_kafka_release() -> None:
    kafka = SERVICES["kafka"]
    assert kafka["image"] == f"apache/kafka:{load_settings({}).kafka_version}"
    # The log folder is the volume, not the image's default under /tmp.
    [data] = kafka["volumes"]
    assert data.split(":")[1] == kafka["environment"]["KAFKA_LOG_DIRS"]
    assert "kafka-broker-api-versions.sh" in " ".join(kafka["healthcheck"]["test"])


def test_compose_creates_the_topics_before_the_services_start() -> None:
    init = SERVICES["topic-init"]
    assert init["image"] == SERVICES["worker"]["image"]
    args = build_parser().parse_args(init["command"])
    assert (args.command, args.action) == ("topics", "create")
    assert init["depends_on"]["kafka"]["condition"] == "service_healthy"
    for name in STREAM_REC_SERVICES:
        assert SERVICES[name]["depends_on"]["topic-init"] == {
            "condition": "service_completed_successfully"}, name


def test_compose_volumes_belong_to_the_images_user() -> None:
    [uid] = _dockerfile_uids()
    init = SERVICES["volume-init"]
    assert init["user"] == "0:0" and init["entrypoint"][:2] == ["chown", f"{uid}:{uid}"]
    mounts = dict(m.split(":")[:2] for m in init["volumes"])
    assert sorted(init["entrypoint"][2:]) == sorted(mounts.values())
    for name in STREAM_REC_SERVICES:
        for volume in SERVICES[name].get("volumes", []):
            source, target = volume.split(":")[:2]
            assert mounts.get(source) == target, f"{name}: {volume} is not handed to uid {uid}"
        if SERVICES[name].get("volumes"):
            assert SERVICES[name]["depends_on"]["volume-init"] == {
                "condition": "service_completed_successfully"}, name


def test_compose_health_checks_fit_each_service() -> None:
    worker = SERVICES["worker"]
    check = " ".join(worker["healthcheck"]["test"])
    # /health/ is the one route open without the token; the port is the worker's own.
    assert "/health/" in check and "Authorization" not in check
    assert "STREAM_REC_WEB_PORT" in check and worker["environment"]["STREAM_REC_WEB_PORT"]
    assert worker["healthcheck"]["start_period"]
    trainer = " ".join(SERVICES["trainer"]["healthcheck"]["test"])
    assert SERVICES["trainer"]["environment"]["STREAM_REC_REGISTRY_DIR"] in trainer
    for one_shot in ("topic-init", "volume-init"):
        assert SERVICES[one_shot]["healthcheck"] == {"disable": True}, one_shot
