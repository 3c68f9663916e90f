"""Every registered replication kind keeps the data tier's promises through the same crashes.

The cases run over ``REPLICATION_STRATEGIES``, so a kind is checked the day it is registered
(with its spec's defaults, plus the options listed in ``OPTIONS``). One shard of three nodes
takes reads and writes on 20 hot keys while its masters and replicas crash, are cut off, and
all go down at once; the workload stops at 40 s and the run goes on until every node has been
back for a while, so that nothing is left under way. The invariants (STYLE.md, rule 8):

1. Every database operation ends exactly once (answered or failed, never both, never twice,
   never left hanging), and so does the database phase of every request.
2. At most one node of a shard takes writes at a time unless the kind declares
   ``many_masters``: the node whose writes are acknowledged changes only by a promotion, to the
   node promoted.
3. No read sees an unacknowledged write: the version a read returns is one whose client had
   been told it was written.
"""

from __future__ import annotations

from collections import Counter

import pytest

from sim import parse_scenario
from sim.model.cluster import Cluster
from sim.model.replication import REPLICATION_STRATEGIES
from sim.scenario import REPLICATION_KINDS, MasterSlaveSpec
from sim.scenario.advice import advise
from sim.streams import Streams

OPTIONS = {
    "master_slave": [
        {"mode": "async", "read_from": "replicas", "promotion_delay": 1.0},
        {"mode": "semi_sync", "read_from": "replicas_within_lag", "promotion_delay": 1.0},
        {"mode": "sync", "read_from": "master", "promotion_delay": 1.0},
        {"mode": "async", "fencing": {"kind": "stonith", "reboot_time": 5}},
        {"mode": "semi_sync", "fencing": {"kind": "lease", "lease_time": 2}},
    ],
}
"""Options worth covering per kind, beyond its defaults (a kind not listed runs with them)."""

WORKLOAD_ENDS_S, DURATION_S = 40.0, 70.0

FAILURES = [
    {"kind": "crash", "target": {"server": "db-0-1"}, "at": 5, "duration": 8},
    {"kind": "crash", "target": {"server": "db-0-2"}, "at": 7, "duration": 3},
    {"kind": "partition", "target": {"server": "db-0-3"}, "at": 12, "duration": 5},
    # Every node down at once: nobody can take a write for a while.
    {"kind": "crash", "target": {"server": "db-0-1"}, "at": 20, "duration": 6},
    {"kind": "crash", "target": {"server": "db-0-2"}, "at": 20.5, "duration": 5},
    {"kind": "crash", "target": {"server": "db-0-3"}, "at": 21, "duration": 3},
    {"kind": "crash", "target": {"server": "db-0-2"}, "at": 30, "duration": 4},
    {"kind": "crash", "target": {"server": "db-0-3"}, "at": 31, "duration": 2},
    # The failover manager loses each node in turn while clients still reach it, then every
    # node freezes for a while: false suspicions of a live master, and split brain unless
    # fencing prevents it.
    {
        "kind": "partition",
        "target": {"server": "db-0-1"},
        "peer": "failover_manager",
        "at": 35,
        "duration": 3,
    },
    {
        "kind": "partition",
        "target": {"server": "db-0-2"},
        "peer": "failover_manager",
        "at": 36,
        "duration": 3,
    },
    {
        "kind": "partition",
        "target": {"server": "db-0-3"},
        "peer": "failover_manager",
        "at": 37,
        "duration": 3,
    },
    {"kind": "pause", "target": {"group": "db"}, "at": 41, "duration": 1.5},
]
"""All over by 35 s; detection takes at most 1 s and a promotion 1 s, so everything has
settled well before the run ends at 70 s."""


def cases():
    for kind in REPLICATION_STRATEGIES.names():
        for options in OPTIONS.get(kind, [{}]):
            for holding in ("fail", "wait"):
                label = "-".join([kind, *map(str, options.values()), holding])
                yield pytest.param(kind, options, holding, id=label)


def contract_scenario(kind: str, options: dict, holding: str) -> dict:
    """Half the requests read a key then write one, half only write (so writes meet a shard
    with no node up, while reads would have failed first)."""
    return {
        "seed": 5,
        "duration": DURATION_S,
        "warmup": 0,
        "workload": {
            "arrivals": {"rate": 80, "profile": [{"at": WORKLOAD_ENDS_S, "rate": 0}]},
            "classes": [
                {
                    "name": "order",
                    "share": 0.5,
                    "service_time": {"kind": "exponential", "mean": 0.001},
                    "database": {"reads": 1, "writes": 1},
                },
                {
                    "name": "update",
                    "share": 0.5,
                    "service_time": {"kind": "exponential", "mean": 0.001},
                    "database": {"writes": 1},
                },
            ],
        },
        "servers": [{"name": "web", "count": 2, "workers": 256}],
        "database": {
            "keys": {"count": 20, "popularity": "zipf"},
            "replication": {
                "kind": kind,
                "replicas": 2,
                "apply_delay": {"kind": "exponential", "mean": 0.1},
                "writes_during_failover": holding,
                **options,
            },
            "workers": 64,
            "read_time": {"kind": "exponential", "mean": 0.0005},
            "write_time": {"kind": "exponential", "mean": 0.0005},
            "detection": {"kind": "heartbeat", "interval": 0.5, "misses": 2},
        },
        "failures": FAILURES,
    }


