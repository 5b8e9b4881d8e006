r"""Point-kernel flows on the Fermat quintic at 10³ to 3×10⁴ training points: the test gain measured against N, beside the paper's extrapolation.

Halverson and Ruehle (*Metric Flows with Neural Networks*, §3) flowed metric
values at a few thousand training points of the Fermat quintic through point
kernels and found large gains on the training points and small ones on fresh
test points. Their clustered kernels could not go further, so they
extrapolated: the test gain against the mean FS distance from test points to
the training set (measured by noising the training points), combined with the
mean nearest-neighbour distance law $d(N) = A N^b$, predicts the gain at any
$N$. This program measures the gain at each $N$ instead, and computes the
extrapolation beside it.

The flows are those of `quintic_kernels.py`: metric values $h_a$ at training
points in one chart start at Fubini–Study and follow the σ loss
$L_1 = \sum w|1 - \eta/\bar\eta|/\sum w$ (`flows.MongeAmpereLoss(1.0)`) by
explicit Euler with a constant step, the learning rate
(`flows.PointKernelFlow`, `solvers.solve_points`), through the unclustered kernels

- `gaussian`: $e^{-d_\mathrm{FS}^2/2\sigma^2}$ normalised at each point
  (`flows.gaussian_point_kernel(sigma, normalise=True)`);
- `gaussian_unnormalised`: the same without normalisation. Its velocity at a
  training point is the kernel mass $\sum_b k(z_a, z_b) w_b/N$ times the local
  one, and at $\sigma = 0.05$ that mass is about $1/N$ (the point itself), so
  at a fixed learning rate it would not move at all; its learning rate is the
  others' divided by the mean mass $\bar m$ at the training points (measured
  on each draw; `--unnormalised-lr` fixes it instead);
- `delta`: local on training points; a test point takes its nearest training
  point's update (`flows.NearestPointKernel`);
- `relu_ntk`: the infinite-width NTK of a one-hidden-layer ReLU network of the
  ambient coordinates (`flows.relu_point_kernel`, the paper's Table 1 standard
  deviations 80.52 and 5.716), its own learning rate;

and the paper's clustered Gaussian (`flows.ClusteredPointKernel`, normalised,
`--clusters` clusters per mini-batch of `--batch-size`) at the $N$ up to
`--clustered-max`. Above $N(N + P) = 2\times10^7$ kernel entries ($P$ test
points) `PairPointKernel` applies its kernel matrix-free
(`flows.point_kernel_apply`, chunked, never an $N \times N$ array; the JSON's
`matrix_free` records which path each $N$ took); below it builds the matrices once.

Measured: for each $N$ in `--points` and each of `--draws` independent draws
(fresh training and test points, keys derived from `--seed`, $N$ and the
draw), the gain $\sigma(\text{start})/\sigma(\text{end})$ of the training set
and of `--test-points` fresh test points in the same chart; mean and standard
error $s/\sqrt{n}$ over the draws. The extrapolation: at the smallest $N$,
every draw also flows the training points noised by each `--noise` scale
(`flows.sample_near`; kept where their own chart, `flows.patch_geometry`, is
the training chart, as for fresh points: a larger kick leaves the chart's region); the mean gain against the mean FS distance to the
training set is the gain-distance curve; $d(N) = A N^b$ is the least-squares
line through $(\log N, \log d)$ of `flows.mean_nearest_distance` at
`--scaling-points` sample sizes; the predicted gain at $N$ is the curve,
linear in $(\log d, \log \text{gain})$ between its points (its end values
held beyond them, flagged), at $d(N)$ (and, as a check of the distance law, at the
measured mean test-to-training distance). Time per step: one compiled
velocity evaluation per kernel on the first draw (`_timing.median_time`, a
warm-up then one timed call). Peak memory of a step: the peak resident memory
of a fresh process that samples the points and takes one normalised-Gaussian
Euler step (`_timing.peak_rss`, read from outside), at each `--memory-points`
size; at `--memory-target` (10⁵) it is measured if a size within 1% of it is
among them; else it is estimated linearly in N (the step is O(N) in memory)
through two matrix-free sizes, those on either side of the target or, outside
them, the two nearest it, and the JSON says so (`target_measured` false, the
nearest measured size and its peak beside the estimate); XLA's compiled memory
of the kernel application at the target (`_timing.xla_bytes`) is beside it. A
memory step that fails (its process killed for memory, say) ends the program
with one line, exit status 1, after the JSON is written with what was measured.

A flow on $N(N + P) \ge 10^8$ kernel pairs (about a minute and more per
pairwise kernel) runs in chunks of a quarter of its steps, the same Euler steps,
with a progress line after each chunk once it has run 10 s.

Output in --out: kernel_points.json (every draw of every run, means and
standard errors, the extrapolation's inputs and predictions, timings, memory,
the machine; written with `complete` false after each draw, with the runs so
far, and before the memory step, and with `complete` true at the end, so that
a late failure keeps the flows run), kernel_points.png (test gain against N
per kernel, measured with error bars, the prediction beside it, the clustered
kernel's points),
kernel_points_extrapolation.png (the gain-distance curves with each N's
measured gain at its measured distance; the distance law) and
kernel_points_cost.png (time and peak memory per step against N).

Cost, measured first (2-core x86_64 CPU, no GPU, shared with other jobs at
load average 2–9): a step is one velocity per kernel, $N(N + P)$ kernel
pairs for the pairwise ones; at $N = 10^4$, $P = 10^3$ it took 3.3 s
(Gaussian), 2.9 s (unnormalised), 5.1 s (ReLU NTK), 1.8 s (clustered) and
0.01 s (Delta) at load 7; at $3\times10^4$ ($9.3\times10^8$ pairs) 9.9, 9.6,
10.5 and 0.03 s at load 2 (about 95 M pairs/s). So the default takes 20 steps
of 2.5e-3 (the flow time of `quintic_kernels.py`'s 500 steps of 1e-4; at
$N = 10^3$ the Gaussian and Delta test gains agree within 0.012 with those
500 steps, the ReLU NTK's, 20 steps of 7.5e-6, is 1.49 against 1.78 after
500 of 3e-7). The default ladder was run in two parts: `--points 1000 3000
10000` (19 min at load 5–9) and `--points 1000 30000 --memory-points` (26 min
at load 2–4, 7 min a draw at $3\times10^4$); the same keys give the same
draws, so the default run is about 45 minutes on two cores.

Measured (test gain, mean ± standard error over 3 draws, at N = 10³, 3×10³,
10⁴, 3×10⁴): Gaussian 1.099 ± 0.011, 1.386 ± 0.015, 1.775 ± 0.013,
2.506 ± 0.069; Delta 1.042 ± 0.010, 1.276 ± 0.010, 1.504 ± 0.009,
1.928 ± 0.044; unnormalised Gaussian 1.002, 1.005, 1.015, 1.054; ReLU NTK
1.53, 1.57, 1.52, 1.60 (± 0.02–0.04); clustered Gaussian (to 10⁴) 1.077,
1.324, 1.597 (± 0.010–0.016), below the full kernel by up to 0.18. Train
gains about 8.9 (Gaussian, Delta), 7.7 (unnormalised), 1.6 (ReLU NTK) at
every N. The distance law $d = 1.026\,N^{-0.149 \pm 0.002}$ (the paper's
exponent) gives $d(N)$ = 0.37, 0.31, 0.26, 0.22; the first three lie beyond
the farthest noised set (0.260), where the prediction is the curve's end, so
the paper's prediction is 1.14, 1.14, 1.14, 1.29 (Gaussian), 1.09, 1.09, 1.09,
1.24 (Delta), 1.66, 1.66, 1.66, 1.63 (ReLU NTK). At 3×10⁴ its gain − 1 is
far below the measured one: 0.29 against 1.51 for the Gaussian, about 5 times
too small, and 0.24 against 0.93 for Delta, about 4 times. The mean distance
from fresh test points to the training set in the chart is smaller than
$d(N)$ (0.277, 0.223, 0.178, 0.144, falling as $N^{-0.19}$); at it the curve
(the program's check of the distance law, not the paper's prediction) predicts
1.14, 1.28, 1.54, 1.86 (Gaussian) and 1.09, 1.23, 1.49, 1.81 (Delta), closer:
at 3×10⁴ gain − 1 of 0.86 against 1.51 (0.57 of it, Gaussian) and 0.81
against 0.93 (0.87 of it, Delta). Peak memory of a normalised-Gaussian step
(fresh process, sampling included): 0.73 GB at $10^4$, 0.91 GB at $3\times10^4$, and at
$10^5$, measured (`--memory-points 100000`: a fresh process samples
$10^5$ training and $10^3$ test points and takes one matrix-free step,
$10^{10}$ kernel pairs): 1.32 GB peak, of which 1.09 GB before the step
(the sampling), in 84 s (compilation included, at load average 2–4). A step
at $10^5$ fits in 2 GB; the linear extrapolation from the two smaller sizes
had said 1.55 GB (XLA's compiled kernel application at $10^5$: 96 MB).

With `--small` (N = 300, 1000, 3000; 300 test points; 20 steps; 3 draws;
2 min 38 s at load average 2 on the two cores, 11 min at load 8–9): test
gains Gaussian 0.94, 1.04, 1.29 (± 0.02–0.06), Delta 0.91, 0.98, 1.19, ReLU
NTK 1.54, 1.57, 1.63, unnormalised 1.000–1.004; memory 0.62–0.75 GB (6000) and
0.69–0.81 GB (12000) across runs, extrapolated to 1.75 GB at $10^5$ (two close
sizes: the slope is mostly noise, 0.96 GB in another run).

A ladder whose largest N would need more memory than is available (about
10 kB a point, from the measured peaks) is refused before any work, with the
estimate; so are flags that would change nothing (`--batch-size` and
`--clustered-max` with `--clusters 0`), noise scales that would name one test
set twice (a repeated scale, or two equal to 6 significant digits: the sets
are named `noise {scale:g}`), and a `--sigma` that `flows.FSGaussian` refuses
(below 1.1e-154).

Usage: python experiments/kernel_points.py --out DIR [--small] [--points N ...] [--draws D] [--steps S] [--seed S]
"""

