r"""The Fermat quintic as a spectral manifold: Kähler–Ricci flow to the Calabi–Yau metric, k = 1 … k_max.

The Kähler potential is $\phi = \sum_\alpha c_\alpha e_\alpha$ over the functions of
bidegree $(l, l)$, $l \le k$, invariant under the Fermat quintic's symmetries
(`flows.SpectralBasis(..., symmetry="fermat")`: permutations, the fifth-root
phases, conjugation), whitened on the training points; the metric is
$g = \partial\bar\partial(\log|z|^2 + \phi)$ and $\eta = \det g/|\Omega|^2$. From
Fubini–Study ($c = 0$), at each degree $k$:

- the local Kähler–Ricci flow in Galerkin form, $\dot c = M^{-1}b(c)$,
  $b_\alpha = \langle e_\alpha, \log(\eta/\bar\eta)\rangle$ (`flows.SpectralRicciFlow`),
  integrated by diffrax (Tsit5, rtol $10^{-9}$) to
  $t_1 = $ `--decades` $\cdot \ln 10/\lambda_1$, $\lambda_1$ the slowest rate of its
  linearisation at the fixed point (below), so that velocity and distance to the
  fixed point fall by about that many decades;
- the Galerkin fixed point $b(c) = 0$ by Newton's method (`flows.newton_fixed_point`);
- test σ (`flows.sigma_measure`, with its standard error) on `--test-points`
  fresh points sampled independently of the training points (never a training
  point), along the flow and at the Newton fixed point; the seconds of each stage.

Degree 1: the invariant functions of bidegree $(1, 1)$ are the constants alone
($\sum_i |z_i|^2/|z|^2 = 1$), so the fixed point is Fubini–Study itself and nothing
is solved. The σ(k) table is fitted by $\log\sigma = a - r\,k$ over the even degrees
$k \ge$ `--fit-from` (`_fits.log_fit`, exponential: $r$ with its standard error and
95% Student-t interval; odd degrees add little to the even one below them).

Late-time rates, at `--rate-ks`: near the fixed point $\delta\log\eta = \square_g\delta\phi$,
so $\|c(t) - c^*\|$ decays at the smallest eigenvalue of $-\square_g$ among the basis's
modes. Three numbers: the measured slope of $\log\|c(t) - c^*\|$ over the saves where
$\|c - c^*\|/\|c(0) - c^*\|$ is in $[10^{-7}, 10^{-3}]$ (after the faster modes have gone,
above the integration floor); the smallest eigenvalue of the linearised Galerkin
flow $M^{-1}\partial b/\partial c$ at $c^*$ (the rate this discretisation predicts); and the
smallest eigenvalue of $-\square_g$ from `flows.laplacian_spectrum` at $c^*$ on the training
points, weak form ($\int|\partial e|^2_g$) and strong form ($-\int e\,\square_g e$): the
operator computed again from its definition, on the same quadrature as the Galerkin
flow. Neither is the linearised flow's operator exactly: the flow averages against
$|\Omega|^2$ where the Laplacian's forms average against $dVol_g$, which differ by the
fixed point's $O(\sigma)$; the strong form agrees with the measured rate to about 0.2% at
$k = 4$ on a few thousand points, the weak form, which also carries the Monte Carlo error
of $|\partial e|^2_g$ (reported with its standard error, `laplacian_weak_stderr`), to a
few percent.

A degree whose basis has as many functions as the training points allow (at least
`--points` − 1) interpolates them: it is flagged in its progress line and the JSON
(`interpolates`) and left out of the fit. A flow that diffrax stops before $t_1$ (its
step budget spent) is reported as stopped, with diffrax's reason, in its progress line,
the JSON (`result`, `successful`) and the summary table (marked !).

Optional stages (a stage switched off by its option is recorded as skipped): the
smoothed Kähler–Ricci flows
(`SpectralRicciFlow(..., width=σ)`, `--kernel-sigmas`, at `--kernel-k` on
`--kernel-points` training points: each right-hand side applies a point kernel,
O(N²); `--smoothing galerkin` applies its Galerkin matrix to the projected residual
instead, computed once, whose fixed point is the local flow's; a width whose Newton
solve or flow fails is recorded as failed, one whose linearisation has a non-positive
rate as skipped, each with the reason, and the other widths go on); Donaldson's balanced
metrics (`flows.donaldson_balanced`, same symmetry, $k \le$ min(`--donaldson-k-max`,
`--k-max`), on the first min(`--donaldson-points`, `--points`) training points)
beside the σ(k) table; $\chi = \int c_3$ and $c_2\cdot J$ (`flows.chern_integrals`, in
units of $H$: exactly −200 and 50) of Fubini–Study and of the Newton metric at
`--curvature-k`, on `--chern-points` test points; the Ricci measure
(`flows.ricci_measure`) of the same two metrics on `--ricci-points` test points
(default min(1000, test-points); both curvature stages differentiate the basis's
closed-form Hessians twice: about 20 s for 1000 points at k = 4 on two cores,
compilation included).

Output in --out: quintic_spectral.json (written once the degrees are done, with
`complete` false, and again at the end; `sigma_fs_test`; `degrees`: per k the basis
size, Newton's residuals, σ and standard error, the flow's saves with test σ,
velocity and distance to $c^*$, the rates, the seconds; `table`, `fit`, `rates`,
`smoothed`, `donaldson`, `chern`, `ricci_measure`; `machine`, `seconds`) and
quintic_spectral.png (σ against k; test σ against flow time per k; the late-time
decay against the predicted rate).

Usage: python experiments/quintic_spectral.py --out DIR [--k-max K] [--points N] [--test-points P] [--seed S] ...
"""

