r"""Flows of metrics: $\partial_t G_a = V_a(G)$ on the nodal values of a metric.

Conventions (`shared/DESIGN.md` §2, §2.1):

- Metric-lowered flows, local or smoothed by a kernel $k$:
  $\partial_t g(x) = \int k(x, x')\, V(x')\, d\mu(x')$ with the local velocity
  - `ricci`: $V = -2\,\mathrm{Ric}$ (Hamilton);
  - `perelman`: $V = -2(\mathrm{Ric} + \nabla\nabla f)$, $f = \log(dV_g/d\mu)$ (fixed measure;
    ill-posed forward in time when local);
  - `perelman_lambda`: the same with $f$ the minimiser of $\mathcal F$, $e^{-f/2}$ the
    ground state of $-4\Delta + R$ (the gradient flow of $\lambda$);
  - optionally plus the DeTurck term $\mathcal L_W g$,
    $W^k = g^{ij}(\Gamma^k_{ij} - \bar\Gamma^k_{ij})$, $\bar\Gamma$ of $g_\mathrm{ref}$
    (`ricci_deturck`, `perelman_lambda_deturck`): strictly parabolic.
  With the Gaussian kernel these are named `smoothed` (fixed measure),
  `smoothed_lambda` and `smoothed_ricci`.
- Componentwise flows of any loss: $\partial_t g_{ij}(x) = -\int \Theta(x, x') E^{ij}(x')\, d\mu(x')$,
  $E = \delta L/\delta g$ in a $g_\mathrm{ref}$-orthonormal frame (chart components
  on tori, ambient components on spheres): what a network with one output per
  component induces.
- Volume-normalised variants add $c\,g$ with $c = -\int \mathrm{tr}_g V\, dV_g / (n\,\mathrm{Vol}_g)$.

On spheres the state is band-limited (`NodalMetric`), so every velocity is
projected onto the spectral series: the state never leaves it.

Every flow also gives `growth_rate`: the largest linear growth rate $\Lambda$
of a perturbation on the discretisation, at the reference scale (0 for the
Ricci and $\lambda$ forms; $\max |k|^2 \hat k_\sigma(k)$ over the grid's modes
for the fixed-measure forms, $|k|^2$ replaced by $l(l+n-1)$ on spheres). The
solver turns it into a predicted amplification and refuses hopeless runs.
"""

import abc
import math
import numbers

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float

from ._curvature import (
    LocalGeometry,
    covariant_hessian,
    log_density_jet,
    log_jet,
    nodal_geometry,
    reference_geometry,
)
from ._ground_state import GroundState, PerelmanLambdaLoss, ground_state
from ._kernels import AbstractKernel, DeltaKernel, GaussianKernel
from ._losses import AbstractFunctional, PerelmanLoss, functional_derivative
from ._manifolds import AbstractManifold
from ._metrics import NodalMetric

NodalTensors = Float[Array, "N D D"]


def _project(manifold: AbstractManifold, values: NodalTensors) -> NodalTensors:
    """The spectral series at the nodes (identity on interpolating manifolds)."""
    if manifold.interpolates:
        return values
    return manifold.spectral_multiply(values, jnp.ones_like(manifold.laplace_eigenvalues()))


class AbstractFlow(eqx.Module):
    r"""A flow $\partial_t G = V(G)$ of nodal metric values; callable as a diffrax vector field."""

    manifold: eqx.AbstractVar[AbstractManifold]

    @property
    @abc.abstractmethod
    def name(self) -> str:
        """The flow's name, as used in every output (e.g. `ricci_deturck`, `smoothed_lambda`)."""

    @abc.abstractmethod
    def velocity(self, metric: NodalMetric) -> NodalTensors:
        r"""$V$ at every node, in the representation (shape (N, D, D))."""

    @abc.abstractmethod
    def growth_rate(self) -> float | None:
        r"""$\Lambda$: the largest linear growth rate this discretisation admits, at the reference scale.

        None when no prediction is available (the solver then warns).
        """

    def __call__(self, t, values: NodalTensors, args=None) -> NodalTensors:
        return self.velocity(NodalMetric(self.manifold, values, check=False))

    def evaluate(self, values: NodalTensors) -> NodalTensors:
        """$V$ at the nodal values `values`, compiled: what a solver asks for before integrating.

        A flow may compute it in pieces that compile once for a family of flows
        (a smoothed `MetricFlow` compiles its local velocity once for every kernel).
        """
        return _compiled_velocity(self, values)


