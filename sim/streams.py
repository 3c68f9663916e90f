"""Named random streams: one root seed, one independent numpy Generator per source of randomness.

Think of a casino where every table has its own sealed deck: adding a table, or changing how one
table plays, never reorders the cards at the others. Each stream is keyed by its *name* (not by
the order in which components ask for one), through ``SeedSequence(seed, spawn_key=...)``, which is
how numpy spawns children. So two balancing policies run on the same seed see the same arrivals,
the same service demands and the same failures: common random numbers, for free.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator

import numpy as np

__all__ = ["Streams", "UniformBlocks", "substream", "uniform_below", "uniforms"]


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


def substream(rng: np.random.Generator, name: str) -> np.random.Generator:
    """A child of ``rng``'s stream keyed by ``name``: independent of it and of its other
    children, and drawing nothing from it. A component given one stream can add a source of
    randomness (a feature that is off by default) without shifting the draws it already made."""
    parent = rng.bit_generator.seed_seq
    child = np.random.SeedSequence(parent.entropy, spawn_key=(*parent.spawn_key, *_name_key(name)))
    return np.random.Generator(np.random.PCG64(child))


def uniform_below(rng: np.random.Generator, high: float) -> float:
    """One uniform number on [0, ``high``) from ``rng``, for ``high`` a positive finite float
    (durations from specs): bit for bit ``rng.uniform(0, high)`` (numpy computes 0 + high x a
    double on [0, 1)), at a third of its cost, which goes to parsing the arguments of a call
    meant for arrays. Unlike numpy's, it does not check ``high``."""
    return high * rng.random()


def uniforms(rng: np.random.Generator, block: int = 4096) -> Iterator[float]:
    """An endless iterator of uniform [0, 1) numbers from ``rng``, drawn in blocks for speed.

    Drawing one number at a time from numpy costs about a microsecond of call overhead; the
    simulator draws millions. ``next()`` on this iterator gives the same sequence as drawing one
    at a time from the same stream, so blocks never change results.
    """
    while True:
        yield from rng.random(block).tolist()


class UniformBlocks:
    """Stands in for a Generator whose only draws are ``random()``: the same numbers in the
    same order, drawn from ``rng`` a block at a time (see :func:`uniforms`). numpy's scalar
    ``random()`` costs about 0.5 µs called in a loop and several µs called now and then,
    between other work, as a detector's delay is; a block costs a tenth of that a number.
    ``rng`` must be a stream of its own: the block draws ahead of what is used."""

    __slots__ = ("random",)

    def __init__(self, rng: np.random.Generator, block: int = 256) -> None:
        self.random: Callable[[], float] = uniforms(rng, block).__next__
        """The next uniform number on [0, 1) (the iterator's own, with no call in between)."""