import argparse
import math
import sys
import time

import diffrax
import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import scipy.stats
from _common import (
    directory,
    elapsed,
    integer,
    number,
    positive,
    progress,
    save_figure,
    seed,
    write_json,
)
from _fits import CONFIDENCE, log_fit
from _spectral import SYMMETRY
from _timing import machine
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

import flows
import solvers

jax.config.update("jax_enable_x64", True)

KERNEL_SIGMAS = (0.05, 0.1, 0.3)
RTOL, ATOL = 1e-9, 1e-11
# the late-time window of the measured rate: |c - c*| / |c(0) - c*| in [LATE_LOW, LATE_HIGH]
LATE_LOW, LATE_HIGH = 1e-7, 1e-3
# converged: velocity and distance to Newton's c* both below this, relative to their start
CONVERGED = 1e-6


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add = parser.add_argument
    add("--k-max", type=integer(1, 16), default=13, help="highest degree k")
    add("--points", type=integer(50), default=25_000, help="training points")
    add("--test-points", type=integer(50), default=20_000, help="fresh held-out test points")
    add(
        "--decades",
        type=number(above=0, at_most=30),
        default=10.0,
        help="flow to t1 = decades ln 10 / slowest rate (at most 30: the integration's "
        "tolerance is the floor long before)",
    )
    add("--saves", type=integer(5), default=41, help="saved times per flow")
    add(
        "--rate-ks",
        type=integer(2),
        nargs="*",
        default=None,
        help="degrees of the late-time rate check (default 4 6 8, those <= k-max)",
    )
    add("--fit-from", type=integer(2), default=4, help="lowest even degree in the fit of sigma(k)")
    add(
        "--kernel-sigmas",
        type=positive,
        nargs="*",
        default=None,
        help="widths of the smoothed flows (default 0.05 0.1 0.3)",
    )
    add(
        "--smoothing",
        choices=flows.SMOOTHINGS,
        default="pointwise",
        help="how the smoothed flows smooth: S_sigma at the points before the projection "
        "(pointwise), or its Galerkin matrix on the projected residual (galerkin: the local "
        "flow's fixed point)",
    )
    add(
        "--kernel-k",
        type=integer(2),
        default=None,
        help="degree of the smoothed flows (default min(4, k-max))",
    )
    add(
        "--kernel-points",
        type=integer(50),
        default=None,
        help="training points of the smoothed flows (default min(1000, points))",
    )
    add(
        "--donaldson-k-max",
        type=integer(0),
        default=6,
        help="balanced metrics for k <= this and <= --k-max (0: none)",
    )
    add(
        "--donaldson-points",
        type=integer(50),
        default=20_000,
        help="training points of Donaldson's T (at most --points: the first of them)",
    )
    add(
        "--curvature-k",
        type=integer(2),
        default=None,
        help="degree of the metric whose chi, c2.J and Ricci measure are taken (default min(4, k-max))",
    )
    add(
        "--chern-points",
        type=integer(0),
        default=None,
        help="test points of chi and c2.J (default min(1000, test-points); 0: skip)",
    )
    add(
        "--ricci-points",
        type=integer(0),
        default=None,
        help="test points of the Ricci measure (default min(1000, test-points); 0: skip)",
    )
    add("--seed", type=seed, default=0, help="seed of the training and test points (>= 0)")
    add("--out", type=directory, required=True, help="output directory (required)")
    args = parser.parse_args(argv)
    if args.rate_ks is None:
        args.rate_ks = [k for k in (4, 6, 8) if k <= args.k_max]
    elif any(k > args.k_max for k in args.rate_ks):
        parser.error(f"--rate-ks {args.rate_ks}: each must be <= --k-max {args.k_max}")
    args.rate_ks = sorted(set(args.rate_ks))
    if args.k_max < 2:
        parser.error("--k-max 1 solves nothing (degree 1 is Fubini-Study); use --k-max >= 2")
    args.kernel_k = min(4, args.k_max) if args.kernel_k is None else args.kernel_k
    args.curvature_k = min(4, args.k_max) if args.curvature_k is None else args.curvature_k
    if args.kernel_sigmas is None:
        args.kernel_sigmas = list(KERNEL_SIGMAS)
    if args.kernel_sigmas and args.kernel_k > args.k_max:
        parser.error(f"--kernel-k {args.kernel_k} exceeds --k-max {args.k_max}")
    if args.kernel_points is None:
        args.kernel_points = min(1000, args.points)
    elif args.kernel_points > args.points:
        parser.error(f"--kernel-points {args.kernel_points} exceeds --points {args.points}")
    if args.ricci_points is None:
        args.ricci_points = min(1000, args.test_points)
    if args.chern_points is None:
        args.chern_points = min(1000, args.test_points)
    if (args.chern_points or args.ricci_points) and args.curvature_k > args.k_max:
        parser.error(f"--curvature-k {args.curvature_k} exceeds --k-max {args.k_max}")
    if max(args.chern_points, args.ricci_points) > args.test_points:
        parser.error("--chern-points and --ricci-points must not exceed --test-points")
    if 0 < args.chern_points <= 5:
        parser.error(
            "--chern-points must be 0 (skip) or more than 5: the standard error comes from "
            "whole sampled lines of 5 points, and one line gives none"
        )
    return args


