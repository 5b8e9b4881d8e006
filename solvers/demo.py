r"""`metric-flows`: the comparison demo, the project's front door (issue 7, item 1).

One command compares Perelman's Ricci flow with its non-local generalisation
(Gaussian kernels of several widths σ) and with a network's evolving, frozen
and infinite-width NTK flows, on $T^2$, $S^2$, $S^3$ and the Fermat quintic,
prints progress lines as it goes and writes a report folder. Its sections,
each beside an analytic prediction:

- **torus** ($T^2$, $n^2$ nodes): Perelman's flow in its well-posed $\lambda$
  form (`flows.MetricFlow(..., "lambda")`, $f$ the minimiser of $\mathcal F$;
  the local fixed-measure flow is ill-posed, `shared/DESIGN.md` §2.1), local
  (σ = 0) and smoothed by the Gaussian $k_\sigma$. From $g = e^{2u}\delta$,
  $u = a\cos kx$, $a = 10^{-4}$ (linear regime; one solve per $k \le 4$),
  R's $(k, 0)$ Fourier mode decays like $e^{-\gamma_k t}$,
  $\gamma_k = k^2 e^{-\sigma^2k^2/2}$; the rates are fitted and compared
  (as `experiments/torus_modes.py`). From $u = 0.2(\cos x\cos y + \tfrac12\sin(2x + y))$
  the flow runs to $t = 0.2$: $\int R^2 dV$ beside its linearisation (every
  mode of $R_0$ decaying at $\gamma_k$), and $\lambda$, which the flow raises.
- **s2**, **s3**: the round unit $S^n$ to extinction under the same flows, which
  on a round sphere are all Ricci flow, $\partial_t g = \int k_\sigma(-2\,\mathrm{Ric})$
  ($f$ is constant; integrated without the λ form's ground-state solve). Locally
  $g(t) = (1 - 2(n-1)t)g_\mathrm{ref}$, extinct at $T = 1/(2(n-1))$; smoothed,
  $T(\sigma) = 1/(2(n-1)(1 - \beta_\sigma))$ with
  $\beta_\sigma = \frac1n\int_0^\pi e^{-d^2/2\sigma^2}\sin^{n+1}d\,\mathrm{d}d
  / \int_0^\pi e^{-d^2/2\sigma^2}\sin^{n-1}d\,\mathrm{d}d$
  (`experiments/sphere_extinction.py`). The solve stops at its degenerate-metric
  event, $c(t) = 10^{-4}$, predicted at $(1 - 10^{-4})T$.
- **network** ($T^2$): a cosine network metric (one network per component,
  `--width` features, its NTK tending to $k_{0.5}$) descends $L_P = -2\mathcal F$
  from a seeded random metric with its NTK evolving, frozen at initialisation,
  and at infinite width (`solvers.solve_network`): the loss and the kernel drift
  against $t$, and the $L^2(\mu)$ distances between the regimes.
- **quintic**: metric values at `--points` training points of one chart of the
  Fermat quintic flow under the σ loss by explicit Euler (gradient descent,
  `solvers.solve_points`) through the local kernel and the normalised Gaussian
  in FS distance (`--quintic-sigma`); σ of the training points and of nearby
  test points (kicked by 0.01, `flows.sample_near`) against $t$.

The kernel width is traced, not compiled in: on each manifold every σ, and
σ = 0 (the local flow), runs through one compiled program (`SpectralGaussian`:
`flows.GaussianKernel`'s exact spectral multiplier with σ an array). JAX
compilation dominates the run time; this is what keeps the default run short.

Output in `--out` (default `results/metric-flows`; files written atomically):
`report.json` (every number), `mode_decay.png`, `curvature_loss.png` (the
torus and network rows), `extinction.png`, `quintic_sigma.png` (those of the
sections run) and `summary.md`.

Usage: metric-flows [--manifolds torus,s2,s3,quintic] [--flows local,smoothed,evolving,frozen,infinite]
[--sigmas 0.1,0.3,0.5] [--n 16] [--degree 10] [--width 32] [--points 300] [--steps 100]
[--quintic-sigma 0.3] [--seed 0] [--dtype float64] [--quick] [--out DIR]
"""

import argparse
import json
import math
import os
import time
from pathlib import Path

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import scipy.integrate
from jaxtyping import Array, Float
from matplotlib.figure import Figure  # the object API: no pyplot state

import flows

from . import solve, solve_network, solve_points
from ._checkpoint import atomic_write

MANIFOLDS = ("torus", "s2", "s3", "quintic")
FLOWS = ("local", "smoothed", "evolving", "frozen", "infinite")
_NETWORK_REGIMES = ("evolving", "frozen", "infinite")
DEFAULT_OUT = Path("results") / "metric-flows"

# Sizes: (default, --quick). Compilation, not arithmetic, dominates both.
_SIZES = {
    "n": (16, 8),
    "degree": (10, 4),
    "width": (32, 8),
    "points": (300, 60),
    "steps": (100, 20),
    "sigmas": ((0.1, 0.3, 0.5), (0.3,)),
}
# --quick runs each kind of computation once: S^3 repeats S^2's program on another grid, and
# the frozen and infinite-width regimes repeat the evolving one's code with another kernel
_QUICK_MANIFOLDS = ("torus", "s2", "quintic")
_QUICK_FLOWS = ("local", "smoothed", "evolving")
# flows' input checks hold float64 tolerances, which float32 rounding fails: these sections
# are skipped (and reported) in float32
_FLOAT64_ONLY = {
    "s2": "flows.NodalMetric checks band-limitation to a relative 1e-8, below float32 rounding",
    "s3": "flows.NodalMetric checks band-limitation to a relative 1e-8, below float32 rounding",
    "quintic": "flows.check_metric_values wants Hermitian to 1e-10 and flows.perturb_points "
    "|p(z)| below 1e-10, below float32 rounding",
}
_MODE_AMPLITUDE = {"float64": 1e-4, "float32": 1e-3}
_TOLERANCES = {"float64": (1e-10, 1e-12), "float32": (1e-5, 1e-7)}
_GROUND_TOL = {"float64": 1e-11, "float32": 1e-5}
_DEGENERATE_TOL = 1e-4  # a sphere's solve stops where c(t) falls to this (solve's event)
_SAVES = 21  # every solve on a manifold saves this many times: one compiled program
_MODE_T1 = 0.05
_CURVATURE_T1 = 0.2
_NETWORK_SIGMA = 0.5  # the cosine network's width (its NTK -> k_sigma)
_NETWORK_T1 = 0.1
_QUINTIC_SIGMA = 0.3  # the Gaussian's width in FS distance (radians)
_QUINTIC_LR = 1e-4
_SIGMA_FS = 0.3737  # sigma of the Fubini-Study metric (experiments/quintic_sigma.py, 1e5 points)

