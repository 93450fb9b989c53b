"""Data specs: ``FORMAT:LOCATION`` strings naming a dataset and how to read it."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from stream_rec.errors import UserError

FORMATS = ("sessions", "categories", "events", "kafka")


@dataclass(frozen=True)
class DataSpec:
    """``kind`` is one of FORMATS; ``location`` a folder path, or a topic for ``kafka``."""

    kind: str
    location: str

    def __str__(self) -> str:
        return f"{self.kind}:{self.location}"

    def folder(self, data_dir: str | Path = "") -> Path:
        """The dataset folder: the path as given, else relative to ``data_dir``."""
        path = Path(self.location).expanduser()
        if not path.exists() and data_dir and not path.is_absolute():
            candidate = Path(data_dir).expanduser() / path
            if candidate.exists():
                return candidate
        return path


def parse_spec(text: str) -> DataSpec:
    """``FORMAT:LOCATION`` as a DataSpec; UserError for an unknown format or no location."""
    kind, sep, location = text.partition(":")
    kind = kind.strip().lower()
    if not sep or kind not in FORMATS or not location.strip():
        raise UserError(f"bad data spec {text!r}: expected one of "
                        + ", ".join(f"{f}:{'TOPIC' if f == 'kafka' else 'PATH'}" for f in FORMATS))
    return DataSpec(kind, location.strip())
