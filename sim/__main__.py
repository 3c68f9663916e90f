"""``python -m sim`` is the ``ecsim`` command."""

from sim.cli import main

main(prog_name="ecsim")
