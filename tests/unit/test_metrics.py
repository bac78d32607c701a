"""Response metrics from hand-built timelines, checked against figures worked out by hand."""

from __future__ import annotations

import dataclasses
import datetime as dt
from dataclasses import FrozenInstanceError, fields
from typing import Any

import orjson
import pytest

from orchestrator.incident.model import SYSTEM, Actor, ActorKind, Severity, Status
from orchestrator.report.aggregate import (
    Dimension,
    GroupReport,
    MetricsReport,
    Period,
    aggregate,
    in_range,
    period_of,
)
from orchestrator.report.charts import render_trend, trend_series
from orchestrator.report.export import csv_header, csv_rows, report_json
from orchestrator.report.metrics import (
    IncidentMetrics,
    Metric,
    figures_json,
    incident_metrics,
    metrics_from_figures,
    percentile,
)
from orchestrator.report.timestamps import (
    CanonicalTimestamps,
    TimestampFold,
    canonical_timestamps,
    stamps_from_json,
    stamps_json,
)
from orchestrator.timeline import Kind, TimelineEntry

ALICE = Actor(ActorKind.SLACK, "U1", "alice")
PD = Actor(ActorKind.PAGERDUTY, "P1", "bob")
AS_OF = dt.datetime(2026, 4, 5, 9, 0, tzinfo=dt.UTC)


def day(month: int, d: int, hour: int = 9, minute: int = 0, second: int = 0) -> dt.datetime:
    return dt.datetime(2026, month, d, hour, minute, second, tzinfo=dt.UTC)


def s(seconds: float) -> dt.timedelta:
    return dt.timedelta(seconds=seconds)


class Timeline:
    """One incident's entries, the way the engine writes them (seq in order, hashes not needed)."""

    def __init__(self, number: int, team: str = "team-a", is_drill: bool = False) -> None:
        self.number = number
        self.team = team
        self.is_drill = is_drill
        self.entries: list[TimelineEntry] = []
        self.declared = day(1, 1)

    def add(
        self,
        kind: Kind,
        occurred: dt.datetime,
        recorded: dt.datetime | None = None,
        actor: Actor = SYSTEM,
        **data: Any,
    ) -> Timeline:
        seq = len(self.entries) + 1
        entry = TimelineEntry(
            self.number, seq, kind, actor, occurred, recorded or occurred, data, "", ""
        )
        self.entries.append(entry)
        return self

    def opened(
        self,
        declared: dt.datetime,
        ttd: float,
        severity: str = "SEV1",
        service: str = "api",
        playbook: str = "pb-api",
        **extra: Any,
    ) -> Timeline:
        """Impact started `ttd` seconds before the alert reached us, at `declared`."""
        self.declared = declared
        impact = declared - s(ttd)
        self.add(Kind.ALERT_RECEIVED, impact, declared, labels={"service": service})
        return self.add(
            Kind.INCIDENT_TRIGGERED,
            declared,
            declared,
            severity=severity,
            playbook=playbook,
            impact_started_at=impact.isoformat(),
            **extra,
        )

    def at(self, kind: Kind, seconds: float, actor: Actor = ALICE, **data: Any) -> Timeline:
        """An entry `seconds` after declared_at, by the source's clock and by ours."""
        return self.add(kind, self.declared + s(seconds), actor=actor, **data)

    def metrics(self, skew_tolerance: float = 60.0) -> IncidentMetrics:
        stamps = canonical_timestamps(self.entries)
        # The store keeps each incident's fold and takes it up again as entries arrive: stopped
        # and resumed after any entry, through its stored JSON, it must read the same.
        ordered = sorted(self.entries, key=lambda entry: entry.seq)
        for split in range(1, len(ordered)):
            fold = TimestampFold(ordered[0].incident_number)
            for entry in ordered[:split]:
                fold.add(entry)
            fold = TimestampFold.from_json(orjson.loads(orjson.dumps(fold.as_json())))
            for entry in ordered[split:]:
                fold.add(entry)
            assert fold.result() == stamps
        # ... and metrics read the result the store keeps beside the fold.
        assert stamps_from_json(orjson.loads(orjson.dumps(stamps_json(stamps)))) == stamps
        measured = incident_metrics(
            stamps,
            team=self.team,
            is_drill=self.is_drill,
            skew_tolerance=skew_tolerance,
        )
        # Reports that need only durations read the figures stored beside the fold instead:
        # through their JSON, the same metrics but for the timestamps they were taken from.
        figures = orjson.loads(orjson.dumps(figures_json(stamps)))
        from_figures = metrics_from_figures(
            figures, team=self.team, is_drill=self.is_drill, skew_tolerance=skew_tolerance
        )
        assert from_figures == dataclasses.replace(measured, timestamps=None)
        return measured


