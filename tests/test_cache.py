"""The cache tier: an LRU's hit ratio is Che's, a write invalidates its key, a crashed node
sends its reads to the database and comes back cold, and the database carries 1 - hit ratio of
the reads it carried without the cache.

Tolerances. Hits of an LRU are correlated (a key just requested is likely to be hit again), so
the standard error of a hit ratio comes from batch means: batches far longer than the
correlation time (about T_C references) are nearly independent, and their spread gives the
standard error; a bound of t(0.9999) standard errors is missed by chance once in ten thousand
runs. Che's approximation has an error of its own: against runs of 10^7 references (batch means
over 50 batches, standard error 0.0002) it was within 0.0003 at every point tested here (Zipf
0.8 to 1.2, 1,000 and 2,000 keys, C from 20 to 200), as Fricker, Robert and Roberts (2012)
explain: a key's presence depends on the others only through a sum of many small terms, which
concentrates at C. We allow 0.002 for it.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from sim import figures, parse_scenario, plots, run, theory
from sim.model.cache import CACHE_RING_SALT, LruCache
from sim.model.sharding import HashRing
from sim.reliability import markov_availability, simulate_years
from sim.results import RunFolder

CHE_ERROR = 0.002
"""What we allow for the error of Che's approximation itself (measured within 0.0003)."""
TINY = {"kind": "deterministic", "value": 1e-5}
"""A service time short enough that the order of operations is the order of requests: a fill
lands 20 us after its miss, while the hottest key is asked for every few milliseconds."""


def zipf(count: int, exponent: float) -> np.ndarray:
    weights = 1.0 / np.arange(1, count + 1, dtype=float) ** exponent
    return weights / weights.sum()


def batch_bound(batches: list[float], quantile: float = 0.9999) -> float:
    """t-quantile times the standard error of the mean of ``batches``."""
    values = np.asarray(batches, dtype=float)
    spread = stats.t.ppf(quantile, len(values) - 1) * values.std(ddof=1)
    return float(spread / math.sqrt(len(values)))


def cache_scenario(
    *,
    rate: float,
    keys: int,
    exponent: float,
    nodes: int,
    capacity: int,
    duration: float,
    warmup: float,
    step: float,
    cacheable: bool = True,
    write_share: float = 0.0,
    failures: list | None = None,
    seed: int = 1,
):
    """One read per request (and ``write_share`` of requests that write instead), on Zipf keys;
    every service so short that reads reach the cache as the Poisson arrivals they are."""
    classes = [
        {
            "name": "product",
            "share": 1 - write_share,
            "service_time": TINY,
            "database": {"reads": 1, "cacheable": cacheable},
        }
    ]
    if write_share:
        classes.append(
            {
                "name": "update",
                "share": write_share,
                "kind": "write",
                "service_time": TINY,
                "database": {"writes": 1},
            }
        )
    return parse_scenario(
        {
            "seed": seed,
            "duration": duration,
            "warmup": warmup,
            "metrics": {"step": step},
            "workload": {"arrivals": {"rate": rate}, "classes": classes},
            "servers": [{"name": "web", "count": 1, "workers": 1000}],
            "database": {
                "keys": {"count": keys, "popularity": "zipf", "zipf_exponent": exponent},
                "workers": 1000,
                "read_time": TINY,
                "write_time": TINY,
                "replication": {"replicas": 0},
                "cache": {"nodes": nodes, "capacity": capacity, "hit_time": TINY},
            },
            "failures": failures or [],
        }
    )


