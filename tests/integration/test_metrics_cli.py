"""`orchestrator metrics` over alerts ingested through the real pipeline on a SQLite file."""

from __future__ import annotations

import asyncio
import csv
import datetime as dt
import io
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
)
from samples import CLEAN_ENV, db_alert
from typer.testing import CliRunner

from handlers.console import ConsoleHandler
from orchestrator.app import route_handlers
from orchestrator.cli import app
from orchestrator.clock import ManualClock
from orchestrator.dispatcher import Dispatcher
from orchestrator.incident.events import StatusChange
from orchestrator.incident.model import Actor, ActorKind, Status
from orchestrator.pipeline import Pipeline
from orchestrator.playbook.actions import ACTION_NAMES
from orchestrator.playbook.loader import load_playbooks
from orchestrator.store.sql import SqlStore

REPO = Path(__file__).resolve().parents[2]
PLAYBOOKS = REPO / "playbooks"
T0 = dt.datetime(2026, 3, 31, 10, 0, tzinfo=dt.UTC)
APRIL = dt.datetime(2026, 4, 1, 9, 0, tzinfo=dt.UTC)
AS_OF = "2026-04-02T09:00:00+00:00"
ALICE = Actor(ActorKind.SLACK, "U123", "alice")


def api_alert(service: str, *, starts_at: dt.datetime) -> bytes:
    """A latency warning the shipped api-slo-burn playbook takes as SEV3."""
    labels = {"alertname": "HighLatencyP99", "env": "prod", "service": service}
    return json.dumps(
        {"labels": {**labels, "severity": "warning"}, "starts_at": starts_at.isoformat()}
    ).encode()


async def populate(url: str) -> None:
    """Five incidents, times in seconds from when each was declared:
    #1 orders-db  SEV1: impact -120, ack +180, resolved +600
    #2 billing-db SEV1: impact -60,  ack +600, resolved +3000
    #3 search-api SEV3: impact -300, never acknowledged, resolved +1800
    #4 checkout-api SEV3: declined +60 (left out)
    #5 payments-db SEV1, declared 04-01 09:00: ack +120, still open
    """
    clock = ManualClock(T0)
    store = SqlStore(url)
    await store.open()
    try:
        pipeline = Pipeline(store, load_playbooks(PLAYBOOKS, known_actions=ACTION_NAMES), clock)
        dispatcher = Dispatcher(store, route_handlers([ConsoleHandler(ACTION_NAMES)]), clock)

        async def declare(raw: bytes) -> int:
            report = await pipeline.ingest_bytes(raw, "test")
            await dispatcher.drain()  # delivers the page: first_page_at
            number = report.outcomes[0].incident_number
            assert number is not None
            return number

        async def change(number: int, to: Status, after: float) -> None:
            clock.advance(after)
            await pipeline.apply(number, StatusChange(to, ALICE))

        first = await declare(db_alert("orders-db", starts_at=T0 - dt.timedelta(seconds=120)))
        await change(first, Status.ACKNOWLEDGED, 180)
        await change(first, Status.RESOLVED, 420)
        clock.set(T0 + dt.timedelta(hours=1))
        start = clock.now() - dt.timedelta(seconds=60)
        second = await declare(db_alert("billing-db", starts_at=start))
        await change(second, Status.ACKNOWLEDGED, 600)
        await change(second, Status.RESOLVED, 2400)
        clock.set(T0 + dt.timedelta(hours=2))
        third = await declare(api_alert("search-api", starts_at=clock.now() - dt.timedelta(0, 300)))
        await change(third, Status.RESOLVED, 1800)
        clock.set(T0 + dt.timedelta(hours=3))
        fourth = await declare(api_alert("checkout-api", starts_at=clock.now()))
        await change(fourth, Status.DECLINED, 60)
        clock.set(APRIL)
        fifth = await declare(db_alert("payments-db", starts_at=APRIL))
        await change(fifth, Status.ACKNOWLEDGED, 120)
        assert [first, second, third, fourth, fifth] == [1, 2, 3, 4, 5]
    finally:
        await store.close()


class Cli:
    def __init__(self, url: str) -> None:
        self.url = url
        self.runner = CliRunner(env=CLEAN_ENV)

    def __call__(self, *args: str) -> str:
        argv = ["--db", self.url, "--playbooks", str(PLAYBOOKS), "metrics", *args]
        result = self.runner.invoke(app, argv)
        assert result.exit_code == 0, result.output + result.stderr
        return result.stdout

    def json(self, *args: str) -> Any:
        return json.loads(self("--json", "--as-of", AS_OF, *args))


