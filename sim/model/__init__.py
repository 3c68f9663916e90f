"""The SimPy world: users, client, balancer, servers, wired by :class:`Cluster`.

Only this package and :mod:`sim.experiment` import simpy; specs, analysis, theory, plots and
results never import the model.
"""

from sim.model.cluster import Cluster

__all__ = ["Cluster"]