_START = time.perf_counter()


def _progress(message: str) -> None:
    print(f"[{time.perf_counter() - _START:6.1f} s] {message}", flush=True)


# ---------------------------------------------------------------------------------------------
# Output: atomic files, strict JSON


def _plain(value):
    """JSON-ready: arrays to lists, numpy scalars to Python, non-finite floats to None."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, (np.ndarray, jax.Array)):
        return _plain(np.asarray(value).tolist())
    if isinstance(value, (np.floating, float)):
        value = float(value)
        return value if math.isfinite(value) else None
    if isinstance(value, (np.integer, np.bool_)):
        return value.item()
    return value


def _write_text(path: Path, text: str) -> None:
    with atomic_write(path, "w") as f:
        f.write(text)
    _progress(f"wrote {path}")


def _save_figure(fig: Figure, path: Path) -> None:
    with atomic_write(path, "wb") as f:
        fig.savefig(f, format="png", dpi=120)
    _progress(f"wrote {path}")


# ---------------------------------------------------------------------------------------------
# The Gaussian kernel with a traced width


class SpectralGaussian(flows.AbstractKernel):
    r"""The normalised Gaussian $k_\sigma$ applied through its exact spectral multiplier, σ traced.

    The multiplier is `flows.GaussianKernel`'s: $e^{-\sigma^2|k|^2/2}$ on tori,
    the Funk–Hecke eigenvalue of each degree on spheres (tabulated here, from
    `GaussianKernel(sigma).degree_multipliers`). σ is an array, not a static
    field, so one compiled flow serves every width; σ = 0 is the identity (the
    local flow). It has no pointwise values (`smooth` only, which is what
    `flows.MetricFlow` uses).

    **Arguments:** `manifold` (a `flows.Torus` or `flows.Sphere`), `sigma` >= 0.
    """

    sigma: Float[Array, ""]
    degree_multipliers: Float[Array, " L"]

    def __init__(self, manifold: flows.AbstractManifold, sigma: float):
        if not (math.isfinite(sigma) and sigma >= 0):
            raise ValueError(f"SpectralGaussian: sigma must be finite and >= 0, got {sigma!r}.")
        dtype = manifold.nodes.dtype
        self.sigma = jnp.asarray(sigma, dtype=dtype)
        if isinstance(manifold, flows.Sphere):
            table = (
                flows.GaussianKernel(sigma).degree_multipliers(manifold.dim, manifold.band_limit)
                if sigma > 0
                else np.ones(manifold.band_limit + 1)
            )
        elif isinstance(manifold, flows.Torus):
            table = np.ones(1)  # unused: the torus multiplier is computed from sigma
        else:
            raise ValueError(f"SpectralGaussian: needs a torus or a sphere, got {manifold!r}.")
        self.degree_multipliers = jnp.asarray(table, dtype=dtype)

    def multiplier(self, manifold: flows.AbstractManifold) -> Float[Array, "*slots"]:
        if isinstance(manifold, flows.Torus):
            return jnp.exp(-(self.sigma**2) * manifold.laplace_eigenvalues() / 2)
        return self.degree_multipliers[jnp.asarray(manifold.harmonic_degrees())]

    def __call__(self, manifold, x, y):
        raise ValueError(
            "SpectralGaussian acts through its spectral multiplier only (smooth); for pointwise "
            "values k(x, y) use flows.GaussianKernel(sigma)."
        )


def lambda_flow(manifold: flows.AbstractManifold, sigma: float, dtype: str) -> flows.MetricFlow:
    r"""Perelman's flow in its $\lambda$ form, smoothed by $k_\sigma$ (σ = 0: local, no DeTurck term)."""
    return flows.MetricFlow(
        manifold, "lambda", SpectralGaussian(manifold, sigma), ground_tol=_GROUND_TOL[dtype]
    )


def ricci_flow(manifold: flows.AbstractManifold, sigma: float) -> flows.MetricFlow:
    r"""$\partial_t g = \int k_\sigma(-2\,\mathrm{Ric})\,d\mu$ (σ = 0: Hamilton's Ricci flow).

    On a round sphere $f$ is constant, so every Perelman form is this flow
    (`shared/DESIGN.md` §2.1) and the ground-state solve of the λ form can be skipped.
    """
    return flows.MetricFlow(manifold, "none", SpectralGaussian(manifold, sigma))


def flow_label(sigma: float) -> str:
    return "local (σ = 0)" if sigma == 0 else f"σ = {sigma:g}"


# ---------------------------------------------------------------------------------------------
# Diagnostics (one compiled program per manifold)


@eqx.filter_jit
def _curvature_series(manifold, values):
    r"""R at the nodes, $\int R^2 dV$, the volume and λ at each saved state (one program per grid)."""

    def at(v):
        metric = flows.NodalMetric(manifold, v, check=False)
        geom = flows.nodal_geometry(metric)
        r = jax.vmap(lambda q: q.scalar)(geom)
        dens = jax.vmap(lambda q: q.volume_density)(geom)
        out = {
            "R": r,
            "integral_R2": manifold.integrate(r**2 * dens),
            "volume": manifold.integrate(dens),
            "lambda": flows.ground_state(metric, geometry=geom).value,
        }
        return out

    return jax.lax.map(at, values)


def _fourier(r: np.ndarray, n: int) -> np.ndarray:
    """Fourier coefficients of nodal values on the n x n torus grid (as `Torus.transform`), per save."""
    return np.fft.fft2(r.reshape(r.shape[0], n, n)) / n**2