# -- the LRU against Che ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("keys", "exponent", "capacity"), [(1000, 0.8, 100), (1000, 1.0, 50), (1000, 1.2, 200)]
)
def test_an_lru_of_zipf_keys_hits_as_the_che_approximation_says(keys, exponent, capacity):
    p = zipf(keys, exponent)
    rng = np.random.default_rng(2002)
    cumulative = np.cumsum(p)
    lru = LruCache(capacity)
    characteristic = theory.che_characteristic_time(p, capacity)
    # Once C distinct keys have been asked for, an LRU holds the C most recent ones: a
    # function of the recent past alone, so the state is stationary from then on. 3 T_C
    # references bring sum(1 - exp(-3 p_i T_C)) > C distinct keys on average, far more in fact.
    warmup = np.searchsorted(cumulative, rng.random(int(3 * characteristic) + capacity))
    for key in np.minimum(warmup, keys - 1).tolist():
        if not lru.get(key):
            lru.put(key)
    assert len(lru) == capacity
    batches, batch = 20, 20_000  # each batch is 70 to 400 characteristic times long
    ratios = []
    for _ in range(batches):
        draws = np.minimum(np.searchsorted(cumulative, rng.random(batch)), keys - 1)
        hits = 0
        for key in draws.tolist():
            if lru.get(key):
                hits += 1
            else:
                lru.put(key)
        ratios.append(hits / batch)
    measured, che = float(np.mean(ratios)), theory.che_hit_ratio(p, capacity)
    bound = batch_bound(ratios)
    assert bound < 0.01, "the run is too short for a bound that means anything"
    assert abs(measured - che) <= bound + CHE_ERROR, (measured, che, bound)
    assert lru.evictions > 0 and len(lru) == capacity  # memory bounded by the capacity


def test_an_lru_holds_its_capacity_and_evicts_the_least_recently_used():
    lru = LruCache(2)
    lru.put(1)
    lru.put(2)
    assert lru.get(1)  # 1 is now the most recent: 2 goes first
    lru.put(3)
    assert 2 not in lru and 1 in lru and 3 in lru and lru.evictions == 1
    lru.delete(1)
    assert not lru.get(1) and len(lru) == 1


# -- a run's hit ratio, over two nodes ---------------------------------------------------------

CHE_RUN = dict(rate=2000.0, keys=2000, exponent=0.9, nodes=2, capacity=100, step=3.0)


@pytest.fixture(scope="module")
def cached_run():
    return run(cache_scenario(**CHE_RUN, duration=63.0, warmup=3.0))


def che_over_nodes(keys: int, exponent: float, nodes: int, capacity: int) -> float:
    """Each node is an LRU of its own keys, asked by a thinned (still independent) stream: the
    hit ratio is the nodes' Che ratios weighted by their shares of the requests."""
    p = zipf(keys, exponent)
    node_of_key = HashRing(nodes, 160, salt=CACHE_RING_SALT).shard_of(np.arange(keys))
    ratio = 0.0
    for node in range(nodes):
        mine = p[node_of_key == node]
        ratio += mine.sum() * theory.che_hit_ratio(mine / mine.sum(), capacity)
    return ratio


def test_a_runs_hit_ratio_emerges_from_key_popularity_as_che_predicts_per_node(cached_run):
    cache = cached_run.summary["data"]["cache"]
    assert cache["lookups"] == cache["hits"] + cache["misses"]
    assert cache["failed_lookups"] == 0
    che = che_over_nodes(CHE_RUN["keys"], CHE_RUN["exponent"], 2, CHE_RUN["capacity"])
    # 20 rows of 3 s, about 6,000 look-ups each, against T_C of about 130 references per
    # node: batch means. The first row (the warm-up, the cache filling) is left out.
    rows = cached_run.timeseries.iloc[1:]
    assert len(rows) == 20
    bound = batch_bound(rows["cache.hit_ratio"].tolist())
    assert bound < 0.01
    assert abs(cache["hit_ratio"] - che) <= bound + CHE_ERROR, (cache["hit_ratio"], che, bound)
    assert cache["evictions"] > 0 and cache["fills"] == cache["misses"]


def test_without_the_cache_the_database_serves_one_over_one_minus_the_hit_ratio(cached_run):
    """Same seed, same arrivals and same key draws (named streams): only the cache differs. The
    requests in flight at the window's edges, a few in 10^5 with 20 us services, are the only
    difference between the reads issued in the two runs, hence 10^-3."""
    without = run(cache_scenario(**CHE_RUN, duration=63.0, warmup=3.0, cacheable=False))
    assert "cache" in without.summary["data"]  # the cache is there, and nobody asks it
    assert without.summary["data"]["cache"]["lookups"] == 0
    hit_ratio = cached_run.summary["data"]["cache"]["hit_ratio"]
    ratio = cached_run.summary["data"]["reads"] / without.summary["data"]["reads"]
    assert ratio == pytest.approx(1 - hit_ratio, rel=1e-3)
    # The time series says the same, row by row: the database's read rate.
    with_rate = cached_run.timeseries["db.reads_per_s"].iloc[1:].sum()
    without_rate = without.timeseries["db.reads_per_s"].iloc[1:].sum()
    assert with_rate / without_rate == pytest.approx(1 - hit_ratio, rel=1e-3)


