r"""Evolving, frozen and infinite-width metric-NTK flows of one loss, against the network's width.

A cosine network metric (docs/conventions.md, The cosine network and its kernels;
one network per metric component, amplitudes and phases trained) starts at a
random metric $B$ (seeded by --seed, as are the networks) on $T^2$ or $S^2$ (the
flat torus and the round sphere are too symmetric to show much) and descends
Perelman's loss $L_P = -2\mathcal F$ three ways, from the same $g_{\theta_0} = B$
(`solvers.solve_network`):

- evolving: every trained parameter follows $\dot\theta = -\nabla_\theta L_h$;
- frozen: the network linearised at $\theta_0$ (its NTK at initialisation);
- infinite width: the componentwise flow with the analytic limit, the
  normalised Gaussian $k_\sigma$.

At each width the program records, over time, the $L^2(\mu)$ distance
$\big(\sum_a w_a |G_a - G'_a|_F^2\big)^{1/2}$ between the evolving and frozen
nodal metrics and between the frozen and infinite-width ones, and the
evolving kernel's drift $\|\Theta_t - \Theta_0\|_F/\|\Theta_0\|_F$ on the
nodes, each averaged over --seeds networks; then fits log-log slopes of the
values at t1 against width. Expected: frozen − infinite falls like
width$^{-1/2}$ (random-feature fluctuations of the NTK); the drift and the
evolving − frozen distance fall at least that fast (the NTK's rate of change
is $O(1/\text{width})$ for wide networks, Dyer & Gur-Ari 2019, so slopes near
$-1$ are expected at large widths). Each slope is compared with its expectation
by its 95% interval (three widths or more). Measured with the defaults on $T^2$
(two networks per width): frozen − infinite $-0.42 \pm 0.02$ (interval
$[-0.53, -0.32]$, consistent with $-1/2$); drift $-0.73 \pm 0.07$ and evolving −
frozen $-0.74 \pm 0.07$, whose intervals hold both $-1$ and $-1/2$: four widths up
to 1024 cannot tell the two rates apart.

Outputs in --out: ntk_regimes.json (`widths`, per width the time series and
final values, and `slopes` with standard errors, intervals, expectations and
verdicts) and ntk_regimes.png. The largest width's kernel drift needs
$2pNW(D + 2)$ float64 (`memory_needed`); a width that needs more memory than is
available is refused before anything runs.

The default σ is 0.5 on the torus and 1.0 on the sphere: Perelman's
fixed-measure loss is unstable (docs/conventions.md, Well-posedness), and on the
sphere at σ = 0.5 a width-16 network's kernel smooths too little to reach t = 0.1
(its metric degenerates at t ≈ 0.08); a run that stops early says so.

Usage: python experiments/ntk_regimes.py --manifold torus --widths 16,64,256,1024 --sigma 0.5 --t1 0.1 [--seed S] --out DIR
"""

import argparse
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
from _common import directory, integer, positive, progress, save_figure, seed, write_json
from _fits import fit_order, log_fit
from matplotlib.figure import Figure

import flows
import solvers

jax.config.update("jax_enable_x64", True)

REGIMES = ("evolving", "frozen", "infinite")
SERIES = ("evolving_frozen", "frozen_infinite", "kernel_drift")


def make_manifold(name: str, resolution: int | None) -> flows.AbstractManifold:
    if name == "torus":
        return flows.Torus(2, resolution or 12)
    return flows.Sphere(2, resolution or 8)


def distance(m: flows.AbstractManifold, a, b) -> np.ndarray:
    r"""$(\sum_a w_a |G_a - G'_a|_F^2)^{1/2}$ at each saved time."""
    return np.sqrt(
        np.asarray(jax.vmap(lambda x, y: m.integrate(jnp.sum((x - y) ** 2, (1, 2))))(a, b))
    )


def memory_needed(m: flows.AbstractManifold, width: int) -> int:
    r"""Bytes of the kernel drift's parameter gradients at `width`: the run's largest arrays.

    Each of the $p$ components' NTK on the $N$ nodes holds two gradients of its
    $W(D + 2)$ parameters per node (frequencies in $\mathbb{R}^D$, a phase and an
    amplitude per feature): $2pNW(D + 2)$ float64 (measured on $T^2$, $12^2$ nodes:
    23 kB per unit of width against 28 kB estimated).
    """
    p = m.ambient_dim * (m.ambient_dim + 1) // 2
    return 2 * p * m.nodes.shape[0] * width * (m.ambient_dim + 2) * 8