@eqx.filter_jit
def _compiled_velocity(flow: AbstractFlow, values: NodalTensors) -> NodalTensors:
    return flow(0.0, values)


def mean_trace(
    manifold: AbstractManifold, values: NodalTensors, velocity: NodalTensors
) -> tuple[Float[Array, ""], Float[Array, ""]]:
    r"""$\int \mathrm{tr}_g V\, dV_g / \mathrm{Vol}_g$ and $\mathrm{Vol}_g$ for nodal $g$ and $V$.

    $\tfrac12$ the first is $d\log\mathrm{Vol}_g/dt$ along $\partial_t g = V$.
    """
    g = manifold.tangential(values)
    density = jnp.sqrt(jnp.linalg.det(g))
    trace = jnp.einsum("nij,nji->n", jnp.linalg.inv(g), manifold.tangential(velocity))
    volume = manifold.integrate(density)
    return manifold.integrate(trace * density) / volume, volume


def deturck_term(geom: LocalGeometry, ref: LocalGeometry) -> Float[Array, "n n"]:
    r"""$(\mathcal L_W g)_{ij} = W^k\partial_k g_{ij} + g_{kj}\partial_i W^k + g_{ik}\partial_j W^k$ in a chart.

    $W^k = g^{ij}(\Gamma^k_{ij} - \bar\Gamma^k_{ij})$, $\bar\Gamma$ the reference
    metric's Christoffel symbols in the same chart.
    """
    g, ginv, dg = geom.metric, geom.inverse, geom.metric_derivative
    dgam = geom.christoffel - ref.christoffel
    ddgam = geom.christoffel_derivative - ref.christoffel_derivative
    w = jnp.einsum("ij,kij->k", ginv, dgam)
    dginv = -jnp.einsum("ia,abl,bj->ijl", ginv, dg, ginv)
    dw = jnp.einsum("ijl,kij->kl", dginv, dgam) + jnp.einsum("ij,kijl->kl", ginv, ddgam)
    return (
        jnp.einsum("k,ijk->ij", w, dg)
        + jnp.einsum("kj,ki->ij", g, dw)
        + jnp.einsum("ik,kj->ij", g, dw)
    )


_MEASURES = ("none", "fixed", "lambda")


