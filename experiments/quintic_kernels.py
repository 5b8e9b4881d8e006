r"""The paper's kernel experiments on the Fermat quintic (Halverson and Ruehle, §3; its Figure 3 and Table 1).

Metric values $h_a$ at training points of the Fermat quintic, all in one chart
(`flows.chart_sample`, as the paper's rejection sampling), start at the
Fubini–Study metric and flow under the σ loss $L_1 = \sum w|1 - \eta/\bar\eta|/\sum w$
by gradient descent (`solvers.solve_points`: explicit Euler with constant step,
the learning rate) through four kernels:

- `local`: $K = \delta$; training points move, test points do not;
- `gaussian`: $e^{-d_\mathrm{FS}^2/2\sigma^2}$ (the paper's eq. 3.5), normalised
  (`--unnormalised` to drop that);
- `delta`: local on training points; a test point takes the update of its
  nearest training point;
- `relu_ntk`: the infinite-width NTK of a one-hidden-layer ReLU network of the
  ambient coordinates $(\mathrm{Re}\,z, \mathrm{Im}\,z)$ (the paper's Table 1
  weight and bias standard deviations 80.52 and 5.716 by default).

Test points: for each `--noise` scale, the training points kicked by complex
Gaussian noise and projected back onto $X$ (`flows.perturb_points`; the paper
leaves them off $X$), kept where their own chart (`flows.patch_geometry`) is the
training chart, as for fresh points (a larger kick carries a point out of the
chart's region, where its coordinates are not those a fresh point there would
have; the JSON's `noised_kept_fraction`), plus an independent fresh sample in
the same chart (`test`). Each noised set is named by its scale, `noise {scale:g}`: a
repeated scale, or two that print alike to 6 significant digits, is refused (one name
would stand for two sets). The gain factor of a set is σ(start)/σ(end); `train_gain` and
`test_gain` (the fresh sample) are reported per kernel, and the gain on every
noised set against its mean FS distance to the training set is the left panel
of the paper's Figure 3. The right panel: the mean nearest-neighbour FS
distance of $N$ sampled points against $N$, with a log-log fit
(`distance_exponent`; a real 6-manifold suggests $-1/6$). Beside the full
Gaussian kernel, the paper's clustered version (`--clusters` clusters per
mini-batch of `--batch-size` points) is run and compared: the JSON's
`clustered_comparison` gives $\|h_\mathrm{clustered}(t_1) - h(t_1)\| / \|h(t_1) - h(0)\|$
(Frobenius norms over all points) on the training points and on the test points,
the difference the clustering makes relative to the update.

A flow that stops before its last step (a metric value that left positive
definiteness: too large a learning rate) is refused, naming the kernel: its
end is not the flow's, and σ there means nothing.

Output in --out: quintic_kernels.json (`train_gain`, `test_gain`,
`distance_exponent` and everything else), quintic_kernels.png (Figure 3),
quintic_kernels_sigma.png (σ against t), and the table on stdout.

Usage: python experiments/quintic_kernels.py --out DIR [--points N] [--steps S] ...
"""

import argparse
import math
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np
from _common import (
    directory,
    integer,
    non_negative,
    positive,
    positive_int,
    progress,
    save_figure,
    seed,
    write_json,
)
from _fits import log_fit
from _quintic import (
    chart_points,
    concatenate,
    in_own_chart,
    kernel_width,
    mean_nearest_distances,
    noise_clash,
    noise_label,
)
from matplotlib.figure import Figure
from matplotlib.ticker import NullFormatter

import flows
import solvers

jax.config.update("jax_enable_x64", True)

