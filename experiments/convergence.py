r"""Convergence studies: five refinements, each with its fitted order, a 95% interval and the expected order.

`--study` runs one study (or `all`, the default); each writes `convergence_<study>.json`
(the data, the fitted order, its interval, the expected order and whether it lies
inside, the fits behind them) and `convergence_<study>.png` (log-scale axes: the
measurements, the fitted line, and a dashed line of the expected slope through the
fitted points' centre). Orders are positive: error $\propto h^p$ for a step $h$
($\sigma$, $\Delta t$), $\propto N^{-p}$ for a size $N$ (width, points), and
$\propto \text{prefactor}\times e^{-p\,n}$ for a spectral resolution $n$. Expected,
and measured at the defaults (seed 0): resolution $p = \log 2 = 0.6931$ (measured
0.6949 on $T^2$, 0.6933 on $S^2$); tolerance 2, 3, 4 (2.03, 3.04, 4.05); sigma 2
(1.990, 1.971); width 1/2 (0.511, 0.506); points 1/2 (0.51). Every expected order
lies inside its interval. Each study takes 20–60 s of CPU on two cores (about 3
minutes for `all`); `--small` is a smoke run, too coarse for the orders to mean much.

- `resolution` (spectral convergence): Gauss–Bonnet, $\int R\, dV_g = 4\pi\chi$, through
  the library's curvature (automatic differentiation of the spectral interpolant) and
  quadrature, for two band-limited metrics (every grid holds them exactly; only the
  rule changes) whose integrand has a known complex singularity. $T^2$, n points per
  axis: $g = dx^2 + (1 + a\cos x)\,dy^2$, so $R\sqrt{\det g} = -2f''$,
  $f = \sqrt{1 + a\cos x}$, with branch points at $\cos x = -1/a$. $S^2$, quadrature
  degree L ($m = L/2 + 1$ Gauss–Legendre nodes): $(1 + a x_3)\,g_\mathrm{round}$, whose
  integrand is a polynomial plus a double pole at $x_3 = -1/a$. The criterion is a
  sharp prediction rather than "faster than any power": the trapezoid rule converges
  like $n^{1/2}\rho^{-n}$ (a $-3/2$ branch point) and the Gauss rule like
  $m\,\rho^{-2m} \propto m\,\rho^{-L}$ (a double pole), $\log\rho = \operatorname{arccosh}(1/a)$
  (the half-width of the strip of analyticity, the Bernstein ellipse). The fit is
  $\log e - \log \text{prefactor} = c - p\,x$ ($x = n$ or $L$); the JSON also has the
  local log-log slopes, which grow linearly in $x$ as predicted (no power law fits).
  Points within $10^5$ rounding units ($\epsilon \sum_a w_a |R\, dV_g|$) of the exact
  value are left out of the fit.
- `tolerance` (the integrator's order): fixed-step diffrax solves (`ConstantStepSize`,
  K steps) of Ricci–DeTurck flow on $T^2$ (n = 8) from a seeded random metric to
  t = 0.2 with Heun (order 2), Bosh3 (3) and the classical Runge–Kutta method (4, a
  Butcher tableau defined here); the error is the $L^2(\mu)$ norm of the final nodal
  metric's difference from a Dopri8 reference (`solvers.solve`, rtol = atol = 1e-14,
  checked against fixed-step Dopri8). Tsit5 and Dopri5 (`--solvers`) are
  pre-asymptotic at every step size above the rounding floor (their principal error
  coefficients are tuned small: local orders 5.8 falling to 5.2 when the error meets
  rounding), so their intervals miss 5.
- `sigma` ($\sigma \to 0$, order 2): the smoothed fixed-measure velocity
  $V_\sigma = \int k_\sigma V\, d\mu$ against Perelman's local velocity
  $V = -2(\mathrm{Ric} + \nabla\nabla f)$ at a seeded random metric, $L^2(\mu)$ norm of
  the tangential difference. On $T^2$ the target is `perelman_flow(torus).velocity`
  itself. On $S^2$ the local flow extends tangential tensors isotropically while
  kernels sum tangential ambient components (docs/conventions.md, Normalisations and
  tensors); after projection onto the band-limited series the two differ by a
  σ-independent floor (in the JSON as
  `representation_floor`, 3.7e-3 against $|V| = 10$ at degree 16; it falls with the
  degree), so there the target is the smoothed operator's own $\sigma \to 0$ limit,
  the projected tangential local velocity. The smoothed flow's `velocity` is checked
  against $V_\sigma$ at the largest σ.
- `width` (order 1/2): the empirical per-component NTK of cosine network metrics
  (`flows.component_ntk`, amplitudes and phases trained) against the infinite-width
  kernel `flows.CosineNTK(sigma, manifold)` on the nodes of $T^2$ (n = 12) and $S^2$
  (degree 8), σ = 0.5: relative Frobenius error, root mean square over the independent
  component networks and `--seeds` seeds (8); its square has mean $\propto$ 1/width
  exactly, the random features being unbiased.
- `points` (order 1/2): σ of the Fubini–Study metric on the Fermat quintic
  (`flows.sigma_measure`) from N = 100 ... 6400 Monte Carlo points; the error at each N
  is the standard deviation of `--seeds` (96) estimates from disjoint samples.

Intervals. In `width` and `points` the errors scatter from seed to seed. The interval
is the larger of the 95% Student-t interval of the least-squares slope of $\log e$
(from its residuals) and the normal interval of the slope's standard error propagated
from the scatter of the draws behind each point (the variance of $\log e$ by the delta
method, in the JSON as `log_variance`): with a few widths the residuals alone can lie on
a line by chance. Over 60 seeds of the width study (T², n = 8, widths 16–512, 8 seeds)
the residual-only interval covered 1/2 in 90% of them, the larger one in 97%. In the
deterministic studies (`resolution`, `tolerance`, `sigma`) residuals are not noise but
the next terms of the error's expansion, so the Student-t half-width
$t_{0.975}\,\mathrm{se}$ only measures lack of fit; it is widened by a systematic term,
the largest shift of the order when the next one or two terms of the expansion join the
fit ($1/m$, $1/m^2$; $\Delta t$, $\Delta t^2$; $\sigma^2$, $\sigma^4$), the usual
estimate from varying the ansatz. Every fit is in the JSON (`ansatz_variations`).

Usage: python experiments/convergence.py --study {resolution,tolerance,sigma,width,points,all} --out DIR [--small] [--seed S] [--seeds K] [--solvers heun,bosh3,rk4] [--amplitude-a A]
"""