def test_a_cache_nobody_reads_changes_nothing_in_the_database():
    """Its writes' deletions run on the cache's own servers and random stream: every figure of
    the database and of the requests is the run's without a cache, to the last bit."""
    scenario = cache_scenario(
        rate=500.0,
        keys=100,
        exponent=1.0,
        nodes=1,
        capacity=10,
        duration=20.0,
        warmup=2.0,
        step=5.0,
        cacheable=False,
        write_share=0.3,
    )
    plain = scenario.to_dict()
    del plain["database"]["cache"]
    with_cache, without = run(scenario).summary, run(parse_scenario(plain)).summary
    cache = with_cache["data"].pop("cache")
    assert cache["invalidations"] > 0
    with_cache.pop("scenario"), without.pop("scenario")
    assert with_cache == without


# -- invalidation on write ---------------------------------------------------------------------


def test_a_write_invalidates_its_key_so_the_next_read_misses():
    """One key, read at rate r and written at rate w (Poisson): with invalidate-on-write a read
    misses exactly when the event before it was a write, so the hit ratio is r / (r + w). The
    labels of a merged Poisson stream are independent, so the misses are binomial. Without
    invalidation every read after the first would hit."""
    read_rate, write_rate = 450.0, 50.0
    result = run(
        cache_scenario(
            rate=read_rate + write_rate,
            keys=1,
            exponent=1.0,
            nodes=1,
            capacity=1,
            duration=41.0,
            warmup=1.0,
            step=10.0,
            write_share=0.1,
        )
    )
    cache = result.summary["data"]["cache"]
    expected = read_rate / (read_rate + write_rate)
    lookups = cache["lookups"]
    bound = stats.norm.ppf(0.99995) * math.sqrt(expected * (1 - expected) / lookups)
    assert abs(cache["hit_ratio"] - expected) <= bound, (cache["hit_ratio"], expected, bound)
    assert cache["invalidations"] == result.summary["data"]["writes"]


# -- a node that crashes comes back cold -------------------------------------------------------


def test_a_crashed_cache_node_sends_its_reads_to_the_database_and_comes_back_cold():
    """One node holding every key (no eviction), reads at 1000/s on 2,000 Zipf(0.9) keys; it
    crashes at 20 s and restarts empty at 30 s.

    While it is down every look-up is refused at once and read from the database. After the
    restart, a cold cache that evicts nothing misses each key once, at its first request: in
    the second [k, k + 1) after the restart the database reads the keys first asked for then,
    a sum of independent Bernoulli variables of mean exp(-r_i k) - exp(-r_i (k + 1)), with
    r_i = 1000 p_i (Poisson streams per key). So the database's read rate just after the
    restart is the read rate times (1 - the cold hit ratio of that second), not the warm one.
    Bound: 4.5 standard deviations of that sum."""
    rate, keys, exponent = 1000.0, 2000, 0.9
    result = run(
        cache_scenario(
            rate=rate,
            keys=keys,
            exponent=exponent,
            nodes=1,
            capacity=keys,
            duration=40.0,
            warmup=1.0,
            step=1.0,
            failures=[{"kind": "crash", "target": {"group": "cache"}, "at": 20, "duration": 10}],
        )
    )
    rows = result.timeseries.set_index("time_s")
    down = rows.loc[20:29]
    assert (down["cache.hits"] == 0).all()
    # Refused at once: every look-up of those seconds was a database read in the same second.
    assert (down["db.reads_per_s"] == down["cache.lookups"]).all()
    assert down["db.reads_per_s"].mean() == pytest.approx(rate, rel=4.5 / math.sqrt(10 * rate))
    warm = rows.loc[15:19, "cache.hit_ratio"].mean()
    rates = rate * zipf(keys, exponent)
    for second in range(3):
        before, _ = theory.cold_cache_misses(rates, second)
        through, _ = theory.cold_cache_misses(rates, second + 1)
        seen = -np.expm1(-rates * (second + 1)) - (-np.expm1(-rates * second))
        mean, variance = through - before, float(np.sum(seen * (1 - seen)))
        measured = rows.loc[30 + second, "db.reads_per_s"]  # a 1 s row: reads in that second
        assert abs(measured - mean) <= 4.5 * math.sqrt(variance), (second, measured, mean)
    first_second_hit_ratio = 1 - theory.cold_cache_misses(rates, 1.0)[0] / rate
    assert first_second_hit_ratio < warm - 0.1  # the spike: colder than before the crash
    assert result.summary["data"]["cache"]["failed_lookups"] == down["cache.lookups"].sum()
    (incident,) = result.incidents.itertuples()
    assert incident.component == "cache-1" and incident.time_to_recover_s == 10