class MetricFlow(AbstractFlow):
    r"""A metric-lowered flow: $\partial_t g = \int k(x, x') V(x')\, d\mu(x')$, $V$ Ricci's or Perelman's.

    **Arguments:**

    - `manifold`: the manifold.
    - `measure`: `"none"` ($V = -2\mathrm{Ric}$), `"fixed"` ($f = \log dV_g/d\mu$) or
      `"lambda"` ($f$ the minimiser of $\mathcal F$).
    - `kernel`: default `DeltaKernel()` (local); e.g. `GaussianKernel(sigma)`.
    - `deturck`: add $\mathcal L_W g$ (not with the fixed measure).
    - `ground_tol`, `ground_iterations`: the ground-state solve of the $\lambda$ form.

    Prefer the constructors `ricci_flow`, `ricci_deturck_flow`, `perelman_flow`,
    `perelman_lambda_flow`, or `make_flow(name, ...)`.
    """

    manifold: AbstractManifold
    kernel: AbstractKernel
    measure: str = eqx.field(static=True)
    deturck: bool = eqx.field(static=True)
    ground_tol: float = eqx.field(static=True)
    ground_iterations: int = eqx.field(static=True)

    def __init__(
        self,
        manifold: AbstractManifold,
        measure: str = "none",
        kernel: AbstractKernel | None = None,
        deturck: bool = False,
        *,
        ground_tol: float = 1e-11,
        ground_iterations: int = 400,
    ):
        if not isinstance(manifold, AbstractManifold):
            raise ValueError(f"MetricFlow: manifold must be a manifold, got {manifold!r}.")
        if measure not in _MEASURES:
            raise ValueError(f"MetricFlow: measure must be one of {_MEASURES}, got {measure!r}.")
        kernel = DeltaKernel() if kernel is None else kernel
        if not isinstance(kernel, AbstractKernel):
            raise ValueError(f"MetricFlow: kernel must be a kernel module, got {kernel!r}.")
        if deturck and measure == "fixed":
            raise ValueError(
                "MetricFlow: the DeTurck term is offered for the Ricci and lambda forms, not the "
                "fixed-measure flow (whose gauge modes it would only partly cancel)."
            )
        self.manifold = manifold
        self.measure = measure
        self.kernel = kernel
        self.deturck = bool(deturck)
        self.ground_tol = float(ground_tol)
        self.ground_iterations = int(ground_iterations)

    @property
    def name(self) -> str:
        base = {"none": "ricci", "fixed": "perelman", "lambda": "perelman_lambda"}[self.measure]
        if self.deturck:
            base += "_deturck"
        if self.kernel.is_local:
            return base
        return {"perelman": "smoothed", "perelman_lambda": "smoothed_lambda"}.get(
            base, "smoothed_" + base
        )

    def local_velocity(
        self, metric: NodalMetric, state: GroundState | None = None
    ) -> tuple[Float[Array, "N n n"], GroundState | None]:
        r"""The local $V$ at the nodes in each node's chart (before smoothing), and the ground state used."""
        m = self.manifold
        geom = nodal_geometry(metric)
        ref = reference_geometry(m)
        if self.measure == "lambda":
            if state is None:
                state = ground_state(
                    metric,
                    geometry=geom,
                    tol=self.ground_tol,
                    max_iterations=self.ground_iterations,
                )
            # f = -2 log w
            df, ddf = jax.vmap(log_jet)(state.w, *m.nodal_jet(state.w))
            df, ddf = -2 * df, -2 * ddf
        elif self.measure == "fixed":  # f = log(dV_g/dmu)
            df, ddf = jax.vmap(log_density_jet)(geom, ref)
        else:
            df = jnp.zeros((m.nodes.shape[0], m.dim))
            ddf = jnp.zeros((m.nodes.shape[0], m.dim, m.dim))

        def at(gq, rq, df_a, ddf_a):
            v = -2 * gq.ricci
            if self.measure != "none":
                v = v - 2 * covariant_hessian(gq, df_a, ddf_a)
            if self.deturck:
                v = v + deturck_term(gq, rq)
            return v

        return jax.vmap(at)(geom, ref, df, ddf), state

    def velocity(self, metric: NodalMetric) -> NodalTensors:
        m = self.manifold
        v, _ = self.local_velocity(metric)
        if self.kernel.is_local:
            return _project(m, jax.vmap(m.isotropic_extension)(m.nodes, v))
        # a kernel sums the tangential components from every point (DESIGN.md 2)
        tangential = jax.vmap(m.to_representation)(m.nodes, v)
        return _project(m, self.kernel.smooth(m, tangential))

    def evaluate(self, values: NodalTensors) -> NodalTensors:
        if self.kernel.is_local:
            return _compiled_velocity(self, values)
        # smooth outside the compiled local velocity, which then serves every kernel width
        m = self.manifold
        local = eqx.tree_at(lambda f: f.kernel, self, DeltaKernel())
        chart = m.tangential(_compiled_velocity(local, values))
        return self.kernel.smooth(m, jax.vmap(m.to_representation)(m.nodes, chart))

    def growth_rate(self) -> float | None:
        if self.measure != "fixed":
            return 0.0
        return _fixed_measure_rate(self.manifold, self.kernel)


