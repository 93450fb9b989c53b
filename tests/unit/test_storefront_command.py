"""`stream-rec storefront`: the dataset it writes, and the compose service that runs it."""

from __future__ import annotations

from pathlib import Path

import pytest

from stream_rec.cli import build_parser, main
from stream_rec.config import load_settings
from stream_rec.datasets import load_dataset

ROOT = Path(__file__).resolve().parents[2]


def test_write_gives_a_dataset_the_trainer_can_read(tmp_path: Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["storefront", "--seed", "11", "--write", str(tmp_path / "shop")]) == 0
    assert f"events:{tmp_path / 'shop'}" in capsys.readouterr().out
    dataset = load_dataset(f"events:{tmp_path / 'shop'}", load_settings(environ={}))
    assert dataset.name == "shop" and len(dataset.items) == 600
    assert sum(len(s) for s in dataset.train) > 10_000


def test_compose_demo_profile_runs_the_storefront_command() -> None:
    yaml = pytest.importorskip("yaml")
    services = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]
    feed = services["storefront"]
    assert feed["profiles"] == ["demo"]  # not started by a plain `docker compose up`
    assert feed["environment"]["STREAM_REC_BROKER"] == services["worker"]["environment"][
        "STREAM_REC_BROKER"]
    args = build_parser().parse_args(feed["command"])
    assert args.command == "storefront" and args.write is None and args.rate > 0
