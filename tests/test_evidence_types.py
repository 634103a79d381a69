"""Typed evidence (evidence.py): FlushEvidence, ShutdownEvidence and the
producers' tallies (ProducerTruth) go to the record through ``to_dict`` and come
back through ``from_dict`` exactly, also across JSON (a record, or a child
process streaming evidence); a schema 2 record is converted to be re-evaluated,
an older one refused (exit 2)."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from busbench.common import names as N
from busbench.evidence.types import (
    Evidence,
    EvidenceFormatError,
    FlushEvidence,
    ShutdownEvidence,
    upgrade_record,
)
from busbench.load.generator import ProducerTruth
from busbench.evidence.result import SCHEMA_VERSION
from busbench.run.runner import Runner
from busbench.scenario.schema import Scenario
from busbench.targets.builtin import BuiltinTarget
from tests.cli_helpers import cli, flat

V2_RECORD = Path(__file__).parent / "data" / "record_schema2.json"


def through_json(d: dict) -> dict:
    return json.loads(json.dumps(d))


def test_a_real_runs_evidence_round_trips_exactly_through_json():
    """The evidence of a run with a flush, a lossy shutdown and a witness: every
    piece the checks read comes back equal, typed, after JSON."""
    sc = Scenario.model_validate({
        "name": "roundtrip", "description": "evidence round trip", "seed": 5,
        "bus": {"shards": 2, "capacity": 1024, "adapter": {"kind": "verify"}},
        "load": {"producers": 2, "batch": 16, "rate": "200k/s"},   # open loop: a push in flight
        "steps": [{"run": {"events": 2000}}, "flush",
                  {"fault": {"stall_producer": {"producer": 1, "after": "1ms", "for": "300ms"}}},
                  {"run": {"events": 2000}}, {"shutdown": {"grace": "0ms"}}],
        "checks": ["conservation", "ground_truth", "flush_barrier", "lossy_shutdown"]})
    runner = Runner(sc, "roundtrip.yaml", target=BuiltinTarget.from_scenario(sc))
    seen = []
    record_verdicts = runner._record_verdicts
    runner._record_verdicts = lambda specs, at: seen.append(record_verdicts(specs, at)) or seen[-1]
    result = runner.run()
    assert result.status == N.RUN_PASSED, (result.error, [v.evidence for v in result.checks])
    [ev] = seen
    assert len(ev.flushes) == 1 and ev.shutdown is not None and ev.delivery is not None
    assert ev.shutdown.lossy is True and sum(p.stranded for p in ev.producers) > 0
    back = Evidence.from_dict(through_json(ev.to_dict()))
    assert back == ev
    assert isinstance(back.flushes[0], FlushEvidence) and isinstance(back.producers[0], ProducerTruth)
    assert isinstance(back.shutdown, ShutdownEvidence)
    # The record holds the same evidence at its top level: read back, equal
    record = through_json(result.to_dict())
    assert record["schema_version"] == SCHEMA_VERSION == 3
    from_record = Evidence.from_dict({**record, "quiescent": True})
    assert from_record.flushes == ev.flushes and from_record.producers == ev.producers
    assert from_record.shutdown == ev.shutdown


tables = st.one_of(st.none(), st.lists(st.lists(st.integers(-1, 2**40), min_size=1, max_size=3),
                                       min_size=1, max_size=3))
json_values = st.recursive(st.one_of(st.none(), st.booleans(), st.integers(-2**62, 2**62),
                                     st.text(max_size=5)),
                           lambda inner: st.one_of(st.lists(inner, max_size=3),
                                                   st.dictionaries(st.text(max_size=4), inner,
                                                                   max_size=3)), max_leaves=8)


@settings(max_examples=60, deadline=None, derandomize=True)
@given(st.fixed_dictionaries({
    "step": st.integers(0, 50), "timeout_s": st.floats(0, 10), "under_load": st.booleans(),
    "claimed_reached": st.booleans(), "timed_out": st.booleans(), "waited_s": st.floats(0, 10),
    "landed_before": tables, "last_landed_before": tables, "witness": st.none() | st.text(max_size=8),
    "evicted_before": tables, "received_after": tables, "last_received_after": tables,
    "evicted_after": tables, "rejected_after": tables,
    "positions": st.dictionaries(st.text(max_size=4), json_values, max_size=3),
    "witness_shortfall": st.none() | st.integers(0, 10**9),
    "details": st.dictionaries(st.text(max_size=4), json_values, max_size=3)}))
def test_flush_evidence_round_trips_exactly(d):
    f = FlushEvidence.from_dict(d)
    assert f.to_dict() == d
    assert FlushEvidence.from_dict(through_json(f.to_dict())) == f


@settings(max_examples=40, deadline=None, derandomize=True)
@given(st.none() | st.lists(st.integers(0, 10**6), max_size=4), st.none() | st.booleans(),
       st.dictionaries(st.text(max_size=4), json_values, max_size=3))
def test_shutdown_evidence_round_trips_exactly(stranded, lossy, details):
    sd = ShutdownEvidence(lossy=lossy, stranded_events=None if stranded is None else sum(stranded),
                          stranded_by_producer=None if stranded is None else tuple(stranded),
                          abandoned_producers=(1,), duration_s=0.25, grace_s=0.0, residue=0,
                          details=details)
    assert ShutdownEvidence.from_dict(through_json(sd.to_dict())) == sd


def test_from_dict_is_strict_and_names_the_key():
    f = FlushEvidence.from_dict({**json.loads(V2_RECORD.read_text())["flushes"][0],
                                 "witness_shortfall": None, "details": {}})
    d = f.to_dict()
    del d["waited_s"]
    with pytest.raises(EvidenceFormatError, match="flush evidence: missing waited_s"):
        FlushEvidence.from_dict(d)
    with pytest.raises(EvidenceFormatError, match="unknown reached"):
        FlushEvidence.from_dict({**f.to_dict(), "reached": True})
    p = ProducerTruth(*range(11))
    with pytest.raises(ValueError, match="missing unsent"):
        ProducerTruth.from_dict({k: v for k, v in p.to_dict().items() if k != "unsent"})
    with pytest.raises(TypeError, match="not ProducerTruth"):
        Evidence(counters={}, producers=[p.to_dict()], delivery=None, flushes=[], shutdown=None,
                 metrics={}, quiescent=True)


def test_a_schema_2_record_is_converted_with_what_each_missing_field_meant():
    record = json.loads(V2_RECORD.read_text())
    assert record["schema_version"] == 2 and "unsent" not in record["producers"][0]
    up = upgrade_record(record)
    assert up["schema_version"] == SCHEMA_VERSION and up["converted_from_schema"] == 2
    assert up["flushes"][0]["witness_shortfall"] is None and up["flushes"][0]["details"] == {}
    assert up["producers"][0]["unsent"] is None        # not counted then: unknown, never 0
    assert up["shutdown"]["details"] == {}
    step_ev = next(s["details"]["evidence"] for s in up["steps"] if "evidence" in s["details"])
    assert Evidence.from_dict(step_ev).flushes[0].witness_shortfall is None
    assert "unsent" not in record["producers"][0]      # the input is left as it was


def test_busbench_check_re_evaluates_a_schema_2_record(tmp_path):
    ok = cli("check", V2_RECORD)
    assert ok.exit_code == 0, ok.output
    assert "lossy_shutdown" in ok.output and "flush_barrier (step 2)" in flat(ok.output)
    assert "record schema 2, read as schema 3" in flat(ok.output)
    # The converted evidence is judged, not waved through: the bus's flag turned false
    record = json.loads(V2_RECORD.read_text())
    record["counters"][N.SHUTDOWN_WAS_LOSSY] = False
    (tmp_path / "tampered.json").write_text(json.dumps(record))
    bad = cli("check", tmp_path / "tampered.json")
    assert bad.exit_code == 1, bad.output
    assert "the record says passed, re-evaluated failed" in flat(bad.output)


@pytest.mark.parametrize("version", [1, 4, None])
def test_busbench_check_refuses_other_schemas_with_exit_2(tmp_path, version):
    record = json.loads(V2_RECORD.read_text())
    record["schema_version"] = version
    path = tmp_path / "other.json"
    path.write_text(json.dumps(record))
    r = cli("check", path)
    assert r.exit_code == 2, r.output
    said = flat(r.output)
    assert f"record schema {version!r}" in said and "converts schema 2" in said
    assert "Traceback" not in r.output
