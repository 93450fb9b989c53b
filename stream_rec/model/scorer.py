"""The onnxruntime session behind a model artifact: one call scores a whole batch.

The worker needs the shoppers' embeddings (for retrieval) before it knows the candidates to
score, and the exported model computes both from the history in one graph, so scoring the
candidates would compute every shopper's history encoder a second time (as much CPU as the
retrieval matmul on a 43,000-item catalog). ``OnnxScorer`` therefore also opens the graph cut
in two where the candidates come in (``split_at_candidates``): the shopper half once per batch,
the candidate half fed with its results. The halves are the exported graph's own nodes and
weights, checked at load against the whole graph; if the cut is not possible or disagrees,
the whole graph is used as before. Once the halves agree, the whole graph's session is
closed: every call goes through the halves. Their large weights (the item tables) are read
once and handed to every session (``shared_initialisers``), so the process holds one copy of
them, not one per session: at a million items that is the largest part of the model's memory
after the retrieval rows.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

log = logging.getLogger(__name__)

SCORES = "scores"
USER_EMBEDDING = "user_embedding"
CANDIDATE_INPUTS = ("candidate_items", "candidate_attributes")
HISTORY_EVENTS = "history_events"  # event type indices, 0 only where a history is padded


def history_spans(events: NDArray[np.int64]) -> NDArray[np.int64]:
    """Per row of left-padded (B, L) event indices: how many steps the history spans."""
    real = events > 0
    width = events.shape[1]
    return np.where(real.any(axis=1), width - np.argmax(real, axis=1), 0).astype(np.int64)


def length_buckets(spans: NDArray[np.int64]) -> list[tuple[NDArray[np.intp], int]]:
    """Rows grouped by history span (up to 1, 2, 4, 8, ... steps) with each group's width.

    Powers of two bound the padding any row gets at less than its own span again, with at
    most log2(L) + 1 runs of the encoder per batch.
    """
    groups = np.ceil(np.log2(np.maximum(spans, 1))).astype(np.int64)
    return [(rows, max(1, int(spans[rows].max())))
            for rows in (np.flatnonzero(groups == g) for g in np.unique(groups))]


# One more onnxruntime call of the shopper half costs about as much as this many padded
# history steps (rows x steps) inside a call: ~70 us a call against ~4 us a row-step for the
# diginetica model (100-dim, one thread).
CALL_COST_STEPS = 16


def merge_buckets(groups: list[tuple[NDArray[np.intp], int]],
                  call_cost_steps: int = CALL_COST_STEPS
                  ) -> list[tuple[NDArray[np.intp], int]]:
    """Neighbouring ``length_buckets`` groups (narrowest first) joined where padding the
    narrower rows to the wider width costs less than the calls it saves.

    A batch of three shoppers whose histories span 1, 3 and 7 steps ran three calls of the
    encoder, each paying the call's fixed cost for one row; one call of width 7 costs less.
    Large groups stay apart: their padding would cost more than a call. The partition is the
    one of least estimated cost (calls x ``call_cost_steps`` + rows x width), found exactly
    over the contiguous runs (a batch has at most log2(L) + 1 groups).
    """
    if len(groups) < 2:
        return groups
    sizes = [len(rows) for rows, _ in groups]
    best = [0.0] + [float("inf")] * len(groups)  # best[j]: least cost of the first j groups
    start = [0] * (len(groups) + 1)  # where the last run of that best partition starts
    for j in range(1, len(groups) + 1):
        for i in range(j):
            cost = best[i] + call_cost_steps + sum(sizes[i:j]) * groups[j - 1][1]
            if cost < best[j]:
                best[j], start[j] = cost, i
    runs: list[tuple[NDArray[np.intp], int]] = []
    j = len(groups)
    while j > 0:
        i = start[j]
        runs.append((np.concatenate([rows for rows, _ in groups[i:j]]), groups[j - 1][1]))
        j = i
    return runs[::-1]


@dataclass
class ShopperTower:
    """One batch's shopper half: the query vectors and what the candidate half needs."""

    embedding: NDArray[np.float32]
    history_inputs: Mapping[str, NDArray[np.int64]]
    carried: dict[str, Any] = field(default_factory=dict)  # cut tensors, by name


