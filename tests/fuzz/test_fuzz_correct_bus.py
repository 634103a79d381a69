"""Property: on each correct bus (the builtin one, examples/c_bus through its C ABI,
examples/python_bus from Python threads), every generated scenario ends with every
applicable check passed or honestly not evaluable: no false failure, no silent loss
(recounted from the record's evidence), no hang (the watchdog bounds each run), no
traceback, no thread left running (issue 9 part 6, issue 18 part 7).

CI budget: FUZZ_EXAMPLES runs on the builtin bus and a third as many on each other
target (derandomized: the same scenarios every time), about 15-40 s in all on a
loaded 2-core machine. More, offline: ``python benchmarks/fuzz.py --examples 1000``.
"""
from __future__ import annotations

import os

import pytest
import scenario_fuzz as F
from hypothesis import HealthCheck, Phase, given, settings

FUZZ_EXAMPLES = int(os.environ.get("BUSBENCH_FUZZ_EXAMPLES", "48"))
EXAMPLES = {"builtin": FUZZ_EXAMPLES, "c_bus": max(1, FUZZ_EXAMPLES // 3),
            "python_bus": max(1, FUZZ_EXAMPLES // 3)}

pytestmark = pytest.mark.slow


def _property(target):
    @settings(max_examples=EXAMPLES[target], derandomize=True, database=None, deadline=None,
              phases=[Phase.explicit, Phase.generate], print_blob=True,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                     HealthCheck.filter_too_much])
    @given(F.correct_scenarios((target,)))
    def check(data):
        assert F.target_of(data) == target
        outcome = F.run_scenario(data)
        verdict, problems = F.judge_correct(outcome)
        assert verdict == "ok", f"{verdict}: " + "\n".join(problems) + "\n--- scenario ---\n" + outcome.yaml_text
    return check


@pytest.mark.parametrize("target", F.TARGETS)
def test_every_check_passes_or_is_honestly_not_evaluable_on_a_correct_bus(target):
    if target not in F.available_targets():
        pytest.skip(f"{target} needs a C compiler (cc or gcc)")
    _property(target)()
