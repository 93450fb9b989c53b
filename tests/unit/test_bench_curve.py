"""The latency curve's rates and its part of the bench's JSON."""

from __future__ import annotations

from stream_rec.tools.bench.benchmark import CURVE_SHARES, BenchPlan, TargetRun, curve_rates
from stream_rec.tools.bench.report import latency_curve_result


def test_auto_rates_are_shares_of_the_capacity_measured() -> None:
    assert curve_rates(BenchPlan(latency_curve="auto"), 1000.0) == [
        round(share * 1000.0, 1) for share in CURVE_SHARES]
    assert curve_rates(BenchPlan(latency_curve="auto"), None) == []  # no capacity: no curve
    assert curve_rates(BenchPlan(latency_curve=(100.0, 300.0)), 50.0) == [100.0, 300.0]
    assert curve_rates(BenchPlan(), 1000.0) == []


def test_the_curve_reports_each_rate_and_the_one_nearest_half_the_capacity() -> None:
    run = TargetRun(events_per_s=1000.0)
    run.curve = [(250.0, 249.5, [float(n) for n in range(1, 101)]),
                 (500.0, 498.0, [float(2 * n) for n in range(1, 101)]),
                 (900.0, 610.0, [float(50 * n) for n in range(1, 101)])]
    result = latency_curve_result(run)
    assert result["capacity_events_per_s"] == 1000.0
    assert [p["rate"] for p in result["latency_curve"]] == [250.0, 500.0, 900.0]
    assert result["latency_curve"][2]["events_per_s"] == 610.0  # it fell behind there
    half = result["latency_at_half_capacity_ms"]
    assert half["rate"] == 500.0
    assert half["p50"] == result["latency_curve"][1]["p50"]
    assert half["p99"] > result["latency_curve"][0]["p99"]


def test_the_curve_is_drawn(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from stream_rec.tools.bench.plot import plot_latency_curve

    points = [{"rate": r, "events_per_s": r, "p50": r / 100, "p95": r / 50, "p99": r / 20}
              for r in (100.0, 200.0, 400.0)]
    path = tmp_path / "curve.png"
    plot_latency_curve({"latency_curve": points, "capacity_events_per_s": 500.0,
                        "catalog_items": 10}, str(path))
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
