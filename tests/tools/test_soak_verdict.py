"""The soak's judging parts, without a soak: commit-progress stretches, per-partition throughput, CPU share, verdict."""

from __future__ import annotations

import pytest

from soak.model import Partition, Report, Sample
from soak.sampling import CommitTracker
from soak.verdict import verdict

A, B = ("events", 0), ("events", 1)


def sample(at_s: float, committed: dict[Partition, int], lag: dict[Partition, int], cpu_s: float = 0.0) -> Sample:
    return Sample(at_s, 100.0, cpu_s, 0.0, 0.0, 0, 0, committed, lag, [])


def passing_report() -> Report:
    """A report that passes every rule: balanced, no stall, caught up, flat RSS (12 steady samples), status 0."""
    report = Report(started="now", minutes=2.0, rate=10.0, calibrated=None, stall_s=60.0, drain_limit_s=300.0)
    report.samples = [sample(60.0 + 5 * i, {A: 10 * i}, {A: 0}, cpu_s=i) for i in range(12)]
    report.stalls = {A: 5.0}
    report.stop_status = 0
    return report


class TestCommitTracker:
    def test_a_partition_behind_without_commits_grows_its_stretch(self) -> None:
        """The stretch runs from the last look where the offset moved to the latest look, while lag stays."""
        tracker = CommitTracker()
        tracker.observe(0.0, {A: (5, 10)})
        tracker.observe(30.0, {A: (5, 12)})
        tracker.observe(70.0, {A: (5, 20)})
        assert tracker.longest[A] == 70.0

    def test_progress_or_no_lag_restarts_it_and_the_longest_is_kept(self) -> None:
        """A moved offset, or a partition with nothing waiting, starts a new stretch; the longest one stays.

        (B: caught up at 40 s, 6 behind at 50 s, caught up again at 60 s: one 10 s stretch, counted from 40 s.)"""
        tracker = CommitTracker()
        for now, a, b in [(0, (5, 10), (3, 3)), (40, (5, 10), (3, 3)), (50, (8, 10), (3, 9)), (60, (8, 10), (9, 9))]:
            tracker.observe(float(now), {A: a, B: b})
        assert tracker.longest == {A: 40.0, B: 10.0}


class TestReportFigures:
    def test_committed_per_second_per_partition(self) -> None:
        """From the first sample to the last: (last committed - first committed) / elapsed."""
        report = passing_report()
        report.samples = [sample(0.0, {A: 0, B: 50}, {}), sample(100.0, {A: 1000, B: 50}, {})]
        assert report.committed_per_s() == {A: 10.0, B: 0.0}

    def test_cpu_share_over_the_run_and_the_stream(self) -> None:
        """CPU seconds per wall second, over all samples or up to the stream's end."""
        report = passing_report()
        report.samples = [
            sample(0.0, {}, {}, cpu_s=0.0),
            sample(100.0, {}, {}, cpu_s=20.0),
            sample(200.0, {}, {}, 30.0),
        ]
        assert report.cpu_share() == pytest.approx(0.15)
        assert report.cpu_share(until_s=100.0) == pytest.approx(0.2)


class TestVerdict:
    def test_a_run_within_every_rule_passes(self) -> None:
        """Nothing to report: PASS."""
        assert verdict(passing_report()) == (True, [])

    def test_a_partition_without_commit_progress_for_stall_s_fails_and_is_named(self) -> None:
        """The `--stall-s` rule: a stretch at or over it fails the soak, naming the partition and the stretch."""
        report = passing_report()
        report.stalls = {A: 59.0, B: 60.0}
        ok, problems = verdict(report)
        assert not ok
        assert problems == ["1 partition(s) went 60 s or more without commit progress while behind (events[1] 60 s)"]

    def test_not_catching_up_within_the_drain_limit_fails(self) -> None:
        """The drain rule: total lag must reach 0 within the stated drain time after the stream."""
        report = passing_report()
        report.drain_error = "the worker did not catch up within 300 s of the stream's end"
        assert verdict(report) == (False, [report.drain_error])

    def test_too_few_samples_to_judge_rss_fails_and_says_so(self) -> None:
        """A run too short to judge memory does not pass by default."""
        report = passing_report()
        report.samples = report.samples[:3]
        assert verdict(report) == (False, ["too few samples to judge RSS"])
