"""The Grafana dashboard and the Prometheus rules read only metrics WorkerMetrics registers, and are well-formed."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client import CollectorRegistry

from tests.support.tools import require_tool
from worker.conditions import CONDITIONS
from worker.metrics import WorkerMetrics

REPO = Path(__file__).resolve().parents[2]
FILES = REPO / "helm" / "mics-worker" / "files"
DASHBOARD = FILES / "grafana-dashboard.json"
RULES = FILES / "prometheus-rules.yaml"
RULE_TESTS = Path(__file__).with_name("prometheus-rules.test.yaml")

SAME_STATE_ALERTS = {"credentials_held": "MicsWorkerPausedCredentials"}
"""Conditions already alerted on through the pause gauge of the same state."""

PROMETHEUS_OWN_SERIES = frozenset({"up"})
"""Series Prometheus records itself for every target; allowed in rules though no worker exports them."""

_PROMQL_WORDS = frozenset(
    {"and", "or", "unless", "bool", "offset", "by", "without", "on", "ignoring", "group_left", "group_right"}
)
_STRING = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'')
_MATCHERS = re.compile(r"\{[^{}]*\}")
_RANGE = re.compile(r"\[[^\]]*\]")
_GROUPING = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)")
_NUMBER = re.compile(r"(?<![\w:])\d+(?:\.\d+)?(?:[eE][+-]?\d+)?")
_IDENTIFIER = re.compile(r"[A-Za-z_:][\w:]*")


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression selects (functions, keywords, labels and literals removed)."""
    text = _STRING.sub(" ", expr)
    text = _MATCHERS.sub(" ", text)
    text = _RANGE.sub(" ", text)
    text = _GROUPING.sub(" ", text)
    text = _NUMBER.sub(" ", text)
    names = set()
    for match in _IDENTIFIER.finditer(text):
        rest = text[match.end() :].lstrip()
        if rest.startswith("(") or match.group() in _PROMQL_WORDS:
            continue  # a function or aggregation, or an operator keyword
        names.add(match.group())
    return names


def exported_names() -> set[str]:
    """Every series name WorkerMetrics can export, histogram and counter suffixes included."""
    registry = CollectorRegistry()
    WorkerMetrics(registry)
    names = set()
    for family in registry.collect():
        if family.type == "counter":
            names.add(f"{family.name}_total")
        elif family.type == "histogram":
            names |= {f"{family.name}_bucket", f"{family.name}_sum", f"{family.name}_count"}
        else:
            names.add(family.name)
    return names


def dashboard() -> dict[str, Any]:
    document: dict[str, Any] = json.loads(DASHBOARD.read_text())
    return document


def panel_exprs(document: dict[str, Any]) -> list[tuple[str, str]]:
    found = []
    for panel in document["panels"]:
        for target in panel.get("targets", []):
            found.append((panel["title"], target["expr"]))
        for inner in panel.get("panels", []):
            found.extend((inner["title"], target["expr"]) for target in inner.get("targets", []))
    return found


def rules() -> list[dict[str, Any]]:
    document = yaml.safe_load(RULES.read_text())
    assert isinstance(document, dict)
    return [rule for group in document["groups"] for rule in group["rules"]]


class TestMetricNameExtraction:
    def test_extracts_selected_names_only(self) -> None:
        """Functions, aggregations, labels, strings, ranges and numbers are not taken for metric names."""
        expr = (
            'histogram_quantile(0.95, sum by (le, route) (rate(a_bucket{job=~"x|y", route!="z"}[5m])))'
            " / on (job) group_left b_total > 1e-9 and c unless absent(d)"
        )
        assert metric_names(expr) == {"a_bucket", "b_total", "c", "d"}

    def test_histogram_suffixes_map_to_the_family(self) -> None:
        """A histogram family is exported as _bucket, _sum and _count; a counter as _total."""
        names = exported_names()
        assert {
            "mics_worker_http_request_duration_seconds_bucket",
            "mics_worker_http_request_duration_seconds_sum",
            "mics_worker_http_request_duration_seconds_count",
            "mics_worker_messages_consumed_total",
            "mics_worker_consumer_lag",
        } <= names


