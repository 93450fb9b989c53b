"""The onnxruntime session behind a model artifact: one call scores a whole batch."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

SCORES = "scores"
USER_EMBEDDING = "user_embedding"


class OnnxScorer:
    """Wraps an ``onnxruntime.InferenceSession`` with a bounded number of threads.

    ``threads`` caps intra-op parallelism so several workers (or a worker and a trainer) can
    share a machine without oversubscribing its cores.
    """

    def __init__(self, model_path: str | Path, threads: int = 1) -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = max(1, threads)
        options.inter_op_num_threads = 1
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        self.session = ort.InferenceSession(str(model_path), sess_options=options,
                                            providers=["CPUExecutionProvider"])
        self.input_names = [i.name for i in self.session.get_inputs()]
        self.output_names = [o.name for o in self.session.get_outputs()]

    def run(self, inputs: Mapping[str, NDArray[np.int64]]
            ) -> tuple[NDArray[np.float32], NDArray[np.float32]]:
        """(scores (B, C), user_embedding (B, D)) for one batch of model inputs."""
        feed = {name: np.ascontiguousarray(inputs[name], dtype=np.int64)
                for name in self.input_names}
        scores, users = self.session.run([SCORES, USER_EMBEDDING], feed)
        return np.asarray(scores, np.float32), np.asarray(users, np.float32)

    def user_embedding(self, inputs: Mapping[str, NDArray[np.int64]]) -> NDArray[np.float32]:
        """Only the shopper query vectors; candidate inputs may be absent (a dummy is used)."""
        feed = {name: np.ascontiguousarray(inputs[name], dtype=np.int64)
                for name in self.input_names if name in inputs}
        if "candidate_items" not in feed:
            feed["candidate_items"] = np.zeros((1, 1), dtype=np.int64)
        if "candidate_attributes" in self.input_names and "candidate_attributes" not in feed:
            width = feed["history_attributes"].shape[-1]
            feed["candidate_attributes"] = np.zeros((1, 1, width), dtype=np.int64)
        (users,) = self.session.run([USER_EMBEDDING], feed)
        return np.asarray(users, np.float32)
