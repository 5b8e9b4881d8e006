r"""Perelman's $\lambda(g) = \min_f \mathcal F(g, f)$: the ground state of $-4\Delta + R$, matrix-free.

With $w = e^{-f/2}$ and $\int w^2\, dV_g = 1$,
$\mathcal F = \int (4|\nabla w|^2 + R w^2)\, dV_g$, so $\lambda$ is the least
eigenvalue of $-4\Delta_g + R$ and $w$ its positive eigenfunction.

Discretisation: $w$ is a nodal field whose derivatives are those of its
spectral series; the discrete Rayleigh quotient is
$Q(w) = \sum_a \mu_a \sqrt{g_a}\,(4\, \partial w_a^\top g_a^{-1} \partial w_a + R_a w_a^2) / \sum_a \mu_a \sqrt{g_a}\, w_a^2$,
exactly symmetric, so its minimiser is stationary and $\partial\lambda/\partial g$
needs no derivative of $w$ (Hellmann–Feynman). The slots whose derivatives the
series does not resolve (the Nyquist checkerboard of even torus grids, which
has no discrete gradient energy and would be a spurious ground state) are
filtered out, and on spheres $w$ stays in the band-limited space.

The minimiser is found by preconditioned steepest descent with a two-vector
Rayleigh–Ritz step (a block-size-one LOBPCG without the third vector): the
preconditioner is $(-4\Delta_\mathrm{ref}/\bar c + \tau)^{-1}$, diagonal in the
manifold's spectral basis, $\bar c$ the metric's mean scale. Each iteration
costs two applications of the operator (FFTs on tori), never a matrix.
"""

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float, Int

from .._metrics import LocalGeometry, NodalMetric, nodal_geometry
from .._misc import is_traced
from .._types import Scalar
from .functionals import AbstractFunctional


class GroundState(eqx.Module):
    r"""The ground state of $-4\Delta_g + R$ on the nodes.

    - `w`: $e^{-f/2}$ at the nodes, positive, $\sum_a \mu_a \sqrt{g_a} w_a^2 = 1$.
    - `value`: $\lambda$, the least eigenvalue (the Rayleigh quotient of `w`).
    - `residual`: $\|(-4\Delta + R - \lambda) w\|$ in the preconditioner's norm,
      relative to the operator's scale on the normalised $w$, $|\lambda| + 4k_1^2/c$
      ($k_1^2$ the least nonzero eigenvalue of $-\Delta_\mathrm{ref}$, $c$ the metric's
      mean scale), projected onto the resolved space.
    - `iterations`: how many were taken.
    """

    w: Float[Array, " N"]
    value: Scalar
    residual: Scalar
    iterations: Int[Array, ""]

    @property
    def f(self) -> Float[Array, " N"]:
        r"""$f = -2 \log w$ at the nodes ($\int e^{-f} dV_g = 1$)."""
        return -2 * jnp.log(self.w)


def _forms(metric: NodalMetric, geometry: LocalGeometry):
    """The quadratic forms of the Rayleigh quotient, as functions of nodal w."""
    m = metric.manifold
    density = jax.vmap(lambda q: q.volume_density)(geometry)
    scalar = jax.vmap(lambda q: q.scalar)(geometry)
    mass = m.weights * density

    def numerator(w):
        grad, _ = m.nodal_jet(w)
        energy = jnp.einsum("na,nab,nb->n", grad, geometry.inverse, grad)
        return jnp.sum(mass * (4 * energy + scalar * w**2))

    def stiffness(w):  # K w = grad of numerator / 2, a covector (weights included)
        return jax.grad(lambda v: 0.5 * numerator(v))(w)

    return mass, stiffness


def ground_state(
    metric: NodalMetric,
    *,
    geometry: LocalGeometry | None = None,
    guess: Float[Array, " N"] | None = None,
    tol: float = 1e-11,
    max_iterations: int = 400,
) -> GroundState:
    r"""The ground state $(\lambda, w = e^{-f/2})$ of $-4\Delta_g + R$ for a nodal metric.

    **Arguments:**

    - `metric`: the metric (nodal; traced values are fine, this runs under jit).
    - `geometry`: its `nodal_geometry`, if already computed.
    - `guess`: a starting `w` (warm start, e.g. the previous step's), finite and not
      zero; default the constant with $\int w^2 dV_g = 1$.
    - `tol`: stop when the relative residual falls below this, or below 50 times the
      dtype's machine epsilon where that is larger (float32: 6e-6; the default 1e-11
      is below float32's rounding, where every call ran `max_iterations`).
    - `max_iterations`: at most this many iterations (the residual reports
      whether `tol` was met).
    """
    dtype = metric.values.dtype
    if guess is not None and not is_traced(guess):
        guess = jnp.asarray(guess)
        if guess.shape != metric.manifold.weights.shape:
            raise ValueError(
                f"ground_state: guess must be nodal values of shape "
                f"{metric.manifold.weights.shape}, got {guess.shape}."
            )
        if not bool(jnp.all(jnp.isfinite(guess))) or not bool(jnp.any(guess != 0)):
            raise ValueError("ground_state: guess must be finite and not zero.")
    floor = 50 * float(jnp.finfo(dtype).eps)
    return _ground_state(
        metric,
        geometry,
        guess,
        jnp.maximum(jnp.asarray(tol, dtype=dtype), jnp.asarray(floor, dtype=dtype)),
        jnp.asarray(max_iterations),
    )