ACK, MIT, RES = Kind.INCIDENT_ACKNOWLEDGED, Kind.INCIDENT_MITIGATED, Kind.INCIDENT_RESOLVED

# SEV1, counted: (number, declared, ttd, tta, mitigated after declared, ttr), in seconds.
SEV1_ROWS: list[tuple[int, dt.datetime, int, int | None, int | None, int]] = [
    (1, day(3, 2), 60, 120, 600, 1800),
    (2, day(3, 3), 120, 240, None, 3600),
    (3, day(3, 4), 30, 60, 300, 900),
    (4, day(3, 5), 300, 600, 1200, 7200),
    (5, day(3, 6), 90, 180, None, 2400),
    (6, day(3, 7), 45, 90, 900, 5400),
    (7, day(3, 8), 600, 1200, None, 10800),
    (8, day(3, 9), 0, 30, 200, 600),
    (9, day(3, 10), 150, 300, 1500, 16000),
    # The period boundary: #10 is the first second of April (and of Q2), #11 the last of March.
    (10, day(4, 1, 0, 0, 0), 20, 420, None, 4000),
    (11, day(3, 31, 23, 59, 59), 240, None, None, 1200),  # never acknowledged
]


def population() -> list[Timeline]:
    timelines = []
    for number, declared, ttd, tta, mitigated, ttr in SEV1_ROWS:
        t = Timeline(number, team="team-a" if number <= 6 else "team-b")
        t.opened(declared, ttd, service="api" if number <= 6 else "db")
        t.at(Kind.ACTION_SUCCEEDED, 5, SYSTEM, action="pagerduty.trigger", key="k")
        if tta is not None:
            t.at(ACK, tta)
        if mitigated is not None:
            t.at(MIT, mitigated)
        timelines.append(t.at(RES, ttr))

    # #12 SEV2, reopened: first ack at 300, resolved at 1000, reopened at 2000, acked again,
    # mitigated at 2800 and resolved for good at 4000.
    t = Timeline(12).opened(day(3, 16), 100, "SEV2")
    t.at(ACK, 300).at(RES, 1000).at(Kind.INCIDENT_REOPENED, 2000)
    timelines.append(t.at(ACK, 2500).at(MIT, 2800).at(RES, 4000))
    # #13 raised from SEV3 to SEV2 and back: it counts as SEV2, the highest it reached.
    t = Timeline(13).opened(day(3, 17), 50, "SEV3")
    t.at(Kind.SEVERITY_CHANGED, 10, **{"from": "SEV3", "to": "SEV2"})
    t.at(Kind.SEVERITY_CHANGED, 20, **{"from": "SEV2", "to": "SEV3"})
    timelines.append(t.at(ACK, 600).at(RES, 3000))
    # #14 small skew: the alert's source clock says impact began 20 s after we received it,
    # and PagerDuty's clock says the ack came 30 s before we declared. Both are within 60 s.
    t = Timeline(14)
    t.opened(day(3, 18), -20, "SEV2")
    timelines.append(t.at(ACK, -30, PD).at(RES, 1800))
    # #15 large skew: an ack stamped 10 minutes before we declared: left out of TTA.
    t = Timeline(15).opened(day(3, 19), 30, "SEV2")
    timelines.append(t.at(ACK, -600, PD).at(RES, 2000))

    # Left out of operational metrics.
    timelines.append(Timeline(16, is_drill=True).opened(day(3, 20), 10).at(ACK, 20).at(RES, 30))
    t = Timeline(17).opened(day(3, 21), 10)
    timelines.append(t.at(ACK, 60).at(Kind.INCIDENT_DECLINED, 120))
    t = Timeline(18).opened(day(3, 22), 10, "SEV2", service="db")
    timelines.append(t.at(Kind.INCIDENT_MERGED, 90))
    # A drill the timeline itself flags, and a canceled incident.
    timelines.append(Timeline(21).opened(day(3, 23), 10, "SEV3", is_drill=True).at(RES, 50))
    timelines.append(Timeline(22).opened(day(3, 24), 10, "SEV3").at(Kind.INCIDENT_CANCELED, 40))

    # Open: #19 resolved then reopened (so open again), #20 never touched.
    t = Timeline(19).opened(day(4, 2), 10, service="db")
    timelines.append(t.at(ACK, 60).at(RES, 600).at(Kind.INCIDENT_REOPENED, 900))
    timelines.append(Timeline(20).opened(day(4, 3), 10, "SEV3", service="db"))
    return timelines