def run_width(
    m, width: int, sigma: float, t1: float, seeds: int, saves: int, seed: int = 0
) -> dict:
    """Mean distances and drift over `seeds` networks; every random choice comes from `seed`.

    The random metric $B$ uses `jax.random.key(seed)`; network `i` (features and
    initial amplitudes) `jax.random.fold_in(jax.random.key(seed), 1000 + i)`.
    """
    loss = flows.PerelmanLoss()
    key = jax.random.key(seed)
    base = flows.random_metric(m, key, band_limit=1, amplitude=0.2)
    runs = []
    for i in range(seeds):
        metric = flows.cosine_network_metric(
            m, width, sigma, jax.random.fold_in(key, 1000 + i), base=base
        )
        sols = {}
        for k in REGIMES:  # a line per solve: the first width alone can take minutes
            sols[k] = sol = solvers.solve_network(metric, loss, 0.0, t1, kernel=k, saveat=saves)
            progress(f"width {width}, network {i + 1} of {seeds}: {k} flow, {sol.stop_reason}")
        for k, sol in sols.items():
            if sol.stop_reason != "reached t1":
                raise ValueError(
                    f"width {width}, network {i}, {k} flow stopped at t = {sol.t_final:.4g}: "
                    f"{sol.stop_reason}. Perelman's fixed-measure loss is unstable "
                    "(docs/conventions.md, Well-posedness) "
                    "and a narrow network's kernel smooths little: raise --sigma or lower --t1."
                )
        runs.append(
            {
                "evolving_frozen": distance(m, sols["evolving"].values, sols["frozen"].values),
                "frozen_infinite": distance(m, sols["frozen"].values, sols["infinite"].values),
                "kernel_drift": np.asarray(sols["evolving"].kernel_drift),
                "loss": {k: np.asarray(s.loss) for k, s in sols.items()},
                "times": np.asarray(sols["evolving"].ts),
            }
        )
    entry = {"times": runs[0]["times"].tolist()}
    for key in SERIES:
        mean = np.mean([r[key] for r in runs], axis=0)
        entry[key] = mean.tolist()
        entry[f"final_{key}"] = float(mean[-1])
    entry["loss"] = {k: np.mean([r["loss"][k] for r in runs], axis=0).tolist() for k in REGIMES}
    return entry


# the slopes against width the docstring's theory expects at large width
EXPECTED = {"evolving_frozen": -1.0, "frozen_infinite": -0.5, "kernel_drift": -1.0}


def fit_slopes(widths, record) -> dict:
    """Each series' log-log slope at t1 against width, beside its expected value.

    With three widths or more: the 95% interval (Student-t, `_fits.fit_order`) and a
    verdict, `consistent` when the expected slope lies in it, else `shallower` or
    `steeper`; `-1/2 also in the interval` marks a drift or distance whose interval
    cannot tell the O(1/width) rate from the random-feature one. Two widths give a
    slope without an interval (verdict `no interval: two widths`).
    """
    out = {}
    for key in SERIES:
        y = [record[str(w)][f"final_{key}"] for w in widths]
        fit = log_fit(widths, y)
        entry = {"slope": fit.slope, "stderr": fit.stderr, "expected": EXPECTED[key]}
        if len(widths) < 3:
            entry.update(interval=None, verdict="no interval: two widths")
        else:
            order = fit_order(np.log(widths), np.log(y), sign=1.0, expected=EXPECTED[key], model="")
            low, high = order["interval"]
            verdict = (
                "consistent"
                if order["expected_in_interval"]
                else ("shallower" if low > EXPECTED[key] else "steeper")
            )
            if EXPECTED[key] != -0.5 and low <= -0.5 <= high:
                verdict += "; -1/2 also in the interval"
            entry.update(interval=[low, high], verdict=verdict)
        out[key] = entry
    return out