import argparse
import json
import math
import sys
import time
from pathlib import Path

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from _common import (
    directory,
    elapsed,
    integer,
    non_negative,
    positive,
    positive_int,
    progress,
    save_figure,
    seed,
    write_json,
)
from _fits import log_fit, mean_and_stderr
from _quintic import chart_points_batched as chart_points
from _quintic import (
    concatenate,
    in_own_chart,
    kernel_width,
    mean_nearest_distances,
    noise_clash,
    noise_label,
)
from _timing import ChildFailed, machine, median_time, peak_rss, xla_bytes
from jaxtyping import Array, Float
from matplotlib.figure import Figure

import flows
import solvers

jax.config.update("jax_enable_x64", True)

KERNELS = ("gaussian", "gaussian_unnormalised", "delta", "relu_ntk")
CLUSTERED = "gaussian_clustered"
_STYLE = {
    "gaussian": "D",
    "gaussian_unnormalised": "s",
    "delta": "^",
    "relu_ntk": "v",
    CLUSTERED: "o",
}
MEMORY_LIMIT = 2e9  # bytes: does one step fit in 2 GB?
# Peak resident memory of a step per training point, and the rest (JAX, XLA, the test
# points and the sampling batches), from the measured 0.73 GB at 10^4 and 0.91 GB at
# 3x10^4 points, rounded up: the estimate of the refusal before any work.
BYTES_PER_POINT = 10e3
BYTES_FIXED = 1e9
# A flow on at least this many kernel pairs N(N + P) (3.3 s a step at 1.1e8 pairs) runs in
# chunks of a quarter of its steps, with a progress line after each once it has run 10 s.
PROGRESS_PAIRS = 1e8
PROGRESS_CHUNKS = 4
PROGRESS_AFTER = 10.0  # seconds