import argparse
import math
import sys
import time
from pathlib import Path
from typing import ClassVar

import diffrax
import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from _common import directory, integer, number, progress, save_figure, seed, write_json
from _fits import (
    check_series,
    fit_order,
    local_orders,
    log_rms_variance,
    log_safe,
    log_std_variance,
    no_systematic,
    power_series,
)
from matplotlib.figure import Figure

import flows
import solvers

jax.config.update("jax_enable_x64", True)

STUDIES = ("resolution", "tolerance", "sigma", "width", "points")
DEFAULT_SOLVERS = ("heun", "bosh3", "rk4")
DEFAULT_A = 0.8
EPS = float(np.finfo(np.float64).eps)
DETERMINISTIC = (
    "Student-t 95% of the {what}, widened by its largest shift when the next one or two terms "
    "of the error's expansion ({terms}) join the fit"
)
STOCHASTIC = (
    "95% of the least-squares slope: the larger of the Student-t interval from its residuals and "
    "the normal interval of its standard error propagated from the draws' scatter at each point"
)


# ---------------------------------------------------------------------------------------------
# Records and norms (the fits: _fits.py)


def summary(study: str, series: list[dict], **fields) -> dict:
    return {
        "study": study,
        **fields,
        "series": series,
        "expected_in_interval": all(s["expected_in_interval"] for s in series),
        "device": str(jax.devices()[0]),
    }


def l2_norm(m: flows.AbstractManifold, tensors) -> float:
    r"""$(\sum_a w_a |T_a|_F^2)^{1/2}$ of nodal tensors."""
    return float(jnp.sqrt(m.integrate(jnp.sum(jnp.asarray(tensors) ** 2, axis=(1, 2)))))


# ---------------------------------------------------------------------------------------------
# resolution: spectral convergence of Gauss–Bonnet


def _gauss_bonnet_errors(metric, manifolds, exact) -> tuple[np.ndarray, np.ndarray]:
    """|∫ R dV_g - exact| on each rule, and the rounding scale eps ∑ w |R dV_g|."""
    points = jnp.concatenate([m.nodes for m in manifolds])
    density = np.asarray(flows.scalar_curvature(metric, points)) * np.asarray(
        flows.volume_density(metric, points)
    )
    splits = np.cumsum([m.nodes.shape[0] for m in manifolds])[:-1]
    errors, scales = [], []
    for m, f in zip(manifolds, np.split(density, splits), strict=True):
        errors.append(abs(float(m.integrate(jnp.asarray(f))) - exact))
        scales.append(EPS * float(m.integrate(jnp.asarray(np.abs(f)))))
    return np.array(errors), np.array(scales)