@pytest.fixture
def incidents() -> list[IncidentMetrics]:
    return [t.metrics() for t in population()]


def by_number(incidents: list[IncidentMetrics]) -> dict[int, IncidentMetrics]:
    return {i.number: i for i in incidents}


def only(report: MetricsReport, **key: str) -> GroupReport:
    (found,) = [g for g in report.groups if g.key == key]
    return found


# --- one incident ---------------------------------------------------------------------------


def test_durations_of_a_plain_incident(incidents: list[IncidentMetrics]) -> None:
    first = by_number(incidents)[1]
    # impact 09:00:00 - 60 s; detected and declared 09:00:00; ack +120; mitigated +600;
    # resolved +1800. TTM = 60 + 600; restore = 60 + 1800.
    assert first.durations == {
        Metric.TTD: 60.0,
        Metric.TTA: 120.0,
        Metric.TTM: 660.0,
        Metric.TTR: 1800.0,
        Metric.RESTORE: 1860.0,
    }
    ts = first.timestamps
    assert ts.first_page_at == day(3, 2, 9, 0, 5)
    assert ts.impact_started_at == ts.first_alert_at == day(3, 2, 8, 59, 0)
    assert ts.detected_at == ts.declared_at == day(3, 2)
    assert (ts.status, ts.max_severity, ts.playbook, ts.service) == (
        Status.RESOLVED,
        Severity.SEV1,
        "pb-api",
        "api",
    )
    assert first.counted


def test_reopened_uses_the_first_ack_and_the_final_resolution(
    incidents: list[IncidentMetrics],
) -> None:
    reopened = by_number(incidents)[12]
    ts = reopened.timestamps
    assert ts.reopens == 1
    assert ts.first_ack_at == day(3, 16) + s(300)
    assert ts.resolved_at == day(3, 16) + s(4000)
    assert ts.mitigated_at == day(3, 16) + s(2800)
    # TTD 100; TTA 300 (first ack); TTM 100 + 2800; TTR 4000 (final); restore 100 + 4000.
    assert reopened.durations == {
        Metric.TTD: 100.0,
        Metric.TTA: 300.0,
        Metric.TTM: 2900.0,
        Metric.TTR: 4000.0,
        Metric.RESTORE: 4100.0,
    }


def test_reopened_and_still_open_has_no_resolution(incidents: list[IncidentMetrics]) -> None:
    still_open = by_number(incidents)[19]
    assert still_open.status is Status.TRIGGERED
    assert still_open.is_open
    assert not still_open.counted
    assert still_open.timestamps.resolved_at is None
    assert still_open.durations[Metric.TTR] is None
    assert still_open.durations[Metric.TTA] == 60.0  # known, but open incidents are not timed


def test_never_acknowledged_has_no_tta_not_zero(incidents: list[IncidentMetrics]) -> None:
    never = by_number(incidents)[11]
    assert never.durations[Metric.TTA] is None
    assert not never.acknowledged
    assert never.counted


def test_highest_severity_reached_decides_the_group(incidents: list[IncidentMetrics]) -> None:
    assert by_number(incidents)[13].severity is Severity.SEV2


def test_exclusions(incidents: list[IncidentMetrics]) -> None:
    found = by_number(incidents)
    assert {n: found[n].excluded for n in (16, 17, 18, 21, 22)} == {
        16: "drill",  # the incident's flag
        17: "declined",
        18: "merged",
        21: "drill",  # the triggered entry's data
        22: "canceled",
    }
    assert not any(found[n].counted for n in (16, 17, 18, 21, 22))