# Samples and the per-degree solves.


def samples(surface, args):
    """Training and test samples, drawn independently (the test points are never training points)."""
    key = jax.random.key(args.seed)
    train = flows.point_sample(surface, flows.sample_points(surface, key, args.points))
    test_key = jax.random.fold_in(key, 1)
    test = flows.point_sample(surface, flows.sample_points(surface, test_key, args.test_points))
    return train, test


@eqx.filter_jit
def _sigma(judge: flows.SpectralRicciFlow, test: flows.PointSample, c):
    return flows.sigma_measure(test, judge.metric(c))


@eqx.filter_jit
def _velocity(flow: flows.SpectralRicciFlow, c):
    return jnp.linalg.norm(flow(0.0, c, None))


@eqx.filter_jit
def _jacobian(flow: flows.SpectralRicciFlow, c):
    return flow.jacobian(c)


def linear_rates(flow, c_star) -> np.ndarray:
    r"""The rates of the linearised Galerkin flow at $c^*$: $-\mathrm{Re}$ eig$(M^{-1}\partial b/\partial c)$, ascending."""
    jacobian = np.asarray(_jacobian(flow, c_star))
    operator = np.linalg.solve(np.asarray(flow.gram()), jacobian)
    return np.sort(-np.real(np.linalg.eigvals(operator)))


def integrate(flow, c0, t1: float, saves: int):
    """The flow from `c0` to `t1` (Tsit5, adaptive): saved times, states, steps, and diffrax's
    result in words ("successful", or why it stopped; the saves after a stop are dropped)."""
    ts = jnp.linspace(0.0, t1, saves)
    solution = diffrax.diffeqsolve(
        diffrax.ODETerm(flow),
        diffrax.Tsit5(),
        0.0,
        t1,
        None,
        c0,
        saveat=diffrax.SaveAt(ts=ts),
        stepsize_controller=diffrax.PIDController(rtol=RTOL, atol=ATOL),
        max_steps=200_000,
        throw=False,
    )
    ys = np.asarray(solution.ys)
    finite = np.all(np.isfinite(ys), axis=1)
    successful = bool(solution.result == diffrax.RESULTS.successful)
    return (
        np.asarray(ts)[finite],
        ys[finite],
        int(solution.stats["num_steps"]),
        "successful" if successful else diffrax.RESULTS[solution.result],
    )


def stopped(name: str, flow: dict) -> str:
    """The progress line of a flow diffrax stopped before t1."""
    return (
        f"{name}: the flow stopped at t = {flow['ts'][-1]:.3g} of {flow['t1']:.3g} after "
        f"{flow['steps']} steps: {flow['result']} (--decades sets t1)"
    )


def late_rate(ts: np.ndarray, distance: np.ndarray) -> dict:
    r"""The slope of $-\log\|c - c^*\|$ against $t$ over the late window (module docstring)."""
    ratio = distance / distance[0]
    window = (ratio >= LATE_LOW) & (ratio <= LATE_HIGH)
    if window.sum() < 3:
        return {"rate": None, "stderr": None, "saves": int(window.sum())}
    line = log_fit(ts[window], distance[window], log_x=False)
    return {
        "rate": -line.slope,
        "stderr": line.stderr,
        "saves": int(window.sum()),
        "window": [float(ts[window][0]), float(ts[window][-1])],
    }