def _spectral_series(
    label, x, natural, prefactor, errors, scales, rate, resolution_name, **extra
) -> dict:
    keep = errors > 1e5 * scales
    check_series(
        label,
        x,
        errors,
        keep,
        floor="10^5 rounding units of the exact value",
        hint="a larger --amplitude-a brings the singularity nearer and slows the convergence; "
        "without --small the rules go further",
    )
    t, y = x[keep], np.log(errors[keep]) - np.log(prefactor[keep])
    fit = fit_order(
        t,
        y,
        sign=-1.0,
        expected=rate,
        model=f"log e - log(prefactor) = c - rate {resolution_name}",
        corrections=(("1/m", 1 / natural[keep]), ("1/m²", 1 / natural[keep] ** 2)),
    )
    loglog = local_orders(np.log(x), log_safe(errors), -1.0)
    predicted = local_orders(np.log(x), np.log(prefactor) - rate * x, -1.0)
    progress(
        f"  {label}: rate {fit['order']:.4f} per unit {resolution_name}, 95% interval "
        f"[{fit['interval'][0]:.4f}, {fit['interval'][1]:.4f}], expected {rate:.4f}: "
        f"{'inside' if fit['expected_in_interval'] else 'OUTSIDE'}{no_systematic(fit)}"
    )
    return {
        "label": label,
        "kind": "exponential",
        "resolution": resolution_name,
        "x": x.tolist(),
        "error": errors.tolist(),
        "rounding_scale": scales.tolist(),
        "used_in_fit": keep.tolist(),
        "prefactor": prefactor.tolist(),
        "local_rates": local_orders(x, log_safe(errors), -1.0),
        "local_loglog_orders": loglog,
        "predicted_local_loglog_orders": predicted,
        **fit,
        **extra,
    }


def study_resolution(args) -> dict:
    a = args.amplitude_a
    rate = math.acosh(1 / a)
    if args.small:
        torus_n, sphere_l = np.arange(8, 25, 4), np.arange(6, 23, 4)
    else:
        torus_n, sphere_l = np.arange(8, 39, 2), np.arange(6, 39, 2)
    series = []

    # T^2: g = dx^2 + (1 + a cos x) dy^2, held exactly by any grid (band limit 1)
    coarse = flows.Torus(2, 4)
    values = jax.vmap(lambda x: jnp.diag(jnp.stack([jnp.ones(()), 1 + a * jnp.cos(x[0])])))(
        coarse.nodes
    )
    metric = flows.NodalMetric(coarse, values)
    errors, scales = _gauss_bonnet_errors(metric, [flows.Torus(2, int(n)) for n in torus_n], 0.0)
    series.append(
        _spectral_series(
            "T², g = dx² + (1 + a cos x) dy², n points per axis",
            torus_n.astype(float),
            torus_n.astype(float),
            np.sqrt(torus_n.astype(float)),
            errors,
            scales,
            rate,
            "n",
            manifold="T2",
            exact=0.0,
            prefactor_law="n^(1/2)",
        )
    )

    # S^2: (1 + a x_3) g_round, band limit 1
    coarse = flows.Sphere(2, 2)
    values = jax.vmap(lambda x: (1 + a * x[2]) * jnp.eye(3))(coarse.nodes)
    metric = flows.NodalMetric(coarse, values)
    exact = 8 * math.pi  # int R dV = 4 pi chi
    errors, scales = _gauss_bonnet_errors(
        metric, [flows.Sphere(2, int(L)) for L in sphere_l], exact
    )
    series.append(
        _spectral_series(
            "S², (1 + a x₃) g_round, quadrature degree L",
            sphere_l.astype(float),
            sphere_l / 2.0 + 1,
            sphere_l / 2.0 + 1,
            errors,
            scales,
            rate,
            "L",
            manifold="S2",
            exact=exact,
            prefactor_law="m = L/2 + 1 (Gauss-Legendre nodes)",
        )
    )
    return summary(
        "resolution",
        series,
        what="|∫ R dV_g - 4πχ| against the resolution, for metrics with a known singularity",
        a=a,
        predicted_rate="arccosh(1/a): error ∝ prefactor × exp(-rate × resolution)",
        order_definition="error ∝ prefactor × exp(-order × n) (T²) or exp(-order × L) (S²)",
        interval_method=DETERMINISTIC.format(what="rate", terms="1/m, 1/m²"),
    )


# ---------------------------------------------------------------------------------------------
# tolerance: the integrator's order