class Observer:
    """Watches the data tier at its seams: a request's database phase starting and ending, an
    operation sent, held for want of a node, ended, read, or acknowledged to its writer."""

    def __init__(self, cluster: Cluster) -> None:
        self.tier = tier = cluster.data_tier
        self.env = cluster.env
        self.sent: dict[object, None] = {}
        self.held = 0
        self.ended: Counter = Counter()
        self.phases: Counter = Counter()
        self.phase_ends: Counter = Counter()
        self.commits: list[tuple[float, int]] = []
        self.acknowledged: set[int] = set()
        self.unacknowledged_reads: list[str] = []
        run, send, hold, fail, done = tier.run, tier._send, tier._hold, tier._fail, tier._done
        read, commit = tier._read, tier._commit

        def observed_run(attempt, class_name, reads, writes, on_done):
            self.phases[attempt] += 1

            def ended(attempt, cause):
                self.phase_ends[attempt] += 1
                on_done(attempt, cause)

            run(attempt, class_name, reads, writes, ended)

        def observed_send(operation, shard):
            self.sent[operation] = None
            send(operation, shard)

        def observed_hold(operation, shard):
            self.held += 1
            hold(operation, shard)

        def observed_fail(operation, shard, cause):
            self.ended[operation] += 1
            fail(operation, shard, cause)

        def observed_done(operation):
            self.ended[operation] += 1
            if operation.kind == "write":
                shard = tier.shards[int(tier.keys.shard_of_key[operation.key])]
                self.acknowledged.add(shard.log.last_write[operation.key].seq)
            done(operation)

        def observed_read(operation, shard):
            seen = tier.version_seen(shard, operation.node, operation.key)
            if seen and seen not in self.acknowledged:
                self.unacknowledged_reads.append(f"at {self.env.now:.3f}s: write #{seen}")
            read(operation, shard)

        def observed_commit(operation, shard, *acknowledgement):
            if operation.live:
                self.commits.append((self.env.now, operation.node))
            commit(operation, shard, *acknowledgement)

        tier.run, tier._send, tier._fail, tier._done = (
            observed_run,
            observed_send,
            observed_fail,
            observed_done,
        )
        tier._hold, tier._read, tier._commit = observed_hold, observed_read, observed_commit


def writers_without_promotion(commits: list[tuple[float, int]], events: list[dict]) -> list[str]:
    """Commits by a node other than the shard's writer: the first node that commits, then each
    node promoted (a promotion comes before the writes it lets through at the same instant)."""
    promotions = [
        (event["time_s"], 0, int(event["component"].rsplit("-", 1)[1]) - 1)
        for event in events
        if event["event"] == "promoted to master"
    ]
    timeline = sorted(promotions + [(time, 1, node) for time, node in commits])
    writer, problems = None, []
    for time, is_commit, node in timeline:
        if not is_commit or writer is None:
            writer = node
        elif node != writer:
            problems.append(
                f"db-0-{node + 1} took a write at {time:.3f}s while db-0-{writer + 1}"
                " was the master"
            )
    return problems


def test_every_registered_kind_has_a_spec_and_every_spec_a_strategy():
    assert set(REPLICATION_STRATEGIES.names()) == set(REPLICATION_KINDS.names())
    assert {"master_slave", "multi_master"} <= set(REPLICATION_STRATEGIES.names())


@pytest.mark.parametrize(("kind", "options", "holding"), cases())
def test_every_kind_keeps_the_data_tier_invariants_through_crashes(kind, options, holding):
    scenario = parse_scenario(contract_scenario(kind, options, holding))
    cluster = Cluster.build(scenario, Streams(scenario.seed))
    observer = Observer(cluster)
    cluster.start()
    cluster.run(DURATION_S)

    assert len(observer.sent) > 2000, "the workload reached the data tier"
    assert observer.held > 0 if holding == "wait" else observer.held == 0
    assert observer.unacknowledged_reads == []
    hanging = [op for op in observer.sent if observer.ended[op] == 0]
    assert hanging == [], f"{len(hanging)} operations never ended"
    twice = [op for op, count in observer.ended.items() if count > 1]
    assert twice == [], f"{len(twice)} operations ended more than once"
    assert all(count == 1 for count in observer.phase_ends.values())
    assert observer.phase_ends.keys() == observer.phases.keys()
    writers = {node for _, node in observer.commits}
    if not REPLICATION_STRATEGIES.get(kind).many_masters:
        events = cluster.monitor.events
        assert any(event["event"] == "promoted to master" for event in events)
        # Only fencing promises one master: without it, split brain is what is simulated.
        if scenario.database.replication.fencing.promises_one_master:
            assert writers_without_promotion(observer.commits, events) == []
        else:
            assert cluster.data_tier.split_brain_writes > 0, "the partitions made split brain"
    else:
        assert len(writers) > 1, "several masters took writes"


def test_a_replication_without_a_kind_is_master_slave_and_a_multi_master_says_what_it_ignores():
    bare = contract_scenario("master_slave", {}, "fail")
    del bare["database"]["replication"]["kind"]
    assert isinstance(parse_scenario(bare).database.replication, MasterSlaveSpec)
    switched = parse_scenario(
        contract_scenario("multi_master", {"mode": "sync", "promotion_delay": 3}, "fail")
    )
    assert [advice.path for advice in advise(switched)] == [
        "database.replication.mode",
        "database.replication.promotion_delay",
    ]
