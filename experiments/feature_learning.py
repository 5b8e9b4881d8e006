r"""Feature learning on the Fermat quintic: how far the evolving network's tangent kernel and metric move from the frozen ones, against width.

Halverson and Ruehle suggest that frozen kernels generalise poorly on the quintic
because feature learning matters, and that this could be quantified by how the
empirical NTK evolves compared with the frozen one. This program measures it.

For each architecture, width $n$ and seed, a Kähler potential network
$\phi_\theta$ (`flows.kahler_potential`: a centred MLP of the bihomogeneous
features, `--depth` hidden layers of width $n$, starting at Fubini–Study; or
`flows.bihomogeneous_potential` with `--bihomogeneous-layers` squaring layers of
width $n$, MLGeometry's architecture, started near Fubini–Study by
`near_fubini_study`: test σ 0.36–0.45 at the start where MLGeometry's own
initialisation, `--bihomogeneous-init mlgeometry`, starts between 1 and 55 for one
layer) is trained twice from the same
$\theta_0$, with the same optimiser (`--optimizer`: Adam, the default, or SGD),
learning rate schedule (`--lr` for `--lr-constant` epochs, then a continuous
exponential decay with a half-life of `--lr-halving` epochs: `optax.exponential_decay`,
not a staircase, so the rate halves over each `--lr-halving` epochs, step by step),
minibatch order and data, on the σ loss
(`flows.MongeAmpereLoss(1.0)`):

- `evolving`: the network itself (its tangent kernel moves);
- `frozen`: the network linearised at $\theta_0$,
  $\phi_0 + \nabla_\theta\phi_0\cdot(\theta - \theta_0)$, as
  `solvers.train_potential(..., regime="frozen")` and `flows.PotentialFlow.linearised`.

The training loop is `solvers.train_potential`'s (Adam on minibatches, one
permutation per epoch from the seed, the last partial minibatch dropped; the
slow test checks that both give the same parameters), written with jitted
functions compiled once per (width, regime) for all seeds: `train_potential`
compiles its step anew on every call, 8 s (evolving) to 23 s (frozen) of
overhead per run on two cores, more than a `--small` run's whole training.

Each seed $s$ draws its own training, held-out test and probe points (the probe
set: the first `--probe` test points) and, for each width, its own $\theta_0$.
Reported per (architecture, width, regime, seed):

- test σ at the end (`flows.sigma_measure` on the held-out points) and its
  standard error, and σ on the training points (to tell a failure to fit from
  a failure to generalise);
- the kernel drift $\|\Theta_T - \Theta_0\|_F/\|\Theta_0\|_F$ of
  $\Theta(z, z') = \nabla_\theta\phi(z)\cdot\nabla_\theta\phi(z')$ on the probe
  set, $\phi$ the regime's own potential (the linearised one when frozen), both
  computed by the same function: the frozen drift is zero up to rounding, a check;
- the relative parameter change $\|\theta_T - \theta_0\|/\|\theta_0\|$,
  $\Theta_0$'s mean diagonal on the probe set (`kernel_scale`), and `diverged`
  (test σ ending above twice its start: a rate too large; flagged and counted);
  a loss, parameter or measure that is not finite ends the program with a message.

and per (architecture, width, seed) the distance between the evolving and
frozen final metrics on the test points,
$D = \big(\sum_a w_a\|g^\mathrm{ev}_a - g^\mathrm{fr}_a\|_F^2/\|g^\mathrm{FS}_a\|_F^2 \big/ \sum_a w_a\big)^{1/2}$
(the weighted RMS, in each point's local coordinates, $w_a$ the sample weights).

Diverged runs stay in the statistics and fits, counted (`diverged_runs`, in all,
per architecture and per width; `diverged`: which runs), marked in the figures
(red crosses at their own values) and announced by a warning before the verdict.
Where too many diverged for a fit, fewer than 3 widths keeping 2 seeds whose
evolving and frozen runs both stayed below twice their start (every run diverged,
say), the program fits nothing and ends with a message counting them.

Over widths: power-law exponents $b$ of drift $\propto n^b$ and $D \propto n^b$,
fitted by least squares in log-log for each seed separately; the reported
exponent is the mean over seeds with the 95% Student-t interval over seeds
($\bar b \pm t_{0.975,S-1}\,s_b/\sqrt S$, $S$ seeds). Beside it, the pooled fit
of all (width, seed) points (`_fits.line_fit`) with its standard error times
the t quantile at its $N - 2$ degrees of freedom (this one ignores the
correlation of one seed's points). At every width: evolving and frozen test σ,
mean over seeds with the standard error over seeds, and the paired gap
$\sigma_\mathrm{fr} - \sigma_\mathrm{ev}$ with its 95% Student-t interval over
seeds; the gap's trend is the per-seed slope of the gap against $\log_2 n$,
with the same intervals. NTK theory for gradient flow in the NTK parametrisation
predicts drift $\propto n^{-1/2}$ in Frobenius norm (Lee et al. 2019; the
per-entry rate of change is $O(1/n)$, Dyer and Gur-Ari 2019); these networks are
initialised by Equinox (weights and biases uniform in $\pm1/\sqrt{\text{fan-in}}$);
their $\Theta_0$ has a nearly width-independent scale (`kernel_scale`, the mean
diagonal on the probe set, recorded per run: 1.10 to 1.34 over the runs of the
MLP at widths 8 to 128 at the defaults, 1.17 to 1.30 as means over seeds at each
width), so SGD at a fixed rate follows a width-independent function-space
time scale, as in the NTK parametrisation. Adam's per-parameter step does not
shrink with width, so under Adam the prediction need not hold. The program
states whether −1/2 and −1 lie in the measured interval (and, where 0 lies in it
too, that it cannot tell them from no dependence on width), and ends by printing
what the numbers say: whether the frozen network generalises worse (the paired
gap's interval over seeds above zero, at which widths), whether the drift and
the distance fall or grow with width and whether the gap closes (a trend
counts only where the interval over seeds and the pooled one agree in sign),
and how much of the test σ gap is already in training σ.

Output in --out: feature_learning.json (`runs`: every run; `pairs`: the
evolving–frozen distance per (architecture, width, seed); `summary`: per
architecture the per-width statistics, `fits` (with the local slopes between
consecutive widths) and `verdict`, the lines printed at the end; the settings,
`seconds` and `machine`; written with `complete` false after every (architecture,
width, seed), with the runs and pairs so far, so that a later failure keeps them,
and with `complete` true at the end) and feature_learning.png (test σ against width for
both regimes, and the drift against width with its fit), and
feature_learning_distance.png (the evolving–frozen metric distance against
width with its fit); each fit's legend gives both 95% intervals of its exponent
(over seeds and pooled) and the trend the verdict reads from them.

Before any work, a width whose run cannot fit in the memory available is refused
with the estimate (`check_memory`: a lower bound, the probe set's Jacobian beside two
copies of the parameters, or the six copies training holds if more: 8 bytes ×
parameters × max(`--probe` + 2, 6)). Flags that
would change nothing are refused: `--widths` and `--depth` where no
MLP is trained (`--architecture bihomogeneous`), the `--bihomogeneous-*` flags
where no bihomogeneous network is (`--architecture mlp`, the default),
`--bihomogeneous-noise` with `--bihomogeneous-init mlgeometry`, and
`--lr-halving` where the rate never decays (`--lr-constant` ≥ `--epochs`).

Float64 throughout, the small run too (it fits its budget).

Measured with `--small` (MLP widths 8, 16, 32, 128; 3 seeds; 300 training, 200
test and 50 probe points; 16 epochs of batch 50, Adam at 0.01; 90 s wall on a
2-core x86_64 CPU shared with other jobs at load average 3 to 4, 184 s at load
7; no GPU): test σ from
0.348 (Fubini–Study) to 0.283, 0.186, 0.187, 0.147 (evolving) and 0.355, 0.355,
0.352, 0.335 (frozen) at the four widths, standard errors over seeds ≤ 0.013;
the gap frozen − evolving is positive at every width (95% intervals above 0)
and grows, +0.024 per doubling [0.015, 0.034]; the evolving kernel drift is
0.71 to 1.76 and grows, exponent +0.27 [0.20, 0.34] over seeds (pooled
[0.08, 0.46]), so neither −1/2 nor −1; the evolving–frozen distance D is
0.18 to 0.22, exponent +0.04 [0.02, 0.06] over seeds but [−0.02, 0.09] pooled
(no significant trend);
every frozen drift is exactly 0.

At the defaults (MLP widths 8, 16, 32, 64, 128; 3 seeds; 1500 training, 1000
test and 100 probe points; 50 epochs of batch 100, Adam at 0.01 for 10 epochs,
then decaying with a half-life of 10 epochs; 8 min 51 s wall on the same shared machine, load
average 5 to 9): test σ from 0.365 (Fubini–Study) to 0.062, 0.059, 0.041,
0.038, 0.023 (evolving) and 0.350, 0.336, 0.307, 0.265, 0.202 (frozen), standard
errors over seeds ≤ 0.014; training σ 0.051 → 0.013 (evolving) and 0.342 →
0.181 (frozen). The gap frozen − evolving, 0.289 … 0.179, is positive at every
width (every 95% interval above 0) and closes by 0.027 per doubling [0.019,
0.035]; 0.243 of its mean 0.248 is already in training σ: the frozen network
mostly fails to fit, not to generalise. The evolving kernel drift 0.74, 0.56,
0.55, 0.96, 2.32 is not a power law (local exponents −0.42, −0.01, +0.80,
+1.27); the fitted exponent is +0.41 [0.34, 0.48] over seeds (pooled
[0.19, 0.63]): it grows, and neither −1/2 nor −1 is inside. The evolving–frozen
distance D falls, 0.26 → 0.16, exponent −0.18 [−0.24, −0.13]. The gap closes
although the drift does not fall: the frozen network's features at θ₀ fit
better with width. With `--small --optimizer sgd` (SGD at 3; 76 s) the drift
0.29 … 0.44 has exponent +0.13 [−0.15, 0.42]: no n^(−1/2) at these widths
either. $\Theta_0$'s mean diagonal is 1.10 to 1.34 over the runs (its means
over seeds 1.17 to 1.30, rising with width); every frozen drift is exactly 0.

The bihomogeneous network (`--architecture bihomogeneous`: one squaring layer,
widths 4, 8, 16, 32, 64; the same 3 seeds, points, epochs and Adam; 2 min 11 s
on the same machine with nothing else running, 4 min 25 s at load average 3 to 5), started near Fubini–Study (test σ
0.36–0.43): test σ 0.171, 0.058, 0.058, 0.058, 0.058 (evolving; one squaring
layer is a bidegree-(2, 2) algebraic metric, and from width 8 on it stops
improving within this budget) against 0.328, 0.282, 0.268, 0.256, 0.244
(frozen), standard errors over seeds ≤ 0.013. The gap, 0.157 to 0.225 (mean
0.195), is positive at every width; over all five widths it has no significant trend
(+0.003 per doubling, [+0.001, +0.005] over seeds but [−0.008, +0.014]
pooled), and from width 8 on it closes by about 0.012 per doubling (local
slopes). 0.188 of its mean 0.195 is already in training σ: as for the MLP, the
frozen network mostly fails to fit. The evolving kernel drift 0.19 → 0.28 grows,
exponent +0.12 [0.06, 0.19] over seeds ([0.07, 0.18] pooled), not −1/2; the
evolving–frozen distance 0.21 → 0.18 falls, exponent −0.057 [−0.090, −0.025].
$\Theta_0$'s mean diagonal is 1.10 to 1.23 over the runs (its means over seeds
1.23 at width 4 falling to 1.10 at 64); every frozen drift is exactly 0.

Usage: python experiments/feature_learning.py --out DIR [--small] [--architecture {mlp,bihomogeneous,both}] [--widths N ...] [--seeds S] [--seed S]
"""

