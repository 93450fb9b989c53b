"""deploy/monitoring: the alert rules and the Grafana dashboard ask only for what workers export.

Always: the files parse, every rule has what an on-call person needs (alert, expr, for, a
severity, a summary), and every metric and label their PromQL names is one that a worker's
/metrics/ page really has (a ``WorkerMetrics`` with every family filled, rendered and parsed
back). With promtool installed (Debian: ``apt-get install prometheus``) also
``promtool check rules``, the rule unit tests in alerts.test.yaml, the dashboard's queries parsed
as recording rules, and ``promtool check config`` on the example configuration.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from stream_rec.worker.metrics import WorkerMetrics

REPO = Path(__file__).resolve().parents[2]
MONITORING = REPO / "deploy" / "monitoring"
ALERTS = MONITORING / "alerts.yaml"
DASHBOARD = MONITORING / "grafana-dashboard.json"
PROMETHEUS_CONFIG = MONITORING / "prometheus.yaml"
PROMTOOL = shutil.which("promtool")
needs_promtool = pytest.mark.skipif(
    PROMTOOL is None, reason="promtool is not installed (Debian: apt-get install prometheus)")

JOB = "stream-rec-worker"  # the scrape job the rules and the dashboard expect
# Series Prometheus makes itself for every target, and the labels it adds to every series.
PROMETHEUS_SERIES = {"up"}
TARGET_LABELS = {"job", "instance", "namespace", "pod"}
SEVERITIES = {"critical", "warning", "info"}


def exposed() -> dict[str, set[str]]:
    """Every sample name a worker's /metrics/ page can have -> the label names it carries."""
    metrics = WorkerMetrics(model_version="v7", model_unservable="refused")
    metrics.latency_ms.observe(3.0)
    metrics.consumer_lag = {"storefront.events:0": 4}
    metrics.commit_stalls = {"storefront.events:1": 2}
    metrics.arm_model_bytes = {"v6": 1 << 20}
    metrics.online = {"v7|dpp:0.15|exp-1|diverse": {"clicks": 1.0, "distinct_items": 3.0}}
    names: dict[str, set[str]] = {}
    for family in text_string_to_metric_families(metrics.render()):
        for sample in family.samples:
            names.setdefault(sample.name, set()).update(sample.labels)
    return names


EXPOSED = exposed()

_KEYWORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "and", "or",
             "unless", "offset", "bool", "inf", "nan"}
_STRING = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'')
_MATCHERS = re.compile(r"\{([^}]*)\}")
_BRACKETS = re.compile(r"\[[^\]]*\]")
_CLAUSE = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\(([^)]*)\)")
_WORD = re.compile(r"(?<![\w.$])([A-Za-z_:][\w:]*)(\s*\()?")


def promql_names(expr: str) -> tuple[set[str], set[str]]:
    """The metric names and the label names a PromQL expression refers to.

    Good enough for the expressions in deploy/monitoring: functions are words followed by "(",
    labels are in {matchers} and in by/without/on/ignoring/group_*(...) clauses.
    """
    text = _STRING.sub('""', expr)
    labels = {m.group(1) for body in _MATCHERS.findall(text)
              for m in re.finditer(r"([A-Za-z_]\w*)\s*(?:=~|!~|!=|=)", body)}
    labels |= {name.strip() for body in _CLAUSE.findall(text) for name in body.split(",")
               if name.strip()}
    text = _CLAUSE.sub(" ", _BRACKETS.sub(" ", _MATCHERS.sub(" ", text)))
    metrics = {word for word, call in _WORD.findall(text)
               if not call and word.lower() not in _KEYWORDS}
    return metrics, labels


def check_names(expr: str, where: str) -> None:
    """Fail when ``expr`` names a metric or a label no worker exports."""
    metrics, labels = promql_names(expr)
    assert metrics, f"{where}: no metric in {expr!r}"
    unknown = metrics - set(EXPOSED) - PROMETHEUS_SERIES
    assert not unknown, f"{where}: the worker exports no {sorted(unknown)} ({expr!r})"
    known = set().union(*(EXPOSED.get(m, set()) for m in metrics)) | TARGET_LABELS
    assert labels <= known, f"{where}: no label {sorted(labels - known)} on {sorted(metrics)}"


