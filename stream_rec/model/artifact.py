"""A model artifact: one folder holding everything a worker needs to serve one model version.

Layout (all plain files, no pickle):

- ``model.onnx`` — the fusion model (see docs/model.md for its inputs and outputs)
- ``item_ids.json`` — the item vocabulary: raw ids; model index = position + FIRST_ITEM_INDEX
- ``item_embeddings.npy`` — (N, D) float32, L2-normalised, row i = item_ids[i]: the retrieval
  rows, ``user_embedding @ item_embeddings.T`` = the model's score of every item (with the
  content branch both branches side by side, so D is twice the embedding width)
- ``item_attributes.npy`` — (N, A) int64 attribute indices of each vocabulary item
- ``attributes.json`` — attribute names, per-attribute value vocabularies, price boundaries
- ``ann_index.faiss`` — optional: an approximate-retrieval graph over the retrieval rows
  (``model/ann.py``), shipped with large catalogs
- ``manifest.json`` — version, created_at, training data range, offline metrics, model
  settings, input/output signature and the sha256 of every other file

``load_artifact`` verifies every checksum and refuses a folder that is incomplete or changed.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

FORMAT_VERSION = 1
MANIFEST = "manifest.json"
MODEL_FILE = "model.onnx"
ITEM_IDS_FILE = "item_ids.json"
ITEM_EMBEDDINGS_FILE = "item_embeddings.npy"
ITEM_ATTRIBUTES_FILE = "item_attributes.npy"
ATTRIBUTES_FILE = "attributes.json"
# Optional (models with fused retrieval): the content branch's attribute tables and the
# unknown item's collaborative vector, so the worker can build the retrieval row of an item
# the model never saw from its catalog attributes.
CONTENT_TABLES_FILE = "content_tables.npz"
REQUIRED_FILES = (MODEL_FILE, ITEM_IDS_FILE, ITEM_EMBEDDINGS_FILE, ITEM_ATTRIBUTES_FILE,
                  ATTRIBUTES_FILE)

# Index conventions shared by the model, the features and the artifact.
PAD_INDEX = 0  # empty history slot / no attribute
OOV_INDEX = 1  # an item (or attribute value) the vocabulary does not know
FIRST_ITEM_INDEX = 2  # model index of item_ids[0]


class ArtifactError(Exception):
    """The folder is not a complete, unchanged model artifact; the message says why."""


def sha256_of(path: Path) -> str:
    """The hex SHA-256 of a file's bytes (what manifests and announcements carry)."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def write_json_atomic(path: Path, data: Any) -> None:
    """Write JSON next to ``path`` and rename it into place (readers never see half a file)."""
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    with tmp.open("w", encoding="utf-8") as handle:
        json.dump(data, handle, indent=2, sort_keys=True)
        handle.write("\n")
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)


def write_manifest(folder: Path, manifest: Mapping[str, Any],
                   files: Iterable[str] = REQUIRED_FILES) -> dict[str, Any]:
    """Add the sha256 of every artifact file to ``manifest`` and write ``manifest.json``."""
    out = dict(manifest)
    out["format_version"] = FORMAT_VERSION
    out["files"] = {name: sha256_of(folder / name) for name in sorted(files)}
    write_json_atomic(folder / MANIFEST, out)
    return out