import argparse
import math
import sys
import time

import equinox as eqx
import jax
import jax.flatten_util
import jax.numpy as jnp
import numpy as np
import optax
import scipy.stats
from _common import (
    directory,
    integer,
    positive,
    positive_int,
    progress,
    save_figure,
    seed,
    write_json,
)
from _fits import CONFIDENCE, line_fit, local_orders, mean_and_stderr
from _timing import machine
from jaxtyping import Array, Complex, Float
from matplotlib.figure import Figure

import flows
import solvers

jax.config.update("jax_enable_x64", True)

ARCHITECTURES = ("mlp", "bihomogeneous")
REGIMES = ("evolving", "frozen")
NTK_EXPONENTS = (-0.5, -1.0)  # Frobenius drift under NTK parametrisation; per-entry rate
DIVERGED = 2.0  # a run whose test sigma ends above this times its start is flagged
FROZEN_DRIFT_TOLERANCE = 1e-10  # the frozen kernel is Theta_0 up to rounding (~1e-15)

DEFAULT_LR = {"adam": 1e-2, "sgd": 3.0}  # SGD at 10 diverged at width 32
MIN_WIDTHS = 3  # a fit against width: at least this many widths, each with 2 sound seeds

# The flags that shape each architecture's network (refused where it is not trained),
# the attribute of its width ladder, and the defaults of the flags given no value.
NETWORK_FLAGS = {
    "mlp": ("widths", "depth"),
    "bihomogeneous": (
        "bihomogeneous_widths",
        "bihomogeneous_layers",
        "bihomogeneous_init",
        "bihomogeneous_noise",
    ),
}
LADDERS = {"mlp": "widths", "bihomogeneous": "bihomogeneous_widths"}
DEFAULTS = {
    "depth": 2,
    "bihomogeneous_layers": 1,
    "bihomogeneous_init": "near-fs",
    "bihomogeneous_noise": 1.0,
    "lr_halving": 10,
}

