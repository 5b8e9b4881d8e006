r"""The demo's figures: one PNG per group of sections, drawn from the report's records.

`plot_modes` (mode_decay.png), `plot_curvature_loss` (curvature_loss.png),
`plot_extinction` (extinction.png) and `plot_quintic` (quintic_sigma.png) each
take the JSON-ready records of `_sections` and write one figure atomically, its
analytic predictions drawn from `flows` beside the measured points.
"""

from pathlib import Path

import numpy as np
from matplotlib.figure import Figure  # the object API: no pyplot state

import flows

from ._report import _save_figure


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
        for j, k in enumerate(torus["ks"]):
            t = np.asarray(r["mode_times"][str(k)])
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
            flows.smoothed_mode_decay_rate(kk, r["sigma"]),
            "-",
            color=colour,
            lw=1,
            label=rf"{r['label']}: $k^2 e^{{-\sigma^2k^2/2}}$",
        )
        # only the resolved rates: an unresolved fit measured noise, not a rate
        shown = [
            (k, m)
            for k, m, ok in zip(torus["ks"], r["measured_rates"], r["resolved"], strict=True)
            if ok
        ]
        if shown:
            bx.plot(*zip(*shown, strict=True), "o", color=colour, mfc="none")
    bx.set_xlabel("wavenumber k")
    bx.set_ylabel(r"decay rate $\gamma_k$")
    bx.set_title(
        "Decay rate against k: circles measured, lines analytic"
        + ("\n(unresolved rates not drawn: summary.md)" if torus.get("unresolved") else "")
    )
    bx.legend(fontsize=7)
    _save_figure(fig, path)