# The settings of the default ladder and of --small; a flag given explicitly wins.
DEFAULTS = {
    "points": [1000, 3000, 10000, 30000],
    "test_points": 1000,
    "scaling_points": [250, 500, 1000, 2000, 4000, 8000],
    "clustered_max": 10000,
    "memory_points": [1000, 3000, 10000, 30000],
}
SMALL = {
    "points": [300, 1000, 3000],
    "test_points": 300,
    "scaling_points": [250, 500, 1000, 2000],
    "clustered_max": 3000,
    "memory_points": [6000, 12000],
}


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add = parser.add_argument
    add(
        "--points",
        type=integer(2),
        nargs="+",
        default=None,
        help="training-point counts N (default 1000 3000 10000 30000; --small: 300 1000 3000)",
    )
    add("--test-points", type=positive_int, default=None, help="fresh test points per draw")
    add("--draws", type=integer(2), default=3, help="independent draws per N (>= 2)")
    add("--steps", type=positive_int, default=20, help="gradient-descent (Euler) steps")
    add("--lr", type=positive, default=2.5e-3, help="learning rate of gaussian and delta")
    add("--relu-lr", type=positive, default=7.5e-6, help="learning rate of relu_ntk")
    add(
        "--unnormalised-lr",
        type=positive,
        default=None,
        help="fixed learning rate of gaussian_unnormalised (default: --lr / its mean mass)",
    )
    add(
        "--sigma",
        type=kernel_width,
        default=0.05,
        help="Gaussian width in FS distance (radians; >= 1.1e-154, as flows.FSGaussian)",
    )
    add("--relu-depth", type=integer(0), default=1, help="hidden Dense-ReLU pairs (>= 0)")
    add("--relu-weight-std", type=positive, default=80.52)
    add("--relu-bias-std", type=non_negative, default=5.716)
    add(
        "--noise",
        type=positive,
        nargs="+",
        default=[0.003, 0.01, 0.03, 0.1, 0.3, 0.6],
        help="noise scales of the gain-distance curve (distinct to 6 significant digits)",
    )
    add(
        "--scaling-points",
        type=integer(2),
        nargs="+",
        default=None,
        help="sample sizes of the nearest-neighbour distance law (at least 3)",
    )
    add("--clusters", type=integer(0), default=10, help="clusters per mini-batch (0: skip)")
    add(
        "--batch-size",
        type=positive_int,
        default=None,
        help="mini-batch size of the clustering (default 500)",
    )
    add("--clustered-max", type=integer(0), default=None, help="largest N of the clustered kernel")
    add(
        "--memory-points",
        type=integer(2),
        nargs="*",
        default=None,
        help="sizes of the peak-memory step (default: the default ladder; --small: 6000 12000; none: skip)",
    )
    add("--memory-target", type=positive_int, default=100_000, help="size of the 2 GB question")
    add("--small", action="store_true", help="N = 300, 1000, 3000: a few minutes")
    add("--seed", type=seed, default=0, help="seed of the points and the clustering (>= 0)")
    add("--out", type=directory, required=True)
    args = parser.parse_args(argv)
    if not args.clusters:  # before the defaults fill in: a flag given with no effect
        given = [
            flag
            for flag, value in (
                ("--batch-size", args.batch_size),
                ("--clustered-max", args.clustered_max),
            )
            if value is not None
        ]
        if given:
            verb = (
                "is the clustering's: it has"
                if len(given) == 1
                else "are the clustering's: they have"
            )
            parser.error(f"{' and '.join(given)} {verb} no effect with --clusters 0")
    args.batch_size = 500 if args.batch_size is None else args.batch_size
    chosen = SMALL if args.small else DEFAULTS
    for name, value in chosen.items():
        if getattr(args, name) is None:
            setattr(args, name, value)
    args.points = sorted(set(args.points))
    if len(set(args.scaling_points)) < 3:
        parser.error("--scaling-points needs at least 3 distinct sizes, each >= 2")
    if len(set(args.noise)) < 2:  # the gain-distance curve needs two distances
        parser.error("--noise needs at least 2 distinct scales (the gain-distance curve)")
    clash = noise_clash(args.noise)
    if clash:
        parser.error(clash)
    args.noise = sorted(args.noise)
    if args.clusters and args.batch_size < args.clusters:
        parser.error("--batch-size must be >= --clusters")
    return args


def check_memory(args) -> None:
    """Refuse, before any work, a ladder (or a memory step) whose largest N needs more memory than is available."""
    n = max(args.points + [args.test_points] + list(args.memory_points or []))
    flows.check_memory(
        BYTES_FIXED + BYTES_PER_POINT * n,
        f"a flow on {n} points (about {BYTES_PER_POINT / 1e3:g} kB a point, measured)",
        "Choose fewer --points (or --memory-points).",
    )


# Pure helpers.