def _fixed_measure_rate(manifold: AbstractManifold, kernel: AbstractKernel) -> float | None:
    mult = kernel.multiplier(manifold)
    if mult is None:
        return None
    return float(jnp.max(manifold.laplace_eigenvalues() * mult))


class ComponentwiseFlow(AbstractFlow):
    r"""$\partial_t G = -\int \Theta(x, x') E(x')\, d\mu(x')$, $E = \delta L/\delta g$ componentwise.

    $E$ comes from `functional_derivative` (automatic differentiation of the
    discretised loss); $\Theta$ is any kernel, `DeltaKernel()` by default. With
    a positive semi-definite kernel the loss decreases:
    $dL/dt = -\langle E, \Theta E\rangle \le 0$.

    By default the kernel acts on $E$'s spectral series (`kernel.smooth`) and on
    spheres the velocity is projected onto the band-limited series. With
    `quadrature=True` it is the quadrature a network sees,
    $-\sum_b w_b \Theta(x_a, x_b) E_b = -\sum_b \Theta(x_a, x_b)\, \partial L_h/\partial G_b$
    (`kernel.apply`), unprojected: the infinite-width limit of a network metric's
    flow (`solvers.solve_network`).
    """

    manifold: AbstractManifold
    loss: AbstractFunctional
    kernel: AbstractKernel
    quadrature: bool = eqx.field(static=True)

    def __init__(
        self,
        manifold: AbstractManifold,
        loss: AbstractFunctional | None = None,
        kernel: AbstractKernel | None = None,
        *,
        quadrature: bool = False,
    ):
        if not isinstance(manifold, AbstractManifold):
            raise ValueError(f"ComponentwiseFlow: manifold must be a manifold, got {manifold!r}.")
        self.manifold = manifold
        self.loss = PerelmanLoss() if loss is None else loss
        self.kernel = DeltaKernel() if kernel is None else kernel
        if not isinstance(self.loss, AbstractFunctional):
            raise ValueError(f"ComponentwiseFlow: loss must be a loss module, got {loss!r}.")
        if not isinstance(self.kernel, AbstractKernel):
            raise ValueError(f"ComponentwiseFlow: kernel must be a kernel module, got {kernel!r}.")
        self.quadrature = bool(quadrature)

    @property
    def name(self) -> str:
        return "componentwise"

    def velocity(self, metric: NodalMetric) -> NodalTensors:
        e = functional_derivative(self.loss, metric)
        if self.quadrature:
            return -self.kernel.apply(self.manifold, e)
        return _project(self.manifold, -self.kernel.smooth(self.manifold, e))

    def growth_rate(self) -> float | None:
        if isinstance(self.loss, PerelmanLoss):
            return _fixed_measure_rate(self.manifold, self.kernel)
        if isinstance(self.loss, PerelmanLambdaLoss):
            return 0.0
        return None


class VolumeNormalised(AbstractFlow):
    r"""`flow` plus $c\,g$, $c = -\int \mathrm{tr}_g V\, dV_g / (n\, \mathrm{Vol}_g)$: the volume is constant."""

    flow: AbstractFlow

    @property
    def manifold(self) -> AbstractManifold:
        return self.flow.manifold

    @property
    def name(self) -> str:
        return self.flow.name + "_normalised"

    def velocity(self, metric: NodalMetric) -> NodalTensors:
        v = self.flow.velocity(metric)
        trace, _ = mean_trace(self.manifold, metric.values, v)
        return v - trace / self.manifold.dim * metric.values

    def growth_rate(self) -> float | None:
        return self.flow.growth_rate()


def ricci_flow(manifold: AbstractManifold, kernel: AbstractKernel | None = None) -> MetricFlow:
    r"""Hamilton's Ricci flow $\partial_t g = -2\,\mathrm{Ric}$ (weakly parabolic: gauge modes are neutral)."""
    return MetricFlow(manifold, "none", kernel)


