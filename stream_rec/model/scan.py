"""Retrieval's product over the vocabulary in 8 bits, then the best few scored exactly.

Exact retrieval multiplies every shopper's query with every retrieval row. At tens of
thousands of items that product is the worker's largest cost, and it is bound by reading the
rows, not by arithmetic: numpy's float32 product (OpenBLAS) reads 17 MB a batch at 43,097 x 100
and packs it again on every call, so a batch of three shoppers costs about as much as one of
eight. Here the rows are kept as int8 codes (one scale per row) inside an onnxruntime session,
whose integer kernels (VNNI/AMX where the CPU has them) read a quarter of the bytes from a
matrix packed once when the model loads. The queries are coded per row the same way.

The codes only choose: the best ``k + margin`` of each row by the 8-bit scores are scored
again from the float rows, and the best ``k`` of those returned with their exact scores. An
item whose 8-bit score falls below the margin while its exact score is in the top ``k`` is
the only difference from exact retrieval; ``stream-rec bench-retrieval`` measures how often
(recall@k against exact) and ``stream-rec evaluate --retrieval worker`` what it does to the
lists.

It answers like the shipped graph (``model/ann.AnnIndex.search``), so retrieval, the similar-
items view and the evaluation use it the same way: the vocabulary from here, the catalog-only
items exactly beside it (``serving/candidates.index_top_n``).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray

from stream_rec.serving.retrieval import top_n

CODE_MAX = 127  # int8 codes in -127..127: symmetric, so a row's zero is the code 0
QUERY_ZERO = 128  # queries as uint8 around 128 (onnxruntime's fast kernels take u8 x s8)
# Rows scored again from the float rows beyond k: at k = 200 on diginetica, 0 kept 99.3 % of
# the exact top 200 and 50 all of them (``stream-rec bench-retrieval``).
MIN_MARGIN = 16


# Bounds on one product's (rows, columns) of float output: onnxruntime's arena keeps the largest
# it has served, so a batch of 256 shoppers over a million items must not ask for 1 GB at once.
# 64 x 131,072 floats is 32 MB; at 43,097 items a batch of 256 runs as four products of 64 rows
# (6.8 ms in all against 7.4 ms for one of 256, and a quarter of the arena).
ROW_CHUNK = 64
COLUMN_CHUNK = 131_072


class Int8Scan:
    """The model's vocabulary retrieval rows as 8-bit codes, searched by a full product."""

    kind = "int8-scan"

    def __init__(self, vectors: NDArray[np.float32], margin: int | None = None,
                 column_chunk: int = COLUMN_CHUNK) -> None:
        self.vectors = vectors  # the float rows, (N, D), for the exact second look
        self.margin = margin  # None: a quarter of k, at least MIN_MARGIN
        codes, scales = quantise_rows(np.asarray(vectors, dtype=np.float32))
        # One session per slice of columns, each holding its slice's codes packed.
        self.parts = [(lo, min(lo + column_chunk, len(codes)),
                       _product_session(codes[lo:lo + column_chunk],
                                        scales[lo:lo + column_chunk]))
                      for lo in range(0, len(codes), column_chunk)]
        self._allowed: tuple[Any, NDArray[np.int64]] | None = None

    @property
    def n_items(self) -> int:
        return int(self.vectors.shape[0])

    def describe(self) -> str:
        """How retrieval searches, for the log."""
        return f"8-bit scan of {self.n_items:,} items, the best rescored exactly"

    def search(self, queries: NDArray[np.float32], k: int,
               allowed: NDArray[np.uint8] | None = None
               ) -> tuple[NDArray[np.float32], NDArray[np.int64]]:
        """(B, k) exact scores (inner products) and rows, best first; row -1 (score -inf)
        where fewer than k may be returned. ``allowed`` as ``AnnIndex.search`` takes it."""
        queries = np.ascontiguousarray(queries, dtype=np.float32)
        scores = np.full((len(queries), k), -np.inf, dtype=np.float32)
        rows = np.full((len(queries), k), -1, dtype=np.int64)
        blocked = self._blocked(allowed)
        if not len(queries) or k <= 0 or len(blocked) >= self.n_items:
            return scores, rows
        margin = max(MIN_MARGIN, k // 4) if self.margin is None else self.margin
        for lo in range(0, len(queries), ROW_CHUNK):
            some = queries[lo:lo + ROW_CHUNK]
            picked = self._choose(some, k + margin, blocked)
            # ``take`` of the flat rows gathers in 0.65 of the time of ``vectors[picked]``
            # with a 2-D index (64 x 250 rows of 100); the order of equal scores is arbitrary
            # anyway (``picked`` comes unordered), so the quicker unstable sort (1/6 the time).
            rows_kept = self.vectors.take(picked.ravel(), axis=0).reshape(*picked.shape, -1)
            exact = np.matmul(rows_kept, some[:, :, None])[..., 0]
            best = np.argsort(-exact, axis=1)[:, :k]
            width = best.shape[1]
            scores[lo:lo + len(some), :width] = np.take_along_axis(exact, best, axis=1)
            rows[lo:lo + len(some), :width] = np.take_along_axis(picked, best, axis=1)
        return scores, rows

    def _choose(self, queries: NDArray[np.float32], n: int, blocked: NDArray[np.int64]
                ) -> NDArray[np.int64]:
        """(B, <= n * parts) rows: each column slice's best n by the 8-bit scores."""
        coded, _ = quantise_rows(queries)
        coded_u8 = (coded.astype(np.int16) + QUERY_ZERO).astype(np.uint8)
        picked = []
        for lo, hi, session in self.parts:
            approx = session.run(None, {"q": coded_u8})[0]
            inside = blocked[np.searchsorted(blocked, lo):np.searchsorted(blocked, hi)]
            if len(inside):
                approx[:, inside - lo] = -np.inf
            m = min(n, hi - lo - len(inside))
            if m > 0:
                # Unordered: the exact second look ranks them.
                picked.append(top_n(approx, m, ordered=False) + lo)
        return np.concatenate(picked, axis=1)

    def _blocked(self, allowed: NDArray[np.uint8] | None) -> NDArray[np.int64]:
        """The rows ``allowed`` leaves out; the last bitmap's answer is kept, as the item
        table hands the same bitmap object to every batch until the stock changes."""
        if allowed is None:
            return np.empty(0, dtype=np.int64)
        if self._allowed is None or self._allowed[0] is not allowed:
            bits = np.unpackbits(allowed, count=self.n_items, bitorder="little")
            self._allowed = (allowed, np.flatnonzero(bits == 0).astype(np.int64))
        return self._allowed[1]


def quantise_rows(rows: NDArray[np.float32]) -> tuple[NDArray[np.int8], NDArray[np.float32]]:
    """Symmetric 8-bit codes of each row and its scale (``row ~= codes * scale``); a zero row
    gets scale 1 and codes 0."""
    peaks = np.abs(rows).max(axis=1) if rows.size else np.zeros(len(rows), dtype=np.float32)
    scales: NDArray[np.float32] = np.where(peaks > 0, peaks / CODE_MAX, 1.0).astype(np.float32)
    codes = np.clip(np.rint(rows / scales[:, None]), -CODE_MAX, CODE_MAX).astype(np.int8)
    return codes, scales


def _product_session(codes: NDArray[np.int8], scales: NDArray[np.float32]) -> Any:
    """An onnxruntime session: uint8 queries (B, D) around QUERY_ZERO -> (B, N) float scores
    up to each query's own scale (which does not change a row's order). One fused integer
    product that writes floats (``com.microsoft.MatMulIntegerToFloat``): a product, a cast and
    a multiply as three operators cost twice as much at 256 shoppers, two extra passes over
    the (B, N) result. The codes and scales are constants, so the kernel packs them once."""
    import onnxruntime as ort
    from onnx import TensorProto, helper, numpy_helper

    n, d = codes.shape
    graph = helper.make_graph(
        [helper.make_node("MatMulIntegerToFloat", ["q", "codes_t", "q_scale", "scales",
                                                    "q_zero"], ["scores"],
                          domain="com.microsoft")],
        "int8_scan",
        [helper.make_tensor_value_info("q", TensorProto.UINT8, ["B", d])],
        [helper.make_tensor_value_info("scores", TensorProto.FLOAT, ["B", n])],
        [numpy_helper.from_array(np.ascontiguousarray(codes.T), "codes_t"),
         numpy_helper.from_array(np.array(1.0, dtype=np.float32), "q_scale"),
         numpy_helper.from_array(scales, "scales"),
         numpy_helper.from_array(np.array(QUERY_ZERO, dtype=np.uint8), "q_zero")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17),
                                                    helper.make_opsetid("com.microsoft", 1)])
    model.ir_version = 8
    options = ort.SessionOptions()
    # One core per worker process, as the scorer's and BLAS's threads.
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    return ort.InferenceSession(model.SerializeToString(), options,
                                providers=["CPUExecutionProvider"])