class TestDashboard:
    def test_every_panel_metric_is_registered(self) -> None:
        """Each metric a panel query selects is one WorkerMetrics exports."""
        exported = exported_names()
        document = dashboard()
        exprs = panel_exprs(document)
        assert exprs, "the dashboard has no queries"
        for title, expr in exprs:
            names = metric_names(expr)
            assert names, f"panel {title!r} selects no metric: {expr}"
            assert names <= exported, f"panel {title!r} reads unknown metrics {names - exported}"

    def test_template_variables_read_registered_metrics(self) -> None:
        """label_values() queries of the template variables name exported metrics."""
        exported = exported_names()
        for variable in dashboard()["templating"]["list"]:
            if variable["type"] == "query":
                (metric,) = re.findall(r"label_values\(\s*([A-Za-z_:][\w:]*)", variable["definition"])
                assert metric in exported

    def test_datasource_is_an_input(self) -> None:
        """Every panel and query uses the ${DS_PROMETHEUS} data source, declared as an import input."""
        document = dashboard()
        assert [item["name"] for item in document["__inputs"]] == ["DS_PROMETHEUS"]
        for panel in document["panels"]:
            if panel["type"] != "row":
                assert panel["datasource"]["uid"] == "${DS_PROMETHEUS}"
                assert all(target["datasource"]["uid"] == "${DS_PROMETHEUS}" for target in panel["targets"])

    def test_panel_ids_are_unique(self) -> None:
        """Grafana needs distinct panel ids."""
        ids = [panel["id"] for panel in dashboard()["panels"]]
        assert len(ids) == len(set(ids))

    @pytest.mark.parametrize(
        "family",
        [
            "mics_worker_messages_consumed_total",
            "mics_worker_messages_outcome_total",
            "mics_worker_http_request_duration_seconds_bucket",
            "mics_worker_http_requests_total",
            "mics_worker_consumer_lag",
            "mics_worker_in_flight_messages",
            "mics_worker_paused",
            "mics_worker_retries_total",
            "mics_worker_end_to_end_latency_seconds_bucket",
            "mics_worker_concurrency_limit",
            "mics_worker_requests_in_flight",
            "mics_worker_http_throttled_total",
            "mics_worker_route_held",
            "mics_worker_route_halted",
            "mics_worker_route_wait_seconds_total",
            "mics_worker_condition",
            "mics_worker_condition_starts_total",
        ],
    )
    def test_required_views_are_present(self, family: str) -> None:
        """Throughput, outcomes, latency, status classes, lag, in-flight, pauses, retries, e2e and the API flow
        control (concurrency limit, throttling, held routes, waits) have panels."""
        assert any(family in metric_names(expr) for _, expr in panel_exprs(dashboard()))

    def test_the_abnormal_states_panel_shows_every_condition_by_name(self) -> None:
        """One series per condition (grouped by the condition label), and the description names each of them."""
        [panel] = [panel for panel in dashboard()["panels"] if panel["title"] == "Abnormal states by condition"]
        [target] = panel["targets"]
        assert target["expr"].startswith("sum by (condition) (mics_worker_condition{")
        assert target["legendFormat"] == "{{condition}}"
        for condition in CONDITIONS:
            assert condition in panel["description"]

    def test_the_throttled_share_divides_429s_by_requests_per_route(self) -> None:
        """The throttled share is 429 answers over all requests, both per route (issue 13's dashboard panel)."""
        [expr] = [expr for title, expr in panel_exprs(dashboard()) if title.startswith("Throttled share")]
        numerator, _, denominator = expr.partition(" / ")
        assert metric_names(numerator) == {"mics_worker_http_throttled_total"}
        assert metric_names(denominator) == {"mics_worker_http_requests_total"}
        assert numerator.startswith("sum by (route)")
        assert denominator.startswith("sum by (route)")


