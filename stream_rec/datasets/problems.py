"""Counting malformed input: skip it, remember the first few reasons, warn once per file."""

from __future__ import annotations

import logging
from pathlib import Path

from stream_rec.errors import UserError

log = logging.getLogger("stream_rec.datasets")


class Problems:
    """Malformed lines of one source; ``report()`` logs a single summary warning."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.count = 0
        self.examples: list[str] = []

    def add(self, where: str, reason: str) -> None:
        self.count += 1
        if len(self.examples) < 3:
            self.examples.append(f"{where}: {reason}")

    def report(self) -> None:
        if self.count:
            log.warning("%s: skipped %d malformed line(s), e.g. %s", self.source, self.count,
                        "; ".join(self.examples))


def read_lines(path: Path) -> list[str]:
    """All lines of a UTF-8 text file; one clear UserError when it cannot be read."""
    try:
        with path.open("r", encoding="utf-8", errors="strict", newline="") as handle:
            return handle.read().splitlines()
    except FileNotFoundError:
        raise UserError(f"dataset file {path} does not exist") from None
    except IsADirectoryError:
        raise UserError(f"dataset file {path} is a folder") from None
    except UnicodeDecodeError as exc:
        raise UserError(f"dataset file {path} is not UTF-8 text (byte {exc.start})") from None
    except OSError as exc:
        raise UserError(f"cannot read dataset file {path}: {exc.strerror}") from None


def require_folder(path: Path, kind: str) -> None:
    """Stop with a UserError unless ``path`` is an existing folder for a ``kind`` dataset."""
    if not path.exists():
        raise UserError(f"{kind} dataset folder {path} does not exist")
    if not path.is_dir():
        raise UserError(f"{kind} dataset path {path} is not a folder")