def test_small_skew_counts_as_zero_and_is_flagged(incidents: list[IncidentMetrics]) -> None:
    skewed = by_number(incidents)[14]
    # TTD = detected (declared) - impact (declared + 20 s) = -20 s: within 60 s, so 0.
    # TTA = ack (declared - 30 s) - declared = -30 s: 0 as well.
    assert skewed.durations[Metric.TTD] == 0.0
    assert skewed.durations[Metric.TTA] == 0.0
    assert skewed.clamped == {Metric.TTD, Metric.TTA}
    assert skewed.skewed == frozenset()
    assert skewed.durations[Metric.RESTORE] == 1780.0  # 1800 - 20


def test_large_skew_is_left_out_and_flagged() -> None:
    (t,) = [t for t in population() if t.number == 15]
    # The ack is stamped 600 s before declared_at: beyond 60 s, so no TTA at all.
    strict = t.metrics()
    assert strict.durations[Metric.TTA] is None
    assert strict.skewed == {Metric.TTA}
    assert strict.acknowledged  # it was acknowledged; only its time is unusable
    # With a 10-minute tolerance the same ack counts, as 0.
    lenient = t.metrics(skew_tolerance=600)
    assert lenient.durations[Metric.TTA] == 0.0
    assert lenient.clamped == {Metric.TTA}


def test_a_correction_entry_moves_the_time_it_corrects() -> None:
    t = Timeline(30).opened(day(3, 2), 60)
    t.at(ACK, 900)  # seq 3: the ack was recorded 15 min late
    t.at(RES, 1800)
    t.at(
        Kind.CORRECTION,
        2000,
        corrects=3,
        reason="acked by phone at 09:02",
        changes={"occurred_at": (day(3, 2) + s(120)).isoformat()},
    )
    # The first alert's start corrected too: impact began 5 min before we received it.
    t.at(
        Kind.CORRECTION,
        2100,
        corrects=1,
        reason="impact began earlier",
        changes={"occurred_at": (day(3, 2) - s(300)).isoformat()},
    )
    m = t.metrics()
    assert m.durations[Metric.TTA] == 120.0
    assert m.durations[Metric.TTD] == 300.0
    assert m.durations[Metric.RESTORE] == 2100.0


def test_an_empty_timeline_is_an_error() -> None:
    with pytest.raises(ValueError, match="no entries"):
        canonical_timestamps([])


# --- statistics ------------------------------------------------------------------------------


def test_percentiles_are_nearest_rank() -> None:
    assert percentile([1.0], 50) == 1.0
    assert percentile([1.0, 2.0, 3.0, 4.0], 50) == 2.0  # rank ceil(2.0) = 2
    assert percentile([1.0, 2.0, 3.0, 4.0], 90) == 4.0  # rank ceil(3.6) = 4
    # 90% of 70 is rank 63 exactly; floating point would give 63.000000000000001 and rank 64.
    assert percentile([float(v) for v in range(1, 71)], 90) == 63.0
    with pytest.raises(ValueError, match="no values"):
        percentile([], 50)


