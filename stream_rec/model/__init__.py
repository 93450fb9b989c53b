"""Serving side of the model: artifact, registry, input features and the ONNX scorer.

No TensorFlow here: the worker imports this package. Training lives in ``training/``.
"""

from __future__ import annotations

from stream_rec.model.artifact import (
    FIRST_ITEM_INDEX,
    OOV_INDEX,
    PAD_INDEX,
    ArtifactError,
    ModelArtifact,
    load_artifact,
    verify_folder,
    write_manifest,
)
from stream_rec.model.features import FeatureBuilder, event_index
from stream_rec.model.registry import (
    FileRegistry,
    ModelRegistry,
    RegistryError,
    open_registry,
)
from stream_rec.model.runtime import ServedModel, load_served_model
from stream_rec.model.scorer import OnnxScorer

__all__ = [
    "FIRST_ITEM_INDEX",
    "OOV_INDEX",
    "PAD_INDEX",
    "ArtifactError",
    "FeatureBuilder",
    "FileRegistry",
    "open_registry",
    "ModelArtifact",
    "ModelRegistry",
    "OnnxScorer",
    "RegistryError",
    "ServedModel",
    "event_index",
    "load_artifact",
    "load_served_model",
    "verify_folder",
    "write_manifest",
]