class OnnxScorer:
    """Wraps an ``onnxruntime.InferenceSession`` with a bounded number of threads.

    ``threads`` caps intra-op parallelism so several workers (or a worker and a trainer) can
    share a machine without oversubscribing its cores.
    """

    def __init__(self, model_path: str | Path, threads: int = 1, split: bool = True) -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = max(1, threads)
        options.inter_op_num_threads = 1
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        model = _read_model(Path(model_path)) if split else None
        # name -> (array, OrtValue wrapping it): both must outlive every session using them.
        self._shared = shared_initialisers(model) if model is not None else {}
        for name, (_, value) in self._shared.items():
            options.add_initializer(name, value)
        whole = None
        if model is not None and self._shared:
            try:
                whole = _session_without_shared_bytes(model, self._shared, Path(model_path),
                                                      options)
            except Exception as exc:  # noqa: BLE001 - an onnxruntime without the option
                log.info("model graph read with its weights (%r)", exc)
                model = _read_model(Path(model_path))  # the weights back in the graph
        if whole is None:
            whole = ort.InferenceSession(str(model_path), sess_options=options,
                                         providers=["CPUExecutionProvider"])
        self._whole: Any = whole  # None once the halves are verified
        self.input_names = [i.name for i in whole.get_inputs()]
        self.output_names = [o.name for o in whole.get_outputs()]
        # (shopper half, candidate half, tensors carried across, candidate half's inputs)
        self._halves: tuple[Any, Any, list[str], frozenset[str]] | None = None
        try:
            halves = split_at_candidates(model) if model is not None else None
        except Exception as exc:  # noqa: BLE001 - any failure means: use the whole graph
            log.info("model graph not split (%r): candidates are scored with the whole graph",
                     exc)
            halves = None
        if halves is not None:
            shopper, candidates, carried = halves
            half = _session_from_bytes(candidates, options)
            self._halves = (_session_from_bytes(shopper, options), half, carried,
                            frozenset(i.name for i in half.get_inputs()))

    def run(self, inputs: Mapping[str, NDArray[np.int64]]
            ) -> tuple[NDArray[np.float32], NDArray[np.float32]]:
        """(scores (B, C), user_embedding (B, D)) for one batch of model inputs."""
        if self._whole is None:
            tower = self.shopper_tower(inputs)
            scores = self.candidate_scores(tower, {n: inputs[n] for n in CANDIDATE_INPUTS
                                                   if n in self.input_names})
            return scores, tower.embedding
        return self._run_whole(inputs)

    def _run_whole(self, inputs: Mapping[str, NDArray[np.int64]]
                   ) -> tuple[NDArray[np.float32], NDArray[np.float32]]:
        feed = {name: np.ascontiguousarray(inputs[name], dtype=np.int64)
                for name in self.input_names}
        scores, users = self._whole.run([SCORES, USER_EMBEDDING], feed)
        return np.asarray(scores, np.float32), np.asarray(users, np.float32)

    def user_embedding(self, inputs: Mapping[str, NDArray[np.int64]]) -> NDArray[np.float32]:
        """Only the shopper query vectors; candidate inputs may be absent (a dummy is used)."""
        if self._halves is not None:
            return self.shopper_tower(inputs).embedding
        feed = {name: np.ascontiguousarray(inputs[name], dtype=np.int64)
                for name in self.input_names if name in inputs}
        if "candidate_items" not in feed:
            feed["candidate_items"] = np.zeros((1, 1), dtype=np.int64)
        if "candidate_attributes" in self.input_names and "candidate_attributes" not in feed:
            width = feed["history_attributes"].shape[-1]
            feed["candidate_attributes"] = np.zeros((1, 1, width), dtype=np.int64)
        (users,) = self._whole.run([USER_EMBEDDING], feed)
        return np.asarray(users, np.float32)

    @property
    def split(self) -> bool:
        """True when candidates are scored by the candidate half only."""
        return self._halves is not None

    def shopper_tower(self, inputs: Mapping[str, NDArray[np.int64]]) -> ShopperTower:
        """The batch's query vectors, keeping what scoring its candidates will need."""
        history = {name: np.ascontiguousarray(inputs[name], dtype=np.int64)
                   for name in self.input_names if name not in CANDIDATE_INPUTS}
        if self._halves is None:
            return ShopperTower(self.user_embedding(history), history)
        _, _, carried, _ = self._halves
        values = self._shopper_half(history)
        return ShopperTower(np.asarray(values[0], np.float32), history,
                            dict(zip(carried, values[1:], strict=True)))

    def _shopper_half(self, history: Mapping[str, NDArray[np.int64]]) -> list[Any]:
        """The shopper half over a batch, run per group of similar history lengths.

        The features left-pad every history to the batch's longest, and the history encoder
        costs the same for a padding step as for an event: one shopper with 50 events made
        every shopper of the batch cost 50. Padding is masked out and positions count from the
        end, so cutting leading padding changes nothing but the work (checked at load).
        """
        assert self._halves is not None
        shopper, _, carried, _ = self._halves
        names = [USER_EMBEDDING, *carried]
        events = history.get(HISTORY_EVENTS)
        if events is None:
            return list(shopper.run(names, history))
        width = events.shape[1]
        groups = merge_buckets(length_buckets(history_spans(events)))
        if (not groups or (len(groups) == 1 and groups[0][1] >= width)
                or any(np.ndim(v) < 2 or np.shape(v)[1] != width
                       for v in history.values())):  # one group as wide, or not all (B, L, ...)
            return list(shopper.run(names, history))
        parts = [(rows, shopper.run(names, {name: value[rows, width - need:]
                                           for name, value in history.items()}))
                 for rows, need in groups]
        values: list[Any] = []
        for j in range(len(names)):
            shapes = {np.shape(out[j])[1:] for _, out in parts}
            if len(shapes) != 1:  # an output that depends on the length: no grouping
                return list(shopper.run(names, history))
            first = np.asarray(parts[0][1][j])
            joined = np.empty((len(events), *first.shape[1:]), dtype=first.dtype)
            for rows, out in parts:
                joined[rows] = out[j]
            values.append(joined)
        return values

    def candidate_scores(self, tower: ShopperTower,
                         candidates: Mapping[str, NDArray[np.int64]]) -> NDArray[np.float32]:
        """(B, C) scores of each shopper's candidates, from a tower of the same batch."""
        feed = {name: np.ascontiguousarray(value, dtype=np.int64)
                for name, value in candidates.items()}
        if self._halves is None:
            scores, _ = self._run_whole({**tower.history_inputs, **feed})
            return scores
        _, half, _, wanted = self._halves
        feed = {name: value for name, value in {**tower.history_inputs, **tower.carried,
                                                **feed}.items() if name in wanted}
        (scores,) = half.run([SCORES], feed)
        return np.asarray(scores, np.float32)

    def agrees_when_split(self, inputs: Mapping[str, NDArray[np.int64]]) -> bool:
        """True when the two halves give the whole graph's scores on ``inputs`` (else the
        split is dropped, so the worker never serves numbers the exported model would not).
        When they agree, the whole graph's session is closed: the halves serve every call."""
        if self._halves is None or self._whole is None:
            return True  # nothing to compare, or compared already
        whole, users = self._run_whole(inputs)
        tower = self.shopper_tower(inputs)
        parts = self.candidate_scores(tower, {n: inputs[n] for n in CANDIDATE_INPUTS
                                              if n in inputs})
        same = (np.allclose(parts, whole, rtol=1e-5, atol=1e-6)
                and np.allclose(tower.embedding, users, rtol=1e-5, atol=1e-6))
        if not same:
            log.warning("the split model graph disagrees with the whole graph: using the whole")
            self._halves = None
        else:
            self._whole = None
        return same