def rules() -> dict[str, dict[str, Any]]:
    """Alert name -> rule, over every group of alerts.yaml."""
    document = yaml.safe_load(ALERTS.read_text())
    out: dict[str, dict[str, Any]] = {}
    for group in document["groups"]:
        assert group["name"] and group["rules"]
        for rule in group["rules"]:
            assert rule["alert"] not in out, f"{rule['alert']} defined twice"
            out[rule["alert"]] = rule
    return out


def dashboard() -> dict[str, Any]:
    return dict(json.loads(DASHBOARD.read_text()))


def dashboard_targets() -> list[tuple[str, str]]:
    """(panel title, expr) of every query of the dashboard."""
    return [(panel["title"], target["expr"]) for panel in dashboard()["panels"]
            for target in panel.get("targets", [])]


def as_prometheus(expr: str) -> str:
    """A dashboard query with Grafana's variables replaced, as Prometheus would get it."""
    return expr.replace("$__rate_interval", "5m").replace("$job", JOB)


# --- the PromQL name reader itself -----------------------------------------------------------

def test_promql_names_reads_metrics_and_labels() -> None:
    metrics, labels = promql_names(
        'histogram_quantile(0.99, sum by (le) (rate(a_bucket{job="x", le!="1"}[5m]))) > 0.25 '
        'and on (instance) b_total / ignoring (stage) group_left c offset 5m')
    assert metrics == {"a_bucket", "b_total", "c"}
    assert labels == {"le", "job", "instance", "stage"}
    assert promql_names('absent(up{job="a b"} == 1)') == ({"up"}, {"job"})
    assert promql_names("deriv(sum by (topic) (lag)[15m:1m]) > 1e3")[0] == {"lag"}


def test_exposed_names_cover_every_kind_of_family() -> None:
    for name in ("stream_rec_events_in_total", "stream_rec_recommendation_latency_seconds_bucket",
                 "stream_rec_consumer_lag", "stream_rec_model_info",
                 "stream_rec_online_clicks_total", "process_start_time_seconds"):
        assert name in EXPOSED, name
    assert EXPOSED["stream_rec_online_clicks_total"] == {"model", "policy", "experiment", "arm"}
    with pytest.raises(AssertionError, match="exports no"):
        check_names("rate(stream_rec_recommendation_latency_ms_bucket[5m])", "old name")
    with pytest.raises(AssertionError, match="no label"):
        check_names("sum by (shard) (stream_rec_consumer_lag)", "wrong label")


# --- alert rules -----------------------------------------------------------------------------

def test_every_rule_has_what_on_call_needs() -> None:
    found = rules()
    assert found
    for name, rule in found.items():
        assert set(rule) >= {"alert", "expr", "for", "labels", "annotations"}, name
        assert re.fullmatch(r"\d+[smh]", str(rule["for"])), name
        assert rule["labels"]["severity"] in SEVERITIES, name
        assert rule["annotations"]["summary"].strip(), name
        assert name.startswith("StreamRec"), name


@pytest.mark.parametrize("name", sorted(rules()))
def test_rule_expressions_name_only_what_workers_export(name: str) -> None:
    check_names(rules()[name]["expr"], name)


def test_the_alerts_the_runbook_asks_for() -> None:
    found = rules()
    p99 = found["StreamRecLatencyP99High"]
    assert "histogram_quantile(0.99" in p99["expr"] and p99["for"] == "10m"
    assert "stream_rec_recommendation_latency_seconds_bucket" in p99["expr"]
    assert re.search(r">\s*0\.25\s*$", p99["expr"].strip())  # 250 ms, in seconds
    dead = found["StreamRecDeadLetterShareHigh"]["expr"]
    assert "stream_rec_dlq_total" in dead and "stream_rec_events_in_total" in dead
    assert re.search(r">\s*0\.01\s*$", dead.strip())  # 1 %
    assert "deriv(" in found["StreamRecConsumerLagGrowing"]["expr"]
    assert "stream_rec_consumer_lag" in found["StreamRecConsumerLagGrowing"]["expr"]
    assert found["StreamRecNoServableModel"]["expr"].replace(" ", "") == \
        "stream_rec_model_servable==0"
    assert f'up{{job="{JOB}"}} == 0' in found["StreamRecWorkerDown"]["expr"]
    assert found["StreamRecWorkerDown"]["labels"]["severity"] == "critical"