KERNELS = ("local", "gaussian", "delta", "relu_ntk")
_STYLE = {"local": "o-", "gaussian": "D-", "delta": "^--", "relu_ntk": "v-"}


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add = parser.add_argument
    add("--points", type=integer(2), default=1000, help="training points (in one chart, >= 2)")
    add("--test-points", type=integer(2), default=1000, help="fresh test points (same chart, >= 2)")
    add(
        "--noise",
        type=positive,
        nargs="*",
        default=[0.003, 0.01, 0.03, 0.1, 0.3],
        help="noise scales of the noised test sets (distinct to 6 significant digits)",
    )
    add("--steps", type=positive_int, default=500, help="gradient-descent steps")
    add(
        "--lr",
        type=positive,
        default=1e-4,
        help="learning rate (Euler step) of local/gaussian/delta",
    )
    add("--relu-lr", type=positive, default=3e-7, help="learning rate of relu_ntk")
    add(
        "--sigma",
        type=kernel_width,
        default=0.05,
        help="Gaussian width in FS distance (radians; >= 1.1e-154, as flows.FSGaussian)",
    )
    add("--unnormalised", action="store_true", help="do not normalise the Gaussian kernel")
    add("--relu-depth", type=integer(0), default=1, help="hidden Dense-ReLU pairs (>= 0)")
    add("--relu-weight-std", type=positive, default=80.52)
    add("--relu-bias-std", type=non_negative, default=5.716)
    add("--clusters", type=integer(0), default=10, help="clusters per mini-batch (0: skip)")
    add(
        "--batch-size",
        type=positive_int,
        default=None,
        help="mini-batch size of the clustering (default 500)",
    )
    add(
        "--scaling-points",
        type=integer(2),
        nargs="*",
        default=[250, 500, 1000, 2000, 4000, 8000],
        help="sample sizes of the nearest-neighbour distance fit (>= 2 each, at least 3)",
    )
    add("--seed", type=seed, default=0, help="seed of the points and the clustering (>= 0)")
    add("--out", type=directory, required=True)
    args = parser.parse_args(argv)
    if len(set(args.scaling_points)) < 3:
        parser.error("--scaling-points needs at least 3 distinct sizes, each >= 2")
    clash = noise_clash(args.noise)
    if clash:
        parser.error(clash)
    if not args.clusters and args.batch_size is not None:
        parser.error("--batch-size is the clustering's: it has no effect with --clusters 0")
    args.batch_size = 500 if args.batch_size is None else args.batch_size
    if args.clusters and args.batch_size < args.clusters:
        parser.error("--batch-size must be >= --clusters")
    return args


def grouped_test_sample(parts):
    """The test sample of `parts`, a list of (name, sample), and each name's (sample, rows).

    The samples are concatenated in list order and each one's rows counted by its
    position in the list, so a group's rows are its own points whatever the names;
    a repeated name is refused (its group would hide another's).
    """
    names = [name for name, _ in parts]
    if len(set(names)) != len(names):
        raise ValueError(f"grouped_test_sample: repeated test-set names in {names}")
    index, offset = {}, 0
    for name, sample in parts:
        index[name] = (sample, np.arange(offset, offset + sample.count))
        offset += sample.count
    return concatenate([sample for _, sample in parts]), index


def make_kernel(name, args):
    if name == "local":
        return flows.LocalPointKernel()
    if name == "delta":
        return flows.NearestPointKernel()
    if name == "gaussian":
        return flows.gaussian_point_kernel(args.sigma, normalise=not args.unnormalised)
    if name == "relu_ntk":
        return flows.relu_point_kernel(args.relu_depth, args.relu_weight_std, args.relu_bias_std)
    raise ValueError(name)


def run_kernel(label, kernel, lr, args, train, test, groups):
    """One flow; σ of the training set and of every test group at each save."""
    start = time.perf_counter()
    flow = flows.PointKernelFlow(kernel, flows.MongeAmpereLoss(1.0), train, test)
    sol = solvers.solve_points(
        flow,
        train.g_fs,
        test.g_fs,
        0.0,
        args.steps * lr,
        dt0=lr,
        saveat=11,
        max_steps=args.steps + 1,
    )
    if sol.stop_reason != solvers.StopReason.REACHED_T1:  # a stopped flow has no gain to report
        name = "--relu-lr" if label == "relu_ntk" else "--lr"
        raise ValueError(
            f"{label}: the flow stopped after {sol.steps} of {args.steps} steps "
            f"({sol.stop_reason}); lower {name}"
        )
    sigma_groups = {
        g: [float(flows.sigma_measure(sample, h[idx])[0]) for h in sol.test]
        for g, (sample, idx) in groups.items()
    }
    sigma_train = [float(s) for s in sol.sigma_train]
    ends = [sigma_train[-1]] + [s[-1] for s in sigma_groups.values()]
    if not all(math.isfinite(s) and s > 0 for s in ends):
        raise ValueError(f"{label}: σ at the end is {ends} (no gain to report)")
    record = {
        "learning_rate": lr,
        "t1": args.steps * lr,
        "stop_reason": sol.stop_reason,
        "ts": [float(t) for t in sol.ts],
        "sigma_train": sigma_train,
        "sigma_test": sigma_groups,
        "train_gain": sigma_train[0] / sigma_train[-1],
        "gains": {g: s[0] / s[-1] for g, s in sigma_groups.items()},
        "seconds": time.perf_counter() - start,
    }
    progress(
        f"{label}: train sigma {sigma_train[0]:.4f} -> {sigma_train[-1]:.5f} "
        f"(gain {record['train_gain']:.1f}), fresh test gain {record['gains']['test']:.2f} "
        f"[{sol.stop_reason}, {record['seconds']:.0f} s]"
    )
    return record, sol


