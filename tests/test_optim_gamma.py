"""The gamma maths: V-hat, A, b, the constrained solve, the EMA (against naive versions)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from autoopt_lab.optim import gamma as G
from autoopt_lab.optim.twin import kkt_minimum


def _naive(gi, prev, d):
    """Eq. (22), (15), (24), (23) as literal matrices."""
    n = gi.shape[0]
    g = gi.mean(0)
    v = sum(((x - g) * d * (x - g)).sum() for x in gi) / (n * (n - 1))
    gm = torch.stack([g, g - prev], 1)
    a = gm.T @ torch.diag(d) @ gm
    return a, torch.stack([v, v])


@pytest.mark.parametrize("n", [2, 3, 16, 128])
@pytest.mark.parametrize("with_d", [False, True])
def test_moments_match_the_equations(n, with_d):
    torch.manual_seed(n)
    gi = torch.randn(n, 7, dtype=torch.float64) + 0.3
    prev = torch.randn(7, dtype=torch.float64)
    d = torch.rand(7, dtype=torch.float64) + 0.1 if with_d else torch.ones(7, dtype=torch.float64)
    m = _moments(gi.mean(0), prev, gi.square().sum(0), n, d if with_d else None)
    a, b = _naive(gi, prev, d)
    a00, a01, a11 = G.quadratic_form(m)
    torch.testing.assert_close(
        torch.stack([a00, a01, a11]), torch.stack([a[0, 0], a[0, 1], a[1, 1]])
    )
    torch.testing.assert_close(m[G.VAR], b[0])


def test_variance_in_float32_with_small_noise_against_a_large_mean():
    """The S-form of eq. (22) cancels; float64 accumulation keeps it accurate and >= 0."""
    torch.manual_seed(0)
    n = 64
    mean = torch.full((1000,), 10.0, dtype=torch.float64)
    gi = mean + 1e-2 * torch.randn(n, 1000, dtype=torch.float64)
    exact = ((gi - gi.mean(0)) ** 2).sum() / (n * (n - 1))
    gi32 = gi.float()
    m = _moments(gi32.mean(0), torch.zeros(1000), gi32.double().square().sum(0).float(), n)
    assert m[G.VAR] >= 0
    # float32 S carries ~1e-7 relative error of S ~ N * 100 per coordinate: well below V here
    torch.testing.assert_close(m[G.VAR], exact, rtol=0.05, atol=0)
    m64 = _moments(gi.mean(0), torch.zeros(1000, dtype=torch.float64), gi.square().sum(0), n)
    torch.testing.assert_close(m64[G.VAR], exact, rtol=1e-6, atol=0)


def _psd_problem(draw):
    x = draw(st.lists(st.floats(-3, 3), min_size=4, max_size=4))
    g = np.array(x[:2])
    p = np.array(x[2:])
    scale = draw(st.floats(0.0, 5.0))
    agg, agp, app = g @ g, g @ p, p @ p
    return torch.tensor([[agg, agp, app, scale]], dtype=torch.float64)


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_constrained_solve_is_feasible_and_optimal(data):
    m = _psd_problem(data.draw)
    max_lr = data.draw(st.sampled_from([1.0, 1.0, 0.5, 0.1]))
    lo = 1.0 - max_lr
    gam = G.solve_gamma(m, torch.tensor([True]), max_lr=max_lr)[0]
    assert gam[0] >= lo - 1e-12 and gam[1] >= 0 and gam.sum() <= 1 + 1e-12
    q = G.objective(m[0], gam)
    # no point of a dense grid over the (shrunk) triangle is better
    s = torch.linspace(0, 1, 41, dtype=torch.float64)
    g1, g2 = torch.meshgrid(lo + (1 - lo) * s, (1 - lo) * s, indexing="ij")
    grid = torch.stack([g1, g2], -1).reshape(-1, 2)
    grid = grid[grid.sum(1) <= 1 + 1e-12]
    assert q <= G.objective(m[0].expand(len(grid), 4), grid).min() + 1e-9
    # and it agrees with the independent KKT enumeration
    a00, a01, a11 = (float(v) for v in G.quadratic_form(m[0]))
    a = np.array([[a00, a01], [a01, a11]])
    b = np.array([float(m[0, 3])] * 2)
    ref = kkt_minimum(a, b, max_lr=max_lr)
    q_ref = -b @ ref + 0.5 * ref @ a @ ref
    assert float(q) <= q_ref + 1e-9 * (1 + abs(q_ref))


@settings(max_examples=100, deadline=None)
@given(st.data())
def test_authors_rule_stays_in_its_region(data):
    m = _psd_problem(data.draw)
    gam = G.solve_gamma_authors(m, torch.tensor([True]))[0]
    assert 0 <= gam[0] <= 0.999 and gam[1] >= 0 and gam.sum() <= 1


def test_no_momentum_solves_for_gamma1_alone():
    m = torch.tensor(
        [[4.0, 1.0, 1.0, 1.0], [4.0, 1.0, 1.0, 8.0], [0.0, 0.0, 0.0, 0.0]], dtype=torch.float64
    )
    gam = G.solve_gamma(m, torch.tensor([False, False, False]))
    torch.testing.assert_close(
        gam, torch.tensor([[0.25, 0], [1.0, 0], [0.0, 0]], dtype=torch.float64)
    )


def test_ewma_and_hparams():
    new = torch.tensor([[0.2, 0.3]], dtype=torch.float64)
    old = torch.tensor([[0.999, 0.0]], dtype=torch.float64)
    e = G.ewma(new, old, 0.9)
    torch.testing.assert_close(e, 0.1 * new + 0.9 * old)
    lr, mom = G.to_hparams(torch.tensor([0.2, 0.3], dtype=torch.float64))
    assert float(lr) == pytest.approx(0.8) and float(mom) == pytest.approx(0.375)
    lr, mom = G.to_hparams(torch.tensor([1.0, 0.0], dtype=torch.float64))
    assert float(lr) == 0 and float(mom) == 0


def test_estimator_is_eq_14():
    g, p = torch.tensor([1.0, 2.0]), torch.tensor([3.0, -1.0])
    gam = torch.tensor([0.2, 0.3], dtype=torch.float64)
    gmat = torch.stack([g, g - p], 1)
    seg = torch.zeros(2, dtype=torch.long)
    torch.testing.assert_close(G.estimator(g, p, gam.unsqueeze(0), seg), g - gmat @ gam.float())


def _moments(g, prev, sum_sq, n, inv_hessian=None):
    """``gamma.segment_moments`` of a single tensor, as one ``(4,)`` row."""
    from autoopt_lab.optim import gamma as G

    seg = torch.zeros(g.numel(), dtype=torch.long)
    return G.segment_moments(g, prev, sum_sq, float(n), seg, 1, inv_hessian)[0]
