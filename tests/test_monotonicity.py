"""Perelman's λ along Ricci–DeTurck: non-decreasing, with dλ/dt = 2 ∫ |Ric + ∇∇f|² e^{-f} dV.

λ is diffeomorphism invariant, so the DeTurck term does not change it and
dλ/dt = -1/2 <E_λ, V> (E_λ = δ(-2λ)/δg, from the λ loss) equals Perelman's
2 ∫ |Ric + ∇∇f|² e^{-f} dV, f the minimiser. Both sides are computed on the
nodes; the identity uses integration by parts, exact up to the spectral
discretisation error of the smooth states (1e-6 relative, the required tolerance).
"""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.integrate

import flows
import solvers


@eqx.filter_jit
def _lambda_rates(flow, values):
    m = flow.manifold
    metric = flows.NodalMetric(m, values, check=False)
    v = flow(0.0, values)
    e = flows.functional_derivative(flows.PerelmanLambdaLoss(), metric)
    measured = -0.5 * jnp.sum(m.weights * jnp.einsum("nij,nij->n", e, v))
    geom = flows.nodal_geometry(metric)
    state = flows.ground_state(metric, geometry=geom)
    dw, ddw = m.nodal_jet(state.w)

    def density(q, w, dw, ddw):
        df = -2 * dw / w
        ddf = -2 * (ddw / w - jnp.outer(dw, dw) / w**2)
        t = q.ricci + ddf - jnp.einsum("cab,c->ab", q.christoffel, df)
        gi = q.inverse
        return jnp.einsum("ac,bd,ab,cd->", gi, gi, t, t) * w**2 * q.volume_density

    predicted = 2 * m.integrate(jax.vmap(density)(geom, state.w, dw, ddw))
    return measured, predicted, state.value


@pytest.mark.parametrize(
    "make",
    [lambda: flows.Torus(2, 24), pytest.param(lambda: flows.Sphere(2, 24), marks=pytest.mark.slow)],
    ids=["T2", "S2"],
)
def test_lambda_is_monotone_along_ricci_deturck(make):
    m = make()
    g0 = flows.random_metric(m, jax.random.key(4), 2, 0.2)
    flow = flows.ricci_deturck_flow(m)
    solution = solvers.solve(flow, g0, 0.0, 0.1, saveat=3)
    assert solution.stop_reason == "reached t1"
    lambdas = []
    for values in solution.values:
        measured, predicted, lam = (float(a) for a in _lambda_rates(flow, values))
        assert predicted > 0
        assert abs(measured - predicted) <= 1e-6 * predicted, (measured, predicted)
        lambdas.append(lam)
    assert np.all(np.diff(lambdas) > 0), lambdas


@pytest.mark.slow
def test_perelman_pair_entropy_is_monotone():
    # Ricci flow forward to T = 0.1, conjugate heat equation backward from u(T) = 1/vol:
    # F non-decreasing, dF/dt (derivative of the discrete F along the pair's vector field)
    # equal to 2 int |Ric + Hess f|^2 u dV to 1e-6 (measured 6e-11), int u dV conserved, and,
    # independently, the increase of F over [0, T] equals Simpson's integral of the rate
    # (1e-4: Simpson's error with 11 points)
    torus = flows.Torus(2, 24)
    g0 = flows.random_metric(torus, jax.random.key(4), 2, 0.2)
    flow = flows.ricci_flow(torus)
    forward = solvers.solve(flow, g0, 0.0, 0.1, saveat=3, dense=True, rtol=1e-10, atol=1e-12)
    pair = solvers.conjugate_heat(forward, flow, saveat=11)
    assert np.all(np.diff(pair.entropy) > 0)
    assert np.all(pair.rate > 0)
    assert np.max(np.abs(pair.measured_rate - pair.rate) / pair.rate) < 1e-6
    assert np.max(np.abs(pair.mass - 1)) < 1e-8
    increase = scipy.integrate.simpson(pair.rate, x=pair.ts)
    assert abs(pair.entropy[-1] - pair.entropy[0] - increase) < 1e-4 * increase
    with pytest.raises(ValueError, match="Hamilton's Ricci flow"):
        solvers.conjugate_heat(forward, flows.ricci_deturck_flow(torus))
    with pytest.raises(ValueError, match="rtol must be a finite number > 0"):
        solvers.conjugate_heat(forward, flow, rtol=-1.0)
    with pytest.raises(ValueError, match="u_final must be finite positive"):
        solvers.conjugate_heat(forward, flow, jnp.full(torus.weights.shape, jnp.inf))


@pytest.mark.slow  # a forward and two backward solves (9 s); the pair itself: the slow test above
def test_perelman_pair_arguments(monkeypatch):
    """`saveat` is a count >= 2; integer `u_final` is taken in the forward solve's dtype (a
    float32 or integer u_final set the times and tolerances' dtype: t_final became 0); a
    backward solve that runs out of steps is a RuntimeError that says so."""
    from solvers import _perelman_pair  # white-box: the backward solve's step budget

    torus = flows.Torus(2, 6)
    g0 = flows.random_metric(torus, jax.random.key(4), 1, 0.2)
    flow = flows.ricci_flow(torus)
    forward = solvers.solve(flow, g0, 0.0, 0.01, saveat=2, dense=True)
    for saveat in (1, 2.5, True, 0):
        with pytest.raises(ValueError, match="saveat must be an integer >= 2"):
            solvers.conjugate_heat(forward, flow, saveat=saveat)
    volume = float(torus.integrate(flows.volume_density(forward.metric(), torus.nodes)))
    ones = jnp.ones(torus.weights.shape, dtype=jnp.int64)
    pair = solvers.conjugate_heat(forward, flow, ones, saveat=3)
    assert pair.u.dtype == jnp.float64 and pair.ts[-1] == 0.01
    assert np.max(np.abs(pair.mass - volume)) < 1e-8 * volume
    monkeypatch.setattr(_perelman_pair, "MAX_STEPS", 1)
    wave = 1.0 + 0.5 * jnp.cos(3 * torus.nodes[:, 0])  # one step is too few for it
    with pytest.raises(RuntimeError, match="backward solve .* failed \\(ran out of its steps"):
        solvers.conjugate_heat(forward, flow, wave, saveat=3)


def test_perelman_pair_refuses_a_forward_solve_of_another_flow():
    # a Ricci-DeTurck forward solve with Hamilton's flow named: the pair was computed along
    # the wrong metrics (F's increase off its integrated rate by 2e-4 relative at 12^2)
    torus = flows.Torus(2, 6)
    g0 = flows.random_metric(torus, jax.random.key(4), 1, 0.2)
    forward = solvers.solve(flows.ricci_deturck_flow(torus), g0, 0.0, 0.01, saveat=2, dense=True)
    with pytest.raises(ValueError, match="forward must be a solve of Hamilton's Ricci flow"):
        solvers.conjugate_heat(forward, flows.ricci_flow(torus))
    with pytest.raises(ValueError, match="forward must be a solve of Hamilton's Ricci flow"):
        solvers.conjugate_heat(forward, flows.ricci_flow(flows.Torus(2, 7)))