def loglog_interpolate(
    x: Float[Array, " K"], y: Float[Array, " K"], x_new: Float[Array, " M"]
) -> tuple[np.ndarray, np.ndarray]:
    r"""The piecewise-linear curve through $(\log x_k, \log y_k)$ at `x_new`, and where it extrapolates.

    Between neighbouring points (sorted by $x$) $\log y$ is linear in $\log x$, so a
    power law $y = c x^p$ is reproduced exactly there. Below the smallest or above
    the largest $x$ the end value is held (`extrapolated` is True there): the
    curve's ends are measured on few points, and a slope extended from them is noise.
    Needs $K \ge 2$ distinct positive $x$ and positive $y$.
    """
    x, y = np.asarray(x, float), np.asarray(y, float)
    x_new = np.asarray(x_new, float)
    if x.shape != y.shape or x.ndim != 1 or x.size < 2:
        raise ValueError("loglog_interpolate: need two 1-D arrays of at least 2 points")
    if np.any(x <= 0) or np.any(y <= 0) or np.any(x_new <= 0):
        raise ValueError("loglog_interpolate: x, y and x_new must be positive")
    order = np.argsort(x)
    lx, ly = np.log(x[order]), np.log(y[order])
    if np.any(np.diff(lx) <= 0):
        raise ValueError("loglog_interpolate: the x values must be distinct")
    t = np.log(x_new)
    return np.exp(np.interp(t, lx, ly)), (t < lx[0]) | (t > lx[-1])


def power_law(sizes, values) -> dict:
    r"""$d = A N^b$ by least squares of $\log d = \log A + b\log N$ (`_fits.log_fit`)."""
    fit = log_fit(sizes, values)
    return {
        "exponent": fit.slope,
        "exponent_stderr": fit.stderr,
        "prefactor": math.exp(fit.intercept),
    }


# Points.


def kernel_mass(train: flows.PointSample, sigma: float) -> float:
    r"""$\bar m = \frac1N\sum_a \sum_b k_\sigma(z_a, z_b)\, w_b/N$: the unnormalised Gaussian's mean mass at the training points."""
    n = train.count
    values = (train.weights / n)[:, None]
    mass = flows.point_kernel_apply(flows.FSGaussian(sigma), train.points, train.points, values)
    return float(jnp.mean(mass))


# Flows.


def make_kernel(name: str, args, draw: int):
    """The point kernel `name` with the program's settings."""
    if name == "gaussian":
        return flows.gaussian_point_kernel(args.sigma, normalise=True)
    if name == "gaussian_unnormalised":
        return flows.gaussian_point_kernel(args.sigma, normalise=False)
    if name == "delta":
        return flows.NearestPointKernel()
    if name == "relu_ntk":
        return flows.relu_point_kernel(args.relu_depth, args.relu_weight_std, args.relu_bias_std)
    if name == CLUSTERED:
        return flows.ClusteredPointKernel(
            flows.gaussian_point_kernel(args.sigma, normalise=True),
            args.clusters,
            batch_size=args.batch_size,
            seed=args.seed + draw,
        )
    raise ValueError(f"unknown kernel {name!r}")


def step_seconds(flow: flows.PointKernelFlow, h: Array) -> float:
    """Seconds of one compiled velocity evaluation (one Euler step's work), after a warm-up."""
    velocity = eqx.filter_jit(lambda flow, h: flow.velocity(h))
    return median_time(lambda: velocity(flow, h), 1)


def run_flow(
    flow: flows.PointKernelFlow,
    lr: float,
    steps: int,
    groups: dict,
    label: str = "flow",
    chunk: int | None = None,
) -> dict:
    r"""`steps` Euler steps of `lr`; σ at start and end of the training set and of each test group.

    `groups` maps a name to the indices of its points in the flow's test sample.
    The gain of a set is $\sigma(\text{start})/\sigma(\text{end})$. A flow that stops
    before its last step (a metric value that left positive definiteness, ...) is
    refused, naming `label`: its end is not the flow's. With `chunk`, the steps run
    `chunk` at a time (one compiled solve for all chunks, each starting where the last
    ended: the same Euler steps), with a progress line after each chunk once the flow
    has run `PROGRESS_AFTER` seconds.
    """
    start = time.perf_counter()
    chunk = steps if chunk is None else max(1, min(chunk, steps))
    h_train, h_test = flow.train.g_fs, flow.test.g_fs
    done, first = 0, None
    while done < steps:
        size = min(chunk, steps - done)
        sol = solvers.solve_points(
            flow,
            h_train,
            h_test,
            done * lr,
            (done + size) * lr,
            dt0=lr,
            saveat=2,
            max_steps=chunk + 1,  # one value for every chunk: one compilation
        )
        first = sol if first is None else first
        done += sol.steps
        if sol.stop_reason != solvers.StopReason.REACHED_T1:  # a stopped flow: no gain
            raise ValueError(
                f"{label}: the flow stopped after {done} of {steps} steps ({sol.stop_reason}); "
                "lower the learning rate"
            )
        h_train, h_test = sol.train[-1], sol.test[-1]
        if done < steps and time.perf_counter() - start > PROGRESS_AFTER:
            progress(f"{label}: {done} of {steps} steps ({time.perf_counter() - start:.0f} s)")
    sigma = {"train": [float(first.sigma_train[0]), float(sol.sigma_train[-1])]}
    for name, index in groups.items():
        sub = flows.subsample(flow.test, index)
        sigma[name] = [
            float(flows.sigma_measure(sub, h[index])[0]) for h in (first.test[0], sol.test[-1])
        ]
    gains = {name: s[0] / s[1] for name, s in sigma.items()}
    if not all(math.isfinite(g) and g > 0 for g in gains.values()):
        raise ValueError(
            f"{label}: a non-finite or non-positive gain ({gains}); lower the learning rate"
        )
    return {
        "learning_rate": lr,
        "steps": int(done),
        "stop_reason": sol.stop_reason,
        "sigma": sigma,
        "train_gain": gains["train"],
        "test_gain": gains["test"],
        "gains": gains,
        "seconds": time.perf_counter() - start,
    }


