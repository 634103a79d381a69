"""RunResult: the one value every output is rendered from (JSON, JUnit,
Markdown, summary table). Reports never re-read the scenario or the bus."""
from __future__ import annotations

from dataclasses import dataclass, field

from ..common.names import EXIT_CODES
from ..common.names import RUN_ERROR as ERROR  # noqa: F401  (re-exported for callers)
from ..common.names import RUN_FAILED as FAILED  # noqa: F401
from ..common.names import RUN_INTERRUPTED as INTERRUPTED  # noqa: F401
from ..common.names import RUN_PASSED as PASSED
from ..common.names import RUN_TIMED_OUT as TIMED_OUT  # noqa: F401

# 3: every flush, shutdown and producer entry holds every field of its type
# (evidence.FlushEvidence, ShutdownEvidence, load.generator.ProducerTruth);
# 2: the evidence is recorded, so `busbench check` can re-evaluate the checks
# from the record alone (fields added over time may be missing: converted by
# evidence.upgrade_record); 1: no evidence.
SCHEMA_VERSION = 3


def environment(scenario: dict | None = None) -> dict:
    """What decides whether two runs compare: see busbench/evidence/environment.py."""
    from .environment import describe
    return describe(scenario)


@dataclass
class StepRecord:
    index: int
    kind: str
    label: str
    started_s: float                 # since the run started
    duration_s: float = 0.0
    counters: dict = field(default_factory=dict)   # EventBusStats after the step
    details: dict = field(default_factory=dict)    # flush result, shutdown report, fault...


@dataclass
class RunResult:
    scenario_name: str
    scenario: dict                   # the scenario as run (overrides and seed applied)
    source: str                      # the file it came from
    target: str
    layout: str
    environment: dict
    started_at: str                  # ISO 8601, UTC
    status: str = PASSED
    duration_s: float = 0.0          # wall time of the whole run
    load_s: float = 0.0              # time producers were running (throughput's denominator)
    steps: list = field(default_factory=list)
    series: list = field(default_factory=list)     # counter samples at a fixed interval
    series_interval_s: float = 0.0
    throughput_samples: list = field(default_factory=list)  # events/s per interval under load
    counters: dict = field(default_factory=dict)   # final EventBusStats
    producers: tuple = ()            # ProducerTruth per producer (producer side)
    delivery: dict | None = None     # the witness's tallies and attributed drops (targets.base.Delivery)
    capabilities: dict = field(default_factory=dict)  # what evidence the target can provide
    backpressure: str | None = None
    flushes: tuple = ()              # evidence.FlushEvidence per flush step
    shutdown: object = None          # evidence.ShutdownEvidence, once shut down
    latency: dict | None = None      # {"corrected": summary, "uncorrected": summary}
    metrics: dict = field(default_factory=dict)
    checks: list = field(default_factory=list)     # Verdicts
    error: str | None = None
    gate: dict | None = None         # the --baseline regression gate, when asked for
    deadline: dict | None = None     # the watchdog's deadline: seconds, source, planned_s
    threads_left: list = field(default_factory=list)   # still alive after teardown (normally none)
    runs: list = field(default_factory=list)       # run --repeat N: each run's metrics (the gate's unit)
    # the supervised child (run/supervisor.py): pid, peak RSS, memory limit, startup; None in-process
    process: dict | None = None
    # how the child died (status crashed, or killed at the deadline): signal or exit code,
    # step, calls in flight, stderr tail, every thread's stack
    crash: dict | None = None

    @property
    def exit_code(self) -> int:
        return EXIT_CODES[self.status]

    def to_dict(self) -> dict:
        return {
            "schema_version": SCHEMA_VERSION,
            "scenario_name": self.scenario_name, "source": self.source, "target": self.target,
            "layout": self.layout, "status": self.status, "exit_code": self.exit_code,
            "error": self.error, "started_at": self.started_at, "duration_s": self.duration_s,
            "load_s": self.load_s, "environment": self.environment, "scenario": self.scenario,
            "counters": self.counters, "metrics": self.metrics,
            "latency": self.latency,
            "checks": [v.to_dict() for v in self.checks],
            "steps": [s.__dict__ for s in self.steps],
            "flushes": [f.to_dict() for f in self.flushes],
            "shutdown": None if self.shutdown is None else self.shutdown.to_dict(),
            "producers": [p.to_dict() for p in self.producers], "delivery": self.delivery,
            "capabilities": self.capabilities, "backpressure": self.backpressure,
            "evidence_quiescent": True, "gate": self.gate, "runs": self.runs,
            "deadline": self.deadline, "threads_left": self.threads_left,
            "process": self.process, "crash": self.crash,
            "throughput_samples": self.throughput_samples,
            "series_interval_s": self.series_interval_s, "series": self.series,
        }
