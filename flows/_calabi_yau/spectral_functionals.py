r"""Gradient flows of functionals of a spectral Kähler potential (the appendix-B flows).

On a `SpectralBasis`, $\phi = \sum_\alpha c_\alpha e_\alpha$; the tangent space carries
the metric $\langle\delta\phi, \delta\phi'\rangle = \sum_a w_a\,\delta\phi_a\,\delta\phi'_a/\sum_a w_a$
(the $\Omega$ measure), i.e. $M_{\alpha\beta} = \langle e_\alpha, e_\beta\rangle$ on
coefficients, so the gradient flow of $E(c)$ is

$$\dot c = -M^{-1}\nabla_c E, \qquad \frac{dE}{dt} = -\nabla_c E^\top M^{-1}\nabla_c E
= -\|\nabla E\|^2_{M^{-1}}.$$

Functionals ($\eta = \det g/|\Omega|^2$, $\bar\eta = \langle\eta\rangle$,
$\mu = w\eta/\sum w\eta$ the $d\mathrm{Vol}_g$ measure):

- `"monge_ampere"`: the ultra-local $E_p = \langle |\eta/\bar\eta - 1|^p\rangle$ (the $\sigma$ loss
  for $p = 1$). For $p = 1$, $|x|$ is replaced by $\sqrt{x^2 + \epsilon^2} - \epsilon$
  (`epsilon`, default $10^{-3}$): smooth, so the flow is an ODE with a Lipschitz
  right-hand side and $dE/dt$ exists; it differs from $|x|$ by at most $\epsilon$.
- `"dirichlet"`: the two-derivative functional $E = \int |\partial\log\eta|^2_g\,d\mathrm{Vol}_g/\int d\mathrm{Vol}_g$,
  $|\partial f|^2_g = g^{i\bar j}\partial_if\,\partial_{\bar j}f$, evaluated as it stands (three
  derivatives of the potential), so that it is $\ge 0$ on any sample and zero exactly at
  the Calabi–Yau metric. By parts it equals $\tfrac12\int\log\eta\,R\,d\mathrm{Vol}_g/\int d\mathrm{Vol}_g$
  ($\mathrm{Ric} = -\partial\bar\partial\log\eta$ as $\Omega$ is holomorphic, so
  $R = 2g^{i\bar j}R_{i\bar j} = -2\square\log\eta$): in the continuum only, to Monte Carlo
  error on a sample (tested).
- `"calabi"`: Calabi's $E = \int R^2\, d\mathrm{Vol}_g/\int d\mathrm{Vol}_g$.

The last two need derivatives through the chart (`hypersurface_curvature`'s code: one
or two derivatives of the basis's closed-form Hessians) and their gradient, so they
are for samples of hundreds to thousands of points. Their $E$ is a ratio of two sums
over the points, $E = A/B$ with $A = \sum_a w_a\eta_a\rho_a$, $B = \sum_a w_a\eta_a$
($\rho$ the density, $|\partial\log\eta|^2_g$ or $R^2$), taken `chunk` points at a time:

$$\nabla E = \frac{\nabla A - E\,\nabla B}{B}, \qquad
\nabla^2E = \frac{\nabla^2A - E\,\nabla^2B - \nabla B\,\nabla E^\top - \nabla E\,\nabla B^\top}{B},$$

so that the memory of their derivatives is that of one chunk whatever the sample's size
(only arrays of one value per point grow with it; on 2000 quintic points at $k = 10$,
the Calabi gradient of the whole sample at once asked for 27 GB). A metric that is not
positive definite at some sample point makes $E$ and its derivatives NaN
(`newton_fixed_point` refuses such a start and shortens a step into one).
"""

import math

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float

from .._misc import check_count, real_scalar
from .curvature import _curvature, _det, _log_eta_gradient, _polynomial, _solve
from .sampling import PointSample
from .spectral_basis import SpectralBasis
from .spectral_flows import SpectralPotential, SpectralRicciFlow

FUNCTIONALS = ("monge_ampere", "dirichlet", "calabi")


class _RealLeaves(eqx.Module):
    """A pytree with its complex array leaves stored as real and imaginary parts (diffrax
    integrates vector fields whose leaves are real); `value()` rebuilds it."""

    leaves: list
    treedef: object = eqx.field(static=True)
    complex_leaves: tuple = eqx.field(static=True)

    def __init__(self, tree):
        leaves, self.treedef = jax.tree.flatten(tree)
        self.complex_leaves = tuple(
            isinstance(x, jax.Array) and jnp.iscomplexobj(x) for x in leaves
        )
        self.leaves = [
            jnp.stack([jnp.real(x), jnp.imag(x)]) if is_complex else x
            for x, is_complex in zip(leaves, self.complex_leaves, strict=True)
        ]

    def value(self):
        leaves = [
            jax.lax.complex(x[0], x[1]) if is_complex else x
            for x, is_complex in zip(self.leaves, self.complex_leaves, strict=True)
        ]
        return jax.tree.unflatten(self.treedef, leaves)


