"""The scheduler runs each job at its interval and remembers when across restarts."""

from __future__ import annotations

from pathlib import Path

from appliance.commands.scheduler import Job, due, run_once


def test_due_jobs_by_interval() -> None:
    jobs = (Job("a", 100, ("a",)), Job("b", 60, ("b",)))
    assert [j.name for j in due(jobs, {"a": 50.0, "b": 50.0}, 100.0)] == []
    assert [j.name for j in due(jobs, {"a": 50.0, "b": 50.0}, 110.0)] == ["b"]
    assert [j.name for j in due(jobs, {}, 1e9)] == ["a", "b"]  # never ran: due now


def test_run_once_records_the_run_and_a_failing_job_does_not_stop_others(tmp_path: Path
                                                                          ) -> None:
    state = tmp_path / "scheduler.json"
    jobs = (Job("bad", 10, ("no-such-subcommand",)), Job("ok", 10, ("--help",)))
    results = dict(run_once(jobs, state, now=1000.0))
    assert results["bad"] != 0 and results["ok"] == 0
    assert run_once(jobs, state, now=1005.0) == []  # not due again yet
    assert len(run_once(jobs, state, now=1011.0)) == 2