def flow_record(flow, judge, test, c_star, rate: float, args) -> dict:
    """Integrate from Fubini–Study to `args.decades` / `rate`; test σ, velocity and distance at each save."""
    start = time.perf_counter()
    t1 = args.decades * math.log(10) / rate
    ts, ys, steps, result = integrate(flow, jnp.zeros_like(c_star), t1, args.saves)
    seconds = time.perf_counter() - start
    sigmas = [_sigma(judge, test, jnp.asarray(c)) for c in ys]
    velocity = np.asarray([float(_velocity(flow, jnp.asarray(c))) for c in ys])
    distance = np.linalg.norm(ys - np.asarray(c_star)[None], axis=1)
    scale = max(float(np.linalg.norm(c_star)), 1e-300)
    velocity_ratio = float(velocity[-1] / velocity[0])
    distance_ratio = float(distance[-1] / scale)
    return {
        "t1": t1,
        "ts": ts.tolist(),
        "sigma_test": [float(s[0]) for s in sigmas],
        "sigma_test_error": [float(s[1]) for s in sigmas],
        "velocity": velocity.tolist(),
        "distance_to_newton": distance.tolist(),
        "velocity_ratio": velocity_ratio,
        "distance_to_newton_relative": distance_ratio,
        "converged": bool(
            len(ts) == args.saves and velocity_ratio <= CONVERGED and distance_ratio <= CONVERGED
        ),
        "steps": steps,
        "result": result,
        "successful": result == "successful",
        "late_rate": late_rate(ts, distance),
        "seconds": seconds,
    }


def spectrum_rates(basis, c_star, train) -> dict:
    """The smallest eigenvalue of −□ at the fixed point (`flows.laplacian_spectrum`), weak and strong."""
    potential = flows.SpectralPotential(basis, c_star)
    out = {}
    for form in ("weak", "strong"):
        start = time.perf_counter()
        spectrum = flows.laplacian_spectrum(potential, train, form=form)
        out[form] = {
            "smallest": float(spectrum.eigenvalues[0]),
            # the weak form's Monte Carlo standard error (none for the strong form)
            "smallest_stderr": None if spectrum.stderrs is None else float(spectrum.stderrs[0]),
            "values": np.asarray(spectrum.values[:6]).tolist(),
            "multiplicities": np.asarray(spectrum.multiplicities[:6]).tolist(),
            "seconds": time.perf_counter() - start,
        }
    return out


def fubini_study_degree(test) -> dict:
    """Degree 1: the invariant functions are constants, the fixed point is Fubini–Study."""
    sigma, error = flows.sigma_measure(test, test.g_fs)
    return {
        "k": 1,
        "basis_size": 0,
        "note": "the invariant functions of bidegree (1, 1) are the constants alone: the "
        "fixed point is Fubini-Study",
        "newton": {"sigma_test": float(sigma), "sigma_test_error": float(error), "converged": True},
        "seconds": {"total": 0.0},
    }


