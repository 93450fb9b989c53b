"""A file-system model registry: ``REGISTRY/<version>/`` folders and a ``CURRENT`` pointer.

The pointer (``CURRENT.json``: the current version and the versions promoted before it) is
rewritten atomically (temp file + ``os.replace``), so a reader sees the old or the new
version, never half of each. New versions are copied in under a temporary name and renamed
into place, so a half-copied folder never looks like a version. ``load`` verifies every
checksum before anything is served.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import tempfile
from pathlib import Path
from typing import Any, Protocol

from stream_rec.config import Settings
from stream_rec.model.artifact import (
    MANIFEST,
    ArtifactError,
    ModelArtifact,
    load_artifact,
    verify_folder,
    write_json_atomic,
)

log = logging.getLogger("stream_rec.registry")
POINTER = "CURRENT.json"
# Used with fullmatch only: ``$`` would also accept a trailing newline ("v1\n").
VERSION_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
# Names ``resolve`` gives a meaning of its own; never the name of a version folder.
ALIASES = frozenset({"current", "latest"})


def is_version_name(name: object) -> bool:
    """Whether ``name`` can name one version folder: the pattern, and not an alias."""
    return (isinstance(name, str) and VERSION_RE.fullmatch(name) is not None
            and name not in ALIASES)


class RegistryError(Exception):
    """The registry cannot do what was asked (unknown version, nothing to roll back to)."""


class ModelRegistry(Protocol):
    """What trainers, workers and commands need from a registry. ``FileRegistry`` (a folder
    per version on a shared file system) is the one backend today; an object store would be
    another class with these methods, returned by ``open_registry``."""

    def versions(self) -> list[str]:
        """Every complete version, oldest first."""
        ...

    def current(self) -> str | None:
        """The version workers should serve, or None before the first promotion."""
        ...

    def resolve(self, name: str | None) -> str:
        """A version name from ``None``/``current``, ``latest`` or a version."""
        ...

    def path(self, version: str) -> Path:
        """A local folder holding the version's files (a remote backend fetches it there)."""
        ...

    def load(self, version: str | None = None) -> ModelArtifact:
        """Load and verify a version (default: the current one)."""
        ...

    def add(self, folder: Path) -> str:
        """Add a verified artifact folder as a new version; return the version."""
        ...

    def promote(self, version: str) -> None:
        """Make ``version`` current."""
        ...

    def rollback(self) -> str:
        """Point back at the version that was current before; return it."""
        ...

    def publish(self, folder: Path, settings: Settings | None = None,
                announce: bool = True) -> str:
        """Add (if new), promote, and announce the version to running workers."""
        ...


def open_registry(where: Settings | str | Path) -> ModelRegistry:
    """The registry named by the settings (``registry_dir``) or by a location."""
    location = where.registry_dir if isinstance(where, Settings) else where
    return FileRegistry(location)


class FileRegistry:
    """Versions as sub-folders of ``root``; ``CURRENT.json`` names the one to serve."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)

    def path(self, version: str) -> Path:
        if not is_version_name(version):
            raise RegistryError(f"not a valid version name: {version!r}")
        return self.root / version

    def versions(self) -> list[str]:
        """Every version folder with a manifest, oldest first (names sort by time)."""
        if not self.root.is_dir():
            return []
        return sorted(p.name for p in self.root.iterdir()
                      if p.is_dir() and is_version_name(p.name) and (p / MANIFEST).exists())

    def _pointer(self) -> dict[str, Any]:
        try:
            data = json.loads((self.root / POINTER).read_text(encoding="utf-8"))
        except FileNotFoundError:
            return {"version": None, "history": []}
        except (OSError, ValueError) as exc:
            raise RegistryError(f"{self.root / POINTER} is unreadable: {exc}") from None
        return data if isinstance(data, dict) else {"version": None, "history": []}

    def current(self) -> str | None:
        version = self._pointer().get("version")
        return str(version) if version else None

    def resolve(self, name: str | None) -> str:
        """A version name from ``None``/``current``, ``latest`` or a version."""
        if name in (None, "", "current"):
            version = self.current()
            if version is None:
                raise RegistryError(f"registry {self.root} has no current version")
            return version
        if name == "latest":
            versions = self.versions()
            if not versions:
                raise RegistryError(f"registry {self.root} holds no versions")
            return versions[-1]
        if name not in self.versions():
            raise RegistryError(f"registry {self.root} has no version {name!r}")
        return name

    def load(self, version: str | None = None) -> ModelArtifact:
        """Load and verify a version (default: the current one)."""
        return load_artifact(self.path(self.resolve(version)))

    def add(self, folder: Path) -> str:
        """Copy a verified artifact folder in as a new version; return the version."""
        manifest = verify_folder(folder)
        version = str(manifest.get("version", ""))
        target = self.path(version)
        if target.exists():
            raise RegistryError(f"version {version} is already in {self.root}")
        self.root.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".incoming-{version}-", dir=self.root))
        try:
            for name in [MANIFEST, *manifest["files"]]:
                shutil.copy2(Path(folder) / name, staging / name)
            verify_folder(staging)
            os.rename(staging, target)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        log.info("added model version %s to %s", version, self.root)
        return version

    def promote(self, version: str) -> None:
        """Make ``version`` current after verifying it; remember the previous one."""
        verify_folder(self.path(self.resolve(version)))
        pointer = self._pointer()
        history = [v for v in pointer.get("history", []) if v]
        if pointer.get("version") and pointer["version"] != version:
            history.append(pointer["version"])
        self.root.mkdir(parents=True, exist_ok=True)
        write_json_atomic(self.root / POINTER, {"version": version, "history": history[-50:]})
        log.info("current model version is now %s", version)

    def rollback(self) -> str:
        """Point back at the version that was current before; return it."""
        pointer = self._pointer()
        history = [v for v in pointer.get("history", []) if v]
        while history:
            previous = history.pop()
            try:
                verify_folder(self.path(previous))
            except (ArtifactError, RegistryError) as exc:
                log.warning("skipping version %s on rollback: %s", previous, exc)
                continue
            write_json_atomic(self.root / POINTER, {"version": previous, "history": history})
            log.info("rolled back to model version %s", previous)
            return previous
        raise RegistryError(f"registry {self.root} has no earlier version to roll back to")

    def publish(self, folder: Path, settings: Settings | None = None,
                announce: bool = True) -> str:
        """Add (if new), promote, and announce the version on the model-updates topic."""
        manifest = verify_folder(folder)
        version = str(manifest["version"])
        if version not in self.versions():
            self.add(folder)
        self.promote(version)
        if announce:
            from stream_rec.model.announce import announce_model

            announce_model(self.path(version), settings)
        return version
