"""compliance_audit's erasure_requests check: no request waits past its deadline, none failed."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

from securepipe.audit.checks import check_erasure_requests, run_check
from securepipe.erasure import request_status

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=timezone.utc)


def _run(run_id: str, state: str, hours_ago: float, took_hours: float | None = None) -> dict:
    submitted = NOW - timedelta(hours=hours_ago)
    return {"run_id": run_id, "state": state, "submitted_at": submitted,
            "end_date": submitted + timedelta(hours=took_hours) if took_hours is not None else None}


def test_requests_answered_in_time_pass():
    outcome = check_erasure_requests([_run("a", "success", 100, 1), _run("b", "queued", 5)], now=NOW)
    assert outcome["ok"] and outcome["details"]["requests"] == 2 and outcome["details"]["pending"] == 1


def test_a_request_waiting_past_the_deadline_fails():
    outcome = check_erasure_requests([_run("late", "queued", 73), _run("fresh", "running", 2)], now=NOW)
    assert not outcome["ok"] and outcome["details"]["overdue"] == [{"run_id": "late", "waited_hours": 73.0}]
    # A configured deadline replaces the default.
    assert check_erasure_requests([_run("late", "queued", 73)], deadline_hours=96, now=NOW)["ok"]
    assert not check_erasure_requests([_run("fresh", "running", 2)], deadline_hours=1, now=NOW)["ok"]


def test_a_failed_request_fails_until_it_is_rerun():
    outcome = check_erasure_requests([_run("broken", "failed", 3, 0.1)], now=NOW)
    assert not outcome["ok"] and outcome["details"]["failed"] == ["broken"]
    assert check_erasure_requests([_run("broken", "success", 3, 2)], now=NOW)["ok"]


def test_a_late_completion_is_recorded_but_passes():
    outcome = check_erasure_requests([_run("slow", "success", 200, 80)], now=NOW)
    assert outcome["ok"] and outcome["details"]["completed_late"] == 1


def test_by_name_through_the_registry():
    assert run_check("erasure_requests", requests=[_run("late", "queued", 80)], now=NOW)["ok"] is False


def test_status_shows_the_pseudonym_outcome_newest_first():
    rows = request_status([_run("manual__old", "success", 30, 1), _run("manual__new", "queued", 1)], now=NOW,
                          completed={"manual__old": {"subject_tokens": ["PATIENT_ab12"], "rows_removed": 2}})
    assert [r["run_id"] for r in rows] == ["manual__new", "manual__old"]
    assert rows[1]["subject_tokens"] == ["PATIENT_ab12"] and rows[1]["waited_hours"] == 1.0
    assert rows[0]["age_hours"] == 1.0 and rows[0]["subject_tokens"] == []


def test_the_audit_records_the_verdict_and_fails_the_task(state, kms_env):
    import pytest

    from securepipe.compliance import AuditSettings, run_check as audit_check
    from securepipe.config import aws_from_env
    from securepipe.errors import GateFailed

    waiting = _run("waiting", "queued", 80)
    waiting["submitted_at"] = datetime.now(timezone.utc) - timedelta(hours=80)
    settings = AuditSettings(audit_run_id="audit-1", state_dir=state / "state", kms_key_id=kms_env.key_arn,
                             aws=aws_from_env(), erasure_requests=[waiting], erasure_deadline_hours=96)
    assert audit_check("erasure_requests", settings)["ok"]
    settings.erasure_deadline_hours = None  # the default, 72 h
    with pytest.raises(GateFailed, match="erasure_requests"):
        audit_check("erasure_requests", settings)
    verdicts = [e["payload"] for e in settings.audit_log().entries() if e["event"] == "compliance.check"]
    assert [(v["check"], v["ok"]) for v in verdicts] == [("erasure_requests", True), ("erasure_requests", False)]