def _session_from_bytes(model: bytes, options: Any) -> Any:
    """A CPU session over a serialised graph, without the copy of the bytes that onnxruntime's
    Python class keeps (only to build the session again after a provider failure, which a
    CPU-only session never does): the halves carry the item tables, so each kept copy cost
    as much memory as a table."""
    import onnxruntime as ort

    session = ort.InferenceSession(model, sess_options=options,
                                   providers=["CPUExecutionProvider"])
    if getattr(session, "_model_bytes", None) is not None:
        session._model_bytes = None
    return session


SHARE_BYTES = 1 << 20  # initialisers at least this large are held once for all sessions


def _session_without_shared_bytes(model: Any, shared: Mapping[str, Any], model_path: Path,
                                  options: Any) -> Any:
    """The whole graph's session, built from ``model`` with the shared weights' bytes taken
    out of it (the halves are then cut from this lighter graph too).

    Every session gets the shared weights from ``options`` (``add_initializer``), yet
    onnxruntime validates each initialiser in the graph it parses: so the graph, its copies
    for shape inference and the cut, the halves' serialised bytes and onnxruntime's own
    parse each held a copy of the item tables while the model loaded, about 6x the tables at
    the peak (+512 MB for a 62 MB model at a million items, against 85 MB kept). Here each
    shared weight becomes a reference to external data in the model's own file, a reference
    onnxruntime checks but never reads, since ``add_initializer`` overrides it. ``model`` is
    changed in place."""
    from onnx import TensorProto

    for tensor in model.graph.initializer:
        if tensor.name in shared:
            tensor.ClearField("raw_data")
            tensor.data_location = TensorProto.EXTERNAL
            del tensor.external_data[:]
            entry = tensor.external_data.add()
            entry.key, entry.value = "location", model_path.name
    options.add_session_config_entry("session.model_external_initializers_file_folder_path",
                                     str(model_path.parent.resolve()))
    return _session_from_bytes(model.SerializeToString(), options)


