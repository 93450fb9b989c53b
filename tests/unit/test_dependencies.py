"""The Kafka clients installed are the versions stream-rec was tested with.

stream_rec/worker/faust_compat.py subclasses Faust's consumer, transport and flow control (and
mode's flow-control event) and calls into aiokafka's group coordinator; topic_ids.py reads topic
ids from kafka-python's admin client. Any other version of these may run and still lose events,
so an untested one fails here, before any integration test, naming what to do about it.
"""

from __future__ import annotations

import tomllib
from importlib import metadata
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[2]
CONSTRAINTS = ROOT / "deploy" / "constraints.txt"
# The packages whose internals stream-rec relies on: each needs an upper bound.
INTERNALS_USED = ("faust-streaming", "mode-streaming", "aiokafka", "kafka-python")


def _requirements() -> dict[str, Requirement]:
    """Every requirement in pyproject.toml (base and extras), by canonical package name."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    lines = list(project["dependencies"])
    for extra in project.get("optional-dependencies", {}).values():
        lines.extend(extra)
    return {canonicalize_name(r.name): r for r in map(Requirement, lines)}


def _pins() -> dict[str, str]:
    """The exact versions deploy/constraints.txt installs, by canonical package name."""
    pins: dict[str, str] = {}
    for line in CONSTRAINTS.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            name, _, version = line.partition("==")
            assert version, f"deploy/constraints.txt: {line!r} is not pinned with =="
            pins[canonicalize_name(name)] = version.strip()
    return pins


def _range(requirement: Requirement) -> str:
    """The requirement's version range as written by people: lower bound first."""
    return ",".join(sorted(map(str, requirement.specifier), key=lambda s: not s.startswith(">")))


def untested(name: str, installed: str | None, requirement: Requirement) -> str | None:
    """Why ``installed`` (None: not installed) is outside the tested range, or None if inside."""
    tested = name + _range(requirement)
    if installed is None:
        return f"{name} is not installed; stream-rec is tested with {tested} (pyproject.toml)"
    if requirement.specifier.contains(Version(installed), prereleases=True):
        return None
    return (f"{name} {installed} is installed, but stream-rec is tested with {tested} "
            "(pyproject.toml). stream_rec/worker/faust_compat.py and topic_ids.py rely on its "
            "internals: install the tested set with `pip install -c deploy/constraints.txt "
            "-e '.[train,dev]'`, or move to the new version as deploy/kafka/README.md describes.")


@pytest.mark.parametrize("name", INTERNALS_USED)
def test_installed_version_is_a_tested_one(name: str) -> None:
    requirement = _requirements().get(name)
    assert requirement is not None, f"{name} is not declared in pyproject.toml"
    try:
        installed: str | None = metadata.version(name)
    except metadata.PackageNotFoundError:
        installed = None
    problem = untested(name, installed, requirement)
    if problem:
        pytest.fail(problem, pytrace=False)


@pytest.mark.parametrize("name", INTERNALS_USED)
def test_clients_whose_internals_we_use_have_an_upper_bound(name: str) -> None:
    requirement = _requirements()[name]
    assert any(spec.operator in ("<", "<=", "==", "~=") for spec in requirement.specifier), (
        f"{name}{_range(requirement)} in pyproject.toml has no upper bound, yet stream-rec "
        "relies on its internals: bound it to the versions the integration tests passed with")


def test_constraints_pin_every_dependency_inside_its_range() -> None:
    pins = _pins()
    for name, requirement in _requirements().items():
        assert name in pins, f"{name} is in pyproject.toml but not pinned in deploy/constraints.txt"
        assert requirement.specifier.contains(Version(pins[name]), prereleases=True), (
            f"deploy/constraints.txt pins {name}=={pins[name]}, outside pyproject.toml's "
            f"{name}{_range(requirement)}: regenerate the constraints (see their header)")


def test_an_untested_faust_is_named_with_its_version_and_range() -> None:
    requirement = Requirement("faust-streaming>=0.15.3,<0.16")
    assert untested("faust-streaming", "0.15.7", requirement) is None
    message = untested("faust-streaming", "0.16.0", requirement)
    assert message is not None
    assert "faust-streaming 0.16.0 is installed" in message
    assert "tested with faust-streaming>=0.15.3,<0.16" in message
    assert "not installed" in (untested("faust-streaming", None, requirement) or "")