@eqx.filter_jit
def _ground_state(metric, geometry, guess, tol, max_iterations) -> GroundState:
    m = metric.manifold
    if geometry is None:
        geometry = nodal_geometry(metric)
    mass, stiffness = _forms(metric, geometry)
    dtype = metric.values.dtype
    n = m.dim
    scale = (jnp.sum(mass) / m.volume) ** (2 / n)  # mean scale c of the metric
    eig = m.laplace_eigenvalues().astype(dtype)
    gap = jnp.min(jnp.where(eig > 0, eig, jnp.inf))
    precondition = m.resolved_slots().astype(dtype) / (4 * (eig + gap) / scale)

    def inner(u, v):
        return jnp.sum(mass * u * v)

    def normalise(u):
        return u / jnp.sqrt(inner(u, u))

    def filtered(u):
        return m.spectral_multiply(u, m.resolved_slots().astype(dtype))

    w0 = jnp.ones_like(mass) if guess is None else filtered(guess)
    w0 = normalise(w0)

    energy_floor = 4 * gap / scale

    def residual_of(w, kw):
        rho = jnp.sum(w * kw)
        r = (kw - rho * mass * w) / m.weights  # sqrt(g) (A w - rho w) at the nodes
        z = m.spectral_multiply(r, precondition)
        energy = jnp.abs(rho) + energy_floor  # the operator's scale on w (w is normalised)
        return rho, z, jnp.sqrt(jnp.abs(jnp.sum(m.weights * r * z)) / energy)

    def cond(carry):
        _, _, res, it = carry
        return (res > tol) & (it < max_iterations)

    def body(carry):
        w, kw, _, it = carry
        rho, z, _ = residual_of(w, kw)
        p = z - inner(z, w) * w
        p = normalise(p)
        kp = stiffness(p)
        a = jnp.array([[jnp.sum(w * kw), jnp.sum(w * kp)], [jnp.sum(p * kw), jnp.sum(p * kp)]])
        a = 0.5 * (a + a.T)
        _, vecs = jnp.linalg.eigh(a)
        v = vecs[:, 0] * jnp.sign(vecs[0, 0])
        w = normalise(v[0] * w + v[1] * p)
        kw = stiffness(w)
        _, _, res = residual_of(w, kw)
        return w, kw, res, it + 1

    kw0 = stiffness(w0)
    _, _, res0 = residual_of(w0, kw0)
    w, kw, res, it = jax.lax.while_loop(cond, body, (w0, kw0, res0, jnp.array(0)))
    # the ground state is positive: a guess that met tol at once skipped the loop's sign fix
    sign = jnp.where(jnp.sum(mass * w) < 0, -1.0, 1.0).astype(dtype)
    return GroundState(sign * w, jnp.sum(w * kw), res, it)


class PerelmanLambdaLoss(AbstractFunctional):
    r"""$L = -2\lambda(g)$, $\lambda = \min_f \mathcal F(g, f)$ with $\int e^{-f} dV_g = 1$.

    $E^{ij} = 2(R^{ij} + \nabla^i\nabla^j f)\, e^{-f}\, dV_g/d\mu$, $f$ the
    minimiser (docs/conventions.md, Well-posedness); by automatic differentiation of the
    discrete Rayleigh quotient at its minimiser, held fixed (it is stationary).
    """

    tol: float = 1e-11
    max_iterations: int = 400

    def __call__(self, metric: NodalMetric) -> Scalar:
        if not isinstance(metric, NodalMetric):
            raise ValueError(
                f"PerelmanLambdaLoss: needs a NodalMetric, got {type(metric).__name__}."
            )
        values = metric.values
        if not is_traced(values) and not bool(jnp.all(jnp.isfinite(values))):
            # refused before the ground state's program is compiled for a metric it cannot use
            raise ValueError(
                f"PerelmanLambdaLoss: the loss is not finite for this metric on "
                f"{metric.manifold!r}: its values are not all finite (a NodalMetric built with "
                "check=False is not checked)."
            )
        state = ground_state(
            jax.lax.stop_gradient(metric), tol=self.tol, max_iterations=self.max_iterations
        )
        w = jax.lax.stop_gradient(state.w)
        geometry = nodal_geometry(metric)
        mass, stiffness = _forms(metric, geometry)
        value = -2 * jnp.sum(w * stiffness(w)) / jnp.sum(mass * w**2)
        if not is_traced(value) and not bool(jnp.isfinite(value)):
            raise ValueError(
                f"PerelmanLambdaLoss: the loss is not finite ({float(value)}) for this metric on "
                f"{metric.manifold!r}; are its values finite and positive definite (a NodalMetric "
                "built with check=False is not checked)?"
            )
        return value