def plot(widths, record, slopes, path: Path, title: str) -> None:
    fig = Figure(figsize=(13, 5))
    labels = {
        "evolving_frozen": "‖g_evolving − g_frozen‖ (L²(μ))",
        "frozen_infinite": "‖g_frozen − g_∞‖ (L²(μ))",
        "kernel_drift": "‖Θ_t − Θ_0‖_F / ‖Θ_0‖_F",
    }
    for j, key in enumerate(("evolving_frozen", "frozen_infinite")):
        ax = fig.add_subplot(1, 3, j + 1)
        for w in widths:
            entry = record[str(w)]
            ax.semilogy(entry["times"][1:], entry[key][1:], "-o", ms=3, label=f"width {w}")
        ax.set_xlabel("t")
        ax.set_ylabel(labels[key])
        ax.set_title(title)
        ax.legend(fontsize=7)
    ax = fig.add_subplot(1, 3, 3)
    w = np.asarray(widths, dtype=float)
    for key, marker in zip(SERIES, "os^", strict=True):
        y = np.array([record[str(v)][f"final_{key}"] for v in widths])
        s = slopes[key]
        error = "(two widths)" if s["interval"] is None else f"± {s['stderr']:.2f}"
        line = ax.loglog(w, y, marker, label=f"{labels[key]}: slope {s['slope']:.2f} {error}")
        ax.loglog(w, y[0] * (w / w[0]) ** s["slope"], "-", lw=0.8, color=line[0].get_color())
    ax.loglog(w, y[0] * (w / w[0]) ** -0.5, "k--", lw=0.8, label="width^(-1/2)")
    ax.set_xlabel("width N")
    ax.set_ylabel("value at t1")
    ax.legend(fontsize=6, loc="upper center", bbox_to_anchor=(0.5, -0.16))  # off the data
    fig.tight_layout()
    save_figure(fig, path)


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--manifold", choices=("torus", "sphere"), default="torus")
    parser.add_argument(
        "--widths",
        default="16,64,256,1024",
        help="comma-separated, at least two distinct, each >= 1",
    )
    parser.add_argument(
        "--sigma",
        type=positive,
        default=None,
        help="the cosine network's width > 0 (default 0.5 on the torus, 1.0 on the sphere)",
    )
    parser.add_argument("--t1", type=positive, default=0.1, help="final time (> 0)")
    parser.add_argument(
        "--seeds", type=integer(1), default=2, help="networks averaged per width (>= 1)"
    )
    parser.add_argument(
        "--saves", type=integer(2), default=6, help="save times, t = 0 included (>= 2)"
    )
    parser.add_argument(
        "--resolution",
        type=integer(2),
        default=None,
        help="torus n (>= 3; default 12) or sphere degree (>= 2; default 8)",
    )
    parser.add_argument(
        "--seed", type=seed, default=0, help="seed of the random metric and the networks (>= 0)"
    )
    parser.add_argument("--out", type=directory, required=True)
    args = parser.parse_args(argv)
    try:
        args.widths = sorted({int(w) for w in args.widths.split(",")})
    except ValueError:
        parser.error(f"--widths must be comma-separated integers, got {args.widths!r}")
    if len(args.widths) < 2 or args.widths[0] < 1:
        parser.error("--widths needs at least two distinct widths, each >= 1")
    if args.sigma is not None and args.sigma > 1e150:  # sigma^2 overflows in the features
        parser.error(f"--sigma {args.sigma:g} is too large: sigma^2 overflows a float")
    if args.manifold == "torus" and args.resolution is not None and args.resolution < 3:
        parser.error(f"--resolution: a torus needs n >= 3, got {args.resolution}")
    if args.sigma is None:
        args.sigma = 0.5 if args.manifold == "torus" else 1.0
    return args


def main(argv=None) -> dict:
    args = parse_args(argv)
    args.out = solvers.output_directory(args.out)
    m = make_manifold(args.manifold, args.resolution)
    flows.check_memory(
        memory_needed(m, args.widths[-1]),
        f"the kernel drift at width {args.widths[-1]} on {m!r}",
        "Lower the largest of --widths.",
    )
    progress(
        f"{m!r}, σ = {args.sigma}, t1 = {args.t1}: widths {args.widths}, {args.seeds} network(s) "
        f"each, three flows per network ({', '.join(REGIMES)})"
    )
    record = {}
    for width in args.widths:
        record[str(width)] = run_width(
            m, width, args.sigma, args.t1, args.seeds, args.saves, args.seed
        )
        e = record[str(width)]
        progress(
            f"width {width}: at t1 evolving-frozen {e['final_evolving_frozen']:.2e}, "
            f"frozen-infinite {e['final_frozen_infinite']:.2e}, kernel drift {e['final_kernel_drift']:.2e}"
        )
    slopes = fit_slopes(args.widths, record)
    for key, s in slopes.items():
        interval = "" if s["interval"] is None else "95%: [{:.2f}, {:.2f}]; ".format(*s["interval"])
        progress(
            f"slope of {key} against width: {s['slope']:.3f} ± {s['stderr']:.3f} "
            f"({interval}expected {s['expected']:g}: {s['verdict']})"
        )
    result = {
        "manifold": repr(m),
        "loss": "perelman",
        "sigma": args.sigma,
        "t1": args.t1,
        "seeds": args.seeds,
        "seed": args.seed,
        "widths": args.widths,
        "per_width": record,
        "slopes": slopes,
    }
    write_json(args.out / "ntk_regimes.json", result)
    plot(args.widths, record, slopes, args.out / "ntk_regimes.png", f"{repr(m)}, σ = {args.sigma}")
    return result


if __name__ == "__main__":
    sys.exit(solvers.run_program(main, "ntk_regimes"))