def _linearised_integral_r2(r0: np.ndarray, n: int, sigma: float, ts: np.ndarray) -> np.ndarray:
    r"""$\int R_\mathrm{lin}(t)^2 d\mu$: each Fourier mode of $R_0$ decaying at $|k|^2 e^{-\sigma^2|k|^2/2}$."""
    k = np.fft.fftfreq(n, d=1.0 / n)
    k2 = k[:, None] ** 2 + k[None, :] ** 2
    c = np.fft.fft2(r0.reshape(n, n)) / n**2
    decay = np.exp(-np.multiply.outer(ts, k2 * np.exp(-(sigma**2) * k2 / 2)))
    # Parseval: int f^2 dmu = (2 pi)^2 sum_k |c_k|^2
    return (2 * np.pi) ** 2 * np.sum(np.abs(c) ** 2 * decay**2, axis=(1, 2))


def _fit_rate(ts: np.ndarray, amplitudes: np.ndarray) -> float:
    slope, _ = np.polyfit(ts, np.log(amplitudes), 1)
    return -float(slope)


def predicted_rate(k, sigma: float):
    r"""$k^2 e^{-\sigma^2 k^2/2}$: the decay rate of R's $k$-th mode (DESIGN.md §2.1)."""
    k = np.asarray(k, dtype=float)
    return k**2 * np.exp(-(sigma**2) * k**2 / 2)


def beta(sigma: float, n: int) -> float:
    r"""$\beta_\sigma$ on $S^n$ (0 at σ = 0): smoothing multiplies the round velocity by $1 - \beta_\sigma$."""
    if sigma == 0:
        return 0.0

    def integral(p):
        return scipy.integrate.quad(
            lambda d: math.exp(-(d**2) / (2 * sigma**2)) * math.sin(d) ** p,
            0,
            math.pi,
            epsabs=0,
            epsrel=1e-13,
        )[0]

    return integral(n + 1) / (n * integral(n - 1))


def predicted_extinction(sigma: float, n: int) -> float:
    r"""$T(\sigma) = 1/(2(n-1)(1-\beta_\sigma))$; $1/(2(n-1))$ locally."""
    return 1.0 / (2 * (n - 1) * (1 - beta(sigma, n)))


# ---------------------------------------------------------------------------------------------
# Sections


def run_torus(args, sigmas: list[float]) -> dict:
    """Mode decay (linear regime) and a large perturbation (curvature and λ against t) on T²."""
    torus = flows.Torus(2, args.n)
    rtol, atol = _TOLERANCES[args.dtype]
    ks = list(range(1, min(4, torus.band_limit) + 1))
    dtype = torus.nodes.dtype
    x, y = np.asarray(torus.nodes[:, 0]), np.asarray(torus.nodes[:, 1])
    a = _MODE_AMPLITUDE[args.dtype]
    u_large = jnp.asarray(0.2 * (np.cos(x) * np.cos(y) + 0.5 * np.sin(2 * x + y)), dtype=dtype)
    out = {
        "manifold": repr(torus),
        "flow": "perelman_lambda (MetricFlow measure='lambda'), smoothed by k_sigma for sigma > 0",
        "ks": ks,
        "mode_amplitude": a,
        "mode_t1": _MODE_T1,
        "curvature_t1": _CURVATURE_T1,
        "runs": {},
    }
    for sigma in sigmas:
        start = time.perf_counter()
        flow = lambda_flow(torus, sigma, args.dtype)
        # one mode per solve: modes of different k couple at second order in a, and a
        # fast mode's products would pollute a slow mode's fitted rate
        amplitudes, stops = {}, []
        for k in ks:
            g0 = flows.conformal_metric(torus, jnp.asarray(a * np.cos(k * x), dtype=dtype))
            modes = solve(flow, g0, 0.0, _MODE_T1, saveat=_SAVES, rtol=rtol, atol=atol)
            r = np.asarray(_curvature_series(torus, modes.values)["R"])
            amplitudes[k] = np.abs(_fourier(r, args.n)[:, k, 0])
            stops.append(modes.stop_reason)
        ts = np.asarray(modes.ts)
        measured = [_fit_rate(ts, amplitudes[k]) for k in ks]
        predicted = predicted_rate(ks, sigma).tolist()
        errors = [abs(m - p) / p for m, p in zip(measured, predicted, strict=True)]

        large = solve(
            flow,
            flows.conformal_metric(torus, u_large),
            0.0,
            _CURVATURE_T1,
            saveat=_SAVES,
            rtol=rtol,
            atol=atol,
        )
        big = {k: np.asarray(v) for k, v in _curvature_series(torus, large.values).items()}
        lts = np.asarray(large.ts)
        linear = _linearised_integral_r2(big["R"][0], args.n, sigma, lts)
        out["runs"][str(sigma)] = {
            "sigma": sigma,
            "label": flow_label(sigma),
            "mode_times": ts,
            "mode_amplitudes": {str(k): v for k, v in amplitudes.items()},
            "measured_rates": measured,
            "predicted_rates": predicted,
            "relative_errors": errors,
            "mode_stop_reasons": stops,
            "times": lts,
            "integral_R2": big["integral_R2"],
            "integral_R2_linearised": linear,
            "lambda": big["lambda"],
            "volume": big["volume"],
            "min_R": big["R"].min(axis=1),
            "max_R": big["R"].max(axis=1),
            "stop_reason": large.stop_reason,
            "t_final": large.t_final,
            "seconds": time.perf_counter() - start,
        }
        _progress(
            f"T², {flow_label(sigma)}: mode rates "
            + ", ".join(
                f"k={k}: {m:.6g} (predicted {p:.6g})"
                for k, m, p in zip(ks, measured, predicted, strict=True)
            )
            + f"; max relative error {max(errors):.1e}; large perturbation: ∫R²dV "
            f"{float(big['integral_R2'][0]):.4g} → {float(big['integral_R2'][-1]):.4g}, λ "
            f"{float(big['lambda'][0]):.4g} → {float(big['lambda'][-1]):.4g} ({large.stop_reason})"
        )
    out["max_relative_error"] = max(max(r["relative_errors"]) for r in out["runs"].values())
    return out


