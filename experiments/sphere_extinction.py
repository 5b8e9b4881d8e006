r"""Extinction of the round sphere under Perelman's flows, local, smoothed and componentwise.

On the round unit $S^n$ every Perelman form equals Ricci flow: $g(t) = c(t)\,g_\mathrm{ref}$,
$c = 1 - 2(n-1)t$, extinct at $T = 1/(2(n-1))$. Smoothed by the Gaussian of
width $\sigma$ (tangential components summed; docs/conventions.md, Normalisations
and tensors), the velocity is multiplied by $1 - \beta_\sigma$,
$\beta_\sigma = \frac1n \int_0^\pi e^{-d^2/2\sigma^2}\sin^{n+1}d\,\mathrm{d}d / \int_0^\pi e^{-d^2/2\sigma^2}\sin^{n-1}d\,\mathrm{d}d$,
so $T(\sigma) = 1/(2(n-1)(1-\beta_\sigma))$. The componentwise flow of $L_P$
gives $\partial_t c = -2(n-1)(1-\beta_\sigma)/c^2$: $c^3 = 1 - 6(n-1)(1-\beta_\sigma)t$
($\beta_0 = 0$). The solve stops at the `degenerate` event (the metric's
smallest eigenvalue at $10^{-4}$ of its initial value), so the measured
extinction time is within $10^{-4} T$ of the true one; the componentwise flow,
whose velocity grows like $1/c^2$, stops first by a collapse of the step (at
$c \approx 0.035$), and its time is still within about $5\times10^{-5} T$ (the
JSON's `stop_reason` says which).

Flows: `perelman` (local fixed measure; ill-posed, so it runs only at a
degree where its predicted amplification allows: the default degree is 2),
`perelman_lambda` (the λ form with its DeTurck term), `smoothed`,
`smoothed_lambda`, `ricci_deturck`, `componentwise` (local unless --sigma > 0).
`smoothed` and `smoothed_lambda` need a width --sigma > 0, the local flows refuse one;
--sigma is at most 1e8: past $\pi/\sqrt{2\epsilon} \approx 1.5\times10^8$ ($\epsilon$ float64's
epsilon) $e^{-d^2/2\sigma^2} = 1$ to rounding on the unit sphere, whose diameter is $\pi$: the
kernel is the sphere's mean and $\beta_\sigma = 1/(n+1)$, its limit.
Outputs in --out: sphere_extinction.json (`flow`, `dim`, `sigma`, `degree`,
`extinction_time`, `predicted_extinction_time`, `stop_reason`, the scale
factor against t and its largest deviation from the prediction) and
sphere_extinction.png.

Usage: python experiments/sphere_extinction.py --dim D --sigma S [--degree L] --flow F --out DIR
"""

import argparse
import sys

import jax
import jax.numpy as jnp
import numpy as np
from _common import directory, integer, number, progress, save_figure, write_json
from matplotlib.figure import Figure

import flows
import solvers

jax.config.update("jax_enable_x64", True)

FLOWS = (
    "perelman",
    "perelman_lambda",
    "smoothed",
    "smoothed_lambda",
    "ricci_deturck",
    "componentwise",
)
# the flows that need a width (--sigma > 0), and those that have none (local)
SMOOTHED = ("smoothed", "smoothed_lambda")
LOCAL = ("perelman", "perelman_lambda", "ricci_deturck")
# the widest kernel (module docstring): past it the kernel is the mean to float64 rounding
SIGMA_MAX = 1e8


def predicted_scale(flow: str, n: int, sigma: float, t: np.ndarray) -> tuple[np.ndarray, float]:
    """c(t) and the extinction time predicted for `flow`."""
    rate = 2 * (n - 1) * (1 - flows.sphere_smoothing_beta(sigma, n))
    if flow == "componentwise":
        return np.cbrt(np.maximum(1 - 3 * rate * t, 0.0)), 1 / (3 * rate)
    return np.maximum(1 - rate * t, 0.0), 1 / rate


