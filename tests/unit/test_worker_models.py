"""A worker's model checks: every bad artifact or announcement is a refusal, never a crash."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest
from aiokafka import ConsumerRecord

from stream_rec.config import Settings, load_settings
from stream_rec.model import FileRegistry, write_manifest
from stream_rec.model.announce import announcement_for
from stream_rec.model.registry import is_version_name
from stream_rec.worker.models import (
    NO_MODEL,
    REFUSED,
    ModelRefused,
    announced_version,
    load_checked,
    swap_to,
)
from stream_rec.worker.runtime import WorkerRuntime
from tests.unit.fake_artifact import make_artifact


def _registry(tmp_path: Path, *versions: str) -> tuple[Settings, FileRegistry]:
    registry = FileRegistry(tmp_path / "registry")
    for version in versions:
        registry.add(make_artifact(tmp_path / "src" / version, version=version))
    return load_settings({}, registry_dir=str(registry.root)), registry


def _rewrite(folder: Path, change: Any) -> None:
    """Change the artifact in ``folder`` and re-checksum it, so only the content is wrong."""
    manifest = json.loads((folder / "manifest.json").read_text())
    change(folder, manifest)
    write_manifest(folder, manifest, files=manifest["files"])


def _tiny_onnx_graph(folder: Path, manifest: dict[str, Any]) -> None:
    """A valid ONNX graph with the wrong signature: it loads, then cannot score."""
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        [helper.make_node("Identity", ["x"], ["y"])], "not-a-recommender",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])])
    onnx.save(helper.make_model(graph), str(folder / "model.onnx"))


CORRUPTIONS = {
    # fake_artifact's model.onnx is bytes onnxruntime cannot parse (InvalidProtobuf)
    "not an onnx graph": lambda folder, manifest: None,
    "valid graph, wrong signature": _tiny_onnx_graph,
    "empty model file": lambda folder, manifest: (folder / "model.onnx").write_bytes(b""),
    "manifest without model settings": lambda folder, manifest: manifest.pop("model"),
    "signature of the wrong type": lambda folder, manifest: manifest.update(signature=5),
    "item ids not a list": lambda folder, manifest: (folder / "item_ids.json").write_text("7"),
}


@pytest.mark.parametrize("corruption", CORRUPTIONS.values(), ids=CORRUPTIONS.keys())
def test_an_artifact_whose_checksums_match_but_cannot_serve_is_refused(tmp_path, corruption):
    settings, registry = _registry(tmp_path, "v1")
    _rewrite(registry.path("v1"), corruption)
    registry.promote("v1")  # checksums match: only loading it can tell
    with pytest.raises(ModelRefused, match="version v1"):
        load_checked(settings, None)
    with pytest.raises(ModelRefused, match="version v1"):
        load_checked(settings, "v1")


def test_no_current_model_is_not_a_refusal(tmp_path):
    settings, _ = _registry(tmp_path, "v1")
    assert load_checked(settings, None) is None


@pytest.mark.parametrize("name", ["latest", "current", "v9", "v1\n", "../v1"])
def test_only_an_existing_exact_version_loads(tmp_path, name):
    settings, registry = _registry(tmp_path, "v1", "v2")
    registry.promote("v1")
    with pytest.raises(ModelRefused):
        load_checked(settings, name)


def test_a_folder_holding_another_versions_manifest_is_refused(tmp_path):
    settings, registry = _registry(tmp_path, "v1")

    def other_version(folder: Path, manifest: dict[str, Any]) -> None:
        _tiny_onnx_graph(folder, manifest)  # a graph that loads, so the version is checked
        manifest["version"] = "v0"

    _rewrite(registry.path("v1"), other_version)
    with pytest.raises(ModelRefused, match="v0"):
        load_checked(settings, "v1")


def test_a_refused_model_at_start_leaves_fallback_lists_and_says_why(tmp_path):
    settings, registry = _registry(tmp_path, "v1")
    registry.promote("v1")  # model.onnx is not a graph
    runtime = WorkerRuntime(settings)
    assert asyncio.run(swap_to(runtime, None)) is False
    metrics = runtime.metrics
    assert (metrics.model_version, metrics.model_unservable, metrics.model_rejected) == (
        "", REFUSED, 1)
    assert "v1" in metrics.model_refusal
    text = metrics.render()
    assert "stream_rec_model_servable 0" in text
    assert 'stream_rec_model_unservable_info{reason="refused"} 1' in text


def test_an_empty_registry_says_no_model(tmp_path):
    settings, _ = _registry(tmp_path)
    runtime = WorkerRuntime(settings)
    assert asyncio.run(swap_to(runtime, None)) is False
    assert runtime.metrics.model_unservable == NO_MODEL and runtime.metrics.model_rejected == 0
    assert 'stream_rec_model_unservable_info{reason="no_model"} 1' in runtime.metrics.render()


def test_a_refusal_while_a_model_serves_keeps_it_servable(tmp_path):
    settings, registry = _registry(tmp_path, "v1")
    runtime = WorkerRuntime(settings)
    runtime.metrics.model_version = "v0"  # what an earlier swap left serving
    assert asyncio.run(swap_to(runtime, "v1")) is False
    assert runtime.metrics.model_unservable == "" and runtime.metrics.model_rejected == 1
    assert "stream_rec_model_servable 1" in runtime.metrics.render()


def _record(message: Any) -> ConsumerRecord:
    value = message if isinstance(message, bytes) else json.dumps(message).encode()
    return ConsumerRecord(topic="model-updates", partition=0, offset=3, timestamp=0,
                          timestamp_type=0, key=None, value=value, checksum=None,
                          serialized_key_size=0, serialized_value_size=len(value), headers=())


def test_an_announcement_from_stream_rec_names_its_exact_folder(tmp_path):
    settings, registry = _registry(tmp_path, "v1", "v2")
    message = announcement_for(registry.path("v1"))
    assert message["manifest_sha256"]
    assert announced_version(_record(message), settings) == "v1"


def test_an_announcement_whose_manifest_sha_differs_is_refused(tmp_path):
    settings, registry = _registry(tmp_path, "v1", "v2")
    message = announcement_for(registry.path("v1"))
    sha_of_v2 = announcement_for(registry.path("v2"))["manifest_sha256"]
    with pytest.raises(ModelRefused, match="sha256"):
        announced_version(_record({**message, "manifest_sha256": sha_of_v2}), settings)
    with pytest.raises(ModelRefused, match="manifest_sha256"):
        announced_version(_record({**message, "manifest_sha256": "ABC"}), settings)
    with pytest.raises(ModelRefused, match="no readable manifest"):
        announced_version(_record({**message, "version": "v9"}), settings)


def test_an_announcement_without_manifest_sha_is_taken_with_a_warning(tmp_path, caplog):
    settings, _ = _registry(tmp_path, "v1")
    assert announced_version(_record({"version": "v1"}), settings) == "v1"
    assert "carries no manifest_sha256" in caplog.text


@pytest.mark.parametrize("message", [
    {"version": "latest"}, {"version": "current"}, {"version": "v1\n"}, {"version": " v1"},
    {"version": "../v1"}, {"version": 7}, {"version": None}, {"name": "v1"}, b"\xff", b"[]",
])
def test_announcements_naming_no_exact_version_are_refused(tmp_path, message):
    settings, _ = _registry(tmp_path, "v1")
    with pytest.raises(ModelRefused):
        announced_version(_record(message), settings)


def test_version_names_match_whole_and_exclude_the_aliases():
    assert is_version_name("20260101T000000Z") and is_version_name("v1.2-rc_3")
    for name in ("v1\n", "latest", "current", "", ".hidden", "a/b", "x" * 129, None):
        assert not is_version_name(name), name