def draw_samples(args, surface, n: int, draw: int, noised: bool):
    """Training points, the test sample (fresh points, and noised training points if `noised`), its groups."""
    key = jax.random.fold_in(jax.random.fold_in(jax.random.key(args.seed), n), draw)
    train = chart_points(surface, jax.random.fold_in(key, 0), n)
    chart = (int(train.patch[0]), int(train.eliminated[0]))
    parts = [("test", chart_points(surface, jax.random.fold_in(key, 1), args.test_points, chart))]
    kept = {}
    if noised:
        for i, scale in enumerate(args.noise):
            near = flows.sample_near(surface, train, jax.random.fold_in(key, 10 + i), scale)
            parts.append((noise_label(scale), in_own_chart(surface, near, chart, scale)))
            kept[noise_label(scale)] = parts[-1][1].count / n
    names = [name for name, _ in parts]
    if len(set(names)) != len(names):  # parse_args refuses such --noise; a group would hide one
        raise ValueError(f"draw_samples: repeated test-set names in {names}")
    # each group's rows counted by its position in `parts`, never through the names
    groups, offset = {}, 0
    for name, sample in parts:
        groups[name] = np.arange(offset, offset + sample.count)
        offset += sample.count
    distance = {
        name: float(jnp.mean(flows.nearest_points(train.points, s.points)[1])) for name, s in parts
    }
    return train, concatenate([s for _, s in parts]), groups, distance, chart, kept


def run_draw(args, surface, n: int, draw: int, noised: bool, timed: bool) -> dict:
    """Every kernel's flow on one draw of `n` training points (and the clustered one, if it runs at n)."""
    train, test, groups, distance, chart, kept = draw_samples(args, surface, n, draw, noised)
    if noised:
        progress(
            f"N = {n}, draw {draw}: mean FS distance to the training set (kept fraction): "
            + ", ".join(
                f"{g}: {d:.4f}" + (f" ({kept[g]:.2f})" if g in kept else "")
                for g, d in distance.items()
            )
        )
    mass = kernel_mass(train, args.sigma)
    if args.unnormalised_lr is None and not mass > 0:  # --lr / mass: no rate to take
        raise ValueError(
            f"N = {n}, draw {draw}: the unnormalised Gaussian's kernel mass at sigma = "
            f"{args.sigma:g} is {mass:g} (the kernel is 0 even on the diagonal below about "
            "5e-10): raise --sigma or give --unnormalised-lr"
        )
    chunk = None
    if n * (n + test.count) >= PROGRESS_PAIRS:
        chunk = math.ceil(args.steps / PROGRESS_CHUNKS)
    names = list(KERNELS)
    if args.clusters and n <= args.clustered_max:
        names.append(CLUSTERED)
    record = {
        "draw": draw,
        "train_points": train.count,
        "test_points": int(groups["test"].size),
        "chart": list(chart),
        "test_distance": distance,
        "noised_kept_fraction": kept,
        "gaussian_mass": mass,
        "kernels": {},
        "seconds_per_step": {},
    }
    for name in names:
        if name == "relu_ntk":
            lr = args.relu_lr
        elif name == "gaussian_unnormalised":
            lr = args.unnormalised_lr or args.lr / mass
        else:
            lr = args.lr
        flow = flows.PointKernelFlow(
            make_kernel(name, args, draw), flows.MongeAmpereLoss(1.0), train, test
        )
        if name == "gaussian":
            record["matrix_free"] = flow.kernel.matrices is None
        if timed:
            record["seconds_per_step"][name] = step_seconds(flow, train.g_fs)
        rec = run_flow(flow, lr, args.steps, groups, f"N = {n}, draw {draw}, {name}", chunk)
        record["kernels"][name] = rec
        progress(
            f"N = {n}, draw {draw}, {name}: train gain {rec['train_gain']:.2f}, "
            f"test gain {rec['test_gain']:.3f} [{rec['stop_reason']}, {rec['seconds']:.1f} s]"
        )
    return record


def summarise(runs: dict, names: list[str]) -> dict:
    """Per kernel: N, and the mean and standard error over draws of the test and train gains."""
    out = {}
    for name in names:
        rows = {"points": [], "draws": []}
        for key in ("test_gain", "train_gain"):
            rows[f"{key}_mean"], rows[f"{key}_stderr"] = [], []
        for n, run in runs.items():
            draws = [d["kernels"][name] for d in run["draws"] if name in d["kernels"]]
            if not draws:
                continue
            rows["points"].append(int(n))
            rows["draws"].append(len(draws))
            for key in ("test_gain", "train_gain"):
                mean, se = mean_and_stderr([d[key] for d in draws])
                rows[f"{key}_mean"].append(mean)
                rows[f"{key}_stderr"].append(se)
        out[name] = rows
    return out


# The extrapolation.


def distance_law(surface, sizes, seed_value: int) -> dict:
    """Mean nearest-neighbour FS distance of N sampled points at each size, and its power law (`_quintic.mean_nearest_distances`)."""
    mean = mean_nearest_distances(surface, sizes, seed_value)
    return {"sizes": list(sizes), "mean_distance": mean, **power_law(sizes, mean)}


