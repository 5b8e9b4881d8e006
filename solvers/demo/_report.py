"""The demo's output: progress lines, strict JSON, atomic files, and summary.md.

Every file is written through `solvers.atomic_write` (a temporary file moved
into place), so an interrupted run leaves the previous file or the new one.
`_plain` makes the report strict JSON (arrays to lists, non-finite floats to
None); `summary_markdown` renders it as the report folder's summary.md.
"""

import math
import time
from pathlib import Path

import jax
import numpy as np
from matplotlib.figure import Figure  # the object API: no pyplot state

from .. import atomic_write

_START = time.perf_counter()
_LAST_SAVES = 5  # summary.md: the spectral flows' velocity ratio over their last saves


def start_clock() -> None:
    """Start the clock of the progress lines (and of `elapsed`) now."""
    global _START
    _START = time.perf_counter()


def elapsed() -> float:
    """Seconds since `start_clock` (or the import)."""
    return time.perf_counter() - _START


def _progress(message: str) -> None:
    print(f"[{time.perf_counter() - _START:6.1f} s] {message}", flush=True)


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


def summary_markdown(report: dict, degenerate_tol: float) -> str:
    """summary.md: the report's tables (`degenerate_tol`: where the spheres' solves stop)."""
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
            "local: Perelman's λ form; smoothed: its velocity averaged by the Gaussian kernel "
            "of width σ (a length on T²).",
            "",
            "| flow | k | measured rate | predicted k² e^(-σ²k²/2) | relative error |",
            "|---|---|---|---|---|",
        ]
        for r in torus["runs"].values():
            for k, m, p, e, ok in zip(
                torus["ks"],
                r["measured_rates"],
                r["predicted_rates"],
                r["relative_errors"],
                r["resolved"],
                strict=True,
            ):
                if ok:
                    lines.append(f"| {r['label']} | {k} | {m:.6g} | {p:.6g} | {e:.1e} |")
                else:
                    lines.append(f"| {r['label']} | {k} | not resolved | {p:.6g} | — |")
        if torus["unresolved"]:
            lines += [
                "",
                f"A rate counts as measured where it is resolved to {torus['resolution']:g} of the "
                f"predicted rate: the mode decays over the run by at least "
                f"{1 / torus['resolution']:.0e} × the integrator's rtol ({torus['rtol']:g}), and "
                "the fit's standard error is at most that fraction of the rate. Otherwise the fit "
                "measures the integrator, not the flow: no rate, no error, and the mode is left "
                "out of the largest relative error"
                + (
                    f" ({torus['max_relative_error']:.1e})."
                    if torus["max_relative_error"] is not None
                    else " (no rate is resolved)."
                )
                + " Not resolved:",
                "",
            ]
            for r in torus["runs"].values():
                for k, why in r["unresolved_reasons"].items():
                    lines.append(f"- {r['label']}, k = {k}: {why}")
        lines += [
            "",
            "Large perturbation to t = " + f"{torus['curvature_t1']} (linearised: each Fourier "
            "mode of R at t = 0 decaying at its rate, integrated against the flat measure, "
            "hence its offset from ∫R² dV already at t = 0):",
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
            f"{degenerate_tol:g}, predicted at (1 - {degenerate_tol:g}) T(σ), "
            "T(σ) = 1/(2(n-1)(1-β_σ)) (1/(2(n-1)) locally): smoothing by the kernel "
            "multiplies the round velocity by 1 - β_σ (`flows.sphere_smoothing_beta`).",
            "",
            "| sphere | flow | β_σ | predicted T(σ) | stop time | predicted stop | relative error |",
            "|---|---|---|---|---|---|---|",
        ]
        for rec in spheres.values():
            for r in rec["runs"].values():
                lines.append(
                    f"| {rec['manifold']} | {r['label']} | {r['beta']:.6f} | "
                    f"{r['predicted_extinction_time']:.6f} | "
                    f"{r['extinction_time']:.8f} | {r['predicted_stop_time']:.8f} | "
                    f"{r['relative_error']:.1e} |"
                )
        lines.append("")
    network = report.get("network")
    if network:
        lines += [
            f"## Network NTK flows (cosine network, width {network['width']}, T²)",
            "",
            f"Its NTK tends to the Gaussian of width {network['network_sigma']} as the width grows; "
            f"L_P = -2F, descended to t1 = {network['t1']:g}.",
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
            "σ here is the Ricci-flatness measure (0: Calabi–Yau); the Gaussian kernel's width "
            f"is {quintic['gaussian_sigma']} in Fubini–Study distance. The test points are the "
            f"training points each kicked by {quintic['test_kick']:g} (mean FS distance "
            f"{quintic['mean_test_distance']:.4f}), as in the paper: well inside the kernel's "
            "width, and out of the local kernel's reach (it moves training points only). "
            "Gain: σ at 0 over σ at t1.",
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
        spectral = quintic.get("spectral")
        if spectral:
            lines += [
                f"Spectral Kähler–Ricci flow (degree {spectral['k']}, {spectral['basis_size']} "
                f"invariant functions, {spectral['points']} training and "
                f"{spectral['test_points']} fresh test points):",
                "",
                "Velocity ratio: |dc/dt| at t1 over at 0, and its range over the last "
                f"{_LAST_SAVES} saves: a ratio that stops falling there has reached the "
                f"integrator's floor (rtol {spectral['rtol']:g}, atol {spectral['atol']:g}), "
                "not the flow's own decay.",
                "",
                f"| flow | test σ 0 → t1 | t1 | velocity ratio | over the last {_LAST_SAVES} saves |",
                "|---|---|---|---|---|",
            ]
            for r in spectral["runs"].values():
                label = "local" if r["width"] == 0 else f"smoothed, width {r['width']}"
                ratio = [v / r["velocity"][0] for v in r["velocity"][-_LAST_SAVES:]]
                lines.append(
                    f"| {label} | {r['sigma_test'][0]:.4f} → {r['sigma_test'][-1]:.5f} | "
                    f"{r['times'][-1]:g} | {ratio[-1]:.1e} | {min(ratio):.1e} to {max(ratio):.1e} |"
                )
            lines.append("")
    for name, reason in report.get("skipped", {}).items():
        lines += [f"Skipped {name}: {reason}.", ""]
    lines += ["## Figures", ""] + [f"![{f}]({f})" for f in report["figures"]] + [""]
    return "\n".join(lines)