def degree(k: int, surface, train, test, args) -> tuple[dict, object]:
    """Newton's fixed point and the flow at degree `k`; the record and the fixed point's potential."""
    seconds = {}
    start = time.perf_counter()
    basis = flows.SpectralBasis(surface, train, k, symmetry=SYMMETRY)
    if basis.raw_size <= 1:
        return fubini_study_degree(test), None
    flow = flows.SpectralRicciFlow(basis, train)
    jax.block_until_ready(flow.hessians)
    seconds["basis_and_training_geometry"] = time.perf_counter() - start

    mark = time.perf_counter()
    result = flows.newton_fixed_point(flow)
    c_star = jax.block_until_ready(result.coefficients)
    seconds["newton"] = time.perf_counter() - mark

    mark = time.perf_counter()
    judge = flows.SpectralRicciFlow(basis, test)  # test-point Hessians: σ at any c
    sigma, error = _sigma(judge, test, c_star)
    seconds["test_geometry_and_sigma"] = time.perf_counter() - mark

    mark = time.perf_counter()
    rates = linear_rates(flow, c_star)
    seconds["linearisation"] = time.perf_counter() - mark
    residuals = np.asarray(result.residuals)
    interpolates = basis.size >= train.count - 1  # the centred sample's rank is <= N - 1
    record = {
        "k": k,
        "basis_size": basis.size,
        "raw_size": basis.raw_size,
        "interpolates": interpolates,
        "newton": {
            "residuals": residuals.tolist(),
            "steps": len(residuals) - 1,
            "converged": bool(result.converged),
            "sigma_test": float(sigma),
            "sigma_test_error": float(error),
            "sigma_train": float(flow.sigma(c_star)),
        },
        "galerkin_rates": rates[:8].tolist(),
    }
    progress(
        f"k = {k}: {basis.size} functions; Newton {len(residuals) - 1} steps, |b| "
        f"{residuals[-1]:.1e}; test sigma {float(sigma):.3e} +- {float(error):.1e} "
        f"(basis {seconds['basis_and_training_geometry']:.1f} s, Newton {seconds['newton']:.1f} s)"
    )
    if not result.converged:
        progress(
            f"k = {k}: Newton did not converge (|b| {residuals[-1]:.1e}): the flow's distance "
            "to its end point measures that point, not the fixed point"
        )
    if interpolates:
        progress(
            f"k = {k}: {basis.size} functions on {train.count} training points: the basis "
            f"interpolates them (training sigma {record['newton']['sigma_train']:.1e}); left "
            "out of the fit (use more --points)"
        )

    if rates[0] > 0:
        record["flow"] = flow_record(flow, judge, test, c_star, float(rates[0]), args)
        seconds["flow"] = record["flow"]["seconds"]
        f = record["flow"]
        progress(
            f"k = {k}: flow to t = {f['t1']:.3g} ({f['steps']} steps, {f['seconds']:.1f} s): "
            f"test sigma {f['sigma_test'][0]:.3e} -> {f['sigma_test'][-1]:.3e}, velocity x "
            f"{f['velocity_ratio']:.1e}, |c - c_newton| / |c_newton| {f['distance_to_newton_relative']:.1e}"
        )
        if not f["successful"]:
            progress(stopped(f"k = {k}", f))
    else:
        record["flow"] = {"skipped": f"the linearisation has a non-positive rate {rates[0]:.3g}"}

    if k in args.rate_ks and "late_rate" in record["flow"]:
        mark = time.perf_counter()
        spectrum = spectrum_rates(basis, c_star, train)
        seconds["laplacian_spectrum"] = time.perf_counter() - mark
        measured = record["flow"]["late_rate"]["rate"]

        def relative(predicted):
            return None if measured is None else measured / predicted - 1

        record["rate_check"] = {
            "measured": measured,
            "measured_stderr": record["flow"]["late_rate"]["stderr"],
            "galerkin": float(rates[0]),
            "laplacian_weak": spectrum["weak"]["smallest"],
            "laplacian_weak_stderr": spectrum["weak"]["smallest_stderr"],
            "laplacian_strong": spectrum["strong"]["smallest"],
            "relative_to_galerkin": relative(float(rates[0])),
            "relative_to_laplacian_weak": relative(spectrum["weak"]["smallest"]),
            "relative_to_laplacian_strong": relative(spectrum["strong"]["smallest"]),
            "spectrum": spectrum,
        }
        check = record["rate_check"]
        shown = "n/a" if measured is None else f"{measured:.4f}"
        progress(
            f"k = {k}: late-time rate {shown}; predicted: linearised flow {rates[0]:.4f}, "
            f"-box weak {check['laplacian_weak']:.4f} ± {check['laplacian_weak_stderr']:.4f}, "
            f"strong {check['laplacian_strong']:.4f}"
        )
    seconds["total"] = time.perf_counter() - start
    record["seconds"] = seconds
    return record, flows.SpectralPotential(basis, c_star)


# The optional stages.


def fit_record(table: list[dict], fit_from: int) -> dict:
    """$\\log\\sigma = a - r k$ over the even degrees $k \\ge$ `fit_from`."""
    rows = [
        r
        for r in table
        if r["k"] % 2 == 0
        and r["k"] >= fit_from
        and r["sigma_test"] > 0
        and not r.get("interpolates", False)
    ]
    ks = [r["k"] for r in rows]
    if len(ks) < 3:
        return {"skipped": f"needs 3 even degrees >= {fit_from}, got {ks}", "ks": ks}
    line = log_fit(ks, [r["sigma_test"] for r in rows], log_x=False)
    quantile = float(scipy.stats.t.ppf(0.5 + CONFIDENCE / 2, line.dof))
    rate = -line.slope
    return {
        "model": "log sigma = a - r k",
        "ks": ks,
        "rate": rate,
        "stderr": line.stderr,
        "interval": [rate - quantile * line.stderr, rate + quantile * line.stderr],
        "confidence": CONFIDENCE,
        "dof": line.dof,
        "intercept": line.intercept,
        "factor_per_degree": math.exp(rate),
    }


