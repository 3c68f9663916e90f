"""The SimPy world: users, client, balancer, servers, failures, detection and failover, wired by
:class:`sim.model.cluster.Cluster`.

Only this package and :mod:`sim.experiment` import simpy; specs, analysis, theory, plots and
results never import the model. The balancing policies in :mod:`sim.model.balancing` are plain
Python, so scenarios can name them without loading the engine.
"""