def extrapolation(runs: dict, law: dict, names: list[str], noise: list[float]) -> dict:
    r"""The paper's prediction: the gain-distance curve at the smallest N evaluated at $d(N) = A N^b$.

    The curve: for each noise scale, the mean over draws of the mean distance to the
    training set and of the gain (`loglog_interpolate` between them). Also
    evaluated at each N's measured mean test-to-training distance.
    """
    smallest = min(runs, key=int)
    draws = runs[smallest]["draws"]
    groups = [noise_label(s) for s in noise]
    sizes = np.asarray(sorted(int(n) for n in runs), float)
    law_distance = law["prefactor"] * sizes ** law["exponent"]
    measured = np.asarray(
        [np.mean([d["test_distance"]["test"] for d in runs[str(int(n))]["draws"]]) for n in sizes]
    )
    curves, predicted = {}, {}
    for name in names:
        distance = [float(np.mean([d["test_distance"][g] for d in draws])) for g in groups]
        gain = [mean_and_stderr([d["kernels"][name]["gains"][g] for d in draws]) for g in groups]
        curves[name] = {
            "noise": list(noise),
            "distance": distance,
            "gain_mean": [g[0] for g in gain],
            "gain_stderr": [g[1] for g in gain],
        }
        at_law, outside = loglog_interpolate(distance, curves[name]["gain_mean"], law_distance)
        at_measured, outside_m = loglog_interpolate(distance, curves[name]["gain_mean"], measured)
        predicted[name] = {
            "points": sizes.astype(int).tolist(),
            "law_distance": law_distance.tolist(),
            "gain": at_law.tolist(),
            "extrapolated": outside.tolist(),
            "measured_distance": measured.tolist(),
            "gain_at_measured_distance": at_measured.tolist(),
            "extrapolated_at_measured_distance": outside_m.tolist(),
        }
    return {
        "curve_points": int(smallest),
        "curves": curves,
        "distance_law": law,
        "predicted": predicted,
    }


# Memory: one normalised-Gaussian Euler step in a fresh process, its peak read from outside.

MEMORY_STEP = """
import json, resource, sys, time
sys.path.insert(0, sys.argv[1])
import jax, jax.numpy as jnp, equinox as eqx
import flows
from _quintic import chart_points_batched as chart_points

count, test_count, sigma, seed, lr = (
    int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4]), int(sys.argv[5]), float(sys.argv[6])
)
quintic = flows.Hypersurface.fermat_quintic()
key = jax.random.key(seed)
train = chart_points(quintic, jax.random.fold_in(key, 0), count)
chart = (int(train.patch[0]), int(train.eliminated[0]))
test = chart_points(quintic, jax.random.fold_in(key, 1), test_count, chart)
setup = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
kernel = flows.gaussian_point_kernel(sigma, normalise=True)
flow = flows.PointKernelFlow(kernel, flows.MongeAmpereLoss(1.0), train, test)
step = eqx.filter_jit(lambda flow, h, p: tuple(x + lr * v for x, v in zip((h, p), flow.velocity(h))))
start = time.perf_counter()
out = jax.block_until_ready(step(flow, train.g_fs, test.g_fs))
first = time.perf_counter() - start
seconds = None
if first < 60:  # a second, compiled call; a long first call is mostly the step itself
    start = time.perf_counter()
    out = jax.block_until_ready(step(flow, train.g_fs, test.g_fs))
    seconds = time.perf_counter() - start
finite = bool(all(jnp.all(jnp.isfinite(x)) for x in out))
print(json.dumps({"count": train.count, "finite": finite, "seconds": seconds,
                  "first_seconds": first, "matrix_free": flow.kernel.matrices is None,
                  "setup_maxrss_kb": setup}))
"""


def memory_step(count: int, args) -> tuple[dict, int]:
    """`MEMORY_STEP` on `count` training points in a fresh process: its record and peak RSS in bytes.

    `ChildFailed` (an `OSError`) if the process fails or gives non-finite metric values.
    """
    command = [
        sys.executable,
        "-c",
        MEMORY_STEP,
        str(Path(__file__).resolve().parent),
        str(count),
        str(args.test_points),
        str(args.sigma),
        str(args.seed),
        str(args.lr),
    ]
    output, peak = peak_rss(command, name=f"the memory step on {count} points (a fresh process)")
    child = json.loads(output.strip().splitlines()[-1])
    if not child["finite"]:
        raise ChildFailed(f"the memory step on {count} points gave non-finite metric values")
    return child, peak


def target_estimate(counts, peaks, matrix_free, target: int) -> dict:
    """Peak memory at `target` points from the sizes measured (`counts`, their `peaks` in bytes).

    Measured where a size lies within 1% of `target` (that size's peak). Else linear in N
    through two matrix-free sizes (the step holds O(N) arrays, no N x N one): the nearest
    on either side of `target`, or, outside them, the two nearest it, their slope held at
    >= 0 when extrapolating (a smaller peak at a larger size is noise); None with fewer
    than two. The nearest measured size and its peak are always given.
    """
    nearest = min(range(len(counts)), key=lambda i: abs(math.log(counts[i] / target)))
    record = {
        "target_points": target,
        "target_measured": False,
        "target_method": None,
        "nearest_measured_points": counts[nearest],
        "nearest_measured_bytes": peaks[nearest],
        "estimated_from_points": None,
        "bytes_per_point": None,
    }
    if abs(counts[nearest] - target) <= 0.01 * target:
        same = "the target size" if counts[nearest] == target else "within 1% of the target"
        return {
            **record,
            "target_bytes": peaks[nearest],
            "target_measured": True,
            "target_method": "measured",
            "note": f"measured at {counts[nearest]} points, {same}",
        }
    free = sorted((c, b) for c, b, f in zip(counts, peaks, matrix_free, strict=True) if f)
    unmeasured = f"the target size was not measured (nearest measured: {counts[nearest]} points)"
    if len(free) < 2:
        return {
            **record,
            "target_bytes": None,
            "note": f"not estimated: {unmeasured} and fewer than two matrix-free sizes were",
        }
    below = [f for f in free if f[0] < target]
    above = [f for f in free if f[0] > target]
    if below and above:
        (a, pa), (b, pb) = below[-1], above[0]
        per_point = (pb - pa) / (b - a)
        estimate, method = pa + per_point * (target - a), "interpolated"
        how = f"interpolated linearly between {a} and {b} points"
    else:
        (a, pa), (b, pb) = (below[-2], below[-1]) if below else (above[0], above[1])
        per_point = max((pb - pa) / (b - a), 0.0)
        base, peak = (b, pb) if below else (a, pa)
        estimate, method = peak + per_point * (target - base), "extrapolated"
        how = f"extrapolated linearly from {a} and {b} points"
    return {
        **record,
        "target_bytes": estimate,
        "target_method": method,
        "estimated_from_points": [a, b],
        "bytes_per_point": per_point,
        "note": f"{unmeasured}: {how}, the matrix-free sizes nearest it (the step holds O(N) "
        "arrays, no N x N one); --memory-points with the target measures it",
    }