def run_sphere(args, dim: int, sigmas: list[float]) -> dict:
    """Extinction of the round unit S^dim under Ricci flow (every Perelman form there), local and smoothed."""
    sphere = flows.Sphere(dim, args.degree)
    rtol, atol = _TOLERANCES[args.dtype]
    g0 = flows.reference_metric(sphere)
    frames = np.asarray(jax.vmap(sphere.frame)(sphere.nodes))  # (N, n+1, n): g = E^T A E
    out = {
        "manifold": repr(sphere),
        "flow": "Ricci flow -2 Ric (MetricFlow measure='none'; every Perelman form on a round "
        "sphere), smoothed by k_sigma for sigma > 0",
        "local_prediction": 1.0 / (2 * (dim - 1)),
        "runs": {},
    }
    for sigma in sigmas:
        start = time.perf_counter()
        t_pred = predicted_extinction(sigma, dim)
        saves = np.linspace(0.0, 0.95 * t_pred, _SAVES - 1)
        sol = solve(
            ricci_flow(sphere, sigma),
            g0,
            0.0,
            2 * t_pred,
            saveat=saves,
            rtol=rtol,
            atol=atol,
            degenerate_tol=_DEGENERATE_TOL,
        )
        tangential = np.einsum("nai,snab,nbj->snij", frames, np.asarray(sol.values), frames)
        c = tangential[:, 0, 0, 0]
        ts = np.asarray(sol.ts)
        c_pred = np.maximum(1 - ts / t_pred, 0.0)
        early = ts <= 0.8 * t_pred
        roundness = np.max(
            np.abs(tangential - c[:, None, None, None] * np.eye(dim)), axis=(1, 2, 3)
        )
        # the degenerate event fires where c(t) = _DEGENERATE_TOL: at (1 - tol) T for linear c
        t_stop = t_pred * (1 - _DEGENERATE_TOL)
        record = {
            "sigma": sigma,
            "label": flow_label(sigma),
            "beta": beta(sigma, dim),
            "extinction_time": sol.t_final,
            "predicted_extinction_time": t_pred,
            "predicted_stop_time": t_stop,
            "relative_error": abs(sol.t_final - t_stop) / t_stop,
            "stop_reason": sol.stop_reason,
            "times": ts,
            "scale_factor": c,
            "predicted_scale_factor": c_pred,
            "max_scale_error_before_0.8T": float(np.max(np.abs(c - c_pred)[early])),
            "max_roundness_error": float(np.max(roundness[early])),
            "seconds": time.perf_counter() - start,
        }
        out["runs"][str(sigma)] = record
        _progress(
            f"S{dim}, {flow_label(sigma)}: stopped at t = {sol.t_final:.8f} ({sol.stop_reason[:17]}), "
            f"predicted (1 - {_DEGENERATE_TOL:g}) T = {t_stop:.8f} (relative error "
            f"{record['relative_error']:.1e}); extinction time T = {t_pred:.6f}"
        )
    return out


def _distance(m, a, b) -> np.ndarray:
    r"""$(\sum_a w_a |G_a - G'_a|_F^2)^{1/2}$ at each saved time."""
    w = np.asarray(m.weights)
    return np.sqrt(np.einsum("n,snij->s", w, (np.asarray(a) - np.asarray(b)) ** 2))


def run_network(args, regimes: list[str]) -> dict:
    """A cosine network metric on T² descending L_P with its NTK evolving, frozen and at infinite width."""
    torus = flows.Torus(2, args.n)
    rtol, atol = _TOLERANCES[args.dtype]
    loss = flows.PerelmanLoss()
    key = jax.random.key(args.seed)
    base = flows.random_metric(torus, key, band_limit=1, amplitude=0.2)
    metric = flows.cosine_network_metric(torus, args.width, _NETWORK_SIGMA, key, base=base)
    out = {
        "manifold": repr(torus),
        "loss": "perelman (L_P = -2F at fixed measure)",
        "width": args.width,
        "network_sigma": _NETWORK_SIGMA,
        "t1": _NETWORK_T1,
        "runs": {},
    }
    sols = {}
    for regime in regimes:
        start = time.perf_counter()
        sol = solve_network(
            metric, loss, 0.0, _NETWORK_T1, kernel=regime, saveat=11, rtol=rtol, atol=atol
        )
        sols[regime] = sol
        loss_t = np.asarray(sol.loss)
        record = {
            "times": sol.ts,
            "loss": loss_t,
            "loss_decrease": float(loss_t[0] - loss_t[-1]),
            "monotone": bool(np.all(np.diff(loss_t) <= 1e-9 * max(1.0, abs(loss_t[0])))),
            "stop_reason": sol.stop_reason,
            "t_final": sol.t_final,
            "seconds": time.perf_counter() - start,
        }
        if sol.kernel_drift is not None:
            record["kernel_drift"] = sol.kernel_drift
        out["runs"][regime] = record
        drift = (
            f", kernel drift {float(sol.kernel_drift[-1]):.2e}"
            if sol.kernel_drift is not None
            else ""
        )
        _progress(
            f"network ({regime}, width {args.width}): L_P {loss_t[0]:.5g} → {loss_t[-1]:.5g}"
            f"{drift} ({sol.stop_reason})"
        )
    distances = {}
    for p, q in (("evolving", "frozen"), ("frozen", "infinite"), ("evolving", "infinite")):
        if p in sols and q in sols and len(sols[p].ts) == len(sols[q].ts):
            distances[f"{p}_{q}"] = _distance(torus, sols[p].values, sols[q].values)
    out["distances"] = distances
    return out


def _first_points(sample: flows.PointSample, count: int) -> flows.PointSample:
    """The first `count` points of a sample, weights renormalised to mean 1."""
    w = np.asarray(sample.weights)[:count]
    return flows.PointSample(
        points=sample.points[:count],
        patch=sample.patch[:count],
        eliminated=sample.eliminated[:count],
        omega=sample.omega[:count],
        weights=jnp.asarray(w / w.mean()),
        g_fs=sample.g_fs[:count],
        jacobian=sample.jacobian[:count],
        volume_ratio=sample.volume_ratio * w.mean(),
        rejected=sample.rejected,
    )


def _fs_distance(z: np.ndarray, w: np.ndarray) -> np.ndarray:
    r"""$d_\mathrm{FS} = \arccos(|\langle z, w\rangle|/(|z||w|))$ row by row (DESIGN.md §4)."""
    inner = np.abs(np.sum(np.conj(z) * w, axis=1))
    norms = np.linalg.norm(z, axis=1) * np.linalg.norm(w, axis=1)
    return np.arccos(np.clip(inner / norms, 0.0, 1.0))


