"""``python -m sim`` is the ``ecsim`` command."""

from sim.cli import entry

entry()