@needs_promtool
def test_promtool_checks_the_rules() -> None:
    out = subprocess.run([str(PROMTOOL), "check", "rules", str(ALERTS)], capture_output=True,
                         text=True, timeout=60, check=False)
    assert out.returncode == 0, out.stdout + out.stderr
    assert f"{len(rules())} rules found" in out.stdout


@needs_promtool
def test_promtool_rule_unit_tests_pass() -> None:
    # alerts.test.yaml feeds series to the rules and says which alerts must fire and when.
    out = subprocess.run([str(PROMTOOL), "test", "rules", "alerts.test.yaml"], cwd=MONITORING,
                         capture_output=True, text=True, timeout=120, check=False)
    assert out.returncode == 0, out.stdout + out.stderr
    tested = yaml.safe_load((MONITORING / "alerts.test.yaml").read_text())
    names = {case["alertname"] for test in tested["tests"] for case in test["alert_rule_test"]}
    assert {"StreamRecLatencyP99High", "StreamRecDeadLetterShareHigh",
            "StreamRecConsumerLagGrowing", "StreamRecNoServableModel",
            "StreamRecWorkerDown", "StreamRecNoWorkers"} <= names


# --- Grafana dashboard -----------------------------------------------------------------------

def test_dashboard_is_a_grafana_dashboard() -> None:
    board = dashboard()
    assert board["title"] and board["uid"] and isinstance(board["schemaVersion"], int)
    variables = {v["name"]: v for v in board["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    assert variables["job"]["current"]["value"] == JOB
    ids = [panel["id"] for panel in board["panels"]]
    assert len(ids) == len(set(ids))
    for panel in board["panels"]:
        assert panel["title"] and panel["type"], panel["id"]
        assert {"x", "y", "w", "h"} <= set(panel["gridPos"]), panel["title"]
        assert panel["datasource"]["uid"] == "${datasource}", panel["title"]
        refs = [t["refId"] for t in panel["targets"]]
        assert refs and len(refs) == len(set(refs)), panel["title"]
        for target in panel["targets"]:
            assert target["datasource"]["uid"] == "${datasource}", panel["title"]
            assert 'job="$job"' in target["expr"], (panel["title"], target["expr"])


def test_dashboard_queries_name_only_what_workers_export() -> None:
    targets = dashboard_targets()
    assert targets
    for title, expr in targets:
        check_names(as_prometheus(expr), title)
    for variable in dashboard()["templating"]["list"]:
        if variable["type"] == "query":
            query = variable["query"]["query"]
            [metric] = re.findall(r"label_values\((\w+),", query)
            assert metric in EXPOSED, variable["name"]


def test_dashboard_shows_what_the_runbook_watches() -> None:
    exprs = "\n".join(expr for _, expr in dashboard_targets())
    assert "rate(stream_rec_events_in_total" in exprs  # events/s
    assert "rate(stream_rec_recommendations_total" in exprs  # lists/s
    assert "stream_rec_consumer_lag" in exprs
    for q in ("0.5", "0.95", "0.99"):
        assert (f"histogram_quantile({q}, sum by (le) "
                "(rate(stream_rec_recommendation_latency_seconds_bucket") in exprs, q
    assert re.search(r"rate\(stream_rec_dlq_total[^\n]*/ sum\(rate\(stream_rec_events_in_total",
                     exprs)
    assert "stream_rec_model_info" in exprs
    assert re.search(r"sum by \(experiment, arm\) \(stream_rec_online_clicks_total", exprs)
    assert "stream_rec_online_impressed_items_total" in exprs
    units = {p["title"]: p["fieldConfig"]["defaults"].get("unit") for p in dashboard()["panels"]}
    assert units["Latency: event taken to list published"] == "s"


@needs_promtool
def test_promtool_parses_the_dashboard_queries(tmp_path: Path) -> None:
    # promtool has no PromQL-only check: give it the queries as recording rules.
    records = [{"record": f"dashboard:query_{i}", "expr": as_prometheus(expr)}
               for i, (_, expr) in enumerate(dashboard_targets())]
    path = tmp_path / "dashboard-rules.yaml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": records}]}))
    out = subprocess.run([str(PROMTOOL), "check", "rules", str(path)], capture_output=True,
                         text=True, timeout=60, check=False)
    assert out.returncode == 0, out.stdout + out.stderr