# The sizes: `--small` and the full run; a flag given explicitly overrides either.
SIZES = {
    "small": {
        "widths": [8, 16, 32, 128],
        "bihomogeneous_widths": [4, 8, 16, 64],
        "seeds": 3,
        "points": 300,
        "test_points": 200,
        "probe": 50,
        "epochs": 16,
        "batch": 50,
    },
    "default": {
        "widths": [8, 16, 32, 64, 128],
        "bihomogeneous_widths": [4, 8, 16, 32, 64],
        "seeds": 3,
        "points": 1500,
        "test_points": 1000,
        "probe": 100,
        "epochs": 50,
        "batch": 100,
    },
}


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add = parser.add_argument
    add(
        "--architecture",
        choices=(*ARCHITECTURES, "both"),
        default="mlp",
        help="mlp: centred MLP (starts at Fubini-Study); bihomogeneous: MLGeometry's network; both",
    )
    add("--widths", type=positive_int, nargs="+", default=None, help="MLP widths")
    add("--depth", type=positive_int, default=None, help="MLP hidden layers (default 2)")
    add(
        "--bihomogeneous-widths",
        type=positive_int,
        nargs="+",
        default=None,
        help="widths of the bihomogeneous network's squaring layers (each layer this wide)",
    )
    add(
        "--bihomogeneous-layers",
        type=positive_int,
        default=None,
        help="squaring layers (k = 2^L; default 1)",
    )
    add(
        "--bihomogeneous-init",
        choices=("near-fs", "mlgeometry"),
        default=None,
        help="near-fs (the default): Fubini-Study plus --bihomogeneous-noise (test sigma "
        "0.36-0.45 at the start); mlgeometry: weights |N(0, 1)| x 0.05, as MLGeometry (test "
        "sigma 1 to 55)",
    )
    add(
        "--bihomogeneous-noise",
        type=positive,
        default=None,
        help="the near-fs start's weight noise, times N(0, 1)/sqrt(fan-in) (default 1)",
    )
    add("--seeds", type=integer(2), default=None, help="seeds per (width, regime)")
    add("--points", type=positive_int, default=None, help="training points per seed")
    add(
        "--test-points",
        type=integer(2),
        default=None,
        help="held-out test points per seed (>= 2: sigma of one point is 0)",
    )
    add("--probe", type=positive_int, default=None, help="probe points of the kernel drift")
    add("--epochs", type=positive_int, default=None, help="training epochs")
    add(
        "--batch",
        type=integer(2),
        default=None,
        help="minibatch size (>= 2: the sigma loss of one point is 0, nothing would train)",
    )
    add(
        "--optimizer",
        choices=("adam", "sgd"),
        default="adam",
        help="adam: as quintic_networks.py; sgd: plain stochastic gradient descent",
    )
    add(
        "--lr",
        type=positive,
        default=None,
        help="initial learning rate (default 0.01 for adam, 3 for sgd)",
    )
    add("--lr-constant", type=integer(0), default=10, help="epochs before the rate decays")
    add(
        "--lr-halving",
        type=positive_int,
        default=None,
        help="half-life of the rate's decay after --lr-constant, in epochs (a continuous "
        "exponential decay; default 10)",
    )
    add("--small", action="store_true", help="a run of a few minutes (the sizes of SIZES['small'])")
    add("--seed", type=seed, default=0, help="the first seed (seeds seed, seed + 1, ...)")
    add("--out", type=directory, required=True)
    args = parser.parse_args(argv)
    # a flag that would change nothing is refused when given, before the defaults fill in
    used = ARCHITECTURES if args.architecture == "both" else (args.architecture,)
    for architecture in ARCHITECTURES:
        given = [_flag(n) for n in NETWORK_FLAGS[architecture] if getattr(args, n) is not None]
        if architecture not in used and given:
            parser.error(
                f"{' and '.join(given)} set the {architecture} network, which "
                f"--architecture {args.architecture} does not train"
            )
    if args.bihomogeneous_noise is not None and args.bihomogeneous_init == "mlgeometry":
        parser.error(
            "--bihomogeneous-noise is the near-fs start's noise; --bihomogeneous-init "
            "mlgeometry does not use it"
        )
    for name, value in SIZES["small" if args.small else "default"].items():
        if getattr(args, name) is None:
            setattr(args, name, value)
    if args.lr_halving is not None and args.lr_constant >= args.epochs:
        parser.error(
            f"--lr-halving has no effect: the rate stays at --lr for all {args.epochs} epochs "
            f"(--lr-constant {args.lr_constant})"
        )
    for name, value in DEFAULTS.items():
        if getattr(args, name) is None:
            setattr(args, name, value)
    if args.lr is None:
        args.lr = DEFAULT_LR[args.optimizer]
    if args.batch > args.points:
        parser.error(f"--batch {args.batch} exceeds --points {args.points}")
    if args.probe > args.test_points:
        parser.error(f"--probe {args.probe} exceeds --test-points {args.test_points}")
    if args.seed + args.seeds - 1 > 2**32 - 1:
        parser.error(f"--seed {args.seed} + --seeds {args.seeds} runs past 2^32 - 1")
    for architecture in ARCHITECTURES:
        flag = LADDERS[architecture]
        widths = getattr(args, flag)
        if architecture in used and (len(set(widths)) != len(widths) or len(widths) < MIN_WIDTHS):
            parser.error(f"{_flag(flag)} needs at least {MIN_WIDTHS} distinct widths, got {widths}")
        setattr(args, flag, sorted(widths))
    return args


def parameter_count(architecture: str, width: int, args) -> int:
    """The trained parameters of `make_potential(architecture, width, ...)`, in closed form
    (no network is built: a width too large to build is still counted).

    The MLP (`eqx.nn.MLP` of the 25 bihomogeneous features of CP^4, `--depth` hidden layers,
    biases): 25w + w, (depth - 1)(w^2 + w), w + 1. The bihomogeneous network (no biases):
    25w, (layers - 1) w^2, w.
    """
    features = 25  # (n + 1)^2 bihomogeneous features of CP^4
    if architecture == "mlp":
        return (features + 1) * width + (args.depth - 1) * (width + 1) * width + width + 1
    return features * width + (args.bihomogeneous_layers - 1) * width * width + width


def check_memory(args, architectures) -> None:
    """Refuse, before any work, a width whose run cannot fit in the memory available.

    The estimate is a lower bound: the tangent kernel on the probe set holds its Jacobian,
    `--probe` rows of the parameters' length, beside the parameters at θ₀ and at the end
    (training holds about 6 such copies: parameters, θ₀, Adam's two moments, the gradient
    and the update), 8 bytes each in float64. Activations and the data are left out.
    """
    ladders = {"mlp": args.widths, "bihomogeneous": args.bihomogeneous_widths}
    for architecture in architectures:
        width = max(ladders[architecture])
        count = parameter_count(architecture, width, args)
        copies = max(args.probe + 2, 6)
        flows.check_memory(
            8 * count * copies,
            f"{architecture} width {width} ({count:.3g} parameters; at least {copies} float64 "
            "copies of them: the probe set's Jacobian and the parameters)",
            "Choose smaller widths (or fewer --probe points).",
        )


def _flag(name: str) -> str:
    """The command-line flag of an `args` attribute: `lr_halving` -> `--lr-halving`."""
    return "--" + name.replace("_", "-")


# Pure helpers: the measures and the statistics.


def kernel_drift(k0: Float[Array, "P P"], k1: Float[Array, "P P"]) -> float:
    r"""$\|\Theta_1 - \Theta_0\|_F / \|\Theta_0\|_F$ of two kernel matrices on the same points."""
    k0, k1 = np.asarray(k0), np.asarray(k1)
    norm = np.linalg.norm(k0)
    if not norm > 0:
        raise ValueError("kernel_drift: the initial kernel is zero on the probe set.")
    return float(np.linalg.norm(k1 - k0) / norm)