def run_quintic(args, kernels: list[str]) -> dict:
    """σ of the Fermat quintic's metric values under the local and Gaussian kernel flows."""
    surface = flows.Hypersurface.fermat_quintic()
    key = jax.random.key(args.seed)
    sample = flows.point_sample(surface, flows.sample_points(surface, key, 30 * args.points))
    train = flows.chart_sample(sample)
    if train.count < args.points:
        raise RuntimeError(
            f"quintic: only {train.count} of {30 * args.points} sampled points fell in one chart"
        )
    train = _first_points(train, args.points)
    test = flows.sample_near(surface, train, jax.random.fold_in(key, 1), 0.01)
    distances = _fs_distance(np.asarray(train.points), np.asarray(test.points))
    t1 = args.steps * _QUINTIC_LR
    out = {
        "surface": "Fermat quintic",
        "points": train.count,
        "test_points": test.count,
        "test_kick": 0.01,
        "mean_test_distance": float(distances.mean()),
        "learning_rate": _QUINTIC_LR,
        "steps": args.steps,
        "t1": t1,
        "gaussian_sigma": args.quintic_sigma,
        "sigma_fs_reference": _SIGMA_FS,
        "runs": {},
    }
    for flow_name in kernels:
        start = time.perf_counter()
        if flow_name == "local":
            name, kernel = "local", flows.LocalPointKernel()
        else:
            name = "gaussian"
            kernel = flows.gaussian_point_kernel(args.quintic_sigma, normalise=True)
        flow = flows.PointKernelFlow(kernel, flows.MongeAmpereLoss(1.0), train, test)
        sol = solve_points(flow, train.g_fs, test.g_fs, 0.0, t1, dt0=_QUINTIC_LR, saveat=11)
        s_train, s_test = np.asarray(sol.sigma_train), np.asarray(sol.sigma_test)
        out["runs"][name] = {
            "kernel": "LocalPointKernel"
            if name == "local"
            else f"gaussian_point_kernel({args.quintic_sigma}, normalise=True)",
            "times": sol.ts,
            "sigma_train": s_train,
            "sigma_test": s_test,
            "loss": sol.loss,
            "train_gain": float(s_train[0] / s_train[-1]),
            "test_gain": float(s_test[0] / s_test[-1]),
            "stop_reason": sol.stop_reason,
            "steps": sol.steps,
            "seconds": time.perf_counter() - start,
        }
        _progress(
            f"quintic ({name} kernel, {train.count} points, {args.steps} steps): σ train "
            f"{s_train[0]:.4f} → {s_train[-1]:.4f}, test {s_test[0]:.4f} → {s_test[-1]:.4f} "
            f"({sol.stop_reason})"
        )
    return out


# ---------------------------------------------------------------------------------------------
# Figures and summary


def _colours(n):
    from matplotlib import colormaps

    cmap = colormaps["viridis"]
    return [cmap(i / max(n - 1, 1) * 0.85) for i in range(n)]


def plot_modes(torus: dict, path: Path) -> None:
    runs = list(torus["runs"].values())
    fig = Figure(figsize=(11, 4.2), layout="constrained")
    ax, bx = fig.subplots(1, 2)
    markers = "os^vD"
    for i, r in enumerate(runs):
        colour = _colours(len(runs))[i]
        t = np.asarray(r["mode_times"])
        for j, k in enumerate(torus["ks"]):
            amp = np.asarray(r["mode_amplitudes"][str(k)])
            ax.plot(t, np.log(amp / amp[0]), markers[j % 5], ms=3, color=colour)
            ax.plot(t, -r["predicted_rates"][j] * t, "-", lw=0.8, color=colour)
        ax.plot([], [], "-", color=colour, label=r["label"])
    for j, k in enumerate(torus["ks"]):
        ax.plot([], [], markers[j % 5], ms=3, color="0.4", label=f"k = {k}")
    ax.set_xlabel("flow time t")
    ax.set_ylabel(r"$\log(|\hat R_k(t)|/|\hat R_k(0)|)$")
    ax.set_title("R's Fourier modes on T²: markers measured, lines predicted")
    ax.legend(fontsize=7, ncol=2)
    kk = np.linspace(0.5, max(torus["ks"]) + 0.5, 200)
    for i, r in enumerate(runs):
        colour = _colours(len(runs))[i]
        bx.plot(
            kk,
            predicted_rate(kk, r["sigma"]),
            "-",
            color=colour,
            lw=1,
            label=rf"{r['label']}: $k^2 e^{{-\sigma^2k^2/2}}$",
        )
        bx.plot(torus["ks"], r["measured_rates"], "o", color=colour, mfc="none")
    bx.set_xlabel("wavenumber k")
    bx.set_ylabel(r"decay rate $\gamma_k$")
    bx.set_title("Decay rate against k: circles measured, lines analytic")
    bx.legend(fontsize=7)
    _save_figure(fig, path)