class SpectralGradientFlow(eqx.Module):
    r"""$\dot c = -M^{-1}\nabla_c E(c)$ for one of the functionals of the module docstring.

    A diffrax vector field (`diffrax.ODETerm(flow)`), state $c$ (P,).

    **Arguments:** `basis`; `sample` (a `PointSample` of the basis's hypersurface);
    `functional` (one of `FUNCTIONALS`); `p` (1 or 2, for `"monge_ampere"`);
    `epsilon` (> 0, the smoothing of $|x|$ at $p = 1$); `chunk` (the most points per chunk
    of the `"dirichlet"` and `"calabi"` sums, module docstring: their memory grows with it,
    not with the sample; the sample is cut into as few chunks as that allows, of equal
    size, so that padding adds fewer points than there are chunks; the result does not
    depend on it beyond rounding).
    """

    local: SpectralRicciFlow
    parts: _RealLeaves  # (basis, sample)
    polynomial: object = eqx.field(static=True)
    functional: str = eqx.field(static=True)
    p: int = eqx.field(static=True)
    epsilon: float = eqx.field(static=True)
    chunk: int = eqx.field(static=True)

    def __init__(
        self,
        basis: SpectralBasis,
        sample: PointSample,
        functional: str,
        *,
        p: int = 2,
        epsilon: float = 1e-3,
        chunk: int = 64,
    ):
        if functional not in FUNCTIONALS:
            raise ValueError(
                f"SpectralGradientFlow: functional must be one of {FUNCTIONALS}, got {functional!r}."
            )
        if p not in (1, 2) or isinstance(p, bool):
            raise ValueError(f"SpectralGradientFlow: p must be 1 or 2, got {p!r}.")
        value = real_scalar(epsilon)
        if value is None or not math.isfinite(value) or not value > 0:
            raise ValueError(
                f"SpectralGradientFlow: epsilon must be a finite number > 0, got {epsilon!r}."
            )
        epsilon = value
        if not isinstance(basis, SpectralBasis):
            raise ValueError(
                f"SpectralGradientFlow: expected a SpectralBasis, got {type(basis).__name__}."
            )
        if not isinstance(sample, PointSample):
            raise ValueError(
                f"SpectralGradientFlow: expected a PointSample, got {type(sample).__name__}."
            )
        self.chunk = check_count(
            chunk, "SpectralGradientFlow: chunk must be an integer >= 1", minimum=1
        )
        self.local = SpectralRicciFlow(basis, sample)
        self.parts = _RealLeaves((basis, sample))
        self.polynomial = _polynomial(basis.hypersurface)
        self.functional = functional
        self.p = p
        self.epsilon = float(epsilon)

    @property
    def basis(self) -> SpectralBasis:
        """The basis."""
        return self.parts.value()[0]

    @property
    def sample(self) -> PointSample:
        """The sample the functional is integrated over."""
        return self.parts.value()[1]

    def energy(self, c: Float[Array, " P"]) -> Float[Array, ""]:
        """$E(c)$."""
        if self.functional == "monge_ampere":
            _, sample = self.parts.value()
            w = sample.weights / jnp.sum(sample.weights)
            eta = jnp.exp(self.local.log_eta(c))
            x = eta / jnp.sum(w * eta) - 1
            if self.p == 2:
                return jnp.sum(w * x**2)
            return jnp.sum(w * (jnp.sqrt(x**2 + self.epsilon**2) - self.epsilon))
        a, b = self._accumulate(self._sums, c)
        return a / b

    def gradient(self, c: Float[Array, " P"]) -> Float[Array, " P"]:
        r"""$\nabla_c E$ (reverse-mode autodiff)."""
        if self.functional == "monge_ampere":
            return jax.grad(self.energy)(c)
        (a, b), (grad_a, grad_b) = self._accumulate(self._sums_and_gradients, c)
        return (grad_a - (a / b) * grad_b) / b

    def _sums(self, c, chunk, shift) -> Float[Array, "2"]:
        r"""$(A, B)$ over one chunk of points, $\eta$ scaled by $e^{-\text{shift}}$ (it cancels in $E$)."""
        basis, _ = self.parts.value()
        points, patch, eliminated, omega, w = chunk
        arguments = (
            self.polynomial,
            basis.hypersurface.coefficients,
            points,
            patch,
            eliminated,
            SpectralPotential(basis, c),
        )
        if self.functional == "dirichlet":
            g, d_log_eta = _log_eta_gradient(*arguments)
            density = jnp.real(
                jnp.einsum("ni,ni->n", jnp.conj(d_log_eta), jax.vmap(_solve)(g, d_log_eta))
            )
        else:
            g, _, scalar = _curvature(*arguments)
            density = scalar**2
        log_eta = jnp.log(jnp.real(jax.vmap(_det)(g))) - jnp.log(jnp.abs(omega) ** 2)
        measure = w * jnp.exp(log_eta - shift)
        return jnp.stack([jnp.sum(measure * density), jnp.sum(measure)])

    def _sums_and_gradients(self, c, chunk, shift):
        r"""$((A, B), (\nabla A, \nabla B))$ over one chunk: one linearisation, two pull-backs."""
        sums, pullback = jax.vjp(lambda c: self._sums(c, chunk, shift), c)
        (gradients,) = jax.vmap(pullback)(jnp.eye(2, dtype=sums.dtype))
        return sums, gradients

    def _sums_gradients_and_hessians(self, c, chunk, shift):
        r"""As `_sums_and_gradients`, with $(\nabla^2A, \nabla^2B)$: $P$ Jacobian-vector
        products of its linearisation, one after another (the memory of one)."""
        (sums, gradients), tangent = jax.linearize(
            lambda c: self._sums_and_gradients(c, chunk, shift), c
        )
        _, hessians = jax.lax.map(tangent, jnp.eye(c.shape[0], dtype=c.dtype))  # (P, 2, P)
        return sums, gradients, jnp.moveaxis(hessians, 0, -1)

    def _accumulate(self, per_chunk, c):
        """`per_chunk(c, chunk, shift)` summed over the sample's chunks, one at a time: as
        few chunks as `self.chunk` points each allow, of equal size (the last padded with
        copies of the first point, weight 0)."""
        _, sample = self.parts.value()
        count = -(-sample.count // self.chunk)
        size = -(-sample.count // count)  # <= self.chunk, and pad < count
        pad = count * size - sample.count

        def split(x, fill):
            x = jnp.concatenate([x, jnp.broadcast_to(fill, (pad, *x.shape[1:])).astype(x.dtype)])
            return x.reshape(count, size, *x.shape[1:])

        w = sample.weights / jnp.sum(sample.weights)
        arrays = (sample.points, sample.patch, sample.eliminated, sample.omega)
        chunks = (*(split(x, x[0]) for x in arrays), split(w, 0))
        # any constant shift of log eta cancels in E = A / B: the largest keeps exp finite
        shift = jax.lax.stop_gradient(jnp.max(self.local.log_eta(c)))

        def add(total, chunk):
            return jax.tree.map(jnp.add, total, per_chunk(c, chunk, shift)), None

        first = jax.tree.map(lambda x: x[0], chunks)
        zero = jax.tree.map(
            lambda x: jnp.zeros(x.shape, x.dtype), jax.eval_shape(per_chunk, c, first, shift)
        )
        total, _ = jax.lax.scan(add, zero, chunks)
        return total

    def gram(self) -> Float[Array, "P P"]:
        r"""$M_{\alpha\beta} = \langle e_\alpha, e_\beta\rangle$, the metric on coefficients."""
        return self.local.gram()

    def residual(self, c: Float[Array, " P"]) -> Float[Array, " P"]:
        r"""$b(c) = -\nabla_c E$: the flow is $\dot c = M^{-1}b$, its fixed points $\nabla_c E = 0$."""
        return -self.gradient(c)

    def residual_and_jacobian(self, c: Float[Array, " P"]):
        r"""($b$, $\partial b/\partial c = -\nabla_c^2E$), the Hessian by forward-over-reverse
        autodiff ($P$ Jacobian-vector products of one linearisation of the gradient, taken
        one after another: the memory of one product, not of $P$; batched, the Dirichlet
        Hessian at $k = 10$, $P = 37$, on 2000 quintic points asked for 26 GB). For
        `"dirichlet"` and `"calabi"`, chunk by chunk and assembled from the sums' Hessians
        (module docstring)."""
        if self.functional == "monge_ampere":
            gradient, tangent = jax.linearize(self.gradient, c)
            hessian = jax.lax.map(tangent, jnp.eye(c.shape[0], dtype=c.dtype))
            return -gradient, -hessian.T
        (a, b), (grad_a, grad_b), (hess_a, hess_b) = self._accumulate(
            self._sums_gradients_and_hessians, c
        )
        energy = a / b
        gradient = (grad_a - energy * grad_b) / b
        cross = jnp.outer(grad_b, gradient)
        hessian = (hess_a - energy * hess_b - cross - cross.T) / b
        return -gradient, -hessian

    def __call__(self, t, c: Float[Array, " P"], args=None) -> Float[Array, " P"]:
        r"""$\dot c = -M^{-1}\nabla_c E$.

        NaN where $g_c$ is not positive definite at some sample point (or $c$ is not finite):
        an adaptive solver's trial step that leaves the Kahler cone is then rejected and
        retried shorter (the stiff $p = 2$ flow's first trial steps do; its later stages
        then see non-finite states), where an error would end the solve.
        """
        self.local._check_state(c, "__call__")
        return -jnp.linalg.solve(self.gram(), self.gradient(c))