def metric_distance(
    g_a: Complex[Array, "N m m"],
    g_b: Complex[Array, "N m m"],
    g_ref: Complex[Array, "N m m"],
    weights: Float[Array, " N"],
) -> float:
    r"""$\big(\sum_a w_a\|g_a - g'_a\|_F^2/\|g^\mathrm{ref}_a\|_F^2 / \sum_a w_a\big)^{1/2}$: a weighted RMS relative distance."""
    g_a, g_b, g_ref, w = (np.asarray(x) for x in (g_a, g_b, g_ref, weights))
    diff = np.sum(np.abs(g_a - g_b) ** 2, axis=(1, 2))
    ref = np.sum(np.abs(g_ref) ** 2, axis=(1, 2))
    return float(np.sqrt(np.sum(w * diff / ref) / np.sum(w)))


def seed_statistics(values) -> dict:
    r"""Mean of `values` (one per seed), its standard error $s/\sqrt S$ and the 95% Student-t interval ($S - 1$ dof)."""
    x = np.asarray(values, float)
    if x.size < 2 or not np.all(np.isfinite(x)):
        raise ValueError(f"seed_statistics: need at least 2 finite values, got {x.tolist()}")
    mean, stderr = mean_and_stderr(x)
    quantile = float(scipy.stats.t.ppf(0.5 + CONFIDENCE / 2, x.size - 1))
    half = quantile * stderr
    return {
        "mean": mean,
        "stderr": stderr,
        "seeds": int(x.size),
        "t_quantile": quantile,
        "interval": [mean - half, mean + half],
        "confidence": CONFIDENCE,
    }


def exponent_fit(widths, values, *, log_values: bool = True) -> dict:
    r"""Slopes of $\log v$ (or $v$) against $\log n$ (or $\log_2 n$), per seed and pooled.

    `values`: (seeds, widths). With `log_values`, each seed's least-squares line
    $\log v = a + b\log n$ gives a power-law exponent $b$; without, the line
    $v = a + b\log_2 n$ (the change per doubling of width). `per_seed`: the
    slopes; `mean`, `stderr`, `interval`: their Student-t statistics over seeds
    (`seed_statistics`); `pooled`: one line through all points, its slope's
    standard error and interval $b \pm t_{0.975, N-2}\,\mathrm{se}$.
    """
    widths = np.asarray(widths, float)
    values = np.asarray(values, float)
    if values.ndim != 2 or values.shape[1] != widths.size:
        raise ValueError(f"exponent_fit: values must be (seeds, {widths.size}), got {values.shape}")
    if log_values and not np.all(values > 0):
        raise ValueError("exponent_fit: a power law needs positive values.")
    t = np.log(widths) if log_values else np.log2(widths)
    y = np.log(values) if log_values else values
    slopes = [line_fit(t, row).slope for row in y]
    mean = np.mean(values, axis=0)
    local = local_orders(t, np.log(mean) if log_values else mean, 1.0)
    pooled = line_fit(np.tile(t, values.shape[0]), y.ravel())
    quantile = float(scipy.stats.t.ppf(0.5 + CONFIDENCE / 2, max(pooled.dof, 1)))
    half = quantile * pooled.stderr
    return {
        "model": "log v = a + b log n" if log_values else "v = a + b log2 n",
        "per_seed": slopes,
        "local_slopes": local,  # between consecutive widths, of the mean over seeds
        **seed_statistics(slopes),
        "pooled": {
            "slope": pooled.slope,
            "intercept": pooled.intercept,
            "stderr": pooled.stderr,
            "dof": pooled.dof,
            "t_quantile": quantile,
            "interval": [pooled.slope - half, pooled.slope + half],
        },
    }


# How a fitted trend reads: the sign of its interval (`_trend`).
TREND_WORDS = {-1: "falls", 0: "shows no significant trend", 1: "grows"}


def _sign(interval) -> int:
    """+1 if the interval lies above 0, -1 if below, 0 if it contains 0."""
    lo, hi = interval
    return 1 if lo > 0 else -1 if hi < 0 else 0


def _trend(fit: dict) -> int:
    """The sign of a fitted slope where both its intervals (over seeds, pooled) agree, else 0."""
    signs = {_sign(fit["interval"]), _sign(fit["pooled"]["interval"])}
    return signs.pop() if len(signs) == 1 else 0


def _intervals(fit: dict, spec: str = ".3f") -> str:
    """Both 95% intervals of a fit, over seeds and pooled (a trend needs both on one side of 0)."""
    (a, b), (c, d) = fit["interval"], fit["pooled"]["interval"]
    return f"95% interval [{a:{spec}}, {b:{spec}}] over seeds, [{c:{spec}}, {d:{spec}}] pooled"


def _closing_and_drift(gap_sign: int, drift_sign: int) -> str:
    """Whether the gap's trend goes with the drift's, as the lazy (NTK) picture has it."""
    if gap_sign < 0 and drift_sign < 0:
        return (
            "the gap closes as the drift falls: as the lazy-training picture has it, wider "
            "networks move their kernel less and the frozen network catches up."
        )
    if gap_sign < 0:
        return (
            "the gap closes although the drift does not fall: the frozen network catches up "
            "because its features at theta_0 fit better with width, not because the evolving "
            "kernel moves less."
        )
    if drift_sign < 0:
        return "the drift falls with width but the gap does not close."
    return "neither the gap closes nor the drift falls with width at these sizes."


