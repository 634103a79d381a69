"""JUnit XML: one test case per check, so CI systems show each invariant."""
from __future__ import annotations

import xml.etree.ElementTree as ET

from ..common.names import (NOT_EVALUABLE, NOT_OBSERVABLE, OUTCOME_WORDS, RUN_CRASHED,
                            RUN_INCOMPLETE, RUN_TIMED_OUT)

#: a run that ended so: each check it could not judge is an error naming why, not a failure
_BROKEN = (RUN_CRASHED, RUN_TIMED_OUT)


def render(results) -> str:
    """One <testsuite> per scenario run, one <testcase> per verdict."""
    suites = ET.Element("testsuites", name="busbench")
    for r in results:
        broken = r.status in _BROKEN
        failures = 0 if broken else sum(1 for v in r.checks if not v.ok)
        errors = (1 if r.status in RUN_INCOMPLETE else 0) + (
            sum(1 for v in r.checks if not v.ok) if broken else 0)
        suite = ET.SubElement(suites, "testsuite", name=r.scenario_name,
                              tests=str(max(1, len(r.checks))), failures=str(failures),
                              errors=str(errors), time=f"{r.duration_s:.3f}",
                              timestamp=r.started_at)
        for v in r.checks:
            case = ET.SubElement(suite, "testcase", classname=f"busbench.{r.scenario_name}",
                                 name=v.name if v.at == "end" else f"{v.name} ({v.at})", time="0")
            if not v.ok and broken:
                msg = r.error or r.status
                if v.evidence and v.evidence not in msg:
                    msg += f" ({OUTCOME_WORDS[v.outcome]}: {v.evidence})"
                ET.SubElement(case, "error", message=msg[:500], type=r.status).text = msg
            elif not v.ok:
                if v.outcome in (NOT_EVALUABLE, NOT_OBSERVABLE):
                    msg = f"{OUTCOME_WORDS[v.outcome]}: {v.evidence}"
                elif v.expect == "fail":
                    msg = f"expected to fail, but passed: {v.evidence}"
                else:
                    msg = v.evidence
                ET.SubElement(case, "failure", message=msg[:500], type=v.kind).text = msg
            else:
                ET.SubElement(case, "system-out").text = v.evidence
        if r.status in RUN_INCOMPLETE:
            case = ET.SubElement(suite, "testcase", classname=f"busbench.{r.scenario_name}",
                                 name="run", time=f"{r.duration_s:.3f}")
            ET.SubElement(case, "error", message=r.error or r.status, type=r.status)
    ET.indent(suites)
    return ET.tostring(suites, encoding="unicode", xml_declaration=True) + "\n"
