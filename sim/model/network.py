"""The network between components, as far as partial partitions cut it.

A full partition of a server (the balancer cannot reach it) is a state of the server itself
(:meth:`sim.model.server.Server.disconnect`). A partial one cuts links between two sets of
components, possibly one way only: the data tier's failover manager and a database node (the
node still serves its clients: split brain), a web server and a database node, a replica and
its master. Components ask :meth:`Network.reaches` before a message crosses a link; a link
is named by its two ends: ``failover_manager`` or a server's name.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable

__all__ = ["FAILOVER_MANAGER", "Network"]

FAILOVER_MANAGER = "failover_manager"


class Network:
    """Directed links cut by partitions; partitions that overlap on a link nest."""

    def __init__(self) -> None:
        self._cut: Counter[tuple[str, str]] = Counter()
        self.partial = False
        """Some link is cut now: until then every check is one attribute read."""
        self.listeners: list[Callable[[set[str]], None]] = []
        """Told of the ends of links that were cut or healed."""
        self._cut_since: dict[tuple[str, str], float] = {}

    def reaches(self, source: str, destination: str) -> bool:
        """Whether a message from ``source`` gets to ``destination``."""
        return not self.partial or (source, destination) not in self._cut

    def both_ways(self, one: str, other: str) -> bool:
        """Whether an exchange that needs an answer (a probe, a request) gets through."""
        return not self.partial or ((one, other) not in self._cut and (other, one) not in self._cut)

    def cut_since(self, source: str, destination: str) -> float | None:
        """When the link from ``source`` to ``destination`` was cut, None while it is not."""
        return self._cut_since.get((source, destination)) if self.partial else None

    def cut(self, links: Iterable[tuple[str, str]], now: float) -> None:
        ends = set()
        for link in links:
            self._cut[link] += 1
            if self._cut[link] == 1:
                self._cut_since[link] = now
                ends.update(link)
        self.partial = bool(self._cut)
        self._tell(ends)

    def heal(self, links: Iterable[tuple[str, str]]) -> None:
        ends = set()
        for link in links:
            self._cut[link] -= 1
            if self._cut[link] == 0:
                del self._cut[link]
                del self._cut_since[link]
                ends.update(link)
        self.partial = bool(self._cut)
        self._tell(ends)

    def _tell(self, ends: set[str]) -> None:
        if ends:
            for listener in self.listeners:
                listener(ends)