def smoothed(surface, train, test, args) -> dict:
    """The smoothed Kähler–Ricci flows at `--kernel-k` on `--kernel-points`, beside the local one there.

    A width whose Newton solve or flow fails (a wide kernel can take Newton out of the
    Kähler cone) is recorded as failed, one whose linearisation has a non-positive rate as
    skipped, each with the reason; the other widths go on.
    """
    if not args.kernel_sigmas:
        return {"skipped": "no --kernel-sigmas"}
    sub = flows.subsample(train, np.arange(args.kernel_points))
    basis = flows.SpectralBasis(surface, train, args.kernel_k, symmetry=SYMMETRY)
    judge = flows.SpectralRicciFlow(basis, test)
    local = flows.SpectralRicciFlow(basis, sub)
    local_newton = flows.newton_fixed_point(local)
    runs = {}
    for width in [0.0, *args.kernel_sigmas]:
        start = time.perf_counter()
        try:
            record = smoothed_width(width, local, local_newton, basis, sub, judge, test, args)
        except (ValueError, eqx.EquinoxRuntimeError) as failure:
            reason = solvers.error_message(failure)
            record = {"failed": reason, "seconds": time.perf_counter() - start}
            progress(f"smoothed, width {width:g}: failed ({reason}); the other widths go on")
            runs[str(width)] = record
            continue
        record["seconds"] = time.perf_counter() - start
        runs[str(width)] = record
        if "skipped" in record:
            progress(f"smoothed, width {width:g}: skipped ({record['skipped']})")
            continue
        measured = record["late_rate"]["rate"]
        progress(
            f"smoothed, width {width:g} (k = {args.kernel_k}, {sub.count} points): test sigma "
            f"{record['sigma_test'][-1]:.3e}, late rate "
            f"{'n/a' if measured is None else f'{measured:.4f}'} (linearised "
            f"{record['galerkin_rates'][0]:.4f}), fixed point "
            f"{record['fixed_point_distance_to_local']:.1e} from the local one "
            f"(relative; {record['seconds']:.0f} s)"
        )
        if not record["newton_converged"]:
            progress(f"smoothed, width {width:g}: Newton did not converge to its fixed point")
        if not record["successful"]:
            progress(stopped(f"smoothed, width {width:g}", record))
    return {"k": args.kernel_k, "points": sub.count, "smoothing": args.smoothing, "flows": runs}


def smoothed_width(width, local, local_newton, basis, sub, judge, test, args) -> dict:
    """One width of `smoothed` (0: the local flow): its fixed point, linearisation and flow."""
    c_star = local_newton.coefficients
    if width == 0:
        flow, newton = local, local_newton
    else:
        flow = flows.SpectralRicciFlow(basis, sub, width=width, smoothing=args.smoothing)
        # its own fixed point: another Galerkin fixed point at finite k (pointwise), the local
        # one wherever S_sigma's Galerkin matrix is nonsingular (galerkin)
        newton = flows.newton_fixed_point(flow, c_star)
    own = newton.coefficients
    rates = linear_rates(flow, own)
    common = {
        "galerkin_rates": rates[:8].tolist(),
        "newton_converged": bool(newton.converged),
        "fixed_point_distance_to_local": float(
            jnp.linalg.norm(own - c_star) / jnp.linalg.norm(c_star)
        ),
        "sigma_test_at_fixed_point": float(_sigma(judge, test, own)[0]),
    }
    if not rates[0] > 0:
        return {"skipped": f"the linearisation has a non-positive rate {rates[0]:.3g}", **common}
    record = flow_record(flow, judge, test, own, float(rates[0]), args)
    measured = record["late_rate"]["rate"]
    record["relative_to_galerkin"] = None if measured is None else measured / rates[0] - 1
    return {**record, **common}


def donaldson(surface, train, test, args) -> dict:
    ks = list(range(1, min(args.donaldson_k_max, args.k_max) + 1))
    if not ks:
        return {"skipped": "--donaldson-k-max 0"}
    sample = flows.subsample(train, np.arange(min(args.donaldson_points, train.count)))
    rows = []
    for k in ks:
        start = time.perf_counter()
        try:
            result = flows.donaldson_balanced(surface, sample, k, symmetry=SYMMETRY)
        except ValueError as refusal:  # too few points for O(k)'s sections, or memory
            progress(f"Donaldson k = {k} and above: skipped ({refusal})")
            break
        sigma, error = result.potential.sigma(test)
        rows.append(
            {
                "k": k,
                "sections": result.potential.size,
                "iterations": len(result.residuals),
                "converged": bool(result.converged),
                "sigma_test": float(sigma),
                "sigma_test_error": float(error),
                "seconds": time.perf_counter() - start,
            }
        )
        progress(
            f"Donaldson k = {k}: {rows[-1]['sections']} sections, {rows[-1]['iterations']} "
            f"iterations{'' if result.converged else ' (not converged)'}, test sigma "
            f"{float(sigma):.3e} ({rows[-1]['seconds']:.1f} s)"
        )
    skipped = [k for k in ks if k > len(rows)]
    return {"points": sample.count, "rows": rows, "skipped_ks": skipped}