def ricci_deturck_flow(
    manifold: AbstractManifold, kernel: AbstractKernel | None = None
) -> MetricFlow:
    r"""Ricci–DeTurck flow $-2\,\mathrm{Ric} + \mathcal L_W g$ (background $g_\mathrm{ref}$): the default local Ricci flow."""
    return MetricFlow(manifold, "none", kernel, deturck=True)


def perelman_flow(manifold: AbstractManifold, kernel: AbstractKernel | None = None) -> MetricFlow:
    r"""Perelman's fixed-measure flow $-2(\mathrm{Ric} + \nabla\nabla f)$, $f = \log dV_g/d\mu$ (the paper's object)."""
    return MetricFlow(manifold, "fixed", kernel)


def perelman_lambda_flow(
    manifold: AbstractManifold, kernel: AbstractKernel | None = None, deturck: bool | None = None
) -> MetricFlow:
    r"""The gradient flow of $\lambda$: $-2(\mathrm{Ric} + \nabla\nabla f)$, $f$ the minimiser of $\mathcal F$.

    `deturck` (default: on for the local form, off when smoothed) adds
    $\mathcal L_W g$, without which the local form is only weakly parabolic.
    """
    kernel = DeltaKernel() if kernel is None else kernel
    if deturck is None:
        deturck = kernel.is_local
    return MetricFlow(manifold, "lambda", kernel, deturck=deturck)


def _gaussian(sigma, name: str) -> GaussianKernel:
    if sigma is None:
        raise ValueError(f"{name}: needs a width sigma > 0.")
    return GaussianKernel(sigma)


FLOW_NAMES = (
    "ricci",
    "ricci_deturck",
    "perelman",
    "perelman_lambda",
    "perelman_lambda_deturck",
    "smoothed",
    "smoothed_lambda",
    "componentwise",
)


def make_flow(name: str, manifold: AbstractManifold, sigma: float | None = None) -> AbstractFlow:
    """The flow called `name` (one of `FLOW_NAMES`); `sigma` > 0 for the smoothed ones.

    `perelman_lambda` here is the local form *without* the DeTurck term and
    `perelman_lambda_deturck` with it (the names DESIGN.md §2.1 compares);
    `componentwise` is the componentwise flow of $L_P$, local unless `sigma` is given.
    The local flows ignore `sigma`, but it must still be None or a finite number >= 0.
    """
    if sigma is not None and not (
        isinstance(sigma, numbers.Real)
        and not isinstance(sigma, bool)
        and math.isfinite(sigma)
        and sigma >= 0
    ):
        raise ValueError(
            f"make_flow: sigma must be a finite number > 0 (or 0 or None: local), got {sigma!r}."
        )
    if not isinstance(manifold, AbstractManifold):
        raise ValueError(f"make_flow: manifold must be a flows manifold, got {manifold!r}.")
    if name == "ricci":
        return ricci_flow(manifold)
    if name == "ricci_deturck":
        return ricci_deturck_flow(manifold)
    if name == "perelman":
        return perelman_flow(manifold)
    if name == "perelman_lambda":
        return perelman_lambda_flow(manifold, deturck=False)
    if name == "perelman_lambda_deturck":
        return perelman_lambda_flow(manifold, deturck=True)
    if name == "smoothed":
        return perelman_flow(manifold, _gaussian(sigma, name))
    if name == "smoothed_lambda":
        return perelman_lambda_flow(manifold, _gaussian(sigma, name), deturck=False)
    if name == "componentwise":
        kernel = None if sigma is None or sigma == 0 else GaussianKernel(sigma)
        return ComponentwiseFlow(manifold, PerelmanLoss(), kernel)
    raise ValueError(f"make_flow: unknown flow {name!r}; choose one of {FLOW_NAMES}.")