def fit_power_law(x, y):
    r"""Least squares $\log y = a + b\log x$ (`_fits.log_fit`): $(b, e^a, \mathrm{se}(b))$."""
    fit = log_fit(x, y)
    return fit.slope, math.exp(fit.intercept), fit.stderr


def distance_scaling(surface, sizes, seed):
    """Mean nearest-neighbour FS distance of `N` sampled points, for each N (the paper's Fig. 3 right)."""
    mean = mean_nearest_distances(surface, sizes, seed)
    exponent, prefactor, se = fit_power_law(sizes, mean)
    return {
        "sizes": list(sizes),
        "mean_distance": mean,
        "distance_exponent": exponent,
        "distance_exponent_stderr": se,
        "distance_prefactor": prefactor,
    }


def figures(record, args):
    fig = Figure(figsize=(11, 4.2), layout="constrained")
    ax, bx = fig.subplots(1, 2)
    dist = record["test_distance"]
    noise_groups = [noise_label(s) for s in args.noise]
    train_x = 0.3 * min(dist.values())
    for i, name in enumerate(KERNELS):
        gains = record["kernels"][name]["gains"]
        x = [dist[g] for g in noise_groups]
        y = [gains[g] for g in noise_groups]
        (line,) = ax.plot(x, y, _STYLE[name], mfc="none", label=name)
        ax.plot([dist["test"]], [gains["test"]], "*", ms=12, color=line.get_color())
        # side by side: local and delta (and a narrow gaussian) move the training points alike
        train_gain = record["kernels"][name]["train_gain"]
        ax.plot([train_x * 1.15**i], [train_gain], "s", color=line.get_color())
    ax.axhline(1.0, color="0.7", lw=0.8)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("mean FS distance to the training set (squares: the training points)")
    ax.set_ylabel(r"gain factor $\sigma(0)/\sigma(t_1)$")
    ax.set_title(f"Gain against distance ({args.points} training points; star: fresh test set)")
    ax.legend()
    sc = record["scaling"]
    n = np.asarray(sc["sizes"], float)
    bx.loglog(n, sc["mean_distance"], "o", label="mean nearest-neighbour distance")
    bx.loglog(
        n,
        sc["distance_prefactor"] * n ** sc["distance_exponent"],
        "-",
        label=f"fit: exponent {sc['distance_exponent']:.3f} ± {sc['distance_exponent_stderr']:.3f}",
    )
    bx.loglog(
        n,
        sc["mean_distance"][0] * (n / n[0]) ** (-1 / 6),
        "--",
        label=r"$N^{-1/6}$ (real dimension 6)",
    )
    bx.xaxis.set_minor_formatter(NullFormatter())
    bx.set_xlabel("number of points N")
    bx.set_ylabel("mean FS distance to nearest neighbour (radians)")
    bx.set_title("Point density on the Fermat quintic")
    bx.legend()
    save_figure(fig, args.out / "quintic_kernels.png")

    fig = Figure(figsize=(7, 4.2), layout="constrained")
    ax = fig.subplots()
    markers = {"local": "o", "gaussian": "D", "delta": "^", "relu_ntk": "v"}
    for name, rec in record["kernels"].items():
        steps = np.asarray(rec["ts"]) / rec["learning_rate"]
        # markers: local and delta (and a narrow gaussian) coincide on the training points
        (line,) = ax.semilogy(
            steps, rec["sigma_train"], "-", marker=markers[name], mfc="none", label=f"{name}: train"
        )
        ax.semilogy(steps, rec["sigma_test"]["test"], "--", color=line.get_color(), label="test")
    ax.set_xlabel("gradient-descent step")
    ax.set_ylabel(r"$\sigma$")
    ax.set_title(
        r"$\sigma$ loss on training (solid) and fresh test points (dashed)"
        "\nlocal and delta move the training points alike (a narrow gaussian nearly so)",
        fontsize=9,
    )
    ax.legend(fontsize=7, ncol=2)
    save_figure(fig, args.out / "quintic_kernels_sigma.png")


