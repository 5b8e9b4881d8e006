r"""Flows of a Kähler potential network on a hypersurface: evolving, frozen, Kähler–Ricci (local and smoothed).

The state is the network's parameter vector $\theta$ (flattened); the metric is
$g_\theta = J^\top\partial\bar\partial(K_\mathrm{FS} + \phi_\theta)\bar J$ at the
training points (`pulled_back_metric`). One vector field, four regimes:

- `"evolving"`: $\dot\theta = -\nabla_\theta L(g_\theta)$, gradient flow of a
  Monge–Ampère loss; the network's NTK moves with $\theta$;
- `"frozen"`: the same with $\phi$ replaced by its linearisation at $\theta_0$,
  $\phi_0 + \nabla_\theta\phi_0\cdot(\theta - \theta_0)$: the kernel is frozen;
- `"kahler_ricci"`: Kähler–Ricci flow in potential form, $\partial_t\phi = \log(\eta/\bar\eta)$
  (docs/conventions.md, Calabi–Yau hypersurfaces; $-\mathrm{Ric} = i\partial\bar\partial\log\eta$ on a
  Calabi–Yau), realised for the finite model by the regularised least-squares
  parameter velocity
  $\dot\theta = \arg\min_v \sum_a \frac{w_a}{N}|\nabla_\theta\phi(z_a)\cdot v - u_a|^2 + \epsilon|v|^2$,
  $u = \log(\eta/\bar\eta)$, $\epsilon$ = `ridge` times the mean diagonal of the normal matrix;
- `"kahler_ricci_smoothed"`: the same with $u$ replaced by its normalised
  Gaussian average in FS distance (`gaussian_point_kernel(sigma, normalise=True)`),
  the non-local generalisation; as $\sigma \to 0$ it tends to the local flow.
"""

import math

import equinox as eqx
import jax
import jax.numpy as jnp
from jax.flatten_util import ravel_pytree
from jaxtyping import Array, Bool, Float

from .._misc import check_memory, real_scalar
from .kernel_apply import FSGaussian, _row_shifted_gram
from .losses import MongeAmpereLoss, check_sample_metric
from .potentials import KahlerPotential, _pulled_back
from .sampling import PointSample

POTENTIAL_REGIMES = ("evolving", "frozen", "kahler_ricci", "kahler_ricci_smoothed")


def log_eta_ratio(sample: PointSample, g) -> Float[Array, " N"]:
    r"""$\log(\eta_a/\bar\eta)$, $\eta = \det g/|\Omega|^2$, $\bar\eta$ the weighted mean: the Kähler–Ricci velocity of $\phi$.

    `g`: (N, m, m), one metric value per point of `sample` (checked; static, so
    under `jit` too). NaN where $\eta_a/\bar\eta \le 0$ (a `g` that is not positive definite).
    """
    check_sample_metric("log_eta_ratio", sample, g)
    eta = jnp.real(jnp.linalg.det(g)) / jnp.abs(sample.omega) ** 2
    mean = jnp.sum(sample.weights * eta) / jnp.sum(sample.weights)
    return jnp.log(eta / mean)


def _inside(g) -> Bool[Array, ""]:
    """Whether every metric value is finite and positive definite (its least eigenvalue > 0)."""
    finite = jnp.all(jnp.isfinite(g))
    safe = jnp.where(finite, g, jnp.eye(g.shape[-1], dtype=g.dtype))
    return finite & jnp.all(jnp.linalg.eigvalsh(safe)[:, 0] > 0)