def _overlaps(curves: dict[str, np.ndarray], relative: float = 0.02) -> str:
    """A note naming the pairs of curves that lie on each other (within `relative` of the plotted
    range, or of their values on a log axis), so that a reader knows why one seems missing."""
    names = list(curves)
    if len(names) < 2:  # nothing to overlap (the quick demo runs one network regime)
        return ""
    span = np.ptp(np.concatenate([np.ravel(c) for c in curves.values()])) or 1.0
    pairs = []
    for i, a in enumerate(names):
        for b in names[i + 1 :]:
            x, y = np.asarray(curves[a]), np.asarray(curves[b])
            gap = np.max(np.abs(x - y))
            if gap <= relative * span or np.all(np.abs(x - y) <= relative * np.abs(x)):
                pairs.append(f"{a} and {b} (within {gap:.1e})")
    return "overlapping: " + "; ".join(pairs) if pairs else ""


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
            # both over the measured value at t = 0: the linearisation's own offset shows
            ax.semilogy(
                t, measured / measured[0], "o", ms=3, color=colour, label=f"{r['label']} measured"
            )
            ax.semilogy(
                t,
                linear / measured[0],
                "--",
                lw=0.9,
                color=colour,
                label=f"{r['label']} linearised ({linear[0] / measured[0] - 1:+.0%} at t = 0)",
            )
            bx.plot(t, r["lambda"], "o-", ms=3, color=colour, label=r["label"])
        ax.set_xlabel("flow time t")
        ax.set_ylabel(r"$\int R^2\, dV_g$ / its measured value at t = 0")
        ax.set_title(
            r"T², $g = e^{2u}\delta$, $u = 0.2(\cos x\cos y + \frac{1}{2}\sin(2x+y))$"
            "\n"
            r"dashed: linearised, each mode of $R_0$ decaying at $|k|^2e^{-\sigma^2|k|^2/2}$",
            fontsize=9,
        )
        ax.legend(fontsize=6, ncol=2)
        bx.set_xlabel("flow time t")
        # Perelman's monotonicity is the local form's; a smoothed form is no gradient flow of λ
        bx.set_ylabel(r"$\lambda(g)$ (loss $-2\lambda$; non-decreasing for the local form)")
        note = _overlaps({r["label"]: np.asarray(r["lambda"]) for r in runs})
        bx.set_title(
            "Perelman's λ along the λ-form flows" + (f"\n{note}" if note else ""), fontsize=9
        )
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
        title = (
            f"Cosine network on T²: {network['width']} features per component\n"
            f"(its NTK tends to the Gaussian of width {network['network_sigma']})"
        )
        runs = network["runs"]
        if "evolving" in runs and "frozen" in runs:
            gap = np.max(np.abs(np.asarray(runs["evolving"]["loss"]) - runs["frozen"]["loss"]))
            title += f"; evolving and frozen overlap (lazy regime:\nlosses within {gap:.1e})"
        cx.set_title(title, fontsize=9)
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
        dx.set_yscale("log")
        dx.set_xlabel("flow time t")
        note = _overlaps(
            {name.replace("_", "–"): np.asarray(d)[1:] for name, d in network["distances"].items()},
            relative=0.05,
        )
        if network["distances"]:
            dx.set_ylabel("distance between the regimes' metrics, L²(μ)")
            dx.set_title(
                "Evolving vs frozen vs infinite-width NTK"
                + (f"\n{note} (evolving ≈ frozen)" if note else ""),
                fontsize=9,
            )
        else:  # one regime: nothing to compare it with
            dx.tick_params(axis="y", which="both", left=False, labelleft=False)
            dx.set_title(
                "Evolving NTK's drift (the regimes' distances need two of\n"
                "--flows evolving,frozen,infinite)",
                fontsize=9,
            )
        handles, labels = dx.get_legend_handles_labels()
        if "kernel_drift" in network["runs"].get("evolving", {}):
            # the drift is a relative change of the kernel, not a distance: its own axis
            ex = dx.twinx()
            r = network["runs"]["evolving"]
            ex.plot(
                np.asarray(r["times"])[1:],
                np.asarray(r["kernel_drift"])[1:],
                "^-",
                color="0.4",
                ms=3,
                label="kernel drift ‖Θ_t − Θ_0‖/‖Θ_0‖ (right axis)",
            )
            ex.set_yscale("log")
            ex.set_ylabel("evolving NTK's relative drift", color="0.4")
            more_handles, more_labels = ex.get_legend_handles_labels()
            handles, labels = handles + more_handles, labels + more_labels
        dx.legend(handles, labels, fontsize=6)
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
            [flows.sphere_extinction_time(float(s), dim) for s in fine],
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
    spectral = quintic.get("spectral", {}).get("runs")
    fig = Figure(figsize=(12 if spectral else 6.5, 4.2), layout="constrained")
    if spectral:
        ax, ax_spectral = fig.subplots(1, 2)
        _plot_spectral_quintic(ax_spectral, quintic)
    else:
        ax = fig.subplots()
    for (name, r), colour in zip(quintic["runs"].items(), ("C0", "C1"), strict=False):
        steps = np.asarray(r["times"]) / quintic["learning_rate"]
        label = "local" if name == "local" else f"Gaussian, width {quintic['gaussian_sigma']} (FS)"
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


def _plot_spectral_quintic(ax, quintic: dict) -> None:
    spectral = quintic["spectral"]
    for r, colour in zip(spectral["runs"].values(), ("C0", "C1"), strict=False):
        label = "local" if r["width"] == 0 else f"smoothed, width {r['width']} (FS)"
        ax.semilogy(r["times"], r["sigma_test"], "o-", ms=3, color=colour, label=label)
    ax.axhline(quintic["sigma_fs_reference"], color="0.5", ls=":", label="σ(g_FS)")
    ax.set_xlabel("flow time t")
    ax.set_ylabel(f"test σ ({spectral['test_points']} fresh points)")
    ax.set_title(
        f"spectral Kähler–Ricci flow: degree {spectral['k']}, "
        f"{spectral['basis_size']} invariant functions"
    )
    ax.legend(fontsize=7)
