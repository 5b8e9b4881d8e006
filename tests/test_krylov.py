"""The implicit solvers' linear solve: spectrally preconditioned GMRES to a forcing term.

Tolerances: on an operator that is exactly $I - c\\,\\Delta$ the probe recovers $c$ and the
preconditioner inverts it, so the solve is exact to rounding (1e-12); on a perturbed
operator GMRES must meet its forcing term, $\\|A x - b\\|_2 \\le 0.1\\,\\|b\\|_2$, or the
Newton solver's tighter target; GMRES itself is checked against a dense solve (1e-10, its
tolerance 1e-12 relative), and implicit solves against tight explicit ones (to the
implicit solve's tolerance).
"""

import equinox as eqx
import jax
import jax.numpy as jnp
import lineax
import numpy as np
import optimistix
import pytest

import flows
import solvers
from solvers._krylov import (  # white-box: the solver's own module
    ACCURACY,
    FORCING,
    NewtonKrylov,
    SpectralGMRES,
    _gmres,
)

from .helpers import max_abs


def _laplacian_operator(m, c, values, perturbation=0.0):
    r"""$A v = v - c\,\Delta v + \epsilon\,(x_0\text{-weighted } v)$ on nodal tensors (an implicit stage's $I - cJ$)."""
    eigenvalues = m.laplace_eigenvalues()
    weight = 1 + 0.5 * jnp.cos(m.nodes[:, 0])[:, None, None]

    def mv(v):
        return v + c * m.spectral_multiply(v, eigenvalues) + perturbation * weight * v

    return lineax.FunctionLinearOperator(mv, jax.eval_shape(lambda: values))