def verdict(summary: dict) -> list[str]:
    """Sentences stating what one architecture's numbers say about the paper's claim.

    Where runs diverged, a warning comes first, counting them and naming their widths.
    """
    widths = summary["widths"]
    gaps = [summary["per_width"][str(w)]["gap"] for w in widths]
    signs = [_sign(g["interval"]) for g in gaps]
    worse = [w for w, s in zip(widths, signs, strict=True) if s > 0]
    better = [w for w, s in zip(widths, signs, strict=True) if s < 0]
    lines = []
    if summary.get("diverged_runs"):
        where = [w for w in widths if summary["per_width"][str(w)].get("diverged_runs")]
        lines.append(
            f"WARNING: {summary['diverged_runs']} of {summary['runs']} runs diverged (test sigma "
            f"ending above {DIVERGED:g} times its start) at widths {where}; every number below "
            "includes them: lower --lr or raise --batch."
        )
    mean_gaps = ", ".join(f"{g['mean']:+.4f}" for g in gaps)
    if len(worse) == len(widths):
        claim = "the frozen network generalises worse at every width"
    elif worse:
        claim = f"the frozen network generalises worse at widths {worse}"
    elif better:
        claim = f"the frozen network generalises better at widths {better}"
    else:
        claim = "no width shows a significant difference between the regimes"
    undecided = [w for w, s in zip(widths, signs, strict=True) if s == 0]
    if undecided and (worse or better):
        claim += f"; at widths {undecided} the 95% interval of the gap contains 0"
    lines.append(f"test sigma gap (frozen - evolving) over widths {widths}: {mean_gaps}; {claim}.")
    drift = summary["fits"]["drift"]
    direction = TREND_WORDS[_trend(drift)]
    inside = [e for e in NTK_EXPONENTS if drift["interval"][0] <= e <= drift["interval"][1]]
    if inside and _sign(drift["interval"]) == 0:  # 0 (no dependence on width) inside as well
        held = (
            f"both NTK exponents {list(NTK_EXPONENTS)}"
            if len(inside) == len(NTK_EXPONENTS)
            else f"NTK exponent {inside[0]}"
        )
        reading = (
            f"the interval over seeds holds {held} and 0 (no dependence on width): too wide to "
            "tell them apart; more seeds or widths would"
        )
    elif inside:
        reading = f"consistent with NTK exponent(s) {inside} (0 lies outside the interval)"
    else:
        reading = f"neither NTK exponent {list(NTK_EXPONENTS)} lies inside the interval over seeds"
    lines.append(
        f"kernel drift {direction} with width: exponent {drift['mean']:.3f}, "
        f"{_intervals(drift)} (local "
        f"exponents between consecutive widths {[round(x, 2) for x in drift['local_slopes']]}); "
        f"{reading}."
    )
    distance = summary["fits"]["distance"]
    lines.append(
        f"evolving-frozen metric distance "
        f"{TREND_WORDS[_trend(distance)]}"
        f" with width: exponent {distance['mean']:.3f}, {_intervals(distance)}."
    )
    trend = summary["fits"]["gap_trend"]
    closing = {
        -1: "closes (shrinks) as width grows",
        0: "shows no significant trend with width",
        1: "widens as width grows",
    }[_trend(trend)]
    lines.append(
        f"the test sigma gap {closing}: {trend['mean']:+.4f} per doubling, "
        f"{_intervals(trend, '+.4f')}."
    )
    lines.append(_closing_and_drift(_trend(trend), _trend(drift)))
    fit = [
        summary["per_width"][str(w)]["sigma_train_frozen"]["mean"]
        - summary["per_width"][str(w)]["sigma_train_evolving"]["mean"]
        for w in widths
    ]
    total = float(np.mean([g["mean"] for g in gaps]))
    in_training = float(np.mean(fit))
    share = "most" if abs(in_training) > abs(total - in_training) else "less than half"
    split = (
        f"of the mean test sigma gap {total:+.4f}, {in_training:+.4f} is already in training "
        f"sigma (frozen minus evolving, on the training points) and {total - in_training:+.4f} "
        "in the difference of test-minus-training gaps"
    )
    if worse:
        lines.append(
            f"{split}: {share} of the frozen network's deficit is in fitting the training "
            "points rather than in generalising."
        )
    else:
        lines.append(f"{split}; the frozen network is significantly worse at no width.")
    return lines


# Training and measurement.
#
# The loop is `solvers.train_potential`'s algorithm (Adam on minibatches of the σ loss, one
# permutation per epoch from `np.random.default_rng(seed)`, the last partial minibatch
# dropped, the minibatch weights as they are), written with module-level jitted functions
# whose arguments are the network's arrays: one compilation per (architecture, width,
# regime) serves every seed. `train_potential` builds its step and, in the frozen regime,
# its evaluation as new closures on each call, so each of its runs compiles anew (measured
# 8 s for an evolving and 23 s for a frozen run of four steps at width 8); the slow test
# checks that this loop gives its parameters.

LOSS = flows.MongeAmpereLoss(1.0)  # the σ loss


class LinearisedNetwork(eqx.Module):
    r"""$u \mapsto f_{p_0}(u) + \partial_p f_{p_0}(u)\cdot\delta$: `initial` ($f$ at $p_0$) linearised in its parameters.

    `delta` has the structure of `initial`'s inexact arrays (`eqx.partition` by
    `eqx.is_inexact_array`): the parameter displacement $p - p_0$.
    """

    initial: eqx.Module
    delta: object

    def __call__(self, u: Float[Array, " f"]) -> Float[Array, ""]:
        params0, static = eqx.partition(self.initial, eqx.is_inexact_array)

        def f(p):
            return jnp.reshape(eqx.combine(p, static)(u), ())

        value, tangent = jax.jvp(f, (params0,), (self.delta,))
        return value + tangent


def initial_parameters(potential: flows.KahlerPotential):
    """The trained arrays of `potential`'s network at theta_0 (as `flows.PotentialFlow` takes them)."""
    return eqx.partition(potential.network, eqx.is_inexact_array)[0]


def regime_potential(potential: flows.KahlerPotential, params, regime: str):
    r"""The potential trained in `regime` at parameters `params` (a pytree of the network's arrays).

    `evolving`: the network with parameters `params`. `frozen`: the network
    linearised at $\theta_0$ (`potential`'s own parameters), $\phi_0 +
    \nabla_\theta\phi_0\cdot(\theta - \theta_0)$, as `flows.PotentialFlow.linearised`.
    """
    params0, static = eqx.partition(potential.network, eqx.is_inexact_array)
    if regime == "evolving":
        network = eqx.combine(params, static)
    else:
        delta = jax.tree.map(jnp.subtract, params, params0)
        network = LinearisedNetwork(potential.network, delta)
    return eqx.tree_at(lambda p: p.network, potential, network)


@eqx.filter_jit
def regime_metric(potential, params, regime: str, points, jacobian) -> Complex[Array, "N m m"]:
    """The pulled-back metric of `regime_potential` at `points` (`KahlerPotential.metric`)."""
    return regime_potential(potential, params, regime).metric(points, jacobian)


@eqx.filter_jit
def tangent_kernel(
    potential: flows.KahlerPotential, params, regime: str, points: Complex[Array, "M n1"]
) -> Float[Array, "M M"]:
    r"""$\Theta(z_a, z_b) = \nabla_\theta\phi(z_a)\cdot\nabla_\theta\phi(z_b)$, $\phi$ = `regime_potential` at `params`.

    The same function for both regimes: in the frozen one $\nabla_\theta\phi$ is
    $\nabla_\theta\phi_0$ whatever $\theta$, so its drift is zero up to rounding.
    """

    def value(p, z):
        return regime_potential(potential, p, regime)(z)

    def row(z):
        return jax.flatten_util.ravel_pytree(jax.grad(value)(params, z))[0]

    jac = jax.vmap(row)(points)
    return jac @ jac.T


@eqx.filter_jit
def _step(potential, params, state, batch, regime: str, optimizer):
    """One Adam step on a minibatch (points, jacobian, omega, weights): parameters, state, loss."""
    points, jacobian, omega, weights = batch

    def loss(p):
        return LOSS(omega, weights, regime_metric(potential, p, regime, points, jacobian))

    value, grad = jax.value_and_grad(loss)(params)
    with jax.numpy_dtype_promotion("standard"):  # optax mixes Python floats and int32 counts
        updates, state = optimizer.update(grad, state, params)
    return optax.apply_updates(params, updates), state, value


def make_optimizer(args, steps_per_epoch: int) -> optax.GradientTransformation:
    r"""Adam or SGD (`--optimizer`) at rate `--lr` for `--lr-constant` epochs, then decaying with half-life `--lr-halving`.

    The decay is continuous (`optax.exponential_decay` without `staircase`): after
    `--lr-constant` epochs the rate is `--lr` $\times 2^{-e/h}$, $e$ the epochs since
    (fractional, counted in steps) and $h$ = `--lr-halving`.

    One rate at every width: Adam's per-parameter step does not depend on the
    width, and for SGD the function-space time scale is set by the tangent
    kernel, whose mean diagonal at $\theta_0$ (`kernel_scale`, recorded per run)
    is nearly width-independent for these networks (for the MLP at widths 8 to 128
    at the defaults, 1.10 to 1.34 over the runs, 1.17 to 1.30 as means over seeds),
    as in the NTK parametrisation.
    """
    rate = optax.exponential_decay(
        args.lr,
        transition_steps=steps_per_epoch * args.lr_halving,
        decay_rate=0.5,
        transition_begin=steps_per_epoch * args.lr_constant,
    )
    return optax.adam(rate) if args.optimizer == "adam" else optax.sgd(rate)