def test_by_severity(incidents: list[IncidentMetrics]) -> None:
    report = aggregate(incidents, as_of=AS_OF)
    assert [g.key for g in report.groups] == [
        {"severity": "SEV1"},
        {"severity": "SEV2"},
        {"severity": "SEV3"},
    ]
    sev1 = only(report, severity="SEV1")
    # #1-#11 counted; #16 drill, #17 declined, #19 open.
    assert (sev1.incidents, sev1.counted, sev1.open, sev1.never_acknowledged) == (14, 11, 1, 1)
    assert sev1.excluded == {"drill": 1, "declined": 1, "merged": 0, "canceled": 0}
    assert sev1.open_age_max == 3 * 86400.0  # #19: declared 04-02 09:00, as of 04-05 09:00
    assert sev1.open_age_p50 is None  # one open incident: below min n

    tta = sev1.stats[Metric.TTA]
    # Sorted: 30 60 90 120 180 240 300 420 600 1200 (n = 10; #11 never acked).
    # p50 = rank 5 = 180; p90 = rank 9 = 600; sum 3240, mean 324.
    # Within 5 min (300 s): the first seven, 300 included: 7/10.
    assert (tta.n, tta.p50, tta.p90, tta.max, tta.mean) == (10, 180.0, 600.0, 1200.0, 324.0)
    assert (tta.within_target, tta.met, tta.targeted, tta.target) == (0.7, 7, 10, 300.0)
    assert (tta.missing, tta.clamped, tta.skewed, tta.suppressed) == (1, 0, 0, False)

    ttr = sev1.stats[Metric.TTR]
    # Sorted: 600 900 1200 1800 2400 3600 4000 5400 7200 10800 16000 (n = 11).
    # p50 = rank ceil(5.5) = 6 = 3600; p90 = rank ceil(9.9) = 10 = 10800; sum 53900 / 11 = 4900.
    # Within 4 h (14400 s): all but 16000: 10/11.
    assert (ttr.n, ttr.p50, ttr.p90, ttr.max, ttr.mean) == (11, 3600.0, 10800.0, 16000.0, 4900.0)
    assert (ttr.met, ttr.targeted) == (10, 11)
    assert ttr.within_target == pytest.approx(10 / 11)

    ttd = sev1.stats[Metric.TTD]
    # Sorted: 0 20 30 45 60 90 120 150 240 300 600; p50 rank 6 = 90, p90 rank 10 = 300;
    # sum 1655 / 11. Within 5 min: all but 600.
    assert (ttd.n, ttd.p50, ttd.p90, ttd.max) == (11, 90.0, 300.0, 600.0)
    assert ttd.mean == pytest.approx(1655 / 11)
    assert (ttd.met, ttd.targeted) == (10, 11)

    ttm = sev1.stats[Metric.TTM]
    # Mitigated: #1 60+600, #3 30+300, #4 300+1200, #6 45+900, #8 0+200, #9 150+1500.
    # n = 6 < 10: percentiles and mean withheld; max 1650; 5 without a mitigation; all < 1 h.
    assert (ttm.n, ttm.p50, ttm.p90, ttm.mean, ttm.suppressed) == (6, None, None, None, True)
    assert (ttm.max, ttm.missing, ttm.met, ttm.targeted) == (1650.0, 5, 6, 6)

    restore = sev1.stats[Metric.RESTORE]
    # ttd + ttr: 600 930 1440 1860 2490 3720 4020 5445 7500 11400 16150 (sum 55555).
    assert (restore.n, restore.p50, restore.p90, restore.max) == (11, 3720.0, 11400.0, 16150.0)
    assert restore.mean == pytest.approx(55555 / 11)
    assert (restore.met, restore.targeted) == (10, 11)


def test_sev2_is_below_min_n_and_shows_its_skew(incidents: list[IncidentMetrics]) -> None:
    sev2 = only(aggregate(incidents, as_of=AS_OF), severity="SEV2")
    assert (sev2.incidents, sev2.counted, sev2.excluded["merged"]) == (5, 4, 1)
    tta = sev2.stats[Metric.TTA]
    # #12 300, #13 600, #14 0 (clamped), #15 left out (skewed). All within 15 min.
    assert (tta.n, tta.p50, tta.p90, tta.max, tta.mean) == (3, None, None, 600.0, None)
    assert tta.suppressed
    assert (tta.clamped, tta.skewed, tta.missing) == (1, 1, 0)
    assert (tta.within_target, tta.met, tta.targeted, tta.target) == (1.0, 3, 3, 900.0)
    assert sev2.never_acknowledged == 0  # #15 was acknowledged; its time is what is unusable
    ttd = sev2.stats[Metric.TTD]
    assert (ttd.n, ttd.max, ttd.clamped) == (4, 100.0, 1)  # 100, 50, 0, 30

    # With min n = 3 the same figures show: sorted 0 300 600, p50 rank 2, p90 rank 3.
    relaxed = only(aggregate(incidents, as_of=AS_OF, min_n=3), severity="SEV2")
    tta = relaxed.stats[Metric.TTA]
    assert (tta.p50, tta.p90, tta.mean, tta.suppressed) == (300.0, 600.0, 300.0, False)


