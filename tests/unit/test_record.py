"""``@record``: built like a plain slotted dataclass, immutable to the type checker."""

from __future__ import annotations

import dataclasses
import textwrap
from pathlib import Path

import pytest

from stream_rec.core.record import record
from stream_rec.core.state import UserState


@record
class _Point:
    x: int
    tags: tuple[str, ...] = ()


def test_compares_and_hashes_by_value() -> None:
    assert _Point(1, ("a",)) == _Point(1, ("a",))
    assert _Point(1) != _Point(2)
    assert len({_Point(1), _Point(1), _Point(2)}) == 2
    assert hash(UserState(n_events=3)) == hash(UserState(n_events=3))


def test_is_a_slotted_dataclass() -> None:
    point = _Point(1)
    assert dataclasses.is_dataclass(point)
    assert not hasattr(point, "__dict__")  # no per-instance dict: smaller and quicker
    assert dataclasses.replace(point, x=5) == _Point(5)
    assert point.x == 1


def test_state_evolve_leaves_the_original_alone() -> None:
    before = UserState(n_events=1)
    after = before.evolve(n_events=2)
    assert (before.n_events, after.n_events) == (1, 2)


def test_assigning_a_field_is_a_type_error(tmp_path: Path) -> None:
    api = pytest.importorskip("mypy.api")
    source = tmp_path / "mutate.py"
    source.write_text(textwrap.dedent("""
        from stream_rec.core.state import UserState
        state = UserState()
        state.n_events = 5
    """))
    out, _, status = api.run([str(source), "--no-incremental", "--follow-imports=silent",
                              "--cache-dir", str(tmp_path / "cache")])
    assert status == 1
    assert 'Property "n_events" defined in "UserState" is read-only' in out