def train(potential, regime, sample, *, optimizer, epochs: int, batch_size: int, seed: int):
    """`potential` trained in `regime` on `sample` (`solvers.train_potential`'s loop): parameters, epoch losses.

    Raises ValueError on a non-finite loss or parameters (a rate too large for the loss).
    """
    params = initial_parameters(potential)
    with jax.numpy_dtype_promotion("standard"):
        state = optimizer.init(params)
    rng = np.random.default_rng(seed)
    arrays = (sample.points, sample.jacobian, sample.omega, sample.weights)
    batches = sample.count // batch_size
    losses = []
    for epoch in range(1, epochs + 1):
        order = rng.permutation(sample.count)
        values = []
        for b in range(batches):
            index = order[b * batch_size : (b + 1) * batch_size]
            batch = tuple(x[index] for x in arrays)
            params, state, value = _step(potential, params, state, batch, regime, optimizer)
            values.append(value)
        values = np.asarray(jax.device_get(values))
        finite = bool(jax.tree.all(jax.tree.map(lambda x: jnp.all(jnp.isfinite(x)), params)))
        if not (np.all(np.isfinite(values)) and finite):
            raise ValueError(
                f"the {regime} run's loss or parameters became non-finite in epoch {epoch}; "
                "lower --lr or raise --batch."
            )
        losses.append(float(np.mean(values)))
    return params, losses


def _flat(params) -> Float[Array, " P"]:
    return jax.flatten_util.ravel_pytree(params)[0]


def run_regime(potential, regime, data, optimizer, args, run_seed):
    """One regime's training from theta_0 and its measures: the record and the final test metric."""
    train_set, test_set, probe = data
    start = time.perf_counter()
    params0 = initial_parameters(potential)
    params, losses = train(
        potential,
        regime,
        train_set,
        optimizer=optimizer,
        epochs=args.epochs,
        batch_size=args.batch,
        seed=run_seed,
    )
    seconds = time.perf_counter() - start
    g0 = regime_metric(potential, params0, regime, test_set.points, test_set.jacobian)
    g = regime_metric(potential, params, regime, test_set.points, test_set.jacobian)
    sigma0 = float(flows.sigma_measure(test_set, g0)[0])
    g_train = regime_metric(potential, params, regime, train_set.points, train_set.jacobian)
    sigma_train = float(flows.sigma_measure(train_set, g_train)[0])
    sigma, error = (float(x) for x in flows.sigma_measure(test_set, g))
    k0 = tangent_kernel(potential, params0, regime, probe)
    k1 = tangent_kernel(potential, params, regime, probe)
    theta0, theta = _flat(params0), _flat(params)
    record = {
        "regime": regime,
        "sigma_test": sigma,
        "sigma_test_error": error,
        "sigma_test_start": sigma0,
        "sigma_train": sigma_train,
        "kernel_drift": kernel_drift(k0, k1),
        "kernel_scale": float(jnp.mean(jnp.diag(k0))),
        "parameter_change": float(jnp.linalg.norm(theta - theta0) / jnp.linalg.norm(theta0)),
        "parameters": int(theta.size),
        "train_loss": losses,
        "training_seconds": seconds,
        # a step too large for the loss: test sigma ends above twice its start
        "diverged": bool(sigma > DIVERGED * sigma0),
    }
    bad = [
        k
        for k in (
            "sigma_test",
            "sigma_test_error",
            "sigma_test_start",
            "sigma_train",
            "kernel_drift",
            "kernel_scale",
            "parameter_change",
        )
        if not math.isfinite(record[k])
    ]
    if bad:
        raise ValueError(
            f"the {regime} run gave non-finite {bad}; lower --lr (now {args.lr:g}) or raise "
            "--batch."
        )
    return record, g


def seed_data(surface, run_seed: int, args):
    """A seed's training, test and probe points (drawn from `jax.random.key(run_seed)`)."""
    key = jax.random.key(run_seed)
    total = args.points + args.test_points
    sample = flows.point_sample(surface, flows.sample_points(surface, key, total))
    train_set = flows.subsample(sample, np.arange(args.points))
    test_set = flows.subsample(sample, np.arange(args.points, total))
    return train_set, test_set, test_set.points[: args.probe]


def near_fubini_study(potential: flows.KahlerPotential, key, noise: float) -> flows.KahlerPotential:
    r"""The bihomogeneous network re-initialised at Fubini–Study plus `noise`.

    With $u$ the bihomogeneous features, $\sum_i |z_i|^2/|z|^2 = 1$: the first
    layer's rows are the indicator $d$ of the diagonal features, each later layer's
    rows $1/\text{fan-in}$, and the output weights $c_j = 1/\sqrt{\text{width}}$, so
    every layer is the constant 1, $f$ is constant and the metric is Fubini–Study.
    Each weight matrix then gets `noise` $\times\,\mathcal N(0, 1)/\sqrt{\text{fan-in}}$.
    The squares keep every layer positive whatever the signs; the metric's departure
    from Fubini–Study falls with the width, the output averaging the rows' noise.
    """
    network = potential.network
    n1 = math.isqrt(network.layers[0].shape[1])  # (n + 1)^2 features of CP^n
    i, j = np.triu_indices(n1)
    diagonal = np.zeros(n1 * n1)
    diagonal[np.flatnonzero(i == j)] = 1.0
    layers = []
    for layer, (w, k) in enumerate(
        zip(network.layers, jax.random.split(key, len(network.layers)), strict=True)
    ):
        fan_in = w.shape[1]
        base = diagonal if layer == 0 else np.full(fan_in, 1.0 / fan_in)
        layers.append(
            jnp.broadcast_to(base, w.shape)
            + noise * jax.random.normal(k, w.shape) / np.sqrt(fan_in)
        )
    out = jnp.full(network.out.shape, 1 / np.sqrt(network.out.shape[0]))
    network = eqx.tree_at(lambda n: (n.layers, n.out), network, (tuple(layers), out))
    return flows.KahlerPotential(network, network, centred=False)


def make_potential(architecture: str, width: int, key, args) -> flows.KahlerPotential:
    """The network of `architecture` at `width`, initialised from `key`."""
    if architecture == "mlp":
        return flows.kahler_potential(5, key, width=width, depth=args.depth)
    potential = flows.bihomogeneous_potential(5, key, widths=(width,) * args.bihomogeneous_layers)
    if args.bihomogeneous_init == "mlgeometry":
        return potential
    return near_fubini_study(potential, jax.random.fold_in(key, 1), args.bihomogeneous_noise)