def _read_model(model_path: Path) -> Any | None:
    """The parsed graph (an ``onnx.ModelProto``), or None when onnx cannot read it (the
    whole graph is then served as onnxruntime reads it)."""
    import onnx

    try:
        return onnx.load(str(model_path))
    except Exception as exc:  # noqa: BLE001 - any failure means: no split, no sharing
        log.info("model graph not read by onnx (%r): candidates are scored with the whole "
                 "graph", exc)
        return None


def shared_initialisers(model: Any) -> dict[str, tuple[NDArray[Any], Any]]:
    """The graph's large weights, each as an array and an ``OrtValue`` over that array.

    Given to every session through ``SessionOptions.add_initializer``, onnxruntime uses them in
    place of its own copy from the file: the whole graph and both halves then share one copy.
    """
    import onnxruntime as ort
    from onnx import numpy_helper

    shared: dict[str, tuple[NDArray[Any], Any]] = {}
    for tensor in model.graph.initializer:
        if tensor.data_location != 0 or not tensor.HasField("raw_data"):
            continue  # external or typed-field data: left to onnxruntime
        if len(tensor.raw_data) < SHARE_BYTES:
            continue
        # An owned, writable C-ordered copy: to_array may return a view of the proto's bytes.
        array = np.array(numpy_helper.to_array(tensor), order="C", copy=True)
        shared[tensor.name] = (array, ort.OrtValue.ortvalue_from_numpy(array))
    return shared


def split_at_candidates(model: Any) -> tuple[bytes, bytes, list[str]] | None:
    """The graph (an ``onnx.ModelProto`` or the path of one) cut where the candidate inputs
    enter: (shopper half, candidate half, the tensors passed from one to the other); None when
    the graph has no such cut.

    Every node that does not depend on a candidate input goes to the shopper half; the
    candidate half takes the candidate inputs plus every tensor the shopper half produces (or
    the graph takes as input) that a candidate-dependent node reads.
    """
    import onnx
    from onnx.utils import Extractor

    if isinstance(model, Path):
        model = onnx.load(str(model))
    graph = model.graph
    inputs = {i.name for i in graph.input}
    initialisers = {t.name for t in graph.initializer}
    outputs = {o.name for o in graph.output}
    tainted = {name for name in inputs if name in CANDIDATE_INPUTS}
    if not tainted or outputs != {SCORES, USER_EMBEDDING}:
        return None
    carried: list[str] = []
    for node in graph.node:  # ONNX graphs list nodes in topological order
        if any(name in tainted for name in node.input):
            tainted.update(node.output)
            carried.extend(name for name in node.input if name and name not in tainted
                           and name not in initialisers and name not in carried)
    if USER_EMBEDDING in tainted or SCORES not in tainted:
        return None
    cut = [name for name in carried if name not in inputs]
    # Extractor needs every cut tensor's type; data propagation finds the ones it misses.
    extractor = Extractor(onnx.shape_inference.infer_shapes(model, data_prop=True))
    history = sorted(inputs - set(CANDIDATE_INPUTS))
    shopper = extractor.extract_model(history, [USER_EMBEDDING, *cut])
    candidates = extractor.extract_model(
        sorted({*cut, *(n for n in carried if n in inputs), *(inputs & set(CANDIDATE_INPUTS))}),
        [SCORES])
    return shopper.SerializeToString(), candidates.SerializeToString(), cut