class ClassicalRK4(diffrax.AbstractERK):
    """The classical fourth-order Runge–Kutta method (no embedded error estimate: fixed steps only)."""

    tableau: ClassVar[diffrax.ButcherTableau] = diffrax.ButcherTableau(
        a_lower=(np.array([0.5]), np.array([0.0, 0.5]), np.array([0.0, 0.0, 1.0])),
        b_sol=np.array([1 / 6, 1 / 3, 1 / 3, 1 / 6]),
        b_error=np.zeros(4),
        c=np.array([0.5, 0.5, 1.0]),
    )
    interpolation_cls: ClassVar = diffrax.ThirdOrderHermitePolynomialInterpolation.from_k

    def order(self, terms):
        return 4


FIXED_STEP_SOLVERS = {
    "euler": (diffrax.Euler, 1),
    "heun": (diffrax.Heun, 2),
    "midpoint": (diffrax.Midpoint, 2),
    "ralston": (diffrax.Ralston, 2),
    "bosh3": (diffrax.Bosh3, 3),
    "rk4": (ClassicalRK4, 4),
    "tsit5": (diffrax.Tsit5, 5),
    "dopri5": (diffrax.Dopri5, 5),
}


@eqx.filter_jit
def _fixed_step_solve(flow, solver, y0, t1, dt, max_steps: int):
    sol = diffrax.diffeqsolve(
        diffrax.ODETerm(flow),
        solver,
        0.0,
        t1,
        dt,
        y0,
        stepsize_controller=diffrax.ConstantStepSize(),
        saveat=diffrax.SaveAt(t1=True),
        max_steps=max_steps,
    )
    return sol.ys[0], sol.stats["num_steps"]


def study_tolerance(args) -> dict:
    m = flows.Torus(2, 8)
    t1 = 0.2
    steps = np.array([8, 16, 32]) if args.small else np.array([8, 11, 16, 23, 32, 45, 64, 90, 128])
    g0 = flows.random_metric(m, jax.random.key(args.seed), band_limit=2, amplitude=0.2)
    flow = flows.make_flow("ricci_deturck", m)
    reference = solvers.solve(flow, g0, 0.0, t1, solver="dopri8", rtol=1e-14, atol=1e-14, saveat=2)
    y_ref = reference.values[-1]
    # an independent check of the reference: fixed-step Dopri8 at twice the finest step count
    check, _ = _fixed_step_solve(
        flow,
        diffrax.Dopri8(),
        g0.values,
        t1,
        jnp.asarray(t1 / (2 * steps.max())),
        2 * int(steps.max()) + 8,
    )
    scale = l2_norm(m, y_ref)
    ref_check = l2_norm(m, check - y_ref)
    progress(
        f"tolerance: reference Dopri8 (rtol 1e-14) in {reference.stats['num_steps']} steps; "
        f"fixed-step Dopri8 ({2 * steps.max()} steps) differs by {ref_check:.1e}; |g(t1)| = {scale:.3g}"
    )
    series = []
    for name in args.solvers:
        cls, order = FIXED_STEP_SOLVERS[name]
        errors, taken = [], []
        for k in steps:
            y, n = _fixed_step_solve(
                flow, cls(), g0.values, t1, jnp.asarray(t1 / k), int(steps.max()) + 8
            )
            errors.append(l2_norm(m, y - y_ref))
            taken.append(int(n))
        errors, dt = np.array(errors), t1 / steps
        keep = errors > max(100 * EPS * scale, 100 * ref_check)
        series.append(
            power_series(
                name,
                dt,
                errors,
                sign=1.0,
                expected=float(order),
                corrections=(("Δt", dt), ("Δt²", dt**2)),
                keep=keep,
                hint="without --small the steps go finer",
                steps=steps.tolist(),
                steps_taken=taken,
            )
        )
    return summary(
        "tolerance",
        series,
        what="fixed-step solves of Ricci–DeTurck flow on T² (n = 8) to t = 0.2 against a Dopri8 reference",
        error_measure="L²(μ) norm of g_Δt(t1) - g_Dopri8(t1) (nodal values; g_Dopri8 the reference)",
        reference="solvers.solve, dopri8, rtol = atol = 1e-14",
        reference_check=ref_check,
        reference_check_method="L²(μ) distance to fixed-step Dopri8 at twice the finest step count",
        t1=t1,
        order_definition="error ∝ Δt^order",
        interval_method=DETERMINISTIC.format(what="slope", terms="Δt, Δt²"),
    )


# ---------------------------------------------------------------------------------------------
# sigma: the smoothed flow tends to Perelman's local flow