class TestRulesStructure:
    def test_every_rule_metric_is_registered(self) -> None:
        """Each metric an alert expression selects is one WorkerMetrics exports (or Prometheus's own up)."""
        allowed = exported_names() | PROMETHEUS_OWN_SERIES
        for rule in rules():
            names = metric_names(rule["expr"])
            assert names, f"{rule['alert']} selects no metric"
            assert names <= allowed, f"{rule['alert']} reads unknown metrics {names - allowed}"

    def test_every_alert_has_for_severity_and_annotations(self) -> None:
        """Each alert waits a 'for' duration and carries a severity, a summary and a description."""
        for rule in rules():
            assert re.fullmatch(r"\d+[smh]", rule["for"]), rule["alert"]
            assert rule["labels"]["severity"] in {"warning", "critical"}, rule["alert"]
            assert rule["annotations"]["summary"].strip(), rule["alert"]
            assert rule["annotations"]["description"].strip(), rule["alert"]

    def test_alert_names_are_unique_and_cover_the_required_cases(self) -> None:
        """The required alerts exist once each."""
        names = [rule["alert"] for rule in rules()]
        assert len(names) == len(set(names))
        assert {
            "MicsWorkerConsumerLagGrowing",
            "MicsWorkerDeadLetterRateHigh",
            "MicsWorkerHttpErrorRatioHigh",
            "MicsWorkerPausedCredentials",
            "MicsWorkerPausedDeadLetterQueue",
            "MicsWorkerNotConsuming",
            "MicsWorkerDown",
        } <= set(names)

    @pytest.mark.parametrize("condition", sorted(CONDITIONS))
    def test_every_abnormal_state_has_an_alert(self, condition: str) -> None:
        """Each condition of worker/conditions.py is alerted on: its own rule on mics_worker_condition, or (for a
        held datamart) the pause alert that watches the same state."""
        covering = [rule["alert"] for rule in rules() if f'condition="{condition}"' in rule["expr"]]
        covering += [SAME_STATE_ALERTS[condition]] if condition in SAME_STATE_ALERTS else []
        assert len(covering) == 1, covering
        assert covering[0] in {rule["alert"] for rule in rules()}

    def test_no_helm_templating(self) -> None:
        """The file is plain: only Prometheus's own {{ $labels }} / {{ $value }} templates appear in it."""
        for template in re.findall(r"\{\{(.*?)\}\}", RULES.read_text()):
            assert template.strip().startswith(("$labels", "$value")), template


def promtool() -> str:
    """The promtool that scripts/install-promtool builds, or one on PATH; missing: fails in CI, skips elsewhere."""
    built = REPO / ".cache" / "tools" / "promtool"
    found = built if built.is_file() else shutil.which("promtool")
    return require_tool("promtool", found, "run scripts/install-promtool (needs Go)")


class TestPromtool:
    def test_rules_pass_promtool_check(self) -> None:
        """promtool accepts the rule file (syntax, PromQL, templates)."""
        result = subprocess.run(
            [str(promtool()), "check", "rules", str(RULES)], capture_output=True, text=True, check=False
        )
        assert result.returncode == 0, result.stdout + result.stderr

    def test_alerts_fire_as_specified(self, tmp_path: Path) -> None:
        """promtool's rule unit tests: each alert fires on its scenario and stays quiet on the healthy one.

        The scenarios check when alerts fire and with which labels; annotations (checked above, and by
        promtool check rules) are stripped from the copy under test so the scenarios need not repeat them.
        """
        (tmp_path / RULES.name).write_text(without_annotations(RULES.read_text()))
        shutil.copy(RULE_TESTS, tmp_path / RULE_TESTS.name)
        result = subprocess.run(
            [str(promtool()), "test", "rules", RULE_TESTS.name],
            capture_output=True,
            text=True,
            check=False,
            cwd=tmp_path,
        )
        assert result.returncode == 0, result.stdout + result.stderr


def without_annotations(text: str) -> str:
    """The rule file with every rule's ``annotations`` removed."""
    document = yaml.safe_load(text)
    for group in document["groups"]:
        for rule in group["rules"]:
            rule.pop("annotations", None)
    return yaml.safe_dump(document, sort_keys=False)