class PotentialFlow(eqx.Module):
    r"""$\dot\theta$ for a `KahlerPotential` on a training `PointSample` (module docstring).

    **Arguments:** `potential` (its parameters at $\theta_0$ are the initial
    state, `theta0`; a function of the sample's $n + 1$ homogeneous coordinates,
    checked), `sample`, `regime` (one of `POTENTIAL_REGIMES`), `loss` (a
    `MongeAmpereLoss`, for the gradient regimes; default `MongeAmpereLoss(1.0)`,
    the σ loss $p = 1$, which is not differentiable where $\eta_a = \bar\eta$: an
    adaptive solve of it takes many small steps, so pass `MongeAmpereLoss(2.0)` for
    solves (docs/solvers.md); the Kähler–Ricci regimes do not use it), `sigma` (the
    smoothed regime's width; refused in the other regimes), `ridge` (a finite
    number > 0). The smoothed regime builds the dense $N \times N$ averaging matrix
    once, refused by name when it would not fit in memory; each row is shifted by
    its largest exponent before the exponential (as `PairPointKernel`'s), so it is
    finite however narrow σ is and tends to the identity, the local flow.

    Outside the Kähler cone: in the Kähler–Ricci regimes the velocity is NaN
    (every entry) when $g_\theta$ is not finite and positive definite at some
    training point (its Ricci form is not that of a metric there). That is what an
    adaptive diffrax solve needs, not an error: a trial step that leaves the cone
    is rejected by the step-size controller (`diffrax.PIDController` shrinks it),
    as `SpectralRicciFlow.residual` does for Newton's line search; with a
    constant step the solution turns NaN, so check it (`jnp.isfinite`). The
    gradient regimes flow their loss, which is defined for any finite $g_\theta$
    (an untrained `bihomogeneous_potential` is not positive definite at every
    point, and the flow makes it so): their velocity is NaN only where $g_\theta$
    is not finite.
    """

    static: KahlerPotential
    unravel: object = eqx.field(static=True)
    theta0: Float[Array, " P"]
    sample: PointSample
    regime: str = eqx.field(static=True)
    loss: MongeAmpereLoss
    smoothing: Float[Array, "N N"] | None
    ridge: float = eqx.field(static=True)

    def __init__(
        self,
        potential: KahlerPotential,
        sample: PointSample,
        regime: str,
        loss: MongeAmpereLoss | None = None,
        *,
        sigma: float | None = None,
        ridge: float = 1e-6,
    ):
        if not isinstance(potential, KahlerPotential):
            raise ValueError(
                f"PotentialFlow: potential must be a KahlerPotential, got {type(potential).__name__}."
            )
        if not isinstance(sample, PointSample):
            raise ValueError(
                f"PotentialFlow: sample must be a PointSample, got {type(sample).__name__}."
            )
        if regime not in POTENTIAL_REGIMES:
            raise ValueError(
                f"PotentialFlow: regime must be one of {POTENTIAL_REGIMES}, got {regime!r}."
            )
        ridge_value = real_scalar(ridge)
        if ridge_value is None or not math.isfinite(ridge_value) or not ridge_value > 0:
            raise ValueError(f"PotentialFlow: ridge must be a finite number > 0, got {ridge!r}.")
        if sigma is not None and regime != "kahler_ricci_smoothed":
            raise ValueError(
                f"PotentialFlow: sigma is the width of the smoothed regime; the {regime!r} regime "
                f"has none (got sigma={sigma!r})."
            )
        if loss is not None and not isinstance(loss, MongeAmpereLoss):
            raise ValueError(
                f"PotentialFlow: loss must be a MongeAmpereLoss, got {type(loss).__name__}."
            )
        _check_potential(potential, sample)
        spec = jax.tree.map(lambda _: False, potential)
        spec = eqx.tree_at(
            lambda p: p.network, spec, jax.tree.map(eqx.is_inexact_array, potential.network)
        )
        params, static = eqx.partition(potential, spec)
        theta0, unravel = ravel_pytree(params)
        self.static, self.unravel, self.theta0 = static, unravel, theta0
        self.sample, self.regime, self.ridge = sample, regime, ridge_value
        self.loss = MongeAmpereLoss(1.0) if loss is None else loss
        if regime == "kahler_ricci_smoothed":
            if sigma is None:
                raise ValueError("PotentialFlow: the smoothed regime needs sigma.")
            k = FSGaussian(sigma)
            k.check_dtype(sample.points.dtype, "PotentialFlow")
            n = sample.count
            itemsize = jnp.dtype(sample.weights.dtype).itemsize
            check_memory(
                3 * n * n * itemsize,
                f"PotentialFlow: the smoothed regime's {n} x {n} averaging matrix",
                "Use fewer training points.",
            )
            # each row's largest term exactly 1: no 0/0 row however narrow sigma is
            kmat = _row_shifted_gram(k, sample.points, sample.points, "PotentialFlow")
            kmat = kmat * sample.weights[None, :]
            self.smoothing = kmat / jnp.sum(kmat, axis=1, keepdims=True)
        else:
            self.smoothing = None

    def _check_theta(self, theta, caller: str) -> None:
        shape = jnp.shape(theta)
        if shape != self.theta0.shape:
            raise ValueError(
                f"PotentialFlow.{caller}: theta must have shape {self.theta0.shape}, the "
                f"network's parameters flattened as theta0, got shape {shape}."
            )

    def potential(self, theta: Float[Array, " P"]) -> KahlerPotential:
        """The `KahlerPotential` at parameters `theta`."""
        self._check_theta(theta, "potential")
        return eqx.combine(self.unravel(theta), self.static)

    def linearised(self, theta: Float[Array, " P"]):
        r"""$z \mapsto \phi_{\theta_0}(z) + \nabla_\theta\phi_{\theta_0}(z)\cdot(\theta - \theta_0)$."""
        self._check_theta(theta, "linearised")
        delta = theta - self.theta0

        def phi(z):
            return jax.jvp(lambda th: self.potential(th)(z), (self.theta0,), (delta,))[1] + (
                self.potential(self.theta0)(z)
            )

        return phi

    def metric(self, theta: Float[Array, " P"], sample: PointSample | None = None):
        """$g_\\theta$ (the linearised one in the frozen regime) at `sample`'s points (default: training)."""
        self._check_theta(theta, "metric")
        s = self.sample if sample is None else sample
        if not isinstance(s, PointSample) or s.points.shape[1] != self.sample.points.shape[1]:
            got = s.points.shape if isinstance(s, PointSample) else type(s).__name__
            raise ValueError(
                f"PotentialFlow.metric: sample must be a PointSample of points with "
                f"{self.sample.points.shape[1]} homogeneous coordinates, as the training "
                f"sample's, got {got}."
            )
        phi = self.linearised(theta) if self.regime == "frozen" else self.potential(theta)
        return _pulled_back(s.points, s.jacobian, phi)

    def __call__(self, t, theta, args=None):
        """$\\dot\\theta$ (class docstring); NaN outside the Kähler cone in the Kähler–Ricci regimes."""
        self._check_theta(theta, "__call__")
        s = self.sample
        if self.regime in ("evolving", "frozen"):
            grad = jax.grad(lambda th: self.loss(s.omega, s.weights, self.metric(th)))(theta)
            return -grad
        g = self.metric(theta)
        u = log_eta_ratio(s, g)
        if self.smoothing is not None:
            u = self.smoothing @ u
        jac = jax.vmap(lambda z: jax.grad(lambda th: self.potential(th)(z))(theta))(s.points)
        w = s.weights / s.count
        normal = jac.T @ (w[:, None] * jac)
        eps = self.ridge * jnp.trace(normal) / normal.shape[0]
        rhs = jac.T @ (w * u)
        velocity = jnp.linalg.solve(normal + eps * jnp.eye(normal.shape[0]), rhs)
        # NaN, not an error: an adaptive step-size controller rejects a trial step outside
        return jnp.where(_inside(g), velocity, jnp.nan)


def _check_potential(potential: KahlerPotential, sample: PointSample) -> None:
    """`ValueError` unless `potential` takes one of the sample's points to a real scalar."""
    n1 = sample.points.shape[1]
    try:
        out = jax.eval_shape(potential, sample.points[0])
    except Exception as error:  # a potential for another CP^n: the features do not fit
        raise ValueError(
            f"PotentialFlow: the potential does not take the sample's points ({n1} homogeneous "
            f"coordinates, {n1 * n1} bihomogeneous features): is it for another projective "
            f"space? Make it with ambient_dim={n1}. ({type(error).__name__}: "
            f"{str(error).splitlines()[0] if str(error) else ''})"
        ) from error
    if getattr(out, "shape", None) != () or not jnp.issubdtype(out.dtype, jnp.floating):
        raise ValueError(
            f"PotentialFlow: the potential must map a point to a real scalar, got {out!r}."
        )