def curvature(surface, test, potential, args) -> tuple[dict, dict]:
    """χ, c₂·J (`chern_integrals`) and the Ricci measure of Fubini–Study and of `potential`."""
    metrics = {"fubini_study": None, f"newton_k{args.curvature_k}": potential}
    chern: dict
    if not args.chern_points:
        chern = {"skipped": "--chern-points 0"}
    else:
        probe = flows.subsample(test, np.arange(args.chern_points))
        chern = {"points": probe.count, "exact": {"chi": -200, "c2_J": 50, "J3": 5}}
        for name, phi in metrics.items():
            start = time.perf_counter()
            result = flows.chern_integrals(surface, probe, phi)
            numbers, errors = np.asarray(result.numbers), np.asarray(result.errors)
            chern[name] = {
                "J3": float(numbers[0]),
                "c1_J2": float(numbers[1]),
                "c2_J": float(numbers[2]),
                "chi": float(numbers[3]),
                "errors": errors.tolist(),
                "chi_standard_errors_from_exact": float((numbers[3] + 200) / errors[3]),
                "c2_J_standard_errors_from_exact": float((numbers[2] - 50) / errors[2]),
                "seconds": time.perf_counter() - start,
            }
            progress(
                f"Chern integrals of {name} on {probe.count} points: chi {numbers[3]:.1f} +- "
                f"{errors[3]:.1f}, c2.J {numbers[2]:.2f} +- {errors[2]:.2f} "
                f"({chern[name]['seconds']:.0f} s)"
            )
    ricci: dict
    if not args.ricci_points:
        ricci = {"skipped": "--ricci-points 0"}
    else:
        probe = flows.subsample(test, np.arange(args.ricci_points))
        ricci = {"points": probe.count}
        for name, phi in metrics.items():
            start = time.perf_counter()
            try:
                value = float(flows.ricci_measure(surface, probe, phi))
            except ValueError as error:
                value = None
                progress(f"  no Ricci measure for {name}: {error}")
            ricci[name] = {"value": value, "seconds": time.perf_counter() - start}
            progress(f"Ricci measure of {name} on {probe.count} points: {value}")
    return chern, ricci


# The Newton route, timed (experiments/bench.py's spectral figures).


# Figure and program.


def figure(record, args):
    fig = Figure(figsize=(15, 4.4), layout="constrained")
    ax_k, ax_t, ax_rate = fig.subplots(1, 3)
    table = record["table"]
    ks = np.asarray([r["k"] for r in table])
    sigma = np.asarray([r["sigma_test"] for r in table])
    error = np.asarray([r["sigma_test_error"] for r in table])
    ax_k.errorbar(ks, sigma, yerr=error, fmt="o-", ms=4, label="Galerkin fixed point (Newton)")
    flow_ks = [r["k"] for r in table if r.get("flow_sigma_test") is not None]
    flow_sigma = [r["flow_sigma_test"] for r in table if r.get("flow_sigma_test") is not None]
    ax_k.plot(flow_ks, flow_sigma, "x", color="C1", label="Kähler–Ricci flow at $t_1$")
    fit = record["fit"]
    if "rate" in fit:
        x = np.asarray(fit["ks"], float)
        label = f"fit: $r = {fit['rate']:.3f} \\pm {fit['stderr']:.3f}$ per degree"
        ax_k.plot(x, np.exp(fit["intercept"] - fit["rate"] * x), "--", color="0.4", label=label)
    rows = record["donaldson"].get("rows", [])
    if rows:
        ax_k.plot(
            [r["k"] for r in rows],
            [r["sigma_test"] for r in rows],
            "s",
            color="C2",
            ms=4,
            label="Donaldson balanced",
        )
    ax_k.axhline(record["sigma_fs_test"], color="0.6", lw=0.8, label="Fubini–Study")
    ax_k.set_yscale("log")
    ax_k.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax_k.set_xlabel("degree $k$")
    ax_k.set_ylabel(rf"test $\sigma$ ({record['test_points']} fresh points)")
    ax_k.set_title(f"Fermat quintic, invariant basis, {record['points']} training points")
    ax_k.legend(fontsize=7)

    for rec in record["degrees"]:
        flow = rec.get("flow", {})
        if "ts" in flow:
            ax_t.semilogy(flow["ts"], flow["sigma_test"], label=f"k = {rec['k']}")
    ax_t.set_xlabel("flow time $t$")
    ax_t.set_ylabel(r"test $\sigma$")
    ax_t.set_title("local Kähler–Ricci flow from Fubini–Study")
    ax_t.legend(fontsize=7, ncol=2)

    for i, rec in enumerate(r for r in record["degrees"] if "rate_check" in r):
        flow, check = rec["flow"], rec["rate_check"]
        ts, d = np.asarray(flow["ts"]), np.asarray(flow["distance_to_newton"])
        keep = d > 0
        (line,) = ax_rate.semilogy(  # open markers of their own: the degrees' decays overlap
            ts[keep], d[keep], "osD^v"[i % 5], ms=5 - i % 3, mfc="none", color=f"C{i}",
            label=f"k = {rec['k']}",
        )  # fmt: skip
        lam = check["laplacian_strong"]
        ax_rate.semilogy(ts, d[0] * np.exp(-lam * ts), "--", lw=0.8, color=line.get_color())
    ax_rate.set_xlabel("flow time $t$")
    ax_rate.set_ylabel(r"$\|c(t) - c^*\|$")
    ax_rate.set_title(r"decay; dashed: $e^{-\lambda_1 t}$, $\lambda_1$ of −□ at $c^*$")
    if record["rates"]:
        ax_rate.legend(fontsize=7)
    save_figure(fig, args.out / "quintic_spectral.png")