@eqx.filter_jit
def _sigma_fields(flow: flows.MetricFlow, values):
    r"""The local flow's velocity, the tangential local velocity in the kernels' representation
    (ambient components) and its $\sigma \to 0$ limit (the band-limited series on spheres)."""
    m = flow.manifold
    metric = flows.NodalMetric(m, values, check=False)
    v, _ = flow.local_velocity(metric)
    tangential = jax.vmap(m.to_representation)(m.nodes, v)
    limit = m.spectral_multiply(tangential, jnp.ones_like(m.laplace_eigenvalues()))
    return flow.velocity(metric), tangential, limit


@eqx.filter_jit
def _tangential_distance(m: flows.AbstractManifold, a, b):
    r"""$L^2(\mu)$ norm of the tangential part of `a - b`."""
    return jnp.sqrt(m.integrate(jnp.sum(m.tangential(a - b) ** 2, axis=(1, 2))))


@eqx.filter_jit
def _spectral_multiply(m: flows.AbstractManifold, values, multiplier):
    return m.spectral_multiply(values, multiplier)


@eqx.filter_jit
def _smoothed_velocity(flow: flows.MetricFlow, values):
    return flow.velocity(flows.NodalMetric(flow.manifold, values, check=False))


def _sigma_series(label, m, sigmas, seed) -> dict:
    metric = flows.random_metric(m, jax.random.key(seed), band_limit=2, amplitude=0.2)
    local, tangential, limit = _sigma_fields(flows.perelman_flow(m), metric.values)
    zero = jnp.zeros_like(local)
    floor = float(_tangential_distance(m, limit, local))
    errors = []
    for s in sigmas:
        # GaussianKernel.smooth, jitted once: the kernel's spectral multiplier on the series
        multiplier = flows.GaussianKernel(float(s)).multiplier(m)
        smoothed = _spectral_multiply(m, tangential, multiplier)
        errors.append(float(_tangential_distance(m, smoothed, limit)))
    largest = flows.perelman_flow(m, flows.GaussianKernel(float(sigmas[-1])))
    full = _smoothed_velocity(largest, metric.values)
    consistency = float(
        _tangential_distance(m, full, smoothed) / _tangential_distance(m, full, zero)
    )
    if consistency > 1e-10:
        raise RuntimeError(
            f"{label}: the smoothed flow's velocity differs from k_sigma * V by {consistency:.1e}"
        )
    return power_series(
        label,
        np.asarray(sigmas),
        np.array(errors),
        sign=1.0,
        expected=2.0,
        corrections=(("σ²", np.asarray(sigmas) ** 2), ("σ⁴", np.asarray(sigmas) ** 4)),
        manifold=repr(m),
        velocity_norm=float(_tangential_distance(m, local, zero)),
        representation_floor=floor,
        smoothed_flow_consistency=consistency,
    )


def study_sigma(args) -> dict:
    count = 5 if args.small else 9
    sigmas = np.geomspace(0.01, 0.16, count)
    torus = flows.Torus(2, 12 if args.small else 16)
    series = [_sigma_series(f"T², n = {torus.n}", torus, sigmas, args.seed)]
    if not args.small:  # the sphere's curvature graph takes half a minute to compile
        sphere = flows.Sphere(2, 16)
        series.append(_sigma_series(f"S², degree {sphere.degree}", sphere, sigmas, args.seed))
    return summary(
        "sigma",
        series,
        what="the smoothed fixed-measure velocity ∫k_σ V dμ against Perelman's local V = -2(Ric + ∇∇f)",
        error_measure="L²(μ) norm of the tangential difference at a seeded random metric",
        order_definition="error ∝ σ^order",
        interval_method=DETERMINISTIC.format(what="slope", terms="σ², σ⁴"),
    )


# ---------------------------------------------------------------------------------------------
# width: the empirical NTK tends to the infinite-width kernel