@pytest.fixture(scope="module")
def cli(tmp_path_factory: pytest.TempPathFactory) -> Cli:
    url = f"sqlite+aiosqlite:///{tmp_path_factory.mktemp('metrics') / 'x.db'}"
    asyncio.run(populate(url))
    return Cli(url)


def metric(group: dict[str, Any], name: str) -> tuple[Any, ...]:
    m = group["metrics"][name]
    return (m["n"], m["p50_seconds"], m["p90_seconds"], m["max_seconds"], m["mean_seconds"])


def test_json_figures_by_severity(cli: Cli) -> None:
    data = cli.json("--min-n", "1")
    sev1, sev3 = data["groups"]
    assert (sev1["key"], sev3["key"]) == ({"severity": "SEV1"}, {"severity": "SEV3"})
    # SEV1: #1 and #2 counted, #5 open (declared 04-01 09:00: one day old on 04-02 09:00).
    assert (sev1["incidents"], sev1["counted"], sev1["never_acknowledged"]) == (3, 2, 0)
    assert sev1["open"] == {"count": 1, "age_p50_seconds": 86400.0, "age_max_seconds": 86400.0}
    # TTA 180 and 600: p50 rank 1, p90 rank 2, mean 390; within 5 min: 1 of 2.
    assert metric(sev1, "tta") == (2, 180.0, 600.0, 600.0, 390.0)
    assert sev1["metrics"]["tta"]["within_target"] == 0.5
    assert metric(sev1, "ttr") == (2, 600.0, 3000.0, 3000.0, 1800.0)
    assert metric(sev1, "ttd") == (2, 60.0, 120.0, 120.0, 90.0)
    assert metric(sev1, "restore") == (2, 720.0, 3060.0, 3060.0, 1890.0)
    assert sev1["metrics"]["ttm"]["missing"] == 2  # resolved without a separate mitigation
    # SEV3: #3 counted (never acked: out of TTA, counted), #4 declined.
    assert (sev3["counted"], sev3["never_acknowledged"], sev3["excluded"]["declined"]) == (1, 1, 1)
    assert metric(sev3, "tta") == (0, None, None, None, None)
    assert sev3["metrics"]["tta"]["missing"] == 1
    assert metric(sev3, "ttr") == (1, 1800.0, 1800.0, 1800.0, 1800.0)
    assert metric(sev3, "ttd") == (1, 300.0, 300.0, 300.0, 300.0)


def test_targets_can_be_overridden(cli: Cli) -> None:
    sev1 = cli.json("--min-n", "1", "--target", "tta:SEV1=10m")["groups"][0]
    tta = sev1["metrics"]["tta"]
    assert (tta["within_target"], tta["met"], tta["target_seconds"]) == (1.0, 2, 600.0)


def test_json_incidents_carry_canonical_timestamps(cli: Cli) -> None:
    incidents = {i["number"]: i for i in cli.json()["incidents"]}
    first = incidents[1]["timestamps"]
    assert first == {
        "impact_started_at": "2026-03-31T09:58:00+00:00",
        "first_alert_at": "2026-03-31T09:58:00+00:00",
        "detected_at": "2026-03-31T10:00:00+00:00",
        "declared_at": "2026-03-31T10:00:00+00:00",
        "first_page_at": "2026-03-31T10:00:00+00:00",
        "first_ack_at": "2026-03-31T10:03:00+00:00",
        "mitigated_at": None,
        "resolved_at": "2026-03-31T10:10:00+00:00",
        "closed_at": None,
    }
    assert incidents[1]["durations_seconds"]["ttm"] is None  # missing, never 0
    assert (incidents[4]["excluded"], incidents[5]["status"]) == ("declined", "acknowledged")


def test_default_min_n_withholds_percentiles(cli: Cli) -> None:
    data = cli.json()
    tta = data["total"]["metrics"]["tta"]
    assert (tta["n"], tta["p50_seconds"], tta["mean_seconds"], tta["suppressed"]) == (
        2,
        None,
        None,
        True,
    )
    assert tta["max_seconds"] == 600.0
    assert data["min_n"] == 10


def test_range_and_period(cli: Cli) -> None:
    march = cli.json("--from", "2026-03-01", "--to", "2026-03-31")
    assert sorted(i["number"] for i in march["incidents"]) == [1, 2, 3, 4]
    by_month = cli.json("--by", "period,service", "--min-n", "1")
    keys = [(g["key"]["period"], g["key"]["service"]) for g in by_month["groups"]]
    assert keys == [
        ("2026-03", "billing-db"),
        ("2026-03", "checkout-api"),
        ("2026-03", "orders-db"),
        ("2026-03", "search-api"),
        ("2026-04", "payments-db"),
    ]
    assert by_month["period"] == "month"