def memory(args) -> dict | None:
    """Peak RSS of one step at each `--memory-points` size, and the answer at `--memory-target`.

    A step that fails (`ChildFailed`) ends the measurement: the record then holds the sizes
    measured before it and `failed`, the reason, and no estimate (the caller writes the
    results and ends the program).
    """
    if not args.memory_points:
        return None
    target = args.memory_target
    record = {
        "method": "peak RSS of a fresh process (sampling + one step), read by os.wait4",
        "points": [],
        "peak_rss_bytes": [],
        "setup_peak_rss_bytes": [],
        "step_seconds": [],
        "matrix_free": [],
        "target_points": target,
    }
    for count in sorted(set(args.memory_points)):
        progress(f"memory: sampling {count} points and one step in a fresh process")
        try:
            child, peak = memory_step(count, args)
        except ChildFailed as failure:
            record["failed"] = solvers.error_message(failure)
            return record
        record["points"].append(child["count"])
        record["peak_rss_bytes"].append(peak)
        record["step_seconds"].append(child["seconds"] or child["first_seconds"])
        scale = 1 if sys.platform == "darwin" else 1024
        record["setup_peak_rss_bytes"].append(child["setup_maxrss_kb"] * scale)
        record["matrix_free"].append(child["matrix_free"])
        progress(
            f"memory: a normalised-Gaussian step on {child['count']} points: peak RSS "
            f"{peak / 1e9:.3f} GB ({record['step_seconds'][-1]:.2f} s a step, "
            f"{'matrix-free' if child['matrix_free'] else 'dense matrices'})"
        )
    record.update(
        target_estimate(record["points"], record["peak_rss_bytes"], record["matrix_free"], target)
    )
    try:
        xla_target = xla_bytes(target, args.sigma)
    except Exception as error:  # the compile-only check is optional: report why it is missing
        xla_target = None
        record["note"] += f"; XLA analysis unavailable ({type(error).__name__})"
    estimate = record["target_bytes"]
    record["fits_in_2GB"] = None if estimate is None else bool(estimate <= MEMORY_LIMIT)
    record["xla_kernel_apply_bytes_at_target"] = xla_target
    if estimate is not None:
        progress(
            f"memory at {target} points: {estimate / 1e9:.2f} GB ({record['target_method']}"
            + (
                ""
                if record["target_measured"]
                else f"; nearest measured {record['nearest_measured_points']} points"
            )
            + f"); fits in 2 GB: {record['fits_in_2GB']}"
        )
    return record


# Figures.


def figures(record: dict, out: Path) -> None:
    """kernel_points.png, kernel_points_extrapolation.png, kernel_points_cost.png."""
    summary, pred = record["summary"], record["extrapolation"]["predicted"]
    fig = Figure(figsize=(11, 8), layout="constrained")
    for ax, name in zip(fig.subplots(2, 2).ravel(), KERNELS, strict=True):
        s = summary[name]
        ax.errorbar(
            s["points"],
            s["test_gain_mean"],
            yerr=s["test_gain_stderr"],
            fmt=_STYLE[name] + "-",
            capsize=3,
            label=f"{name}: measured test gain (mean ± s.e.)",
        )
        ax.plot(pred[name]["points"], pred[name]["gain"], "k--", label="predicted from d(N) law")
        held = np.asarray(pred[name]["extrapolated"], bool)
        if held.any():  # beyond the gain-distance curve: its end value, not a prediction
            ax.plot(
                np.asarray(pred[name]["points"])[held],
                np.asarray(pred[name]["gain"])[held],
                "ko",
                mfc="none",
                label="  (open: beyond the curve, its end value held)",
            )
        ax.plot(
            pred[name]["points"],
            pred[name]["gain_at_measured_distance"],
            ":",
            color="0.5",
            label="predicted at measured distance",
        )
        if name == "gaussian" and CLUSTERED in summary and summary[CLUSTERED]["points"]:
            c = summary[CLUSTERED]
            ax.errorbar(
                c["points"],
                c["test_gain_mean"],
                yerr=c["test_gain_stderr"],
                fmt="o",
                mfc="none",
                capsize=3,
                label="clustered Gaussian (measured)",
            )
        ax.set_xscale("log")
        ax.set_xlabel("training points N")
        ax.set_ylabel(r"test gain $\sigma(0)/\sigma(t_1)$")
        ax.set_title(name)
        ax.legend(fontsize=7)
    save_figure(fig, out / "kernel_points.png")

    ext = record["extrapolation"]
    fig = Figure(figsize=(11, 4.2), layout="constrained")
    ax, bx = fig.subplots(1, 2)
    for name in KERNELS:
        c = ext["curves"][name]
        (line,) = ax.plot(
            c["distance"],
            c["gain_mean"],
            _STYLE[name] + "-",
            mfc="none",
            label=f"{name}: noised training points (N = {ext['curve_points']})",
        )
        ax.plot(
            pred[name]["measured_distance"],
            summary[name]["test_gain_mean"],
            _STYLE[name],
            ms=9,
            color=line.get_color(),
            label=f"{name}: fresh test points, each N",
        )
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("mean FS distance to the training set (radians)")
    ax.set_ylabel(r"gain $\sigma(0)/\sigma(t_1)$")
    ax.set_title("Gain against distance")
    ax.legend(fontsize=6, loc="lower left")  # the gains fall with distance: that corner is free
    law = ext["distance_law"]
    n = np.geomspace(min(law["sizes"]), max(max(law["sizes"]), max(pred["delta"]["points"])), 50)
    bx.loglog(law["sizes"], law["mean_distance"], "o", label="mean nearest-neighbour distance")
    bx.loglog(
        n,
        law["prefactor"] * n ** law["exponent"],
        "-",
        label=f"fit d = A N^b, b = {law['exponent']:.3f} ± {law['exponent_stderr']:.3f}",
    )
    bx.loglog(
        pred["delta"]["points"],
        pred["delta"]["measured_distance"],
        "s",
        mfc="none",
        label="measured test-to-training distance",
    )
    bx.set_xlabel("points N")
    bx.set_ylabel("mean FS distance (radians)")
    bx.set_title("Distance law")
    bx.legend(fontsize=7)
    save_figure(fig, out / "kernel_points_extrapolation.png")

    fig = Figure(figsize=(11, 4.2), layout="constrained")
    ax, bx = fig.subplots(1, 2)
    timing = record["seconds_per_step"]
    for name, rows in timing.items():
        ax.loglog(rows["points"], rows["seconds"], _STYLE[name] + "-", label=name)
    ax.set_xlabel("training points N")
    ax.set_ylabel("seconds per step (one velocity)")
    ax.set_title(f"Time per step ({record['test_points']} test points)")
    ax.legend(fontsize=7)
    mem = record["memory"]
    if mem is not None:
        bx.loglog(
            mem["points"],
            np.asarray(mem["peak_rss_bytes"]) / 1e9,
            "o-",
            label="peak RSS, normalised-Gaussian step",
        )
        if mem["target_bytes"] is not None:
            bx.loglog(
                [mem["target_points"]],
                [mem["target_bytes"] / 1e9],
                "*",
                ms=12,
                label=f"target: {mem['target_method']}",
            )
        bx.axhline(MEMORY_LIMIT / 1e9, color="0.6", ls="--", label="2 GB")
        bx.legend(fontsize=7)
    bx.set_xlabel("training points N")
    bx.set_ylabel("peak resident memory (GB)")
    bx.set_title("Memory of a step (fresh process)")
    save_figure(fig, out / "kernel_points_cost.png")