def _width_series(label, m, widths, sigma, seeds, seed) -> dict:
    limit = flows.CosineNTK(sigma, m)
    target = jax.vmap(lambda x: jax.vmap(lambda y: limit(m, x, y))(m.nodes))(m.nodes)
    target_norm2 = float(jnp.sum(target**2))
    errors, spreads, log_variances = [], [], []
    for w in widths:
        squares = []
        for s in range(seeds):
            key = jax.random.fold_in(jax.random.key(seed), 1_000_003 * int(w) + s)
            metric = flows.cosine_network_metric(m, int(w), sigma, key)
            kernels = flows.component_ntk(metric, m.nodes)
            squares.append(np.asarray(jnp.sum((kernels - target) ** 2, axis=(1, 2))) / target_norm2)
        squares = np.concatenate(squares)
        errors.append(math.sqrt(squares.mean()))
        spreads.append(float(np.std(np.sqrt(squares), ddof=1)))
        log_variances.append(log_rms_variance(squares))
        progress(f"width: {label}, width {int(w)}: relative error {errors[-1]:.3e}")
    return power_series(
        label,
        np.asarray(widths),
        np.array(errors),
        sign=-1.0,
        expected=0.5,
        log_variance=np.array(log_variances),
        manifold=repr(m),
        sigma=sigma,
        samples_per_width=seeds * m.ambient_dim * (m.ambient_dim + 1) // 2,
        spread_of_single_errors=spreads,
    )


def study_width(args) -> dict:
    seeds = args.seeds or (2 if args.small else 8)
    widths = 2 ** np.arange(4, 8 if args.small else 13)
    torus = flows.Torus(2, 8 if args.small else 12)
    sigma = 0.5
    series = [_width_series(f"T², n = {torus.n}", torus, widths, sigma, seeds, args.seed)]
    if not args.small:  # each width compiles its network's construction once per manifold
        sphere = flows.Sphere(2, 8)
        series.append(
            _width_series(f"S², degree {sphere.degree}", sphere, widths, sigma, seeds, args.seed)
        )
    return summary(
        "width",
        series,
        what="empirical per-component NTK of cosine network metrics against CosineNTK(σ) at infinite width",
        error_measure="relative Frobenius error on the nodes, RMS over component networks and seeds",
        sigma=sigma,
        seeds=seeds,
        order_definition="error ∝ width^(-order)",
        interval_method=STOCHASTIC,
    )


# ---------------------------------------------------------------------------------------------
# points: Monte Carlo on the Fermat quintic


def _concatenate(samples: list[flows.PointSample]) -> flows.PointSample:
    r"""One sample from several, with the raw weights $|\Omega|^2/\det g_\mathrm{FS}$ (one scale).

    Built by hand: flows has no public concatenation, and sampling the whole set with one
    `flows.point_sample` call would compile a shape per size instead of one per chunk.
    """
    cat = lambda name: jnp.concatenate([getattr(s, name) for s in samples])  # noqa: E731
    raw = jnp.concatenate([s.weights * s.volume_ratio for s in samples])
    return flows.PointSample(
        points=cat("points"),
        patch=cat("patch"),
        eliminated=cat("eliminated"),
        omega=cat("omega"),
        weights=raw / jnp.mean(raw),
        g_fs=cat("g_fs"),
        jacobian=cat("jacobian"),
        volume_ratio=jnp.mean(raw),
        rejected=sum(s.rejected for s in samples),
    )