def test_csv(cli: Cli) -> None:
    rows = list(csv.DictReader(io.StringIO(cli("--csv", "--min-n", "1", "--as-of", AS_OF))))
    assert len(rows) == 3 * 5  # SEV1, SEV3 and the total, five metrics each
    sev1_tta = next(r for r in rows if r["severity"] == "SEV1" and r["metric"] == "tta")
    assert (sev1_tta["n"], sev1_tta["p50_seconds"], sev1_tta["within_target"]) == (
        "2",
        "180.0",
        "0.5",
    )
    sev3_tta = next(r for r in rows if r["severity"] == "SEV3" and r["metric"] == "tta")
    assert (sev3_tta["n"], sev3_tta["p50_seconds"], sev3_tta["declined"]) == ("0", "", "1")
    assert rows[-1]["severity"] == "(all)"


def test_chart_and_table(cli: Cli, tmp_path: Path) -> None:
    out = tmp_path / "out.svg"
    table = cli("--min-n", "1", "--chart", str(out), "--as-of", AS_OF)
    svg = out.read_bytes()
    assert svg.startswith(b"<?xml")
    assert b"<svg" in svg
    assert "TTA: time to acknowledge = first_ack_at - declared_at" in table
    assert "MTTA here means the p50 (median)" in table
    assert "50% (1/2) ≤5m" in table
    assert f"chart written to {out}" in table
    png = tmp_path / "trend.png"
    cli("--json", "--period", "week", "--chart", str(png))
    assert png.read_bytes().startswith(b"\x89PNG")


def test_bad_options_exit_2(cli: Cli) -> None:
    for args in (
        ["--by", "colour"],
        ["--chart", "x.pdf"],
        ["--from", "yesterday"],
        ["--target", "tta:SEV9=5m"],
        ["--json", "--csv"],
    ):
        result = cli.runner.invoke(app, ["--db", cli.url, "metrics", *args])
        assert result.exit_code == 2, args


class Collector:
    """An OTLP/HTTP metrics receiver over real HTTP: keeps each request it accepts, or
    answers with the error status it is given."""

    def __init__(self, status: int = 200) -> None:
        self.requests: list[ExportMetricsServiceRequest] = []
        received = self.requests

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["content-length"]))
                if status == 200:
                    request = ExportMetricsServiceRequest()
                    request.ParseFromString(body)
                    received.append(request)
                self.send_response(status)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, *_: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/v1/metrics"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> Collector:
        self.thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.server.shutdown()
        self.server.server_close()

    def histograms(self) -> dict[tuple[str, str], tuple[int, float]]:
        """(instrument, severity) -> (count, sum), over everything received."""
        found: dict[tuple[str, str], tuple[int, float]] = {}
        for request in self.requests:
            for resource in request.resource_metrics:
                for scope in resource.scope_metrics:
                    for metric in scope.metrics:
                        for point in metric.histogram.data_points:
                            attributes = {a.key: a.value.string_value for a in point.attributes}
                            key = (metric.name, attributes["severity"])
                            count, total = found.get(key, (0, 0.0))
                            found[key] = (count + point.count, total + point.sum)
        return found


def test_durations_go_to_a_collector_as_histograms(cli: Cli) -> None:
    with Collector() as collector:
        out = cli("--otlp", collector.url, "--to", "2026-03-31")
    assert "sent the durations of 3 incidents" in out  # #4 declined, #5 declared in April
    got = collector.histograms()
    # The same figures as the JSON above: SEV1 TTA 180 + 600, TTR 600 + 3000; SEV3 TTR 1800.
    assert got[("orchestrator.incident.tta", "SEV1")] == (2, 780.0)
    assert got[("orchestrator.incident.ttr", "SEV1")] == (2, 3600.0)
    assert got[("orchestrator.incident.ttr", "SEV3")] == (1, 1800.0)
    assert ("orchestrator.incident.tta", "SEV3") not in got  # never acknowledged


def test_a_collector_that_refuses_is_an_error(cli: Cli) -> None:
    # 400 is final; a 503 would be retried with backoff for the exporter's 10 s timeout first.
    with Collector(status=400) as collector:
        argv = ["--db", cli.url, "--playbooks", str(PLAYBOOKS), "metrics", "--otlp", collector.url]
        result = cli.runner.invoke(app, argv)
    assert result.exit_code == 1
    assert "did not accept the metrics" in result.stderr