def run_width(architecture, width, data, optimizer, run_seed, args):
    """The evolving and frozen runs of one (architecture, width, seed) from one theta_0."""
    code = width + 100_000 * ARCHITECTURES.index(architecture)
    potential = make_potential(
        architecture, width, jax.random.fold_in(jax.random.key(run_seed), code), args
    )
    runs, metrics = [], {}
    for regime in REGIMES:
        start = time.perf_counter()
        record, metrics[regime] = run_regime(potential, regime, data, optimizer, args, run_seed)
        record.update(architecture=architecture, width=width, seed=run_seed)
        record["seconds"] = time.perf_counter() - start
        runs.append(record)
        if record["diverged"]:
            progress(f"  diverged: test sigma above {DIVERGED:g} times its start; lower --lr")
        progress(
            f"{architecture} width {width} seed {run_seed} {regime}: test sigma "
            f"{record['sigma_test_start']:.4f} -> {record['sigma_test']:.4f} "
            f"+- {record['sigma_test_error']:.4f} (train {record['sigma_train']:.4f}), kernel drift {record['kernel_drift']:.3g}, "
            f"parameter change {record['parameter_change']:.3g} ({record['seconds']:.0f} s)"
        )
    test_set = data[1]
    pair = {
        "architecture": architecture,
        "width": width,
        "seed": run_seed,
        "parameters": runs[0]["parameters"],
        "metric_distance": metric_distance(
            metrics["evolving"], metrics["frozen"], test_set.g_fs, test_set.weights
        ),
        "diverged": any(r["diverged"] for r in runs),  # either regime's run
    }
    if not math.isfinite(pair["metric_distance"]):
        raise ValueError(
            f"{architecture} width {width} seed {run_seed}: the evolving-frozen metric "
            f"distance is {pair['metric_distance']}; lower --lr (now {args.lr:g}) or raise "
            "--batch."
        )
    return runs, pair


def refuse_divergence(architecture: str, widths, runs, seeds) -> None:
    """Refuse to fit an architecture whose diverged runs leave the fits without ground.

    A (width, seed) is sound where neither its evolving nor its frozen run diverged
    (test σ ending above `DIVERGED` times its start). The fits need `MIN_WIDTHS` widths
    with at least 2 sound seeds; with fewer (every run diverged, say) a fitted exponent
    or verdict would describe the divergence, not the networks: ValueError, naming how
    many runs diverged and where.
    """
    diverged = [r for r in runs if r["diverged"]]
    if not diverged:
        return
    lost = {(r["width"], r["seed"]) for r in diverged}
    sound = [w for w in widths if sum((w, s) not in lost for s in seeds) >= 2]
    if len(sound) < MIN_WIDTHS:
        count = "all" if len(diverged) == len(runs) else f"{len(diverged)} of"
        raise ValueError(
            f"{architecture}: {count} {len(runs)} runs diverged (test sigma ending above "
            f"{DIVERGED:g} times its start), at widths {sorted({w for w, _ in lost})}; the fits "
            f"need 2 seeds without a diverged run at each of {MIN_WIDTHS} widths or more, "
            f"{len(sound)} of {len(widths)} widths have them, so nothing is fitted: lower --lr "
            "or raise --batch."
        )


def summarise(architecture, widths, runs, pairs, seeds) -> dict:
    """Per-width statistics over seeds, the fits against width and the verdict of one architecture.

    Raises ValueError where too many runs diverged to fit (`refuse_divergence`).
    """
    refuse_divergence(architecture, widths, runs, seeds)

    def table(regime, key):
        index = {(r["width"], r["seed"]): r[key] for r in runs if r["regime"] == regime}
        return np.array([[index[(w, s)] for w in widths] for s in seeds])

    sigma = {regime: table(regime, "sigma_test") for regime in REGIMES}
    train = {regime: table(regime, "sigma_train") for regime in REGIMES}
    drift = table("evolving", "kernel_drift")
    index = {(p["width"], p["seed"]): p["metric_distance"] for p in pairs}
    distance = np.array([[index[(w, s)] for w in widths] for s in seeds])
    gap = sigma["frozen"] - sigma["evolving"]
    per_width = {
        str(w): {
            "sigma_evolving": seed_statistics(sigma["evolving"][:, i]),
            "sigma_frozen": seed_statistics(sigma["frozen"][:, i]),
            "gap": seed_statistics(gap[:, i]),
            "sigma_train_evolving": seed_statistics(train["evolving"][:, i]),
            "sigma_train_frozen": seed_statistics(train["frozen"][:, i]),
            "kernel_drift": seed_statistics(drift[:, i]),
            "frozen_kernel_drift_max": float(np.max(table("frozen", "kernel_drift")[:, i])),
            "metric_distance": seed_statistics(distance[:, i]),
            "parameters": next(p["parameters"] for p in pairs if p["width"] == w),
            "diverged_runs": sum(r["diverged"] for r in runs if r["width"] == w),
        }
        for i, w in enumerate(widths)
    }
    summary = {
        "architecture": architecture,
        "widths": list(widths),
        "per_width": per_width,
        "fits": {
            "drift": exponent_fit(widths, drift),
            "distance": exponent_fit(widths, distance),
            "gap_trend": exponent_fit(widths, gap, log_values=False),
        },
        "interval_method": "Student-t over seeds of the per-seed slopes (pooled: the pooled "
        "fit's standard error times the t quantile at N - 2 dof)",
    }
    summary["fits"]["drift"]["ntk_exponents_inside"] = [
        e
        for e in NTK_EXPONENTS
        if summary["fits"]["drift"]["interval"][0] <= e <= summary["fits"]["drift"]["interval"][1]
    ]
    summary["runs"] = len(runs)
    summary["diverged_runs"] = sum(r["diverged"] for r in runs)
    summary["diverged"] = [
        {k: r[k] for k in ("width", "seed", "regime")} for r in runs if r["diverged"]
    ]
    summary["verdict"] = verdict(summary)
    return summary


# Figures.


def _errorbars(ax, widths, stats, label, fmt):
    means = [s["mean"] for s in stats]
    errors = [s["stderr"] for s in stats]
    ax.errorbar(widths, means, yerr=errors, fmt=fmt, capsize=3, label=label)


def _diverged_marks(ax, points, total: int, what: str = "diverged run") -> None:
    """Mark the diverged runs' (width, value) in red, counted in the legend; nothing if none."""
    if points:
        w, v = zip(*points, strict=True)
        ax.plot(
            w,
            v,
            "x",
            color="tab:red",
            ms=8,
            mew=1.5,
            label=f"{what} ({len(points)} of {total}; test σ ends > {DIVERGED:g}× start)",
        )


def _legend_below(ax) -> None:
    """The legend under the axes, where it covers no data or reference line at any width."""
    ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.16), frameon=False)


