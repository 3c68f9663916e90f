"""Keys and shards: which keys are popular, and which shard owns each key.

Shards own arcs of a consistent-hash ring, each through many virtual nodes, so that adding a
shard moves only about 1/(N+1) of the keys (Karger et al.) and each shard gets a near-equal
share. Keys are numbered 0..count-1 by popularity rank: with Zipf popularity key 0 is the
hottest, and the shard that owns it is the hot spot. Plain numpy, no simulation here.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

__all__ = ["HashRing", "KeySpace"]

_MASK = np.uint64(0xFFFFFFFFFFFFFFFF)


def _mix(values: np.ndarray) -> np.ndarray:
    """splitmix64's finalizer: a fast, well-spread 64-bit hash of integers, vectorized."""
    z = values.astype(np.uint64)
    with np.errstate(over="ignore"):
        z = (z + np.uint64(0x9E3779B97F4A7C15)) & _MASK
        z = ((z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)) & _MASK
        z = ((z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)) & _MASK
        return z ^ (z >> np.uint64(31))


class HashRing:
    """A consistent-hash ring of ``shards`` shards with ``virtual_nodes`` points each.

    Rings of another ``salt`` place their points elsewhere: how a key falls on one ring says
    nothing of how it falls on another (the database's shards and the cache's nodes)."""

    def __init__(self, shards: int, virtual_nodes: int, salt: int = 0) -> None:
        if not 0 <= salt < 1 << 16:
            raise ValueError(f"salt must be in [0, 65536), got {salt}")
        self.shards = shards
        first = (1 << 40) + (salt << 44)
        labels = np.arange(shards * virtual_nodes, dtype=np.uint64) + np.uint64(first)
        points = _mix(labels)
        owners = np.repeat(np.arange(shards), virtual_nodes)
        order = np.argsort(points, kind="stable")
        self._points = points[order]
        self._owners = owners[order]

    def shard_of(self, keys: np.ndarray) -> np.ndarray:
        """The shard of each key: the owner of the first ring point at or after its hash."""
        positions = np.searchsorted(self._points, _mix(np.asarray(keys)), side="left")
        return self._owners[positions % len(self._points)]


class KeySpace:
    """``count`` keys with uniform or Zipf popularity, and the shard of each."""

    def __init__(self, count: int, popularity: str, exponent: float, ring: HashRing) -> None:
        self.count = count
        if popularity == "zipf":
            weights = 1.0 / np.arange(1, count + 1, dtype=float) ** exponent
            self.probabilities = weights / weights.sum()
        else:
            self.probabilities = np.full(count, 1.0 / count)
        self._cumulative = np.cumsum(self.probabilities)
        self._cumulative[-1] = 1.0
        self.shard_of_key = ring.shard_of(np.arange(count)).astype(np.int32)

    def shard_shares(self, shards: int) -> np.ndarray:
        """The fraction of accesses that land on each shard."""
        shares = np.bincount(self.shard_of_key, weights=self.probabilities, minlength=shards)
        return np.minimum(shares, 1.0)  # a sum of a million weights can round past 1

    def sampler(self, rng: np.random.Generator, block: int = 1024) -> Iterator[tuple[int, int]]:
        """Endless (key, shard) draws by popularity, in blocks for speed."""
        shard_of_key = self.shard_of_key
        while True:
            keys = np.searchsorted(self._cumulative, rng.random(block), side="right")
            keys = np.minimum(keys, self.count - 1)
            yield from zip(keys.tolist(), shard_of_key[keys].tolist(), strict=True)