def verify_folder(folder: Path) -> dict[str, Any]:
    """The manifest, after checking that every listed and required file is there, unchanged."""
    folder = Path(folder)
    if not folder.is_dir():
        raise ArtifactError(f"model artifact {folder} is not a folder")
    try:
        manifest = json.loads((folder / MANIFEST).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ArtifactError(f"model artifact {folder} has no {MANIFEST}") from None
    except (OSError, ValueError) as exc:
        raise ArtifactError(f"{folder / MANIFEST} is unreadable: {exc}") from None
    if not isinstance(manifest, dict) or not isinstance(manifest.get("files"), dict):
        raise ArtifactError(f"{folder / MANIFEST} lists no files")
    if manifest.get("format_version") != FORMAT_VERSION:
        raise ArtifactError(f"{folder}: artifact format {manifest.get('format_version')!r}, "
                            f"this stream-rec reads format {FORMAT_VERSION}")
    listed: dict[str, str] = manifest["files"]
    missing = [name for name in REQUIRED_FILES if name not in listed]
    if missing:
        raise ArtifactError(f"{folder}: manifest does not list {', '.join(missing)}")
    for name, expected in listed.items():
        path = folder / name
        if Path(name).name != name:
            raise ArtifactError(f"{folder}: manifest names a file outside the folder: {name!r}")
        if not path.is_file():
            raise ArtifactError(f"{folder}: {name} is missing (incomplete artifact)")
        if sha256_of(path) != expected:
            raise ArtifactError(f"{folder}: {name} does not match its sha256 in the manifest "
                                "(changed or corrupt)")
    return manifest


_ROWS: list[int] = []
_ROWS_LOCK = threading.Lock()


_ID_SLICE = 20_000  # ids mapped per call while a model loads (~7 ms each at a million)


def row_numbers(n: int) -> list[int]:
    """At least the ints 0..n-1, as one list shared by every model the process loads: each
    model's id -> row map refers to these int objects instead of making its own (28 MB at a
    million items, held twice while a new model loads beside the serving one)."""
    with _ROWS_LOCK:  # models load on helper threads
        if len(_ROWS) < n:
            _ROWS.extend(range(len(_ROWS), n))
        return _ROWS


@dataclass
class ModelArtifact:
    """A verified artifact, loaded: vocabularies, vectors and the path of the ONNX model."""

    path: Path
    manifest: dict[str, Any]
    item_ids: list[str]
    item_embeddings: NDArray[np.float32]  # (N, D), L2-normalised
    item_attributes: NDArray[np.int64]  # (N, A)
    attribute_names: list[str]
    attribute_vocab: dict[str, dict[str, int]]  # name -> raw value -> attribute index
    price_boundaries: dict[str, NDArray[np.float64]]  # bucketed numeric attributes
    # (attribute tables (size_a, D) in attribute order, the unknown item's unit vector (D,)),
    # present with fused retrieval and the content branch (CONTENT_TABLES_FILE)
    content_tables: tuple[list[NDArray[np.float32]], NDArray[np.float32]] | None = None
    _positions: dict[str, int] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        # In slices: one dict(zip(...)) over a million ids is a single call that holds the
        # interpreter for ~0.35 s, and models load on a helper thread beside the serving one.
        ids, rows = self.item_ids, row_numbers(len(self.item_ids))
        positions: dict[str, int] = {}
        for lo in range(0, len(ids), _ID_SLICE):
            # The shared rows may outnumber the ids: zip stops at the slice's last id.
            positions.update(zip(ids[lo:lo + _ID_SLICE], rows[lo:lo + _ID_SLICE],
                                 strict=False))
        self._positions = positions

    @property
    def version(self) -> str:
        return str(self.manifest["version"])

    @property
    def model_path(self) -> Path:
        return self.path / MODEL_FILE

    @property
    def max_history(self) -> int:
        return int(self.manifest["model"]["max_history"])

    @property
    def input_names(self) -> list[str]:
        return list(self.manifest["signature"]["inputs"])

    def position_map(self) -> Mapping[str, int]:
        """The raw id -> row map itself (not a copy: callers must not change it; an item
        table keeps the items it adds in a map of its own, ``serving/item_table.Positions``)."""
        return self._positions

    def positions(self, item_ids: Sequence[str]) -> NDArray[np.int64]:
        """Row in ``item_ids``/``item_embeddings`` of each raw id, -1 when unknown."""
        get = self._positions.get
        return np.fromiter((get(i, -1) for i in item_ids), dtype=np.int64, count=len(item_ids))

    def item_index(self, item_ids: Sequence[str]) -> NDArray[np.int64]:
        """Model input index of each raw id (OOV_INDEX when unknown)."""
        pos = self.positions(item_ids)
        return np.where(pos >= 0, pos + FIRST_ITEM_INDEX, OOV_INDEX).astype(np.int64)

    def attribute_index(self, name: str, raw: str | float | None) -> int:
        """Index of one raw attribute value (OOV_INDEX when unknown or unparsable)."""
        return encode_attribute(self.attribute_vocab[name], self.price_boundaries.get(name), raw)


def encode_attribute(vocab: Mapping[str, int], boundaries: NDArray[np.float64] | None,
                     raw: str | float | None) -> int:
    """Attribute index of a raw value: a vocabulary lookup, or the price bucket when the
    attribute is bucketed (``boundaries`` sorted ascending; bucket b -> FIRST_ITEM_INDEX + b)."""
    if raw is None:
        return OOV_INDEX
    if boundaries is not None:
        try:
            value = float(raw)
        except (TypeError, ValueError):
            return OOV_INDEX
        if not np.isfinite(value):
            return OOV_INDEX
        return FIRST_ITEM_INDEX + int(np.searchsorted(boundaries, value, side="right"))
    return vocab.get(str(raw), OOV_INDEX)


def load_artifact(folder: str | Path,
                  same_ids: Callable[[str], str] | None = None) -> ModelArtifact:
    """Verify and load an artifact folder; raise ArtifactError when anything is wrong.

    ``same_ids`` maps an item id to an equal string the process already holds (the worker's
    catalog, ``CatalogView.shared_id``), so the vocabulary shares those strings instead of
    keeping its own copy of each."""
    folder = Path(folder)
    manifest = verify_folder(folder)
    try:
        item_ids = _read_ids(folder / ITEM_IDS_FILE, same_ids)
        attrs = json.loads((folder / ATTRIBUTES_FILE).read_text(encoding="utf-8"))
        embeddings = _mapped(folder / ITEM_EMBEDDINGS_FILE, np.float32)
        item_attributes = _mapped(folder / ITEM_ATTRIBUTES_FILE, np.int64)
    except (OSError, ValueError) as exc:
        raise ArtifactError(f"{folder}: cannot read artifact files: {exc}") from None
    names = list(attrs.get("names", []))
    if (embeddings.ndim != 2 or len(item_ids) != embeddings.shape[0]
            or item_attributes.shape != (len(item_ids), len(names))):
        raise ArtifactError(f"{folder}: item files disagree on the number of items")
    vocab = {name: {str(v): FIRST_ITEM_INDEX + i for i, v in enumerate(values)}
             for name, values in attrs.get("vocabularies", {}).items()}
    for name in names:
        vocab.setdefault(name, {})
    bounds = {name: np.asarray(b, dtype=np.float64)
              for name, b in attrs.get("price_boundaries", {}).items()}
    return ModelArtifact(folder, manifest, item_ids, embeddings, item_attributes, names, vocab,
                         bounds,
                         _content_tables(folder, manifest, len(names), embeddings.shape[1]))


def _mapped(path: Path, dtype: type[np.generic]) -> NDArray[Any]:
    """The array in ``path``, memory-mapped read-only when it is stored as ``dtype`` (as the
    trainer writes it), else read and converted. Mapped, the vectors are the page cache's
    pages, read in as they are used: a model loaded beside the one serving (a swap) costs no
    resident memory for its table until it serves, and the process holds no private copy of
    the file. Artifact files are never changed in place (``verify_folder``)."""
    stored = np.load(path, mmap_mode="r", allow_pickle=False)
    if stored.dtype == dtype and stored.flags.c_contiguous:
        return stored.view(np.ndarray)  # a plain array over the mapping (kept open by it)
    return np.ascontiguousarray(stored, dtype=dtype)


def _read_ids(path: Path, same_ids: Callable[[str], str] | None) -> list[str]:
    """The vocabulary's raw ids (as strings), each replaced by ``same_ids``' equal string."""
    raw = json.loads(path.read_text(encoding="utf-8"))
    if not isinstance(raw, list):
        raise ValueError(f"{path.name} holds no list of ids")
    same = same_ids or (lambda item_id: item_id)
    # In place: the parsed strings are dropped one by one as their shared twins replace them.
    for n, item_id in enumerate(raw):
        raw[n] = same(item_id if isinstance(item_id, str) else str(item_id))
    return raw


def _content_tables(folder: Path, manifest: Mapping[str, Any], n_attributes: int, width: int
                    ) -> tuple[list[NDArray[np.float32]], NDArray[np.float32]] | None:
    """The optional CONTENT_TABLES_FILE, checked against the retrieval rows' width."""
    if CONTENT_TABLES_FILE not in manifest.get("files", {}):
        return None
    try:
        with np.load(folder / CONTENT_TABLES_FILE, allow_pickle=False) as data:
            tables = [data[f"attribute_{a}"].astype(np.float32) for a in range(n_attributes)]
            unknown = data["unknown_item"].astype(np.float32)
    except (OSError, ValueError, KeyError) as exc:
        raise ArtifactError(f"{folder}: cannot read {CONTENT_TABLES_FILE}: {exc}") from None
    if any(t.ndim != 2 or t.shape[1] * 2 != width for t in tables) or \
            unknown.shape != (width // 2,):
        raise ArtifactError(f"{folder}: {CONTENT_TABLES_FILE} does not fit the item vectors")
    return tables, unknown
