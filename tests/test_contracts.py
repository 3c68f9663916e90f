"""The contracts of the extension points: every registered kind can run, and keeps the
invariants every kind must keep. (Detectors against their laws: tests/test_detection.py;
balancing policies: tests/test_balancing.py.)"""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

from sim import parse_scenario
from sim.model.cluster import Cluster
from sim.scenario import FAILURE_MODELS
from sim.streams import Streams

EXAMPLE_FAILURES = {
    "crash_repair": [
        {
            "kind": "crash_repair",
            "target": {"group": "web"},
            "time_to_failure": {"kind": "exponential", "mean": 3},
            "time_to_repair": {"kind": "exponential", "mean": 1},
        },
        {
            "kind": "crash_repair",
            "target": "balancer",
            "time_to_failure": {"kind": "exponential", "mean": 3},
            "time_to_repair": {"kind": "exponential", "mean": 1},
        },
    ],
    "crash": [
        {"kind": "crash", "target": {"server": "web-1"}, "at": 2, "duration": 3},
        {"kind": "crash", "target": "balancer", "at": 2, "duration": 3},
    ],
    "slowdown": [
        {"kind": "slowdown", "target": {"server": "web-1"}, "at": 2, "duration": 3, "factor": 20}
    ],
    "partition": [
        {"kind": "partition", "target": {"server": "web-2"}, "at": 2, "duration": 3},
        {"kind": "partition", "target": {"group": "web"}, "at": 2, "duration": 3},
    ],
    "zone_outage": [{"kind": "zone_outage", "zone": "default", "at": 4, "duration": 2}],
    "pause": [
        {"kind": "pause", "target": {"server": "web-1"}, "at": 2, "duration": 3},
        {
            "kind": "pause",
            "target": {"group": "web"},
            "duration": {"kind": "exponential", "mean": 0.5},
            "time_between": {"kind": "exponential", "mean": 2},
        },
    ],
}
EXAMPLES = [example for examples in EXAMPLE_FAILURES.values() for example in examples]


def test_every_failure_kind_has_an_example_here():
    assert set(EXAMPLE_FAILURES) == set(FAILURE_MODELS.names())


@pytest.mark.parametrize(
    "failure", EXAMPLES, ids=[f"{f['kind']} of {f.get('target', 'a zone')}" for f in EXAMPLES]
)
def test_every_failure_kind_ends_every_request_exactly_once(failure):
    """Arrivals stop at 10 s and the failure is long over by the end: every request that
    arrived has ended, once (a second end raises inside the model), and nothing is left in a
    queue, in service or counted as in flight at the balancer."""
    scenario = parse_scenario(
        {
            "duration": 300,
            "workload": {
                "arrivals": {"rate": 80, "profile": [{"at": 10, "rate": 0}]},
                "classes": [
                    {
                        "name": "r",
                        "share": 1,
                        "service_time": {"kind": "exponential", "mean": 0.05},
                        "timeout": 1,
                        "retries": {"max": 2, "backoff": 0.05},
                    }
                ],
            },
            "balancer": {"hot_migration": True, "outlier_ejection": {"consecutive_errors": 3}},
            "servers": [
                {
                    "name": "web",
                    "count": 3,
                    "workers": 2,
                    "queue_capacity": 5,
                    "standby": {"count": 1, "promotion_delay": 1},
                }
            ],
            "failures": [failure],
        }
    )
    cluster = Cluster.build(scenario, Streams(3))
    cluster.start()
    cluster.run(scenario.duration)
    recorder = cluster.recorder
    assert recorder.arrivals > 500
    assert cluster.client.in_flight == 0
    assert sum(sum(counts) for counts in recorder.causes) == recorder.arrivals
    assert all(server.busy == 0 and not server.queue for server in cluster.servers)
    assert all(backend.active == 0 for backend in cluster.backends)
    assert cluster.monitor.incidents, "the failure happened"


def _python(code: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True
    )


def test_a_detector_spec_without_a_process_fails_when_the_model_loads():
    result = _python(
        """
        from typing import Literal
        from sim.scenario import DETECTORS, HeartbeatSpec

        @DETECTORS.register("gossip")
        class GossipSpec(HeartbeatSpec):
            kind: Literal["gossip"] = "gossip"

        import sim.model.cluster
        """
    )
    assert result.returncode != 0
    assert "'gossip' can be named in a scenario but has no detector process" in result.stderr


def test_a_failure_spec_registered_later_fails_before_the_run_starts():
    result = _python(
        """
        from typing import Literal
        from sim import parse_scenario
        from sim.model.cluster import Cluster
        from sim.scenario import FAILURE_MODELS, CrashSpec
        from sim.streams import Streams

        @FAILURE_MODELS.register("meteor")
        class MeteorSpec(CrashSpec):
            kind: Literal["meteor"] = "meteor"

        scenario = parse_scenario({
            "duration": 10,
            "workload": {"arrivals": {"rate": 1}, "classes": [
                {"name": "r", "share": 1, "service_time": {"kind": "deterministic", "value": 1}}
            ]},
            "servers": [{"name": "web"}],
            "failures": [{"kind": "meteor", "target": {"server": "web-1"}, "at": 5}],
        })
        Cluster.build(scenario, Streams(1))
        print("built")
        """
    )
    assert result.returncode != 0 and "built" not in result.stdout
    assert "'meteor' can be named in a scenario but has no failure injector" in result.stderr
