"""Arrivals beyond Poisson: renewal arrivals against GI/M/1 theory, and recorded traces replayed.

The queueing checks follow tests/test_theory.py: R independent replications, a Student-t
interval for the metric, the theoretical value inside the 99.9% interval, and the interval
itself narrow enough (a stated relative half-width) to be a test.
"""

from __future__ import annotations

import math

import pytest
from scipy.special import lambertw

from sim.theory import gim1_sigma


def exponential_transform(mean: float):
    return lambda s: 1.0 / (1.0 + mean * s)


def test_gim1_sigma_is_rho_for_poisson_arrivals():
    for rho in (0.1, 0.5, 0.9):
        assert gim1_sigma(exponential_transform(1.0), 1.0, 1.0 / rho) == pytest.approx(rho)


def test_gim1_sigma_matches_the_closed_forms_of_d_m_1_and_e2_m_1():
    """D/M/1: sigma = -rho W(-exp(-1/rho) / rho) (Lambert W, principal branch). E2/M/1:
    sigma = (1 + 4 rho - sqrt(1 + 8 rho)) / 2 (Gross and Harris, the E_k/M/1 example)."""
    for rho in (0.3, 0.5, 0.8, 0.95):
        deterministic = gim1_sigma(lambda s: math.exp(-s), 1.0, 1.0 / rho)
        lambert = -rho * lambertw(-math.exp(-1 / rho) / rho).real
        assert deterministic == pytest.approx(lambert, rel=1e-9)
        erlang2 = gim1_sigma(lambda s: (2 / (2 + s)) ** 2, 1.0, 1.0 / rho)
        assert erlang2 == pytest.approx((1 + 4 * rho - math.sqrt(1 + 8 * rho)) / 2, rel=1e-9)


def test_gim1_refuses_an_unstable_queue():
    with pytest.raises(ValueError, match="unstable"):
        gim1_sigma(lambda s: math.exp(-s), 1.0, 1.0)