def test_sev3_has_only_open_and_excluded_incidents(incidents: list[IncidentMetrics]) -> None:
    sev3 = only(aggregate(incidents, as_of=AS_OF), severity="SEV3")
    assert (sev3.incidents, sev3.counted, sev3.open, sev3.open_age_max) == (3, 0, 1, 172800.0)
    assert sev3.excluded == {"drill": 1, "declined": 0, "merged": 0, "canceled": 1}
    empty = sev3.stats[Metric.TTR]
    assert (empty.n, empty.p50, empty.max, empty.within_target, empty.suppressed) == (
        0,
        None,
        None,
        None,
        False,
    )


def test_total_mixes_targets_per_incident(incidents: list[IncidentMetrics]) -> None:
    total = aggregate(incidents, as_of=AS_OF).total
    assert (total.incidents, total.counted, total.open, total.never_acknowledged) == (22, 15, 2, 1)
    assert total.excluded == {"drill": 2, "declined": 1, "merged": 1, "canceled": 1}
    tta = total.stats[Metric.TTA]
    # SEV1's ten and SEV2's three: 0 30 60 90 120 180 240 300 300 420 600 600 1200.
    # p50 = rank ceil(6.5) = 7 = 240; p90 = rank ceil(11.7) = 12 = 600; sum 4140 / 13.
    # Each against its own severity's target: SEV1 7/10 + SEV2 3/3 = 10/13; no single target.
    assert (tta.n, tta.p50, tta.p90, tta.max) == (13, 240.0, 600.0, 1200.0)
    assert tta.mean == pytest.approx(4140 / 13)
    assert (tta.met, tta.targeted, tta.target) == (10, 13, None)


def test_by_service(incidents: list[IncidentMetrics]) -> None:
    report = aggregate(incidents, as_of=AS_OF, by=[Dimension.SERVICE])
    api = only(report, service="api")
    # api: #1-#6 (SEV1) and #12-#17, #21, #22: counted #1-#6 and #12-#15.
    assert (api.counted, api.open) == (10, 0)
    tta = api.stats[Metric.TTA]
    # 120 240 60 600 180 90 (SEV1: 5 within 5 min) + 300 600 0 (SEV2: 3 within 15 min).
    assert (tta.n, tta.max, tta.met, tta.targeted, tta.suppressed) == (9, 600.0, 8, 9, True)
    db = only(report, service="db")
    assert (db.counted, db.open, db.excluded["merged"]) == (5, 2, 1)


def test_by_team_and_playbook(incidents: list[IncidentMetrics]) -> None:
    report = aggregate(incidents, as_of=AS_OF, by=[Dimension.TEAM, Dimension.PLAYBOOK])
    assert [(g.key["team"], g.key["playbook"], g.counted) for g in report.groups] == [
        ("team-a", "pb-api", 10),  # #1-#6 and #12-#15 (and excluded/open ones)
        ("team-b", "pb-api", 5),  # #7-#11
    ]


def test_periods_split_at_the_boundary(incidents: list[IncidentMetrics]) -> None:
    assert period_of(day(3, 31, 23, 59, 59), Period.MONTH) == "2026-03"
    assert period_of(day(4, 1, 0, 0, 0), Period.MONTH) == "2026-04"
    assert period_of(day(3, 31, 23, 59, 59), Period.QUARTER) == "2026-Q1"
    assert period_of(day(4, 1, 0, 0, 0), Period.QUARTER) == "2026-Q2"
    # Monday 2026-03-30 starts ISO week 14: both sides of the month boundary are in it.
    assert period_of(day(3, 31, 23, 59, 59), Period.WEEK) == "2026-W14"
    assert period_of(day(4, 1, 0, 0, 0), Period.WEEK) == "2026-W14"
    assert period_of(day(3, 29, 23, 59, 59), Period.WEEK) == "2026-W13"

    report = aggregate(incidents, as_of=AS_OF, by=[Dimension.PERIOD], period=Period.QUARTER)
    q1, q2 = report.groups
    assert (q1.key, q1.incidents, q1.counted) == ({"period": "2026-Q1"}, 19, 14)
    assert (q2.key, q2.incidents, q2.counted, q2.open) == ({"period": "2026-Q2"}, 3, 1, 2)
    assert q2.stats[Metric.TTR].max == 4000.0  # #10, declared 04-01 00:00:00


