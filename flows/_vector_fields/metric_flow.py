r"""The concrete flows: metric-lowered (`MetricFlow`) and componentwise (`ComponentwiseFlow`).

Conventions (docs/conventions.md, Normalisations and tensors; Well-posedness):

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
- Volume-normalised variants (`VolumeNormalised`, `base.py`) add $c\,g$ with
  $c = -\int \mathrm{tr}_g V\, dV_g / (n\,\mathrm{Vol}_g)$.

Both give `growth_rate`: 0 for the Ricci and $\lambda$ forms; $\max |k|^2 \hat k_\sigma(k)$
over the grid's modes for the fixed-measure forms, $|k|^2$ replaced by $l(l+n-1)$ on
spheres.
"""

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float

from .._kernels import AbstractKernel, DeltaKernel
from .._losses import (
    AbstractFunctional,
    GroundState,
    PerelmanLambdaLoss,
    PerelmanLoss,
    functional_derivative,
    ground_state,
)
from .._manifolds import AbstractManifold
from .._metrics import (
    LocalGeometry,
    NodalMetric,
    covariant_hessian,
    log_density_jet,
    log_jet,
    nodal_geometry,
    reference_geometry,
)
from .base import AbstractFlow, NodalTensors, _check_metric, _compiled_velocity, _project


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
        _check_metric(self, metric)
        m = self.manifold
        v, _ = self.local_velocity(metric)
        if self.kernel.is_local:
            return _project(m, jax.vmap(m.isotropic_extension)(m.nodes, v))
        # a kernel sums the tangential components from every point (docs/conventions.md,
        # Normalisations and tensors)
        tangential = jax.vmap(m.to_representation)(m.nodes, v)
        return _project(m, self.kernel.smooth(m, tangential))

    def evaluate(self, values: NodalTensors) -> NodalTensors:
        if self.kernel.is_local:
            return _compiled_velocity(self, values)
        # `velocity`'s steps, the local chart velocity compiled apart from the kernel (with
        # the kernel replaced, so that it serves every kernel width)
        m = self.manifold
        local = eqx.tree_at(lambda f: f.kernel, self, DeltaKernel())
        chart = _compiled_local_velocity(local, values)
        return _project(m, self.kernel.smooth(m, jax.vmap(m.to_representation)(m.nodes, chart)))

    def growth_rate(self) -> float | None:
        if self.measure != "fixed":
            return 0.0
        return _fixed_measure_rate(self.manifold, self.kernel)


@eqx.filter_jit
def _compiled_local_velocity(flow: MetricFlow, values: NodalTensors) -> Float[Array, "N n n"]:
    return flow.local_velocity(NodalMetric(flow.manifold, values, check=False))[0]


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
        _check_metric(self, metric)
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
