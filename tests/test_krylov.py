"""The implicit solvers' linear solve: spectrally preconditioned GMRES to a forcing term.

Tolerances: on an operator that is exactly $I - c\\,\\Delta$ the probe recovers $c$ and the
preconditioner inverts it, so the solve is exact to rounding (1e-12); on a perturbed
operator GMRES must meet its normwise forcing term, $\\max_i |(A x - b)_i| \\le 0.1\\,
\\mathrm{rms}(b)$, in a handful of products.
"""

import jax
import jax.numpy as jnp
import lineax
import pytest

import flows
from solvers._krylov import FORCING, SpectralGMRES  # white-box: the solver's own module

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
    residual = operator.mv(solution.value) - b
    rms = jnp.sqrt(jnp.mean(b**2))
    assert solution.result == lineax.RESULTS.successful
    assert max_abs(residual) <= FORCING * rms
    # without a manifold (a network's parameters): plain GMRES to the same forcing term
    plain = lineax.linear_solve(operator, b, SpectralGMRES(None), throw=False)
    assert max_abs(operator.mv(plain.value) - b) <= FORCING * rms