def plot_curvature_loss(torus: dict | None, network: dict | None, path: Path) -> None:
    rows = (1 if torus else 0) + (1 if network else 0)
    fig = Figure(figsize=(11, 4.2 * rows), layout="constrained")
    axes = list(np.ravel(fig.subplots(rows, 2)))
    if torus:
        ax, bx = axes[0], axes[1]
        runs = list(torus["runs"].values())
        for i, r in enumerate(runs):
            colour = _colours(len(runs))[i]
            t = np.asarray(r["times"])
            measured = np.asarray(r["integral_R2"])
            linear = np.asarray(r["integral_R2_linearised"])
            ax.semilogy(
                t, measured / measured[0], "o", ms=3, color=colour, label=f"{r['label']} measured"
            )
            ax.semilogy(
                t,
                linear / linear[0],
                "--",
                lw=0.9,
                color=colour,
                label=r"dashed: linearised, modes of $R_0$ decaying at $|k|^2e^{-\sigma^2|k|^2/2}$"
                if i == 0
                else None,
            )
            bx.plot(t, r["lambda"], "o-", ms=3, color=colour, label=r["label"])
        ax.set_xlabel("flow time t")
        ax.set_ylabel(r"$\int R^2\, dV_g$ / its value at t = 0")
        ax.set_title(r"T², $g = e^{2u}\delta$, $u = 0.2(\cos x\cos y + \frac{1}{2}\sin(2x+y))$")
        ax.legend(fontsize=6)
        bx.set_xlabel("flow time t")
        bx.set_ylabel(r"$\lambda(g)$ (loss $-2\lambda$; non-decreasing)")
        bx.set_title("Perelman's λ along the λ-form flows")
        bx.legend(fontsize=7)
    if network:
        cx, dx = axes[-2], axes[-1]
        styles = {"evolving": "o-", "frozen": "s--", "infinite": "-"}
        for regime, r in network["runs"].items():
            cx.plot(
                r["times"],
                r["loss"],
                styles[regime],
                ms=3,
                label=f"{regime}" + (" (analytic kernel k_σ)" if regime == "infinite" else ""),
            )
        cx.set_xlabel("flow time t")
        cx.set_ylabel(r"$L_P = -2\mathcal{F}$")
        cx.set_title(
            f"Cosine network on T², width {network['width']}, σ = {network['network_sigma']}"
        )
        cx.legend(fontsize=7)
        t = np.asarray(next(iter(network["runs"].values()))["times"])
        for (name, d), style in zip(
            network["distances"].items(), ("o-", "s--", "D:"), strict=False
        ):
            dx.plot(
                t[1:],
                np.asarray(d)[1:],
                style,
                ms=4,
                mfc="none",
                label=f"‖g_{name.replace('_', ' − g_')}‖ (L²(μ))",
            )
        if "kernel_drift" in network["runs"].get("evolving", {}):
            r = network["runs"]["evolving"]
            dx.plot(
                np.asarray(r["times"])[1:],
                np.asarray(r["kernel_drift"])[1:],
                "k^-",
                ms=3,
                label="kernel drift ‖Θ_t − Θ_0‖/‖Θ_0‖",
            )
        dx.set_yscale("log")
        dx.set_xlabel("flow time t")
        dx.set_ylabel("distance / relative drift")
        dx.set_title("Evolving vs frozen vs infinite-width NTK")
        dx.legend(fontsize=6)
    _save_figure(fig, path)


def plot_extinction(spheres: dict, path: Path) -> None:
    fig = Figure(figsize=(11, 4.2), layout="constrained")
    ax, bx = fig.subplots(1, 2)
    for (name, rec), colour in zip(spheres.items(), ("C0", "C3"), strict=False):
        dim = int(name[1])
        sig = [r["sigma"] for r in rec["runs"].values()]
        fine = np.linspace(0, max(max(sig), 0.1) * 1.1, 60)
        ax.plot(
            fine,
            [predicted_extinction(float(s), dim) for s in fine],
            "-",
            color=colour,
            label=rf"$S^{dim}$ predicted $1/(2(n-1)(1-\beta_\sigma))$",
        )
        ax.plot(
            sig,
            [r["extinction_time"] for r in rec["runs"].values()],
            "o",
            color=colour,
            mfc="none",
            ms=8,
            label=rf"$S^{dim}$ measured",
        )
        ax.axhline(
            rec["local_prediction"],
            color=colour,
            ls=":",
            lw=0.8,
            label=rf"$S^{dim}$ local $1/(2(n-1))$ = {rec['local_prediction']:g}",
        )
        for r, marker in zip(rec["runs"].values(), "osD^v<>", strict=False):
            t = np.asarray(r["times"])
            bx.plot(
                t,
                r["scale_factor"],
                marker,
                ms=3,
                color=colour,
                mfc="none",
                label=rf"$S^{dim}$, {r['label']}: measured",
            )
            tt = np.linspace(0, r["predicted_extinction_time"], 50)
            bx.plot(tt, 1 - tt / r["predicted_extinction_time"], "-", lw=0.7, color=colour)
    ax.set_xlabel("kernel width σ (0: local flow)")
    ax.set_ylabel("extinction time T")
    ax.set_title("Round spheres: extinction time against σ")
    ax.legend(fontsize=7)
    bx.set_xlabel("flow time t")
    bx.set_ylabel("scale factor c(t),  g = c g_ref")
    bx.set_title("Scale factor: markers measured, lines predicted 1 − t/T(σ)")
    bx.legend(fontsize=6, ncol=2)
    _save_figure(fig, path)


def plot_quintic(quintic: dict, path: Path) -> None:
    fig = Figure(figsize=(6.5, 4.2), layout="constrained")
    ax = fig.subplots()
    for (name, r), colour in zip(quintic["runs"].items(), ("C0", "C1"), strict=False):
        steps = np.asarray(r["times"]) / quintic["learning_rate"]
        label = "local" if name == "local" else f"Gaussian, σ_FS = {quintic['gaussian_sigma']}"
        ax.semilogy(
            steps, r["sigma_train"], "o-", ms=3, color=colour, label=f"{label}: training points"
        )
        ax.semilogy(
            steps, r["sigma_test"], "s--", ms=3, color=colour, label=f"{label}: test points"
        )
    ax.axhline(
        quintic["sigma_fs_reference"],
        color="0.5",
        ls=":",
        label=f"σ(g_FS) = {quintic['sigma_fs_reference']} (10⁵ points)",
    )
    ax.set_xlabel(f"gradient-descent step (t / {quintic['learning_rate']:g})")
    ax.set_ylabel("σ measure (0: Ricci-flat)")
    ax.set_title(f"Fermat quintic, {quintic['points']} training points in one chart")
    ax.legend(fontsize=7)
    _save_figure(fig, path)