def settings(args) -> dict:
    """The run's settings, as the JSON records them."""
    return {
        "points": args.points,
        "test_points": args.test_points,
        "draws": args.draws,
        "steps": args.steps,
        "learning_rate": args.lr,
        "relu_learning_rate": args.relu_lr,
        "unnormalised_learning_rate": args.unnormalised_lr,
        "sigma": args.sigma,
        "relu": {
            "depth": args.relu_depth,
            "weight_std": args.relu_weight_std,
            "bias_std": args.relu_bias_std,
        },
        "noise": args.noise,
        "clusters": args.clusters,
        "batch_size": args.batch_size,
        "clustered_max": args.clustered_max,
        "seed": args.seed,
    }


def main(argv=None) -> dict:
    args = parse_args(argv)
    args.out = solvers.output_directory(args.out)
    check_memory(args)
    path = args.out / "kernel_points.json"
    surface = flows.Hypersurface.fermat_quintic()
    progress(
        f"Fermat quintic: N = {args.points}, {args.test_points} test points, {args.draws} draws, "
        f"{args.steps} steps (seed {args.seed})"
    )
    runs = {}
    # what is done so far, written after every draw: a later failure keeps the flows run
    partial = {"complete": False, "runs": runs, **settings(args)}
    for n in args.points:
        draws = []
        for d in range(args.draws):
            draws.append(run_draw(args, surface, n, d, noised=n == args.points[0], timed=d == 0))
            runs[str(n)] = {"draws": draws, "matrix_free": draws[0]["matrix_free"]}
            write_json(path, {**partial, "seconds": elapsed()})
    names = list(KERNELS) + ([CLUSTERED] if args.clusters else [])
    summary = summarise(runs, names)
    for name in names:
        s = summary[name]
        progress(
            f"{name}: test gain "
            + ", ".join(
                f"{n}: {m:.3f} ± {e:.3f}"
                for n, m, e in zip(
                    s["points"], s["test_gain_mean"], s["test_gain_stderr"], strict=True
                )
            )
        )
    law = distance_law(surface, args.scaling_points, args.seed)
    progress(f"distance law d = {law['prefactor']:.3f} N^{law['exponent']:.3f}")
    ext = extrapolation(runs, law, list(KERNELS), args.noise)
    for name in KERNELS:
        p = ext["predicted"][name]
        progress(
            f"{name}: predicted test gain "
            + ", ".join(
                f"{n}: {g:.3f}" + (" (held: beyond the curve)" if held else "")
                for n, g, held in zip(p["points"], p["gain"], p["extrapolated"], strict=True)
            )
        )
    timing = {
        name: {
            "points": [
                int(n) for n, r in runs.items() if name in r["draws"][0]["seconds_per_step"]
            ],
            "seconds": [
                r["draws"][0]["seconds_per_step"][name]
                for r in runs.values()
                if name in r["draws"][0]["seconds_per_step"]
            ],
        }
        for name in names
    }
    record = {
        "complete": False,
        "summary": summary,
        "extrapolation": ext,
        "seconds_per_step": timing,
        "memory": None,
        "runs": runs,
        **settings(args),
        "seconds": elapsed(),
    }
    if args.memory_points:  # the memory step is a fresh process per size: minutes at 10^5
        write_json(path, record)
    mem = record["memory"] = memory(args)
    record["seconds"] = elapsed()
    if mem is not None and "failed" in mem:
        write_json(path, record)
        raise ChildFailed(
            f"{mem['failed']}; {path} holds every flow's results and the memory measured before "
            "it (complete: false), no figures were drawn"
        )
    record["machine"] = machine()
    record["complete"] = True
    figures(record, args.out)
    write_json(path, record)
    return record


if __name__ == "__main__":
    sys.exit(solvers.run_program(main, "kernel_points"))