@pytest.mark.parametrize("make", [lambda: flows.Torus(2, 9), lambda: flows.Sphere(2, 8)])
def test_the_preconditioner_inverts_i_minus_c_laplacian(make):
    m = make()
    b = flows.random_metric(m, jax.random.key(1), band_limit=m.band_limit // 2).values
    c = 0.37
    operator = _laplacian_operator(m, c, b)
    solution = lineax.linear_solve(operator, b, SpectralGMRES(m))
    exact = m.spectral_multiply(b, 1 / (1 + c * m.laplace_eigenvalues()))
    assert max_abs(solution.value - exact) < 1e-12
    assert int(solution.stats["num_steps"]) <= 2  # the initial guess P b is the answer


def test_gmres_meets_its_forcing_term_on_a_perturbed_operator():
    m = flows.Torus(2, 16)
    b = flows.random_metric(m, jax.random.key(2), band_limit=6).values
    operator = _laplacian_operator(m, 0.05, b, perturbation=0.3)
    solution = lineax.linear_solve(operator, b, SpectralGMRES(m), throw=False)
    norm = float(jnp.linalg.norm(b))
    assert solution.result == lineax.RESULTS.successful
    assert float(jnp.linalg.norm(operator.mv(solution.value) - b)) <= FORCING * norm
    # without a manifold (a network's parameters) GMRES starts from b, unpreconditioned
    plain = lineax.linear_solve(operator, b, SpectralGMRES(None), throw=False)
    assert plain.result == lineax.RESULTS.successful
    assert float(jnp.linalg.norm(operator.mv(plain.value) - b)) <= FORCING * norm


def test_gmres_against_a_dense_solve():
    # a nonsymmetric, well-conditioned 40 x 40 system with no preconditioner
    n = 40
    a = jnp.eye(n) + 0.3 * jax.random.normal(jax.random.key(3), (n, n)) / jnp.sqrt(n)
    b = jax.random.normal(jax.random.key(4), (n,))
    exact = jnp.linalg.solve(a, b)
    norm = float(jnp.linalg.norm(b))

    def solve(tolerance, restart=10, cycles=4, precondition=lambda v: v):
        return _gmres(lambda v: a @ v, precondition, b, tolerance, restart, cycles)

    x, converged, steps = solve(1e-12 * norm)
    assert bool(converged) and max_abs(x - exact) < 1e-10
    # the running residual is the true one: a loose tolerance stops early, and is met
    x, converged, loose = solve(0.3 * norm)
    assert bool(converged) and 0 < int(loose) < int(steps)
    assert float(jnp.linalg.norm(a @ x - b)) <= 0.3 * norm * (1 + 1e-9)
    # restarted: the same answer through cycles of 3 steps
    x, converged, _ = solve(1e-12 * norm, restart=3, cycles=40)
    assert bool(converged) and max_abs(x - exact) < 1e-10
    # out of cycles: not converged, every step taken
    _, converged, steps = solve(1e-14 * norm, restart=3, cycles=2)
    assert not bool(converged) and int(steps) == 6
    # an exact preconditioner: its initial guess P b is the answer, after one product
    x, converged, steps = solve(1e-12 * norm, precondition=lambda v: jnp.linalg.solve(a, v))
    assert bool(converged) and int(steps) == 0 and max_abs(x - exact) < 1e-12


def test_gmres_on_singular_systems():
    # b outside the range of a singular A: the Krylov triangle becomes singular and the
    # running residual falls to zero while the step blows up (the true residual is 10,
    # above |b| = 2): not converged, x left finite. Nearly singular (1e-13): likewise.
    # b inside the range: solved, the breakdown a happy one.
    def solve(diagonal, b):
        a = jnp.diag(jnp.asarray(diagonal))
        return a, *_gmres(lambda v: a @ v, lambda v: v, jnp.asarray(b), 1e-6, 10, 4)

    for smallest in (0.0, 1e-13):
        a, x, converged, _ = solve([smallest, 1.0, 2.0, 3.0], [1.0, 1.0, 1.0, 1.0])
        assert not bool(converged) and bool(jnp.all(jnp.isfinite(x)))
        assert max_abs(x) < 10  # the last finite iterate, not a step of 1e13 or more
    a, x, converged, _ = solve([0.0, 1.0, 2.0, 3.0], [0.0, 1.0, 1.0, 1.0])
    assert bool(converged) and float(jnp.linalg.norm(a @ x - jnp.asarray([0.0, 1, 1, 1]))) < 1e-6
    # the zero operator: no finite step at all
    _, x, converged, _ = solve([0.0] * 4, [1.0, 1.0, 1.0, 1.0])
    assert not bool(converged) and bool(jnp.all(jnp.isfinite(x)))


def test_the_newton_scale_tightens_the_linear_solve():
    m = flows.Torus(2, 16)
    b = flows.random_metric(m, jax.random.key(2), band_limit=6).values
    operator = _laplacian_operator(m, 0.05, b, perturbation=0.3)
    scale = 1e-4 * jnp.ones_like(b)
    target = ACCURACY * float(jnp.linalg.norm(scale))
    assert target < FORCING * float(jnp.linalg.norm(b))  # tighter than the forcing term
    loose = lineax.linear_solve(operator, b, SpectralGMRES(m), throw=False)
    tight = lineax.linear_solve(
        operator, b, SpectralGMRES(m), options={"scale": scale}, throw=False
    )
    assert tight.result == lineax.RESULTS.successful
    assert float(jnp.linalg.norm(operator.mv(tight.value) - b)) <= target * (1 + 1e-9)
    assert int(tight.stats["num_steps"]) > int(loose.stats["num_steps"])


def _root_problem(y, args):
    # a smooth nonlinear system with the root y = (1, 2, ..., 6) / 10
    target = jnp.arange(1.0, 7.0) / 10
    return y + 0.5 * jnp.sin(y) ** 2 - (target + 0.5 * jnp.sin(target) ** 2), None


@pytest.mark.parametrize("cauchy", [False, True])
def test_newton_krylov_is_newton(cauchy):
    # with an exact linear solver NewtonKrylov takes optimistix.Newton's steps and ends
    # as it does (near the root, as in an implicit stage)
    root = jnp.arange(1.0, 7.0) / 10
    y0 = root + 1e-3 * jnp.cos(jnp.arange(6.0))
    options = dict(rtol=1e-8, atol=1e-10, cauchy_termination=cauchy)
    ours, theirs = (
        optimistix.root_find(_root_problem, finder, y0, has_aux=True, throw=False)
        for finder in (NewtonKrylov(**options), optimistix.Newton(**options))
    )
    assert ours.result == theirs.result
    assert int(ours.stats["num_steps"]) == int(theirs.stats["num_steps"]) >= 2
    assert max_abs(ours.value - theirs.value) == 0.0
    assert max_abs(ours.value - root) < 1e-12


def test_kvaerno5_newton_krylov_solve_agrees_with_tsit5():
    # Ricci-DeTurck from a rough metric on a 12^2 torus: the matrix-free implicit solve
    # and a tight explicit one reach the same metric, to the implicit solve's tolerance
    torus = flows.Torus(2, 12)
    g0 = flows.random_metric(torus, jax.random.key(7), band_limit=5, amplitude=0.05)
    flow = flows.ricci_deturck_flow(torus)
    implicit = solvers.solve(flow, g0, 0.0, 0.2, saveat=2, solver="kvaerno5", rtol=1e-7, atol=1e-9)
    explicit = solvers.solve(flow, g0, 0.0, 0.2, saveat=2, rtol=1e-10, atol=1e-12)
    assert implicit.stop_reason == "reached t1"
    assert max_abs(implicit.values[-1] - explicit.values[-1]) < 1e-6


@pytest.mark.slow  # compiling Kvaerno5 through a network flow: 14 s
def test_kvaerno5_network_solve_agrees_with_tsit5():
    # parameters as the state (a pytree, no preconditioner): the same loss curve's end
    # (lineax's GMRES, used here before, stopped this solve at a non-finite state)
    key, torus = jax.random.key(2), flows.Torus(dim=2, n=4)
    base = flows.random_metric(torus, key, band_limit=1, amplitude=0.2)
    network = flows.cosine_network_metric(torus, 4, 0.5, key, base=base)
    loss = flows.PerelmanLoss()
    options = dict(kernel="frozen", saveat=2)
    implicit = solvers.solve_network(network, loss, 0.0, 0.05, solver="kvaerno5", **options)
    explicit = solvers.solve_network(network, loss, 0.0, 0.05, rtol=1e-10, atol=1e-12, **options)
    assert implicit.stop_reason == "reached t1"
    assert float(implicit.loss[-1]) < float(implicit.loss[0])
    assert abs(float(implicit.loss[-1] - explicit.loss[-1])) < 1e-9


class _Recording(lineax.AbstractLinearSolver):
    """lineax's LU, recording the option `scale` each solve receives."""

    seen: list = eqx.field(static=True)

    def init(self, operator, options):
        return lineax.LU().init(operator, options)

    def compute(self, state, vector, options):
        jax.debug.callback(lambda s: self.seen.append(np.asarray(s)), options["scale"])
        return lineax.LU().compute(state, vector, options)

    def transpose(self, state, options):
        raise NotImplementedError

    def conj(self, state, options):
        raise NotImplementedError

    def assume_full_rank(self):
        return True


def test_newton_krylov_passes_its_tolerance_scale():
    # every linear solve gets atol + rtol |y| at the Newton iterate it linearises about
    root = jnp.arange(1.0, 7.0) / 10
    y0 = root + 1e-3 * jnp.cos(jnp.arange(6.0))
    seen = []
    finder = NewtonKrylov(rtol=1e-8, atol=1e-10, linear_solver=_Recording(seen))
    solution = optimistix.root_find(_root_problem, finder, y0, has_aux=True, throw=False)
    assert len(seen) == int(solution.stats["num_steps"]) >= 2
    np.testing.assert_array_equal(seen[0], np.asarray(1e-10 + 1e-8 * jnp.abs(y0)))
    assert max_abs(jnp.asarray(seen[-1]) - (1e-10 + 1e-8 * jnp.abs(root))) < 1e-15
