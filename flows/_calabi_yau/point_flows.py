r"""Kernel flows of Kähler metrics given by their values at points of $X$.

The state of Halverson and Ruehle's kernel experiments (*Metric Flows with
Neural Networks*, §3) is a Hermitian metric $h_a$ ($m \times m$, local
coordinates of the point's patch) at each training point $z_a$ of a
hypersurface $X$, and at test points. The flow is the project's metric flow
(docs/conventions.md, Normalisations and tensors: $\partial_t g(x) = -\int
K(x, x')\, E(x')\, d\mu(x')$) with a Monge–Ampère loss (`losses.py`) and the
measure $d\mu = d\mathrm{Vol}_\Omega/\mathrm{Vol}_\Omega$ estimated by the sample:

$$\partial_t h(x) = -\int K(x, x')\, G(x')\, d\mu(x') \approx -\sum_b K(x, z_b)\,\frac{w_b}{N}\, G_b,
\qquad G_b = \frac{N}{w_b}\,\frac{\partial L}{\partial h_b},$$

$G$ the functional derivative of $L$ (the gradient in the Frobenius inner
product $\mathrm{Re}\,\mathrm{tr}(X^\dagger Y)$ on Hermitian matrices, divided
by the quadrature weight), $K$ a point kernel (`point_kernels.py`).

Metric values at different points are only comparable in one coordinate
system, so, as in the paper, the samples used here lie in one chart (one
patch and one eliminated coordinate; `chart_sample`).
"""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Complex, Float

from .losses import MongeAmpereLoss
from .point_kernels import AbstractPointKernel
from .sampling import PointSample


def to_real(h: Complex[Array, "N m m"]) -> Float[Array, "N 2 m m"]:
    """Hermitian values as a real array (Re, Im) on axis 1: the state diffrax integrates."""
    return jnp.stack([jnp.real(h), jnp.imag(h)], axis=1)


def to_complex(y: Float[Array, "N 2 m m"]) -> Complex[Array, "N m m"]:
    """Inverse of `to_real`."""
    return jax.lax.complex(y[:, 0], y[:, 1])


def _charts(sample: PointSample) -> np.ndarray:
    """The distinct (patch, eliminated) pairs of a sample, as integers."""
    n1 = sample.points.shape[1]
    return np.unique(np.asarray(sample.patch) * n1 + np.asarray(sample.eliminated))


class PointKernelFlow(eqx.Module):
    r"""$\partial_t h = -V$ at training and test points: a Monge–Ampère loss through a point kernel.

    The vector field of the paper's kernel flows (module docstring): the state
    is `(to_real(h_train), to_real(h_test))`; the loss is evaluated on the
    training points only; the kernel carries its update to the test points
    (their "prediction").

    **Arguments:** `kernel` (an `AbstractPointKernel`; `prepare` is called here),
    `loss` (a `MongeAmpereLoss`), `train` and optional `test` (`PointSample`s in
    one chart, `chart_sample`).
    """

    kernel: AbstractPointKernel
    loss: MongeAmpereLoss
    train: PointSample
    test: PointSample | None

    def __init__(
        self,
        kernel: AbstractPointKernel,
        loss: MongeAmpereLoss,
        train: PointSample,
        test: PointSample | None = None,
    ):
        if not isinstance(kernel, AbstractPointKernel):
            raise ValueError(
                f"PointKernelFlow: kernel must be an AbstractPointKernel, got {type(kernel).__name__}."
            )
        if not isinstance(loss, MongeAmpereLoss):
            raise ValueError(
                f"PointKernelFlow: loss must be a MongeAmpereLoss, got {type(loss).__name__}."
            )
        for name, s in (("train", train), ("test", test)):
            if s is None and name == "test":
                continue
            if not isinstance(s, PointSample):
                raise ValueError(f"PointKernelFlow: {name} must be a PointSample.")
        if test is not None and test.points.shape[1] != train.points.shape[1]:
            raise ValueError("PointKernelFlow: train and test points live in different spaces.")
        chart = _charts(train)
        if chart.size != 1 or (test is not None and np.any(_charts(test) != chart[0])):
            raise ValueError(
                "PointKernelFlow: the points span several charts; metric values in different "
                "coordinates cannot be added (use chart_sample, and sample_near for test points)."
            )
        self.kernel = kernel.prepare(train, test)
        self.loss = loss
        self.train = train
        self.test = test

    @property
    def test_points(self) -> Complex[Array, "P n1"]:
        if self.test is None:
            return jnp.zeros((0, self.train.points.shape[1]), self.train.points.dtype)
        return self.test.points

    def velocity(
        self, h_train: Complex[Array, "N m m"], h_test: Complex[Array, "P m m"] | None = None
    ) -> tuple[Complex[Array, "N m m"], Complex[Array, "P m m"]]:
        r"""$(\partial_t h_\mathrm{train}, \partial_t h_\mathrm{test})$."""
        del h_test  # the kernel's prediction depends on the training state only
        m = self.train.points.shape[1] - 2
        if h_train.shape != (self.train.count, m, m):
            raise ValueError(
                f"PointKernelFlow: h_train must have shape ({self.train.count}, {m}, {m}), one "
                f"metric value per training point, got {h_train.shape}."
            )
        weighted = self.loss.gradient(self.train.omega, self.train.weights, h_train)
        v_train, v_test = self.kernel.velocity(
            self.train.points, self.test_points, self.train.weights, weighted
        )
        return -v_train, -v_test

    def __call__(self, t, y, args):
        dtrain, dtest = self.velocity(to_complex(y[0]), to_complex(y[1]))
        return to_real(dtrain), to_real(dtest)
