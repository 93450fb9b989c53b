"""Dataset readers: formats, event-name mapping, malformed lines, clear errors."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from stream_rec.config import load_settings
from stream_rec.datasets import Session, load_dataset, parse_spec, split_by_time
from stream_rec.datasets.types import Interaction
from stream_rec.errors import UserError


def _write(folder: Path, files: dict[str, str]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (folder / name).write_text(text)
    return folder


def test_spec_parsing():
    spec = parse_spec("sessions:../x/y")
    assert (spec.kind, spec.location) == ("sessions", "../x/y")
    for bad in ("nope:x", "sessions", "sessions:", "x"):
        with pytest.raises(UserError, match="data spec"):
            parse_spec(bad)


def test_sessions_format(tmp_path, caplog):
    folder = _write(tmp_path / "d", {
        "train_sessions.txt": "1 2 3\n\n4 5\n6\n",
        "test.tsv": "prefix\ttarget\n7 8 9\t10\n7 8\t9\n7\t8\nbroken line\n11\t12\n",
    })
    with caplog.at_level(logging.WARNING):
        data = load_dataset(f"sessions:{folder}")
    assert [[e.item_id for e in s.events] for s in data.train] == [["1", "2", "3"], ["4", "5"],
                                                                   ["6"]]
    assert all(e.event_type == "click" for s in data.train for e in s.events)
    cases = data.test_cases()
    assert [([e.item_id for e in c.history], c.target.item_id) for c in cases] == [
        (["7", "8", "9"], "10"), (["7", "8"], "9"), (["7"], "8"), (["11"], "12")]
    # the cases of one chain come from one reconstructed test session
    assert [[e.item_id for e in s.events] for s in data.test] == [["7", "8", "9", "10"],
                                                                  ["11", "12"]]
    assert cases[1].history[0].ts_ms == cases[0].history[0].ts_ms
    assert data.synthetic_time
    assert "skipped 1 malformed" in caplog.text
    times = [e.ts_ms for s in (*data.train, *data.test) for e in s.events]
    assert times == sorted(times)


def test_categories_format_adds_valid_to_train(tmp_path):
    folder = _write(tmp_path / "c", {
        "train_sessions.tsv": "session_id\titems\n1\ta b c\n",
        "valid_sessions.tsv": "session_id\titems\n2\tb c\n",
        "test_sessions.tsv": "session_id\titems\n3\ta c b\n",
        "item_categories.tsv": "item_id\tcategory\na\tx\nb\ty\nc\tx\nbad\n",
    })
    data = load_dataset(f"categories:{folder}")
    assert len(data.train) == 2
    assert data.items["b"] == {"category": "y"}
    assert [(len(c.history), c.target.item_id) for c in data.test_cases()] == [(1, "c"), (2, "b")]


def test_events_format_maps_names_and_orders_by_time(tmp_path, caplog):
    folder = _write(tmp_path / "e", {
        "events_train.csv": (
            "timestamp,user_id,session_id,item_id,event\n"
            "2018-03-01T00:00:10+00:00,u1,s1,i2,purchase\n"
            "2018-03-01T00:00:00+00:00,u1,s1,i1,view\n"
            "2018-03-01T00:01:00+00:00,u1,s1,i3,follow\n"
            "2018-03-01T00:02:00+00:00,u1,s1,i4,comment\n"
            "2018-03-01T00:03:00+00:00,u1,s1,i5,order\n"
            "not-a-time,u1,s1,i1,view\n"
            "2018-03-01T00:03:00+00:00,u1,s1,i1,teleport\n"
            "2018-03-01T00:03:00+00:00,u1,s1\n"),
        "events_test.csv": ("timestamp,user_id,session_id,item_id,event\n"
                            "1520000000000,u2,,i9,browse\n1520000001,u2,,i1,view\n"),
        "items.csv": "item_id,category,brand\ni1,c1,b1\ni2,c2,\n",
    })
    with caplog.at_level(logging.WARNING):
        data = load_dataset(f"events:{folder}")
    (session,) = data.train
    assert [(e.item_id, e.event_type) for e in session.events] == [
        ("i1", "view"), ("i2", "purchase"), ("i3", "add_to_cart"), ("i4", "click"),
        ("i5", "purchase")]
    assert "skipped 3 malformed" in caplog.text
    assert data.items == {"i1": {"category": "c1", "brand": "b1"}, "i2": {"category": "c2"}}
    # seconds and milliseconds both read as epoch ms
    assert sorted(e.ts_ms for s in data.test for e in s.events) == [1520000000000, 1520000001000]
    assert data.attribute_names() == ["brand", "category"]


def test_events_without_session_ids_split_on_silence(tmp_path):
    folder = _write(tmp_path / "e", {
        "events_train.csv": ("ts,user_id,item_id,event\n"
                             "1520000000000,u,a,view\n1520000060000,u,b,view\n"
                             "1520009000000,u,c,view\n"),
        "events_test.csv": "ts,user_id,item_id,event\n1530000000000,u,a,view\n",
    })
    data = load_dataset(f"events:{folder}")
    assert [len(s) for s in data.train] == [2, 1]


@pytest.mark.parametrize("spec,message", [
    ("sessions:{tmp}/missing", "does not exist"),
    ("events:{tmp}/empty", "does not exist|empty|no training"),
    ("categories:{tmp}/file.txt", "not a folder"),
])
def test_clear_errors(tmp_path, spec, message):
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "events_train.csv").write_text("")
    (tmp_path / "empty" / "events_test.csv").write_text("")
    (tmp_path / "file.txt").write_text("x")
    with pytest.raises(UserError, match=message):
        load_dataset(spec.format(tmp=tmp_path))


def test_empty_training_file_is_one_clear_error(tmp_path):
    folder = _write(tmp_path / "d", {"train_sessions.txt": "\n\n", "test.tsv": "1\t2\n"})
    with pytest.raises(UserError, match="no training sessions"):
        load_dataset(f"sessions:{folder}")


def test_non_utf8_file_is_one_clear_error(tmp_path):
    folder = _write(tmp_path / "d", {"test.tsv": "1\t2\n"})
    (folder / "train_sessions.txt").write_bytes(b"1 2 \xff\xfe\n")
    with pytest.raises(UserError, match="UTF-8"):
        load_dataset(f"sessions:{folder}")


def test_relative_folder_is_found_under_data_dir(tmp_path):
    _write(tmp_path / "root" / "mini", {"train_sessions.txt": "1 2\n", "test.tsv": "1\t2\n"})
    settings = load_settings({}, data_dir=str(tmp_path / "root"))
    assert len(load_dataset("sessions:mini", settings).train) == 1


def test_split_by_time_holds_out_the_latest_sessions():
    def session(n: int, start: int) -> Session:
        return Session(str(n), "u", tuple(Interaction("i", "view", start + k, "u")
                                          for k in range(2)))
    sessions = [session(n, 1000 * n) for n in range(10)]
    train, test = split_by_time(sessions, 0.2)
    assert [s.session_id for s in test] == ["8", "9"]
    assert max(s.events[-1].ts_ms for s in train) < min(s.events[0].ts_ms for s in test)


def test_real_datasets_load(data_dir):
    for spec in (f"categories:{data_dir / 'cosmetics'}", f"events:{data_dir / 'jdata2018'}"):
        data = load_dataset(spec)
        assert data.train and data.test_cases()


def test_hide_items_removes_them_from_training_only():
    from stream_rec.datasets import Dataset, hide_items

    def session(name: str, items: str) -> Session:
        return Session(name, "u", tuple(Interaction(i, "view", n, "u")
                                        for n, i in enumerate(items.split())))

    data = Dataset("d", (session("a", "1 2 3"), session("b", "4"), session("c", "5 6")),
                   (session("t", "1 4 6"),), items={"4": {"category": "x"}})
    hidden = hide_items(data, 0.5, seed=1)
    kept = {e.item_id for s in hidden.train for e in s.events}
    assert len(kept) == 3 and kept < {"1", "2", "3", "4", "5", "6"}
    assert hidden.test == data.test and hidden.items == data.items
    assert hide_items(data, 0.5, seed=1) == hidden