def test_cache_node_outages_cost_the_database_load_not_availability():
    """The shard chain ignores cache nodes' failures, and the long-horizon mode (no requests)
    finds them cost no downtime: a cache node down sends its reads to the database."""
    scenario = cache_scenario(
        rate=100.0,
        keys=100,
        exponent=1.0,
        nodes=2,
        capacity=10,
        duration=10.0,
        warmup=1.0,
        step=5.0,
    )
    cache_failure = {
        "kind": "crash_repair",
        "target": {"group": "cache"},
        "time_to_failure": {"kind": "exponential", "mean": 3600},
        "time_to_repair": {"kind": "exponential", "mean": 600},
    }
    database_failure = {**cache_failure, "target": {"group": "db"}}
    data = scenario.to_dict()
    data["failures"] = [database_failure]
    alone = parse_scenario(data)
    data["failures"] = [cache_failure, database_failure]
    with_cache_failures = parse_scenario(data)
    assert markov_availability(alone)["value"] < 1
    assert markov_availability(with_cache_failures) == markov_availability(alone)
    data["failures"] = [cache_failure]
    years = simulate_years(parse_scenario(data), 0.5, seed=1, replication=0)
    assert years["availability"]["downtime_s"] == 0
    assert years["incidents"]["count"] > 100  # about 2 nodes x 0.5 years / 70 minutes


def test_a_run_with_a_cache_draws_its_hit_ratio_and_the_database_load(cached_run, tmp_path):
    (tmp_path / "run").mkdir()
    folder = RunFolder(tmp_path / "run")
    folder.write_scenario(cached_run.scenario.to_dict())
    folder.write_result(cached_run)
    written = {path.name for path in figures.draw_folder(tmp_path / "run")}
    assert "cache.png" in written
    figure = plots.cache_and_database_load(cached_run.timeseries, cached_run.events)
    top, bottom = figure.axes
    assert top.get_ylabel() == "hit ratio (%)" and bottom.get_ylabel() == "operations per second"


def test_a_cache_node_cut_off_from_its_clients_misses_after_the_timeout_and_keeps_its_keys():
    """A partition is not a crash: look-ups wait the connect timeout (1 s here) and read from
    the database, and when the link heals the node answers from the keys it kept."""
    result = run(
        cache_scenario(
            rate=200.0,
            keys=100,
            exponent=1.0,
            nodes=1,
            capacity=100,
            duration=20.0,
            warmup=1.0,
            step=1.0,
            failures=[
                {
                    "kind": "partition",
                    "target": {"server": "cache-1"},
                    "peer": {"group": "web"},
                    "at": 5,
                    "duration": 5,
                },
            ],
        )
    )
    rows = result.timeseries.set_index("time_s")
    assert (rows.loc[6:9, "cache.hits"] == 0).all()  # answers of 5 s to 6 s came before
    assert (rows.loc[6:9, "db.reads_per_s"] > 150).all()  # every read, about 200/s
    assert rows.loc[11:19, "cache.hit_ratio"].min() > rows.loc[2:4, "cache.hit_ratio"].min() - 0.05
    assert result.summary["data"]["cache"]["failed_lookups"] > 900