# --- example Prometheus configuration --------------------------------------------------------

def test_example_config_scrapes_the_annotated_workers_with_the_rules() -> None:
    config = yaml.safe_load(PROMETHEUS_CONFIG.read_text())
    assert [(MONITORING / f).exists() for f in config["rule_files"]] == [True]
    [job] = [j for j in config["scrape_configs"] if j["job_name"] == JOB]
    assert job["authorization"]["credentials_file"].endswith("STREAM_REC_HTTP_TOKEN")
    sources = {s for relabel in job["relabel_configs"] for s in relabel["source_labels"]}
    statefulset = yaml.safe_load((REPO / "deploy/k8s/worker-statefulset.yaml").read_text())
    annotations = statefulset["spec"]["template"]["metadata"]["annotations"]
    for key in annotations:  # prometheus.io/port -> ..._annotation_prometheus_io_port
        meta = "__meta_kubernetes_pod_annotation_" + re.sub(r"[^\w]", "_", key)
        assert meta in sources, key


@needs_promtool
def test_promtool_checks_the_example_config() -> None:
    out = subprocess.run([str(PROMTOOL), "check", "config", "--syntax-only",
                          PROMETHEUS_CONFIG.name], cwd=MONITORING, capture_output=True,
                         text=True, timeout=60, check=False)
    if "kubernetes_sd_configs not found" in out.stdout + out.stderr:
        pytest.skip("this promtool was built without Kubernetes service discovery (Debian's)")
    assert out.returncode == 0, out.stdout + out.stderr


# --- docs/operations.md, "Metrics to watch" --------------------------------------------------

def _metrics_section() -> tuple[str, str]:
    """The metrics table part of the section, and its "Metric names" subsection."""
    page = (REPO / "docs" / "operations.md").read_text(encoding="utf-8")
    section = page[page.index("## Metrics to watch"):page.index("### Online metrics")]
    table, _, names = section.partition("### Metric names")
    assert names, "docs/operations.md lost its Metric names subsection"
    return table, names


def _family(sample: str) -> str:
    return re.sub(r"_(bucket|sum|count)$", "", sample) \
        if sample.startswith("stream_rec_recommendation_latency_") else sample


def test_the_metrics_table_documents_what_workers_export() -> None:
    table, _ = _metrics_section()
    rows = {name for cell in re.findall(r"^\| ([^|]+) \|", table, re.MULTILINE)
            for name in re.findall(r"`([a-z_]+)(?:\{[^`]*\})?`", cell)}
    exported = {_family(sample) for sample in EXPOSED}
    assert rows - {"stream_rec_online_<figure>_total"} <= exported, "documented, not exported"
    for family in exported - rows:
        figure = re.fullmatch(r"stream_rec_online_(\w+)_total", family)
        assert figure and f"`{figure.group(1)}`" in table, f"{family} is not in the table"


def test_renamed_metrics_are_listed_with_their_new_names() -> None:
    from stream_rec.worker.metrics import RENAMED

    _, names = _metrics_section()
    for old, new in RENAMED.items():
        assert re.search(rf"^\| `{old}`[^\n]*\| `{new}`", names, re.MULTILINE), old
        assert new + "_bucket" in EXPOSED or new in EXPOSED
        assert old not in EXPOSED and old + "_bucket" not in EXPOSED
