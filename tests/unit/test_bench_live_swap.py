"""The bench's hot swap stages its versions in a registry of its own, never the caller's."""

from __future__ import annotations

import json
from pathlib import Path

from stream_rec.model.artifact import MANIFEST, REQUIRED_FILES, verify_folder, write_manifest
from stream_rec.model.registry import FileRegistry
from stream_rec.tools.bench.live_swap import copy_as_new_version, stage_registry
from stream_rec.tools.bench.probes import reset_peak


def _registry_with_one_version(root: Path, version: str = "20260101T000000Z") -> Path:
    folder = root / version
    folder.mkdir(parents=True)
    for name in REQUIRED_FILES:
        (folder / name).write_bytes(f"{name} of {version}".encode())
    write_manifest(folder, {"version": version, "created_at": "2026-01-01T00:00:00Z"})
    FileRegistry(root).promote(version)
    return root


def test_staged_copies_leave_the_callers_registry_alone(tmp_path: Path) -> None:
    source = _registry_with_one_version(tmp_path / "mine")
    before = {p.relative_to(source): p.read_bytes() for p in source.rglob("*") if p.is_file()}

    staged = stage_registry(source, tmp_path / "work")
    new = copy_as_new_version(staged, "swap1")

    reg = FileRegistry(staged)
    assert new == "20260101T000000Z-swap1"
    assert reg.versions() == ["20260101T000000Z", new]
    assert reg.current() == "20260101T000000Z"  # promoting is the swap's own step
    manifest = verify_folder(reg.path(new))  # the files' checksums still hold
    assert manifest["version"] == new
    old = json.loads((reg.path("20260101T000000Z") / MANIFEST).read_text())
    assert manifest["files"] == old["files"]
    assert not list(staged.glob(".staging-*"))
    after = {p.relative_to(source): p.read_bytes() for p in source.rglob("*") if p.is_file()}
    assert after == before


def test_a_peak_reset_on_a_missing_process_says_so() -> None:
    assert reset_peak(2**22 + 12345) is False  # above the kernel's pid limit: no such process
