"""Property: for each mutation, scenarios drawn from a strategy built to
provoke it catch it in every run where the bug manifested (issue 9 part 6).

How a run shows the bug manifested is read from the record's evidence, not
from the checks' verdicts (``scenario_fuzz.MUTATIONS``): the verify adapter
received more than events_dispatched says; a flush claimed success with a
shard's positions behind its target; events offered and never received,
refused, evicted, rejected nor stranded; a producer's push stranded by its
own count; evictions in the bus's per-producer tally; refusals by the
producers' count. A run where it did not manifest proves nothing and is
only counted.
"""
from __future__ import annotations

import os

import pytest
import scenario_fuzz as F
from hypothesis import HealthCheck, Phase, event, given, settings

EXAMPLES_PER_MUTATION = int(os.environ.get("BUSBENCH_FUZZ_MUTATION_EXAMPLES", "8"))

pytestmark = pytest.mark.slow

CI = settings(max_examples=EXAMPLES_PER_MUTATION, derandomize=True, database=None, deadline=None,
              phases=[Phase.explicit, Phase.generate], print_blob=True,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                     HealthCheck.filter_too_much])


def _property(mutation):
    @CI
    @given(F.strategy_for(mutation))
    def check(data):
        outcome = F.run_scenario(data)
        verdict, detail = F.judge_mutation(mutation, outcome)
        event(verdict)
        assert verdict in ("caught", "not_manifested"), \
            f"{mutation}: {verdict}: {detail}\n--- scenario ---\n{outcome.yaml_text}"
    return check


@pytest.mark.parametrize("mutation", sorted(F.MUTATIONS))
def test_a_mutation_is_caught_in_every_run_where_it_manifested(mutation):
    _property(mutation)()


def test_every_mutation_of_the_schema_has_a_provoking_strategy():
    from busbench.scenario.schema import MUTATIONS
    assert set(F.MUTATIONS) == set(MUTATIONS)