def main(argv=None) -> dict:
    args = parse_args(argv)
    args.out = solvers.output_directory(args.out)
    surface = flows.Hypersurface.fermat_quintic()
    key = jax.random.key(args.seed)
    progress(f"Fermat quintic: {args.points} training points in one chart (seed {args.seed})")
    train = chart_points(surface, jax.random.fold_in(key, 0), args.points)
    chart = (int(train.patch[0]), int(train.eliminated[0]))
    fresh = chart_points(surface, jax.random.fold_in(key, 1), args.test_points, chart)
    parts, kept = [], {}
    for i, scale in enumerate(args.noise):
        near = flows.sample_near(surface, train, jax.random.fold_in(key, 10 + i), scale)
        near = in_own_chart(surface, near, chart, scale)
        kept[noise_label(scale)] = near.count / train.count
        parts.append((noise_label(scale), near))
    parts.append(("test", fresh))
    test, index = grouped_test_sample(parts)
    distance = {
        g: float(jnp.mean(flows.nearest_points(train.points, s.points)[1])) for g, s in parts
    }
    progress(
        "test sets (mean FS distance to the training set; kept fraction): "
        + ", ".join(
            f"{g}: {d:.4f}" + (f" ({kept[g]:.2f})" if g in kept else "")
            for g, d in distance.items()
        )
    )

    kernels, sols = {}, {}
    for name in KERNELS:
        lr = args.relu_lr if name == "relu_ntk" else args.lr
        kernels[name], sols[name] = run_kernel(
            name, make_kernel(name, args), lr, args, train, test, index
        )

    comparison = None
    if args.clusters:
        clustered = flows.ClusteredPointKernel(
            make_kernel("gaussian", args), args.clusters, batch_size=args.batch_size, seed=args.seed
        )
        rec, sol = run_kernel("gaussian (clustered)", clustered, args.lr, args, train, test, index)
        full = sols["gaussian"]
        update = float(jnp.linalg.norm(full.train[-1] - full.train[0]))
        comparison = {
            "clusters": args.clusters,
            "batch_size": args.batch_size,
            "clustered": rec,
            "train_relative_difference": float(jnp.linalg.norm(sol.train[-1] - full.train[-1]))
            / update,
            "test_relative_difference": float(jnp.linalg.norm(sol.test[-1] - full.test[-1]))
            / float(jnp.linalg.norm(full.test[-1] - full.test[0])),
        }
        progress(
            "clustered against full Gaussian kernel: final metric difference / update = "
            f"{comparison['train_relative_difference']:.2e} (train), "
            f"{comparison['test_relative_difference']:.2e} (test)"
        )

    scaling = distance_scaling(surface, args.scaling_points, args.seed)
    progress(
        f"distance exponent {scaling['distance_exponent']:.3f} "
        f"± {scaling['distance_exponent_stderr']:.3f} (-1/6 = -0.167 expected)"
    )
    table = [
        {
            "kernel": name,
            "points": args.points,
            "learning_rate": kernels[name]["learning_rate"],
            "steps": args.steps,
            "sigma": args.sigma if name == "gaussian" else None,
            "weight_std": args.relu_weight_std if name == "relu_ntk" else None,
            "bias_std": args.relu_bias_std if name == "relu_ntk" else None,
            "train_gain": kernels[name]["train_gain"],
            "test_gain": kernels[name]["gains"]["test"],
        }
        for name in KERNELS
    ]
    print("\n| kernel | points | learning rate | sigma | W std | b std | train gain | test gain |")
    print("|---|---|---|---|---|---|---|---|")
    for row in table:
        cells = [
            row["kernel"],
            row["points"],
            f"{row['learning_rate']:g}",
            *(
                ("-" if row[k] is None else f"{row[k]:g}")
                for k in ("sigma", "weight_std", "bias_std")
            ),
            f"{row['train_gain']:.1f}",
            f"{row['test_gain']:.2f}",
        ]
        print("| " + " | ".join(str(c) for c in cells) + " |")
    print()
    record = {
        "train_gain": {k: v["train_gain"] for k, v in kernels.items()},
        "test_gain": {k: v["gains"]["test"] for k, v in kernels.items()},
        "distance_exponent": scaling["distance_exponent"],
        "distance_exponent_stderr": scaling["distance_exponent_stderr"],
        "points": args.points,
        "test_points": fresh.count,
        "chart": list(chart),
        "noise": args.noise,
        "test_distance": distance,
        "noised_kept_fraction": kept,
        "kernels": kernels,
        "clustered_comparison": comparison,
        "scaling": scaling,
        "table": table,
        "seed": args.seed,
        "device": str(jax.devices()[0]),
    }
    figures(record, args)
    write_json(args.out / "quintic_kernels.json", record)
    return record


if __name__ == "__main__":
    sys.exit(solvers.run_program(main, "quintic_kernels"))