def main(argv=None) -> dict:
    args = parse_args(argv)
    args.out = solvers.output_directory(args.out)
    surface = flows.Hypersurface.fermat_quintic()
    start = time.perf_counter()
    train, test = samples(surface, args)
    sigma_fs, sigma_fs_error = flows.sigma_measure(test, test.g_fs)
    progress(
        f"Fermat quintic: {train.count} training and {test.count} fresh test points "
        f"({time.perf_counter() - start:.1f} s); Fubini-Study test sigma "
        f"{float(sigma_fs):.4f} +- {float(sigma_fs_error):.4f}"
    )
    degrees, potentials = [], {}
    for k in range(1, args.k_max + 1):
        record, potential = degree(k, surface, train, test, args)
        degrees.append(record)
        potentials[k] = potential
    table = []
    for rec in degrees:
        flow = rec.get("flow", {})
        table.append(
            {
                "k": rec["k"],
                "basis_size": rec["basis_size"],
                "interpolates": rec.get("interpolates", False),
                "sigma_test": rec["newton"]["sigma_test"],
                "sigma_test_error": rec["newton"]["sigma_test_error"],
                "flow_sigma_test": flow["sigma_test"][-1] if "sigma_test" in flow else None,
                "flow_converged": flow.get("converged"),
                "flow_successful": flow.get("successful"),
                "seconds": rec["seconds"]["total"],
            }
        )
    fit = fit_record(table, args.fit_from)
    if "rate" in fit:
        progress(
            f"fit over k = {fit['ks']}: sigma ~ exp(-{fit['rate']:.3f} k), stderr "
            f"{fit['stderr']:.3f} (a factor {fit['factor_per_degree']:.2f} per degree)"
        )
    else:
        progress(f"fit of sigma(k): skipped ({fit['skipped']})")
    rates = [{"k": rec["k"], **rec["rate_check"]} for rec in degrees if "rate_check" in rec]
    record = {
        "surface": "fermat_quintic",
        "symmetry": SYMMETRY,
        "points": train.count,
        "test_points": test.count,
        "seed": args.seed,
        "sigma_fs_test": float(sigma_fs),
        "sigma_fs_test_error": float(sigma_fs_error),
        "degrees": degrees,
        "table": table,
        "fit": fit,
        "rates": [{k: v for k, v in r.items() if k != "spectrum"} for r in rates],
        "complete": False,
    }
    # the degrees are the long part: keep them whatever the later stages do
    write_json(args.out / "quintic_spectral.json", record)
    for name, stage in (
        ("smoothed", lambda: smoothed(surface, train, test, args)),
        ("donaldson", lambda: donaldson(surface, train, test, args)),
    ):
        mark = time.perf_counter()
        record[name] = stage()
        record[name]["stage_seconds"] = time.perf_counter() - mark
        if "skipped" in record[name]:
            progress(f"{name}: skipped ({record[name]['skipped']})")
    mark = time.perf_counter()
    record["chern"], record["ricci_measure"] = curvature(
        surface, test, potentials.get(args.curvature_k), args
    )
    record["curvature_seconds"] = time.perf_counter() - mark
    for name in ("chern", "ricci_measure"):
        if "skipped" in record[name]:
            progress(f"{name}: skipped ({record[name]['skipped']})")
    for row in table:
        d = next((r for r in record["donaldson"].get("rows", []) if r["k"] == row["k"]), None)
        row["donaldson_sigma_test"] = None if d is None else d["sigma_test"]
    best = min(table, key=lambda r: r["sigma_test"])
    record["best"] = {
        "k": best["k"],
        "sigma_test": best["sigma_test"],
        "sigma_test_error": best["sigma_test_error"],
    }
    record["machine"] = machine()
    record["seconds"] = elapsed()
    record["complete"] = True
    progress("k  size  sigma_test (Newton)     flow at t1   Donaldson   seconds")
    for row in table:
        flow = "-" if row["flow_sigma_test"] is None else f"{row['flow_sigma_test']:.3e}"
        flow += "!" if row["flow_sigma_test"] is not None and not row["flow_converged"] else " "
        don = "-" if row["donaldson_sigma_test"] is None else f"{row['donaldson_sigma_test']:.3e}"
        progress(
            f"{row['k']:2d} {row['basis_size']:4d}  {row['sigma_test']:.3e} +- "
            f"{row['sigma_test_error']:.1e}  {flow:>11}  {don:>10}  {row['seconds']:7.1f}"
            + ("  (interpolates its training points)" if row["interpolates"] else "")
        )
    if any(r["flow_sigma_test"] is not None and not r["flow_converged"] for r in table):
        progress("!: the flow did not converge to Newton's fixed point by t1 (see its line above)")
    figure(record, args)
    write_json(args.out / "quintic_spectral.json", record)
    return record


if __name__ == "__main__":
    sys.exit(solvers.run_program(main, "quintic_spectral"))
