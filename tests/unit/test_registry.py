"""Artifact verification and the file-system registry (no Kafka, no ONNX runtime)."""

from __future__ import annotations

import json
import threading

import numpy as np
import pytest

from stream_rec.model import ArtifactError, FileRegistry, RegistryError, load_artifact
from stream_rec.model.registry import POINTER
from tests.unit.fake_artifact import make_artifact


def test_loads_a_complete_artifact(tmp_path):
    art = load_artifact(make_artifact(tmp_path / "v1"))
    assert art.version == "v1"
    assert art.item_embeddings.shape == (3, 4)
    np.testing.assert_array_equal(art.positions(["c", "zz", "a"]), [2, -1, 0])
    np.testing.assert_array_equal(art.item_index(["c", "zz"]), [4, 1])


@pytest.mark.parametrize("victim", ["model.onnx", "item_ids.json", "item_embeddings.npy"])
def test_a_changed_file_is_refused(tmp_path, victim):
    folder = make_artifact(tmp_path / "v1")
    with (folder / victim).open("ab") as handle:
        handle.write(b"x")
    with pytest.raises(ArtifactError, match=victim):
        load_artifact(folder)


def test_a_missing_file_is_refused(tmp_path):
    folder = make_artifact(tmp_path / "v1")
    (folder / "attributes.json").unlink()
    with pytest.raises(ArtifactError, match="missing"):
        load_artifact(folder)


def test_a_manifest_without_a_required_file_is_refused(tmp_path):
    folder = make_artifact(tmp_path / "v1")
    manifest = json.loads((folder / "manifest.json").read_text())
    del manifest["files"]["model.onnx"]
    (folder / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ArtifactError, match="model.onnx"):
        load_artifact(folder)


def test_a_manifest_pointing_outside_the_folder_is_refused(tmp_path):
    folder = make_artifact(tmp_path / "v1")
    manifest = json.loads((folder / "manifest.json").read_text())
    manifest["files"]["../secret"] = "0" * 64
    (folder / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ArtifactError, match="outside"):
        load_artifact(folder)


def test_registry_add_promote_rollback(tmp_path):
    reg = FileRegistry(tmp_path / "reg")
    assert reg.versions() == [] and reg.current() is None
    for v in ("v1", "v2", "v3"):
        reg.add(make_artifact(tmp_path / "src" / v, version=v))
    assert reg.versions() == ["v1", "v2", "v3"]
    assert reg.current() is None
    reg.promote("v1")
    reg.promote("v3")
    assert reg.current() == "v3"
    assert reg.load().version == "v3"
    assert reg.load("latest").version == "v3"
    assert reg.rollback() == "v1"
    assert reg.current() == "v1"
    with pytest.raises(RegistryError, match="roll back"):
        reg.rollback()


def test_registry_refuses_to_load_a_tampered_version(tmp_path):
    reg = FileRegistry(tmp_path / "reg")
    reg.add(make_artifact(tmp_path / "src", version="v1"))
    reg.promote("v1")
    with (reg.path("v1") / "item_embeddings.npy").open("r+b") as handle:
        handle.seek(-4, 2)
        handle.write(b"\x00\x00\x80\x7f")
    with pytest.raises(ArtifactError, match="item_embeddings.npy"):
        reg.load()
    with pytest.raises(ArtifactError):
        reg.promote("v1")


def test_registry_refuses_unknown_versions_and_duplicates(tmp_path):
    reg = FileRegistry(tmp_path / "reg")
    reg.add(make_artifact(tmp_path / "src", version="v1"))
    with pytest.raises(RegistryError, match="already"):
        reg.add(make_artifact(tmp_path / "src2", version="v1"))
    with pytest.raises(RegistryError, match="no version"):
        reg.promote("v9")
    with pytest.raises(RegistryError, match="valid"):
        reg.path("../evil")


def test_incomplete_folders_are_not_versions(tmp_path):
    reg = FileRegistry(tmp_path / "reg")
    (tmp_path / "reg" / "half").mkdir(parents=True)  # e.g. a crashed copy without a manifest
    (tmp_path / "reg" / ".incoming-v2-x").mkdir()
    reg.add(make_artifact(tmp_path / "src", version="v1"))
    assert reg.versions() == ["v1"]


def test_pointer_updates_are_atomic_under_concurrent_readers(tmp_path):
    reg = FileRegistry(tmp_path / "reg")
    for v in ("v1", "v2"):
        reg.add(make_artifact(tmp_path / "src" / v, version=v))
    reg.promote("v1")
    seen: set[str | None] = set()
    stop = threading.Event()

    def read() -> None:
        while not stop.is_set():
            seen.add(reg.current())  # raises if it ever sees half a pointer file

    reader = threading.Thread(target=read)
    reader.start()
    for n in range(200):
        reg.promote("v2" if n % 2 else "v1")
    stop.set()
    reader.join()
    assert seen <= {"v1", "v2"}
    assert json.loads((tmp_path / "reg" / POINTER).read_text())["version"] == "v2"


def test_publish_without_announcing_promotes(tmp_path):
    reg = FileRegistry(tmp_path / "reg")
    version = reg.publish(make_artifact(tmp_path / "src", version="v7"), announce=False)
    assert version == "v7" and reg.current() == "v7"