def make(flow: str, sphere: flows.Sphere, sigma: float) -> flows.AbstractFlow:
    kernel = flows.GaussianKernel(sigma) if sigma > 0 else None
    if flow in SMOOTHED and kernel is None:
        raise ValueError(f"--flow {flow} needs --sigma > 0.")
    if flow in LOCAL and kernel is not None:
        raise ValueError(f"--flow {flow} is local; use smoothed or smoothed_lambda for sigma > 0.")
    if flow == "perelman_lambda":
        return flows.perelman_lambda_flow(sphere)  # the local form with its DeTurck term
    if flow == "componentwise":
        return flows.ComponentwiseFlow(sphere, flows.PerelmanLoss(), kernel)
    return flows.make_flow(flow, sphere, sigma if sigma > 0 else None)


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dim", type=int, default=2, choices=(2, 3))
    parser.add_argument(
        "--sigma",
        type=number(at_least=0, at_most=SIGMA_MAX),
        default=0.0,
        help=f"Gaussian width, 0 <= S <= {SIGMA_MAX:g} (0: local; > 0 for {', '.join(SMOOTHED)})",
    )
    parser.add_argument(
        "--degree",
        type=integer(2),
        default=None,
        help="quadrature degree (default: 2 for perelman, else 6)",
    )
    parser.add_argument("--flow", default="perelman_lambda", choices=FLOWS)
    parser.add_argument("--force", action="store_true", help="run past the amplification check")
    parser.add_argument("--out", type=directory, required=True)
    args = parser.parse_args(argv)
    if args.flow in SMOOTHED and args.sigma == 0:
        parser.error(f"--flow {args.flow} needs a kernel width --sigma > 0")
    if args.flow in LOCAL and args.sigma > 0:
        parser.error(
            f"--flow {args.flow} is local: it has no kernel width (--sigma > 0 is for "
            f"{', '.join(SMOOTHED)} and componentwise)"
        )
    if args.degree is None:
        args.degree = 2 if args.flow == "perelman" else 6
    return args


def main(argv=None) -> dict:
    args = parse_args(argv)
    args.out = solvers.output_directory(args.out)
    sphere = flows.Sphere(args.dim, args.degree)
    flow = make(args.flow, sphere, args.sigma)
    _, t_pred = predicted_scale(args.flow, args.dim, args.sigma, np.zeros(1))
    progress(f"{flow.name} on {sphere!r}, sigma = {args.sigma}: predicted extinction {t_pred:.6f}")
    times = np.linspace(0, 0.95, 20) * t_pred
    solution = solvers.solve(
        flow,
        flows.reference_metric(sphere),
        0.0,
        2 * t_pred,
        saveat=times,
        force=args.force,
        progress=False,
    )
    tangential = jax.vmap(sphere.tangential)(solution.values)
    c = np.asarray(tangential[:, 0, 0, 0])
    roundness = np.asarray(
        jnp.max(jnp.abs(tangential - c[:, None, None, None] * jnp.eye(args.dim)), axis=(1, 2, 3))
    )
    ts = np.asarray(solution.ts)
    c_pred, _ = predicted_scale(args.flow, args.dim, args.sigma, ts)
    early = ts <= 0.8 * t_pred
    record = {
        "flow": flow.name,
        "experiment_flow": args.flow,
        "dim": args.dim,
        "sigma": args.sigma,
        "degree": args.degree,
        "extinction_time": solution.t_final,
        "predicted_extinction_time": t_pred,
        "extinction_error": abs(solution.t_final - t_pred),
        "stop_reason": solution.stop_reason,
        "predicted_amplification": solution.amplification.value,
        "max_scale_error_before_0.8T": float(np.max(np.abs(c - c_pred)[early])),
        "max_roundness_error": float(np.max(roundness[early])),
        "times": ts.tolist(),
        "scale_factor": c.tolist(),
        "predicted_scale_factor": c_pred.tolist(),
    }
    progress(
        f"stopped at t = {solution.t_final:.6f} ({solution.stop_reason}); "
        f"scale error before 0.8 T: {record['max_scale_error_before_0.8T']:.1e}"
    )
    write_json(args.out / "sphere_extinction.json", record)
    fig = Figure(figsize=(6, 4))
    ax = fig.add_subplot()
    fine = np.linspace(0, t_pred, 200)
    ax.plot(fine, predicted_scale(args.flow, args.dim, args.sigma, fine)[0], "-", label="predicted")
    ax.plot(ts, c, "o", ms=4, label="measured")
    ax.axvline(solution.t_final, color="gray", ls=":", label=f"stop t = {solution.t_final:.5f}")
    ax.set_xlabel("t")
    ax.set_ylabel("scale factor c(t)")
    ax.set_title(f"{flow.name} on S^{args.dim} (σ = {args.sigma}, degree {args.degree})")
    ax.legend()
    fig.tight_layout()
    save_figure(fig, args.out / "sphere_extinction.png")
    return record


if __name__ == "__main__":
    sys.exit(solvers.run_program(main, "sphere_extinction"))
