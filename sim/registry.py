"""Registries: the one place where an extension point maps names to implementations.

Balancing policies, distributions and (later) failure models and replication strategies are all
looked up by the ``kind`` a user writes in a scenario. A registry answers an unknown name with
the list of known ones and a did-you-mean, so a typo never silently falls back to a default.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterator
from typing import Any, Generic, TypeVar

from pydantic_core import PydanticCustomError

__all__ = ["Registry", "UnknownNameError", "did_you_mean"]

T = TypeVar("T")


def did_you_mean(name: str, known: list[str] | tuple[str, ...]) -> str:
    """`` (did you mean 'x'?)`` for the closest known name, or an empty string."""
    close = difflib.get_close_matches(name, list(known), n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


class UnknownNameError(KeyError):
    """A name that is not in a registry; the message lists the known names."""

    def __str__(self) -> str:
        return str(self.args[0])


class Registry(Generic[T]):
    """Names to implementations for one extension point (e.g. ``"balancing policy"``)."""

    def __init__(self, what: str) -> None:
        self.what = what
        self._entries: dict[str, T] = {}

    def register(self, name: str) -> Callable[[T], T]:
        """Decorator that files an implementation under ``name``; a second use of a name fails."""

        def add(entry: T) -> T:
            if name in self._entries:
                raise ValueError(f"{self.what} {name!r} is already registered")
            self._entries[name] = entry
            return entry

        return add

    def names(self) -> list[str]:
        return list(self._entries)

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self._entries)

    def unknown_message(self, name: str) -> str:
        known = ", ".join(self._entries)
        return f"unknown {self.what} {name!r}{did_you_mean(name, self.names())}; known: {known}"

    def get(self, name: str) -> T:
        try:
            return self._entries[name]
        except KeyError:
            raise UnknownNameError(self.unknown_message(name)) from None

    def check_covers(self, specs: Registry) -> None:
        """Raise ``RuntimeError`` unless every name in ``specs`` (the kinds a scenario may name)
        has an entry here (what runs them): a kind that validates but cannot run is refused
        when the model is loaded or built, never in the middle of a run."""
        missing = [name for name in specs.names() if name not in self._entries]
        if missing:
            raise RuntimeError(
                f"{specs.what} {', '.join(map(repr, missing))} can be named in a scenario but"
                f" has no {self.what} to run it"
            )

    def validate_kind(self, value: Any) -> T:
        """The entry for a ``kind`` in a scenario, as a pydantic error when it is unknown."""
        if not isinstance(value, str):
            raise PydanticCustomError(
                "kind_type", "expected the name of a {what}", {"what": self.what}
            )
        if value not in self._entries:
            raise PydanticCustomError("unknown_kind", self.unknown_message(value))
        return self._entries[value]
