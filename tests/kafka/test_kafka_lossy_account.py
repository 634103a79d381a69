"""lossy_shutdown on a bus with no lossy flag but a per-message account (librdkafka's
delivery reports): every landed message got one report, every one reported delivered
is in the log, every one not in the log was reported failed."""
from __future__ import annotations

from busbench.common.names import FAILED, NOT_EVALUABLE, PASSED
from busbench.evidence.types import ShutdownEvidence
from busbench.load.generator import ProducerTruth
from busbench.scenario.schema import CheckSpec
from busbench.verdicts.checks import Evidence, lossy_shutdown


def _evidence(landed, in_log, delivered, failed, by_error=None, witness=True):
    producers = [ProducerTruth(offered=landed, landed=landed, refused=0, turned_away=0,
                               stranded=0, late=0, unsent=0, calls=1, retries=0, next_seq=landed)]
    delivery = {"received_by_shard": [[in_log]]} if witness else None
    shutdown = ShutdownEvidence(
        lossy=None, stranded_events=None, stranded_by_producer=None, abandoned_producers=None,
        duration_s=0.0, grace_s=0.0, residue=None,
        details={"account": {"delivered": [delivered], "failed": [failed],
                             "failed_by_error": by_error or {}}})
    return Evidence(counters={}, producers=producers, delivery=delivery, flushes=[],
                    shutdown=shutdown, metrics={}, quiescent=True,
                    capabilities={"reasons": {"delivery": "the mock cluster was killed"}})


def _check(ev, **kw):
    return lossy_shutdown(CheckSpec(kind="lossy_shutdown", **kw), ev)


def test_a_full_account_that_the_log_confirms_passes():
    v = _check(_evidence(100, 100, 100, 0))
    assert v.outcome == PASSED and "100 reported delivered, all in the log" in v.evidence


def test_messages_without_a_report_fail_even_when_the_log_has_them():
    v = _check(_evidence(100, 100, 0, 0))
    assert v.outcome == FAILED and "100 accepted message(s) got no delivery report" in v.evidence


def test_reported_delivered_but_missing_from_the_log_fails():
    v = _check(_evidence(100, 90, 100, 0))
    assert v.outcome == FAILED and "10 message(s) reported delivered are not in the log" in v.evidence


def test_reported_failed_but_in_the_log_fails_unless_purged_in_flight():
    queued = _check(_evidence(100, 100, 60, 40, {"-152 (Local: Purged in queue)": 40}))
    assert queued.outcome == FAILED and "40 message(s) reported failed are in the log" in queued.evidence
    inflight = _check(_evidence(100, 100, 60, 40, {"-151 (Local: Purged in flight)": 40}))
    assert inflight.outcome == PASSED and "40 of them are in the log anyway" in inflight.evidence


def test_the_expected_value_is_what_the_library_says():
    assert _check(_evidence(100, 60, 60, 40), value=False).outcome == FAILED
    assert _check(_evidence(100, 60, 60, 40), value=True).outcome == PASSED


def test_without_the_log_it_is_not_evaluable_and_says_why():
    v = _check(_evidence(100, 0, 100, 0, witness=False))
    assert v.outcome == NOT_EVALUABLE and "the mock cluster was killed" in v.evidence
