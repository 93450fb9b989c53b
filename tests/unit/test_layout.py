"""Architecture rules that a reviewer would otherwise check by hand."""

from __future__ import annotations

import ast
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PURE_PACKAGES = ["stream_rec/core", "stream_rec/rerank"]
FORBIDDEN_IN_CORE = {"faust", "aiokafka", "kafka", "onnxruntime", "tensorflow", "keras",
                     "rocksdict"}
FORBIDDEN_CALLS = {"eval", "exec"}


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(a.name.split(".")[0] for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


def _modules(path: Path) -> set[str]:
    """Every module ``path`` imports, by its full dotted name."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names.update(f"{node.module}.{a.name}" for a in node.names)
    return names


def test_pure_core_imports_no_io_frameworks() -> None:
    for package in PURE_PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            bad = _imports(path) & FORBIDDEN_IN_CORE
            assert not bad, f"{path.relative_to(ROOT)} imports {sorted(bad)}"


def test_online_serving_knows_nothing_of_kafka_or_faust() -> None:
    # The per-batch logic is shared by the worker, bench-core and the property tests.
    for path in (ROOT / "stream_rec/serving").rglob("*.py"):
        bad = _imports(path) & {"faust", "aiokafka", "kafka", "rocksdict", "tensorflow"}
        assert not bad, f"{path.relative_to(ROOT)} imports {sorted(bad)}"


# The product (what a shop deploys) never reaches into local tooling or offline work.
PRODUCT = ["stream_rec/core", "stream_rec/serving", "stream_rec/rerank", "stream_rec/model",
           "stream_rec/worker", "stream_rec/app.py", "stream_rec/config.py",
           "stream_rec/connection.py", "stream_rec/secret.py", "stream_rec/topics.py"]


def test_the_product_does_not_import_tooling() -> None:
    for entry in PRODUCT:
        target = ROOT / entry
        for path in ([target] if target.is_file() else sorted(target.rglob("*.py"))):
            bad = {m for m in _modules(path)
                   if m.startswith(("stream_rec.tools", "stream_rec.offline", "training"))}
            assert not bad, f"{path.relative_to(ROOT)} imports {sorted(bad)}"


def test_few_modules_sit_loose_at_the_top() -> None:
    loose = sorted(p.name for p in (ROOT / "stream_rec").glob("*.py"))
    # The entry points (app, cli), the one config module and its secrets, Kafka plumbing.
    assert loose == ["__init__.py", "app.py", "cli.py", "config.py", "connection.py",
                     "errors.py", "secret.py", "topics.py"], loose


def test_serving_package_never_imports_tensorflow_at_import_time() -> None:
    code = ("import sys, importlib, pkgutil, stream_rec, stream_rec.app, stream_rec.cli\n"
            "stream_rec.cli.build_parser()\n"
            "assert 'tensorflow' not in sys.modules and 'keras' not in sys.modules, "
            "sorted(m for m in sys.modules if m.startswith(('tensorflow', 'keras')))")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)


def test_no_pickle_or_eval_on_anything() -> None:
    for path in list((ROOT / "stream_rec").rglob("*.py")) + list((ROOT / "training").rglob("*.py")):
        tree = ast.parse(path.read_text())
        assert "pickle" not in _imports(path), f"{path} imports pickle"
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
                name = node.func.id
                assert name not in FORBIDDEN_CALLS, f"{path}:{node.lineno} calls {name}"


def test_cli_lists_its_commands() -> None:
    out = subprocess.run([sys.executable, "-m", "stream_rec.cli", "--help"], check=True,
                         capture_output=True, text=True, cwd=ROOT).stdout
    for command in ("kafka", "demo"):
        assert command in out


def test_compose_file_has_kafka_worker_and_trainer() -> None:
    yaml = pytest.importorskip("yaml")
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    services = compose["services"]
    assert services["kafka"]["image"].startswith("apache/kafka:")
    assert services["kafka"]["environment"]["KAFKA_PROCESS_ROLES"] == "broker,controller"
    for name, dockerfile in (("worker", "deploy/Dockerfile.worker"),
                             ("trainer", "deploy/Dockerfile.trainer")):
        assert services[name]["build"]["dockerfile"] == dockerfile
        assert (ROOT / dockerfile).exists()
    worker_runs = [line for line in (ROOT / "deploy/Dockerfile.worker").read_text().splitlines()
                   if "pip install" in line]
    assert worker_runs and not any("[train" in line for line in worker_runs)
    assert '".[train,ann]"' in (ROOT / "deploy/Dockerfile.trainer").read_text()
    for dockerfile in ("deploy/Dockerfile.worker", "deploy/Dockerfile.trainer"):
        text = (ROOT / dockerfile).read_text()
        assert "pip install --no-cache-dir -c deploy/constraints.txt" in text
        assert "COPY deploy/constraints.txt" in text


def test_docker_compose_accepts_the_compose_file() -> None:
    docker = shutil.which("docker")
    if docker is None:
        pytest.skip("docker CLI not installed")
    probe = subprocess.run([docker, "compose", "version"], capture_output=True, check=False)
    if probe.returncode != 0:
        pytest.skip("docker CLI has no compose plugin")
    compose = [docker, "compose", "-f", str(ROOT / "docker-compose.yml"), "config", "-q"]
    env = {k: v for k, v in os.environ.items() if k != "STREAM_REC_HTTP_TOKEN"}
    subprocess.run(compose, check=True, cwd=ROOT, env={**env, "STREAM_REC_HTTP_TOKEN": "t"})
    # Without a token from the environment compose refuses to run the stack at all.
    refused = subprocess.run(compose, cwd=ROOT, env=env, capture_output=True, text=True,
                             check=False)
    assert refused.returncode != 0 and "STREAM_REC_HTTP_TOKEN" in refused.stderr


def test_compose_takes_the_api_token_from_the_environment_only() -> None:
    yaml = pytest.importorskip("yaml")
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    worker_env = compose["services"]["worker"]["environment"]
    assert worker_env["STREAM_REC_HTTP_TOKEN"].startswith("${STREAM_REC_HTTP_TOKEN:?")
    assert "STREAM_REC_HTTP_OPEN" not in worker_env
