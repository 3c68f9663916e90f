"""Named random streams: one root seed, one independent numpy Generator per source of randomness.

Think of a casino where every table has its own sealed deck: adding a table, or changing how one
table plays, never reorders the cards at the others. Each stream is keyed by its *name* (not by
the order in which components ask for one), through ``SeedSequence(seed, spawn_key=...)``, which is
how numpy spawns children. So two balancing policies run on the same seed see the same arrivals,
the same service demands and the same failures: common random numbers, for free.
"""

from __future__ import annotations

import hashlib

import numpy as np

__all__ = ["Streams", "UniformBuffer"]


def _name_key(name: str) -> tuple[int, ...]:
    digest = hashlib.blake2b(name.encode("utf-8"), digest_size=16).digest()
    return tuple(int.from_bytes(digest[i : i + 4], "little") for i in range(0, 16, 4))


class Streams:
    """Factory of named, independent Generators for one replication of one scenario."""

    def __init__(self, seed: int, replication: int = 0) -> None:
        if seed < 0:
            raise ValueError(f"seed must be >= 0, got {seed}")
        if replication < 0:
            raise ValueError(f"replication must be >= 0, got {replication}")
        self.seed = seed
        self.replication = replication
        self._issued: set[str] = set()

    def seed_sequence(self, name: str) -> np.random.SeedSequence:
        return np.random.SeedSequence(self.seed, spawn_key=(self.replication, *_name_key(name)))

    def generator(self, name: str) -> np.random.Generator:
        """The Generator for ``name``; each name may be issued once, so no two users share one."""
        if name in self._issued:
            raise ValueError(f"random stream {name!r} was already issued")
        self._issued.add(name)
        return np.random.Generator(np.random.PCG64(self.seed_sequence(name)))


class UniformBuffer:
    """Uniform [0, 1) numbers drawn from a Generator in blocks: one numpy call per few thousand.

    Drawing one number at a time from numpy costs about a microsecond of call overhead; the
    simulator draws millions, so every sampler refills a buffer instead. The sequence is the same
    as drawing one at a time from the same stream, so buffering never changes results.
    """

    __slots__ = ("_block", "_buffer", "_index", "_rng")

    def __init__(self, rng: np.random.Generator, block: int = 4096) -> None:
        self._rng = rng
        self._block = block
        self._buffer: list[float] = []
        self._index = 0

    def next(self) -> float:
        index = self._index
        if index >= len(self._buffer):
            self._buffer = self._rng.random(self._block).tolist()
            index = 0
        self._index = index + 1
        return self._buffer[index]