def study_points(args) -> dict:
    seeds = args.seeds or (8 if args.small else 96)
    smallest = 50 if args.small else 100  # a multiple of 5: runs hold whole sampled lines
    sizes = smallest * 2 ** np.arange(5 if args.small else 7)
    quintic = flows.Hypersurface.fermat_quintic()
    chunk = seeds * smallest  # points are drawn in chunks of one shape (one compilation)
    key = jax.random.key(args.seed)
    spreads, means, stderrs, log_variances, rejected, drawn = [], [], [], [], 0, 0
    for n in sizes:
        # seeds x N fresh points, cut into disjoint runs of N
        parts = []
        for _ in range(int(n) // smallest):
            key, sub = jax.random.split(key)
            parts.append(flows.point_sample(quintic, flows.sample_points(quintic, sub, chunk)))
        sample = _concatenate(parts)
        drawn += len(parts) * chunk
        rejected += sample.rejected
        per = sample.count // seeds
        estimates = [
            [float(v) for v in flows.sigma_measure(run, run.g_fs)]
            for run in (
                flows.subsample(sample, np.arange(i * per, (i + 1) * per)) for i in range(seeds)
            )
        ]
        sigma, se = np.array(estimates).T
        spreads.append(float(np.std(sigma, ddof=1)))
        log_variances.append(log_std_variance(sigma))
        means.append(float(np.mean(sigma)))
        stderrs.append(float(np.sqrt(np.mean(se**2))))
        progress(
            f"points: N = {n}: σ = {means[-1]:.4f}, spread over {seeds} runs {spreads[-1]:.2e} "
            f"(mean reported standard error {stderrs[-1]:.2e})"
        )
    series = [
        power_series(
            "Fermat quintic, σ_FS",
            sizes.astype(float),
            np.array(spreads),
            sign=-1.0,
            expected=0.5,
            log_variance=np.array(log_variances),
            mean_sigma=means,
            mean_reported_stderr=stderrs,
        )
    ]
    return summary(
        "points",
        series,
        what="σ of the Fubini–Study metric on the Fermat quintic from N Monte Carlo points",
        error_measure="standard deviation of independent estimates at each N",
        seeds=seeds,
        points_drawn=drawn,
        rejected=rejected,
        order_definition="error ∝ N^(-order)",
        interval_method=STOCHASTIC,
    )


# ---------------------------------------------------------------------------------------------
# Figures


AXES = {
    "resolution": "resolution (T²: n points per axis; S²: quadrature degree L)",
    "tolerance": "step Δt",
    "sigma": "kernel width σ",
    "width": "network width",
    "points": "Monte Carlo points N",
}
ERRORS = {
    "resolution": "|∫R dV_g − 4πχ|",
    "tolerance": "‖g_Δt(t₁) − g_Dopri8(t₁)‖ (L²(μ))",
    "sigma": "‖V_σ − V₀‖ (L²(μ)), V₀ the σ → 0 limit",
    "width": "‖Θ_width − Θ_∞‖_F / ‖Θ_∞‖_F (RMS)",
    "points": "std of σ estimates",
}


def _fit_lines(s: dict):
    """The fitted and expected lines through the fitted points' centre, as (x, error) pairs."""
    x, err = np.asarray(s["x"]), np.asarray(s["error"])
    keep = np.asarray(s["used_in_fit"])
    grid = np.linspace(x[keep].min(), x[keep].max(), 50)
    if s["kind"] == "power":
        t, tg = np.log(x[keep]), np.log(grid)
        centre_t, centre_y = t.mean(), np.log(err[keep]).mean()
        line = lambda p: np.exp(centre_y + s["sign"] * p * (tg - centre_t))  # noqa: E731
    else:  # log e = log prefactor + c - p x (the prefactor is smooth: interpolate its log)
        log_pre = np.log(np.asarray(s["prefactor"]))
        y = np.log(err[keep]) - log_pre[keep]
        centre_t, centre_y = x[keep].mean(), y.mean()
        shift = np.interp(grid, x, log_pre)
        line = lambda p: np.exp(centre_y - p * (grid - centre_t) + shift)  # noqa: E731
    return grid, line(s["order"]), line(s["expected_order"])


def plot(record: dict, path: Path) -> None:
    study = record["study"]
    spectral = study == "resolution"
    fig = Figure(figsize=(12 if spectral else 6.8, 4.8))
    ax = fig.add_subplot(1, 2 if spectral else 1, 1)
    markers = "os^dv<>"
    for s, marker in zip(record["series"], markers, strict=False):
        x, err, keep = np.asarray(s["x"]), np.asarray(s["error"]), np.asarray(s["used_in_fit"])
        pts = ax.plot(x[keep], err[keep], marker, ls="none", label=f"{s['label']}: measured")[0]
        color = pts.get_color()
        if (~keep).any():
            ax.plot(
                x[~keep],
                err[~keep],
                marker,
                ls="none",
                mfc="none",
                color=color,
                label="  (left out: rounding floor)",
            )
        grid, fitted, expected = _fit_lines(s)
        lo, hi = s["interval"]
        word, d = ("rate", 4) if s["kind"] == "exponential" else ("order", 3)
        ax.plot(
            grid,
            fitted,
            "-",
            color=color,
            lw=1,
            label=f"  fit: {word} {s['order']:.{d}f}, 95% [{lo:.{d}f}, {hi:.{d}f}]",
        )
        ax.plot(
            grid,
            expected,
            "--",
            color=color,
            lw=1,
            alpha=0.7,
            label=f"  expected {word} {s['expected_order']:.4g}",
        )
    if not spectral:
        ax.set_xscale("log")
        ax.tick_params(axis="x", which="minor", labelsize=6)
    ax.set_yscale("log")
    ax.set_xlabel(AXES[study])
    ax.set_ylabel(ERRORS[study])
    # a --small run is a smoke test: its fitted orders are not the study's
    title = f"convergence: {study}" + (" (--small: a smoke run)" if record.get("small") else "")
    ax.set_title(title + (" (semi-log: exponential decay is straight)" if spectral else ""))
    ax.grid(True, which="major", alpha=0.3)
    ax.legend(fontsize=6.5)
    if spectral:  # the log-log view: local slopes steepen linearly, no power law fits
        ax2 = fig.add_subplot(1, 2, 2)
        for s, marker in zip(record["series"], markers, strict=False):
            x = np.asarray(s["x"])
            mid = np.sqrt(x[1:] * x[:-1])
            line = ax2.plot(
                mid, s["local_loglog_orders"], marker, ls="none", label=f"{s['label']}: measured"
            )[0]
            pred = s["predicted_local_loglog_orders"]
            ax2.plot(
                mid,
                pred,
                "--",
                color=line.get_color(),
                lw=1,
                label=f"  predicted: prefactor × exp(−{s['expected_order']:.4f} x)",
            )
        ax2.set_xlabel(AXES[study])
        ax2.set_ylabel("local log-log order −Δlog e / Δlog x")
        ax2.set_title("log-log slopes steepen: faster than any power")
        ax2.grid(True, alpha=0.3)
        ax2.legend(fontsize=6.5)
    fig.tight_layout()
    save_figure(fig, path)


# ---------------------------------------------------------------------------------------------
# Program


RUNNERS = {
    "resolution": study_resolution,
    "tolerance": study_tolerance,
    "sigma": study_sigma,
    "width": study_width,
    "points": study_points,
}


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--study", default="all", choices=(*STUDIES, "all"), help="which study (default: all)"
    )
    parser.add_argument("--out", type=directory, required=True, help="output directory")
    parser.add_argument("--small", action="store_true", help="a fast smoke run (coarse sizes)")
    parser.add_argument(
        "--seed", type=seed, default=0, help="seed of metrics, networks and points (>= 0)"
    )
    parser.add_argument(
        "--seeds",
        type=integer(2),
        default=None,
        help="repetitions per size for width and points (>= 2; default 8 and 96, 2 and 8 with "
        "--small)",
    )
    parser.add_argument(
        "--solvers",
        default=None,
        help="comma-separated fixed-step solvers for tolerance, from "
        f"{','.join(FIXED_STEP_SOLVERS)} (default {','.join(DEFAULT_SOLVERS)})",
    )
    parser.add_argument(
        "--amplitude-a",
        type=number(above=0, below=1),
        default=None,
        help=f"a in the resolution study's metrics, 0 < a < 1 (default {DEFAULT_A}; the rate "
        "is arccosh(1/a), and a below about 0.3 reaches rounding in too few points to fit)",
    )
    args = parser.parse_args(argv)
    if args.study != "all":  # a flag the chosen study does not read is a mistake, not a no-op
        for flag, value, studies in (
            ("--seeds", args.seeds, ("width", "points")),
            ("--solvers", args.solvers, ("tolerance",)),
            ("--amplitude-a", args.amplitude_a, ("resolution",)),
        ):
            if value is not None and args.study not in studies:
                parser.error(
                    f"{flag} is read by the {' and '.join(studies)} "
                    f"{'study' if len(studies) == 1 else 'studies'}, not by {args.study}"
                )
    args.amplitude_a = DEFAULT_A if args.amplitude_a is None else args.amplitude_a
    names = DEFAULT_SOLVERS if args.solvers is None else args.solvers.split(",")
    args.solvers = [s.strip() for s in names if s.strip()]
    unknown = [s for s in args.solvers if s not in FIXED_STEP_SOLVERS]
    if not args.solvers:
        parser.error(f"--solvers: name at least one, from {','.join(FIXED_STEP_SOLVERS)}")
    if unknown:
        parser.error(f"--solvers: unknown {unknown}; choose from {','.join(FIXED_STEP_SOLVERS)}")
    twice = sorted({s for s in args.solvers if args.solvers.count(s) > 1})
    if twice:
        parser.error(f"--solvers: {', '.join(twice)} named twice")
    return args


def main(argv=None) -> dict:
    args = parse_args(argv)
    args.out = solvers.output_directory(args.out)
    studies = STUDIES if args.study == "all" else (args.study,)
    records = {}
    for study in studies:
        progress(f"study {study}{' (small)' if args.small else ''}")
        start, cpu = time.perf_counter(), time.process_time()
        record = RUNNERS[study](args)
        record["seconds"] = time.perf_counter() - start
        record["cpu_seconds"] = time.process_time() - cpu
        record["small"] = args.small
        record["seed"] = args.seed
        write_json(args.out / f"convergence_{study}.json", record)
        plot(record, args.out / f"convergence_{study}.png")
        progress(
            f"study {study}: expected order inside every interval: {record['expected_in_interval']} "
            f"({record['seconds']:.0f} s)"
        )
        records[study] = record
    return records if args.study == "all" else records[args.study]


if __name__ == "__main__":
    sys.exit(solvers.run_program(main, "convergence"))