def test_period_dimension_defaults_to_month(incidents: list[IncidentMetrics]) -> None:
    report = aggregate(incidents, as_of=AS_OF, by=[Dimension.PERIOD])
    assert report.period is Period.MONTH
    assert [g.key["period"] for g in report.groups] == ["2026-03", "2026-04"]


def test_range_is_by_declared_at_and_excludes_the_end(incidents: list[IncidentMetrics]) -> None:
    march = in_range(incidents, day(3, 1, 0), day(4, 1, 0))
    assert 11 in {i.number for i in march}  # 03-31 23:59:59
    assert 10 not in {i.number for i in march}  # 04-01 00:00:00
    report = aggregate(incidents, as_of=AS_OF, start=day(4, 1, 0))
    assert report.total.incidents == 3  # #10, #19, #20


def test_trend_series_per_period_and_severity(incidents: list[IncidentMetrics]) -> None:
    report = aggregate(incidents, as_of=AS_OF, by=[Dimension.PERIOD, Dimension.SEVERITY], min_n=1)
    periods, series = trend_series(report, Metric.TTA)
    assert periods == ["2026-03", "2026-04"]
    # March SEV1 TTA: 30 60 90 120 180 240 300 600 1200 (n = 9): p50 rank 5 = 180 s = 3 min.
    # April SEV1: #10 alone, 420 s = 7 min. SEV2 in March: 0 300 600: p50 300 s = 5 min.
    # SEV3 has no TTA anywhere; SEV2 nothing in April.
    assert series == {"SEV1": [3.0, 7.0], "SEV2": [5.0, None], "SEV3": [None, None]}
    svg = render_trend(report, "svg")
    assert svg.startswith(b"<?xml")
    assert b"<svg" in svg
    assert svg == render_trend(report, "svg")  # no dates or random ids inside
    assert render_trend(report, "png").startswith(b"\x89PNG")
    with pytest.raises(ValueError, match="not 'pdf'"):
        render_trend(report, "pdf")


def test_exports(incidents: list[IncidentMetrics]) -> None:
    report = aggregate(incidents, as_of=AS_OF)
    data = report_json(report, incidents)
    assert data["definitions"]["tta"]["formula"] == "first_ack_at - declared_at"
    assert data["definitions"]["tta"]["target_seconds"]["SEV1"] == 300.0
    assert data["groups"][0]["metrics"]["tta"]["p50_seconds"] == 180.0
    assert data["groups"][1]["metrics"]["tta"]["p50_seconds"] is None
    assert data["total"]["open"]["count"] == 2
    assert {i["number"]: i["timestamps"]["first_ack_at"] for i in data["incidents"]}[12] == (
        "2026-03-16T09:05:00+00:00"
    )
    header = csv_header(report)
    rows = [dict(zip(header, row, strict=True)) for row in csv_rows(report)]
    assert len(rows) == 4 * len(Metric)  # three severities and the total
    sev2_tta = next(r for r in rows if r["severity"] == "SEV2" and r["metric"] == "tta")
    assert (sev2_tta["n"], sev2_tta["p50_seconds"], sev2_tta["max_seconds"]) == (3, "", 600.0)
    assert rows[-1]["severity"] == "(all)"


def test_objects_built_without_init_are_whole_and_still_frozen() -> None:
    # stamps_from_json and incident_metrics build their frozen dataclasses without __init__
    # (report.timestamps.frozen), for speed: each must still carry every field, compare equal
    # to one built the usual way, and refuse changes.
    timeline = Timeline(1).opened(day(3, 2), ttd=60)
    timeline.at(ACK, 120)
    stamps = canonical_timestamps(timeline.entries)
    read_back = stamps_from_json(orjson.loads(orjson.dumps(stamps_json(stamps))))
    usual = CanonicalTimestamps(**{f.name: getattr(read_back, f.name) for f in fields(stamps)})
    assert read_back == usual
    assert hash(read_back) == hash(usual)
    measured = incident_metrics(stamps)
    assert set(vars(measured)) == {f.name for f in fields(IncidentMetrics)}
    assert set(vars(read_back)) == {f.name for f in fields(CanonicalTimestamps)}
    with pytest.raises(FrozenInstanceError):
        measured.team = "other"  # type: ignore[misc]
