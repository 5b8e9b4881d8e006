r"""The named flows: constructors for every flow the project compares, and `make_flow` by name.

`FLOW_NAMES`: `ricci` (Hamilton), `ricci_deturck`, `perelman` (fixed measure),
`perelman_lambda` and `perelman_lambda_deturck` (the gradient flow of $\lambda$,
without and with the DeTurck term), `smoothed` and `smoothed_lambda` (the
fixed-measure and $\lambda$ forms smoothed by the Gaussian $k_\sigma$) and
`componentwise` (the componentwise flow of $L_P$). Which of them are well posed is
stated in docs/conventions.md, Well-posedness.
"""

import math

from .._kernels import AbstractKernel, DeltaKernel, GaussianKernel
from .._losses import PerelmanLoss
from .._manifolds import AbstractManifold
from .._misc import real_scalar
from .base import AbstractFlow
from .metric_flow import ComponentwiseFlow, MetricFlow


def ricci_flow(manifold: AbstractManifold, kernel: AbstractKernel | None = None) -> MetricFlow:
    r"""Hamilton's Ricci flow $\partial_t g = -2\,\mathrm{Ric}$ (weakly parabolic: gauge modes are neutral)."""
    return MetricFlow(manifold, "none", kernel)


def ricci_deturck_flow(
    manifold: AbstractManifold, kernel: AbstractKernel | None = None
) -> MetricFlow:
    r"""Ricci–DeTurck flow $-2\,\mathrm{Ric} + \mathcal L_W g$ (background $g_\mathrm{ref}$): the default local Ricci flow."""
    return MetricFlow(manifold, "none", kernel, deturck=True)


def perelman_flow(manifold: AbstractManifold, kernel: AbstractKernel | None = None) -> MetricFlow:
    r"""Perelman's fixed-measure flow $-2(\mathrm{Ric} + \nabla\nabla f)$, $f = \log dV_g/d\mu$ (Halverson–Ruehle's object)."""
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
    `perelman_lambda_deturck` with it (the names docs/conventions.md, Well-posedness,
    compares);
    `componentwise` is the componentwise flow of $L_P$, local unless `sigma` is given.
    The local flows ignore `sigma`, but it must still be None or a finite number >= 0.
    """
    value = None if sigma is None else real_scalar(sigma)
    if sigma is not None and (value is None or not math.isfinite(value) or not value >= 0):
        allowed = (
            "a finite number > 0"
            if name in ("smoothed", "smoothed_lambda")
            else "None or a finite number >= 0 (0: local)"
        )
        raise ValueError(f"make_flow: sigma for {name!r} must be {allowed}, got {sigma!r}.")
    sigma = value
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