def figures(record, args):
    """feature_learning.png (σ and drift against width) and feature_learning_distance.png.

    Diverged runs are marked (red crosses, each run's own value) and counted in the legends;
    a fit's label gives both of its 95% intervals and the trend the verdict reads from them.
    """
    summaries = record["summary"]
    rows = len(summaries)
    fig = Figure(figsize=(10, 5.2 * rows), layout="constrained")
    axes = fig.subplots(rows, 2, squeeze=False)
    fig2 = Figure(figsize=(5.5, 5.2 * rows), layout="constrained")
    axes2 = fig2.subplots(rows, 1, squeeze=False)
    for row, (name, summary) in enumerate(summaries.items()):
        widths = np.asarray(summary["widths"], float)
        per = [summary["per_width"][str(int(w))] for w in widths]
        runs = [r for r in record["runs"] if r["architecture"] == name]
        pairs = [p for p in record["pairs"] if p["architecture"] == name]
        ax = axes[row, 0]
        _errorbars(ax, widths, [p["sigma_evolving"] for p in per], "evolving", "o-")
        _errorbars(ax, widths, [p["sigma_frozen"] for p in per], "frozen (linearised)", "s--")
        ax.axhline(
            record["sigma_start"][name],
            color="0.6",
            lw=0.8,
            label="at θ₀ (mean over seeds and widths)",
        )
        _diverged_marks(
            ax, [(r["width"], r["sigma_test"]) for r in runs if r["diverged"]], len(runs)
        )
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xlabel("width n (hidden units per layer)")
        ax.set_ylabel("test σ (dimensionless)")
        ax.set_title(f"{name}: test σ after training (± s.e. over {len(record['seeds'])} seeds)")
        _legend_below(ax)
        evolving = [r for r in runs if r["regime"] == "evolving"]
        for ax, key, fit_key, title, marks, what in (
            (
                axes[row, 1],
                "kernel_drift",
                "drift",
                "evolving kernel drift ‖Θ_T − Θ_0‖/‖Θ_0‖",
                ([(r["width"], r["kernel_drift"]) for r in evolving if r["diverged"]], evolving),
                "diverged run",
            ),
            (
                axes2[row, 0],
                "metric_distance",
                "distance",
                "evolving − frozen metric distance D",
                ([(p["width"], p["metric_distance"]) for p in pairs if p["diverged"]], pairs),
                "seed with a diverged run",
            ),
        ):
            label = "measured (± s.e. over seeds)"
            if fit_key == "drift":
                frozen = max(p["frozen_kernel_drift_max"] for p in per)
                label = f"evolving, ± s.e. over seeds (frozen: all ≤ {frozen:.0e})"
            _errorbars(ax, widths, [p[key] for p in per], label, "o")
            fit = summary["fits"][fit_key]
            pooled = fit["pooled"]
            (a, b), (c, d) = fit["interval"], pooled["interval"]
            ax.plot(
                widths,
                np.exp(pooled["intercept"]) * widths ** pooled["slope"],
                "-",
                label=f"least-squares fit n^b, b = {fit['mean']:.2f}; 95%: [{a:.2f}, {b:.2f}] "
                f"over seeds,\n[{c:.2f}, {d:.2f}] pooled: {TREND_WORDS[_trend(fit)]}",
            )
            if fit_key == "drift":
                anchor = per[0][key]["mean"] * (widths / widths[0]) ** -0.5
                ax.plot(widths, anchor, ":", color="0.4", label="n^(-1/2) (NTK)")
            _diverged_marks(ax, marks[0], len(marks[1]), what)
            ax.set_xscale("log", base=2)
            ax.set_yscale("log")
            ax.set_xlabel("width n (hidden units per layer)")
            ax.set_ylabel("relative Frobenius norm (dimensionless)")
            ax.set_title(f"{name}: {title}", fontsize=9)
            _legend_below(ax)
    save_figure(fig, args.out / "feature_learning.png")
    save_figure(fig2, args.out / "feature_learning_distance.png")


def main(argv=None) -> dict:
    args = parse_args(argv)
    args.out = solvers.output_directory(args.out)
    start = time.perf_counter()
    architectures = ARCHITECTURES if args.architecture == "both" else (args.architecture,)
    check_memory(args, architectures)
    path = args.out / "feature_learning.json"
    surface = flows.Hypersurface.fermat_quintic()
    ladders = {"mlp": args.widths, "bihomogeneous": args.bihomogeneous_widths}
    seeds = [args.seed + i for i in range(args.seeds)]
    progress(
        f"Fermat quintic: {', '.join(f'{a} widths {ladders[a]}' for a in architectures)}; "
        f"seeds {seeds}; {args.points} training, {args.test_points} test, {args.probe} probe "
        f"points; {args.epochs} epochs of batch {args.batch}"
    )
    runs, pairs, sigma_start = [], [], {a: [] for a in architectures}
    settings = {
        "surface": "fermat_quintic",
        "architectures": list(architectures),
        "widths": {a: sorted(ladders[a]) for a in architectures},
        "seeds": seeds,
        "settings": {
            k: getattr(args, k)
            for k in (
                "depth",
                "bihomogeneous_layers",
                "points",
                "test_points",
                "probe",
                "epochs",
                "batch",
                "lr",
                "lr_constant",
                "lr_halving",
                "optimizer",
                "small",
            )
        },
        "optimizer": args.optimizer,
        "dtype": "float64",
        "frozen_drift_tolerance": FROZEN_DRIFT_TOLERANCE,
    }
    # made once: the jitted step compiled for it at one width serves every seed
    optimizer = make_optimizer(args, args.points // args.batch)
    for run_seed in seeds:
        data = seed_data(surface, run_seed, args)
        for architecture in architectures:
            for width in ladders[architecture]:
                new_runs, pair = run_width(architecture, width, data, optimizer, run_seed, args)
                runs += new_runs
                pairs.append(pair)
                sigma_start[architecture].append(new_runs[0]["sigma_test_start"])
                # the runs so far: a later failure (a width out of memory, too many
                # diverged runs to fit) keeps them
                partial = {"complete": False, **settings, "runs": runs, "pairs": pairs}
                write_json(path, {**partial, "seconds": time.perf_counter() - start})
    frozen = max(r["kernel_drift"] for r in runs if r["regime"] == "frozen")
    if frozen > FROZEN_DRIFT_TOLERANCE:
        raise RuntimeError(
            f"feature_learning: a frozen run's tangent kernel moved by {frozen:.3g} (relative), "
            f"above {FROZEN_DRIFT_TOLERANCE:g}: the linearised network is not linear in theta."
        )
    summary = {
        a: summarise(
            a,
            sorted(ladders[a]),
            [r for r in runs if r["architecture"] == a],
            [p for p in pairs if p["architecture"] == a],
            seeds,
        )
        for a in architectures
    }
    record = {
        "complete": True,
        **settings,
        "frozen_drift_max": frozen,
        "sigma_start": {a: float(np.mean(v)) for a, v in sigma_start.items()},
        "diverged_runs": sum(r["diverged"] for r in runs),
        "runs": runs,
        "pairs": pairs,
        "summary": summary,
        "seconds": time.perf_counter() - start,
        "machine": machine(),
    }
    figures(record, args)
    write_json(path, record)
    for a in architectures:
        fits = summary[a]["fits"]
        lines = summary[a]["verdict"]
        warned = 1 if summary[a]["diverged_runs"] else 0  # the warning, before any number
        for line in lines[:warned]:
            print(f"{a}: {line}", flush=True)
        progress(
            f"{a}: drift exponent {fits['drift']['mean']:.3f} "
            f"[{fits['drift']['interval'][0]:.3f}, {fits['drift']['interval'][1]:.3f}], "
            f"distance exponent {fits['distance']['mean']:.3f} "
            f"[{fits['distance']['interval'][0]:.3f}, {fits['distance']['interval'][1]:.3f}] "
            f"(95%, Student-t over {len(seeds)} seeds); frozen drift at most {frozen:.1e}"
        )
        for line in lines[warned:]:
            print(f"{a}: {line}", flush=True)
    return record


if __name__ == "__main__":
    sys.exit(solvers.run_program(main, "feature_learning"))