def summary_markdown(report: dict) -> str:
    lines = [
        "# metric-flows demo",
        "",
        f"Run {report['config']['started']} in {report['wall_seconds']:.0f} s "
        f"({report['config']['dtype']}, JAX on {report['config']['device']}).",
        "",
    ]
    torus = report.get("torus")
    if torus:
        lines += [
            f"## T²: decay of R's Fourier modes ({torus['manifold']}, λ form)",
            "",
            "| flow | k | measured rate | predicted k² e^(-σ²k²/2) | relative error |",
            "|---|---|---|---|---|",
        ]
        for r in torus["runs"].values():
            for k, m, p, e in zip(
                torus["ks"],
                r["measured_rates"],
                r["predicted_rates"],
                r["relative_errors"],
                strict=True,
            ):
                lines.append(f"| {r['label']} | {k} | {m:.6g} | {p:.6g} | {e:.1e} |")
        lines += [
            "",
            "Large perturbation to t = " + f"{torus['curvature_t1']}:",
            "",
            "| flow | ∫R² dV at 0 | at t1 | linearised | λ at 0 | λ at t1 |",
            "|---|---|---|---|---|---|",
        ]
        for r in torus["runs"].values():
            lines.append(
                f"| {r['label']} | {r['integral_R2'][0]:.4g} | {r['integral_R2'][-1]:.4g} | "
                f"{r['integral_R2_linearised'][-1]:.4g} | {r['lambda'][0]:.4g} | {r['lambda'][-1]:.4g} |"
            )
        lines.append("")
    spheres = {k: report[k] for k in ("s2", "s3") if report.get(k)}
    if spheres:
        lines += [
            "## Round spheres: extinction time",
            "",
            "The solve stops where the scale factor c(t) falls to "
            f"{_DEGENERATE_TOL:g}, predicted at (1 - {_DEGENERATE_TOL:g}) T(σ), "
            "T(σ) = 1/(2(n-1)(1-β_σ)) (1/(2(n-1)) locally).",
            "",
            "| sphere | flow | predicted T(σ) | stop time | predicted stop | relative error |",
            "|---|---|---|---|---|---|",
        ]
        for rec in spheres.values():
            for r in rec["runs"].values():
                lines.append(
                    f"| {rec['manifold']} | {r['label']} | {r['predicted_extinction_time']:.6f} | "
                    f"{r['extinction_time']:.8f} | {r['predicted_stop_time']:.8f} | "
                    f"{r['relative_error']:.1e} |"
                )
        lines.append("")
    network = report.get("network")
    if network:
        lines += [
            f"## Network NTK flows (cosine network, width {network['width']}, T²)",
            "",
            "| regime | L_P at 0 | L_P at t1 | kernel drift at t1 |",
            "|---|---|---|---|",
        ]
        for regime, r in network["runs"].items():
            drift = f"{r['kernel_drift'][-1]:.2e}" if "kernel_drift" in r else "—"
            lines.append(f"| {regime} | {r['loss'][0]:.6g} | {r['loss'][-1]:.6g} | {drift} |")
        lines.append("")
    quintic = report.get("quintic")
    if quintic:
        lines += [
            f"## Fermat quintic ({quintic['points']} training points, {quintic['steps']} steps)",
            "",
            "| kernel | σ train 0 → t1 | σ test 0 → t1 | train gain | test gain |",
            "|---|---|---|---|---|",
        ]
        for name, r in quintic["runs"].items():
            lines.append(
                f"| {name} | {r['sigma_train'][0]:.4f} → {r['sigma_train'][-1]:.4f} | "
                f"{r['sigma_test'][0]:.4f} → {r['sigma_test'][-1]:.4f} | {r['train_gain']:.2f} | {r['test_gain']:.2f} |"
            )
        lines.append("")
    for name, reason in report.get("skipped", {}).items():
        lines += [f"Skipped {name}: {reason}.", ""]
    lines += ["## Figures", ""] + [f"![{f}]({f})" for f in report["figures"]] + [""]
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------
# Command line


def _choices(kind: str, allowed: tuple[str, ...]):
    def parse(text: str) -> list[str]:
        items = [s.strip() for s in text.split(",") if s.strip()]
        bad = [s for s in items if s not in allowed]
        if not items or bad:
            raise argparse.ArgumentTypeError(
                f"{kind} must be a comma-separated subset of {','.join(allowed)}, got {text!r}"
            )
        return list(dict.fromkeys(items))

    return parse


def _sigmas(text: str) -> list[float]:
    try:
        values = [float(s) for s in text.split(",") if s.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"--sigmas must be comma-separated numbers, got {text!r}"
        ) from None
    if not values or any(not (math.isfinite(v) and v > 0) for v in values):
        raise argparse.ArgumentTypeError(f"--sigmas must be finite numbers > 0, got {text!r}")
    return sorted(set(values))


def _width(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"must be a finite number > 0, got {text!r}")
    return value


def _positive(minimum: int, maximum: int | None = None):
    """argparse type: an integer in [minimum, maximum] (a bad value: exit 2, the flag named)."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be >= {minimum}, got {value}")
        if maximum is not None and value > maximum:
            raise argparse.ArgumentTypeError(f"must be <= {maximum}, got {value}")
        return value

    return parse


_seed = _positive(0, 2**32 - 1)  # jax.random.key(seed) takes any of these


def _sections(args: argparse.Namespace) -> list[str]:
    """The report sections these --manifolds and --flows select, in the order they run."""
    chosen = set(args.flows)
    geometric = bool(chosen & {"local", "smoothed"})
    out = [m for m in ("torus", "s2", "s3") if m in args.manifolds and geometric]
    if "torus" in args.manifolds and chosen & set(_NETWORK_REGIMES):
        out.append("network")
    if "quintic" in args.manifolds and geometric:
        out.append("quintic")
    return out


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="metric-flows",
        description="Compare Perelman's Ricci flow, its non-local (kernel-smoothed) generalisation "
        "and a network's NTK flows on T², S², S³ and the Fermat quintic; write a report folder.",
    )
    add = parser.add_argument
    add(
        "--manifolds",
        type=_choices("--manifolds", MANIFOLDS),
        default=None,
        help=f"comma-separated subset of {','.join(MANIFOLDS)} (default: all; --quick: "
        f"{','.join(_QUICK_MANIFOLDS)})",
    )
    add(
        "--flows",
        type=_choices("--flows", FLOWS),
        default=None,
        help="comma-separated subset of " + ",".join(FLOWS) + " (default: all; --quick: "
        f"{','.join(_QUICK_FLOWS)}). local: Perelman's flow (σ = 0; λ form on T², Ricci flow on "
        "the round spheres, where the two agree); smoothed: the same smoothed by k_σ for each "
        "of --sigmas; evolving, frozen, infinite: the NTK regimes of a cosine network on T². "
        "On the quintic, local and smoothed choose the local and the Gaussian point kernel",
    )
    add(
        "--sigmas",
        type=_sigmas,
        default=None,
        help="comma-separated kernel widths σ > 0 of the smoothed flows (default 0.1,0.3,0.5; --quick 0.3)",
    )
    add(
        "--n",
        type=_positive(6),
        default=None,
        help="T² grid points per axis (default 16; --quick 8)",
    )
    add(
        "--degree",
        type=_positive(2),
        default=None,
        help="quadrature degree of S² and S³ (default 10; --quick 4)",
    )
    add(
        "--width",
        type=_positive(1),
        default=None,
        help="cosine-network features per metric component (default 32; --quick 8)",
    )
    add(
        "--points",
        type=_positive(10),
        default=None,
        help="training points on the quintic (default 300; --quick 60)",
    )
    add(
        "--steps",
        type=_positive(1),
        default=None,
        help="gradient-descent steps on the quintic (default 100; --quick 20)",
    )
    add(
        "--quintic-sigma",
        type=_width,
        default=_QUINTIC_SIGMA,
        help=f"width of the quintic's Gaussian point kernel in FS distance (default {_QUINTIC_SIGMA})",
    )
    add(
        "--seed",
        type=_seed,
        default=0,
        help="seed of every random choice: the network's random base metric and features on "
        "T², the quintic's points (an integer in 0..2^32 - 1; default 0)",
    )
    add(
        "--dtype",
        choices=("float32", "float64"),
        default="float64",
        help="floating-point precision (default float64)",
    )
    add(
        "--quick",
        action="store_true",
        help="the smallest sizes and the fewest compiled programs (for tests): one σ, and unless "
        "given, --manifolds "
        + ",".join(_QUICK_MANIFOLDS)
        + " and --flows "
        + ",".join(_QUICK_FLOWS),
    )
    add("--out", type=Path, default=DEFAULT_OUT, help=f"report folder (default {DEFAULT_OUT})")
    args = parser.parse_args(argv)
    column = 1 if args.quick else 0
    for name, sizes in _SIZES.items():
        if getattr(args, name) is None:
            value = sizes[column]
            setattr(args, name, list(value) if name == "sigmas" else value)
    if args.manifolds is None:
        args.manifolds = list(_QUICK_MANIFOLDS if args.quick else MANIFOLDS)
    if args.flows is None:
        args.flows = list(_QUICK_FLOWS if args.quick else FLOWS)
    sections = _sections(args)
    if not sections:
        parser.error(
            f"nothing to run for --manifolds {','.join(args.manifolds)} and --flows "
            f"{','.join(args.flows)}: the network regimes run on the torus, and every manifold "
            "needs local or smoothed"
        )
    if args.dtype == "float32" and all(name in _FLOAT64_ONLY for name in sections):
        parser.error(
            f"--dtype float32: {', '.join(sections)} need float64 ("
            + "; ".join(f"{name}: {_FLOAT64_ONLY[name]}" for name in sections)
            + ")"
        )
    return args


def main(argv: list[str] | None = None) -> None:
    """The `metric-flows` command: run the demo (flags: `metric-flows --help`), write the report folder.

    Returns None, so that the console script exits with status 0 (argparse exits with 2 on a bad flag).
    """
    args = parse_args(argv)
    # Compilation dominates this program: like the test suite (tests/conftest.py), ask XLA to
    # compile fast (about 13% less CPU here; numerics unchanged) unless XLA_FLAGS is set. JAX
    # reads it when its backend starts, at the first computation, so it does nothing in a
    # process that has computed already.
    os.environ.setdefault("XLA_FLAGS", "--xla_backend_optimization_level=0")
    jax.config.update("jax_enable_x64", args.dtype == "float64")
    args.out.mkdir(parents=True, exist_ok=True)
    global _START
    _START = time.perf_counter()
    started = time.strftime("%Y-%m-%d %H:%M:%S")
    chosen = set(args.flows)
    sigmas = ([0.0] if "local" in chosen else []) + (args.sigmas if "smoothed" in chosen else [])
    regimes = [r for r in _NETWORK_REGIMES if r in chosen]
    kernels = [k for k in ("local", "smoothed") if k in chosen]
    report = {
        "config": {
            "manifolds": args.manifolds,
            "flows": args.flows,
            "sigmas": args.sigmas,
            "n": args.n,
            "degree": args.degree,
            "width": args.width,
            "points": args.points,
            "steps": args.steps,
            "quintic_sigma": args.quintic_sigma,
            "seed": args.seed,
            "dtype": args.dtype,
            "quick": args.quick,
            "started": started,
            "device": str(jax.devices()[0]),
            "jax": jax.__version__,
        },
        "sections_seconds": {},
        "figures": [],
    }
    _progress(
        f"metric-flows: {', '.join(args.manifolds)}; flows {', '.join(args.flows)}; "
        f"σ {args.sigmas}; {args.dtype}; output {args.out}"
    )
    tasks = {
        "torus": lambda: run_torus(args, sigmas),
        "s2": lambda: run_sphere(args, 2, sigmas),
        "s3": lambda: run_sphere(args, 3, sigmas),
        "network": lambda: run_network(args, regimes),
        "quintic": lambda: run_quintic(args, kernels),
    }
    sections = _sections(args)
    report["skipped"] = {}
    if args.dtype == "float32":
        report["skipped"] = {k: v for k, v in _FLOAT64_ONLY.items() if k in sections}
        for name, reason in report["skipped"].items():
            _progress(f"{name}: skipped in float32 ({reason})")
    tasks = [(name, tasks[name]) for name in sections if name not in report["skipped"]]
    for name, task in tasks:
        start = time.perf_counter()
        _progress(f"{name}: starting")
        report[name] = _plain(task())
        report["sections_seconds"][name] = time.perf_counter() - start
        _progress(f"{name}: done in {report['sections_seconds'][name]:.1f} s")

    figures = []
    if "torus" in report:
        plot_modes(report["torus"], args.out / "mode_decay.png")
        figures.append("mode_decay.png")
    if "torus" in report or "network" in report:
        plot_curvature_loss(
            report.get("torus"), report.get("network"), args.out / "curvature_loss.png"
        )
        figures.append("curvature_loss.png")
    spheres = {k: report[k] for k in ("s2", "s3") if k in report}
    if spheres:
        plot_extinction(spheres, args.out / "extinction.png")
        figures.append("extinction.png")
    if "quintic" in report:
        plot_quintic(report["quintic"], args.out / "quintic_sigma.png")
        figures.append("quintic_sigma.png")
    report["figures"] = figures
    report["wall_seconds"] = time.perf_counter() - _START
    report = _plain(report)
    _write_text(args.out / "summary.md", summary_markdown(report))
    with atomic_write(args.out / "report.json", "w") as f:
        json.dump(report, f, indent=1, allow_nan=False)
    _progress(f"wrote {args.out / 'report.json'}; total {report['wall_seconds']:.1f} s")


if __name__ == "__main__":
    main()
