"""experiments/feature_learning.py: the kernel drift and evolving–frozen distance against width.

The default suite checks the program's pure helpers against closed forms (the drift
and distance measures, the Student-t statistics, the power-law fit on exact and noisy
data, the verdict reading its numbers), the refusals (too many diverged runs to fit,
a diverging rate as one message line, flags that would change nothing) and the
linearised network against `flows.PotentialFlow.linearised`, each in a few seconds. The slow tests run
`--small` (50 s on two lightly loaded cores, 3 minutes at load 7) and check the JSON's
structure, the frozen runs' zero drift and the fitted exponents' intervals, and check
that the program's training loop gives `solvers.train_potential`'s parameters.
"""

import json
import math

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
import scipy.stats

import flows
import solvers

from .helpers import experiment_program as _program
from .helpers import max_abs, refusal


@pytest.fixture(scope="module")
def fl():
    return _program("feature_learning")


# the Student-t quantile at 2 degrees of freedom in closed form, t_p = (2p - 1)/sqrt(2p(1 - p))
T_975_2 = 0.95 / math.sqrt(2 * 0.975 * 0.025)  # 4.3027


def test_kernel_drift_closed_forms(fl):
    rng = np.random.default_rng(0)
    a = rng.normal(size=(6, 6))
    k0 = a @ a.T
    assert fl.kernel_drift(k0, k0) == 0.0
    # Theta_1 = 1.5 Theta_0: drift exactly 0.5 (to rounding of one scaling, 1e-15)
    assert fl.kernel_drift(k0, 1.5 * k0) == pytest.approx(0.5, rel=1e-14)
    # a perturbation E of Frobenius norm 2 on a kernel of norm 4: drift 0.5
    k0, e = 2 * np.eye(4), np.zeros((4, 4))
    e[0, 1] = e[1, 0] = math.sqrt(2)
    assert fl.kernel_drift(k0, k0 + e) == pytest.approx(0.5, rel=1e-14)
    with pytest.raises(ValueError, match="initial kernel is zero"):
        fl.kernel_drift(np.zeros((2, 2)), np.eye(2))


def test_metric_distance_closed_forms(fl):
    rng = np.random.default_rng(1)
    g = rng.normal(size=(5, 3, 3)) + 1j * rng.normal(size=(5, 3, 3))
    ref = rng.normal(size=(5, 3, 3)) + 1j * rng.normal(size=(5, 3, 3))
    w = rng.uniform(0.5, 2.0, size=5)
    assert fl.metric_distance(g, g, ref, w) == 0.0
    # g' = g + 0.3 ref at every point: every relative difference is 0.3, whatever the weights
    assert fl.metric_distance(g, g + 0.3 * ref, ref, w) == pytest.approx(0.3, rel=1e-14)
    # two points, relative differences 1 and 2, weights 3 and 1: sqrt((3*1 + 1*4)/4)
    ref2, g2 = np.stack([np.eye(2)] * 2), np.zeros((2, 2, 2))
    diff = np.stack([np.diag([1.0, 1.0]), np.diag([2.0, 2.0])])
    assert fl.metric_distance(g2, g2 + diff, ref2, np.array([3.0, 1.0])) == pytest.approx(
        math.sqrt(7 / 4), rel=1e-14
    )


def test_seed_statistics_student_t(fl):
    stats = fl.seed_statistics([1.0, 2.0, 3.0])
    assert stats["mean"] == 2.0 and stats["seeds"] == 3
    assert stats["stderr"] == pytest.approx(1 / math.sqrt(3), rel=1e-14)  # s = 1
    assert stats["t_quantile"] == pytest.approx(T_975_2, rel=1e-12)
    half = T_975_2 / math.sqrt(3)
    assert stats["interval"] == pytest.approx([2 - half, 2 + half], rel=1e-12)
    with pytest.raises(ValueError, match="at least 2 finite"):
        fl.seed_statistics([1.0, float("nan")])


def test_exponent_fit_recovers_an_exact_power_law(fl):
    widths = np.array([8, 16, 32, 64, 128])
    scales = np.array([[0.3], [1.0], [2.5]])  # a different prefactor per seed
    fit = fl.exponent_fit(widths, scales * widths**-0.5)
    # exact data: every per-seed slope is -1/2 to rounding (1e-12 of logs of O(1e2))
    assert fit["per_seed"] == pytest.approx([-0.5] * 3, abs=1e-12)
    assert fit["local_slopes"] == pytest.approx([-0.5] * 4, abs=1e-12)
    assert fit["mean"] == pytest.approx(-0.5, abs=1e-12) and fit["stderr"] < 1e-12
    assert fit["interval"] == pytest.approx([-0.5, -0.5], abs=1e-11)
    # pooled: the prefactors' spread is uncorrelated with log n, the slope stays exact
    assert fit["pooled"]["slope"] == pytest.approx(-0.5, abs=1e-12)
    assert fit["pooled"]["dof"] == 13 and fit["pooled"]["stderr"] > 0
    # the gap's trend: a linear fit per doubling, v = 0.1 - 0.02 log2 n
    trend = fl.exponent_fit(widths, np.tile(0.1 - 0.02 * np.log2(widths), (3, 1)), log_values=False)
    assert trend["mean"] == pytest.approx(-0.02, abs=1e-14)
    with pytest.raises(ValueError, match="positive values"):
        fl.exponent_fit(widths, -np.ones((3, 5)))


def test_exponent_fit_interval_on_noisy_slopes(fl):
    widths = np.array([8, 16, 32, 128])
    slopes = np.array([-0.4, -0.5, -0.9])
    values = np.exp(0.7 + slopes[:, None] * np.log(widths)[None, :])
    fit = fl.exponent_fit(widths, values)
    assert fit["per_seed"] == pytest.approx(slopes, abs=1e-12)
    sd = np.std(slopes, ddof=1)
    half = T_975_2 * sd / math.sqrt(3)
    assert fit["interval"] == pytest.approx([slopes.mean() - half, slopes.mean() + half], rel=1e-10)


def _summary(fl, gap_means, gap_half, drift, trend, train_gap=0.0):
    widths = [8, 16, 32]
    per_width = {
        str(w): {
            "gap": {"mean": g, "interval": [g - gap_half, g + gap_half]},
            "sigma_train_evolving": {"mean": 0.1},
            "sigma_train_frozen": {"mean": 0.1 + train_gap},
        }
        for w, g in zip(widths, gap_means, strict=True)
    }
    fit = {"mean": drift, "interval": [drift - 0.1, drift + 0.1], "local_slopes": [drift] * 2}
    fit["pooled"] = {"interval": [drift - 0.2, drift + 0.2]}
    slope = {"mean": trend, "interval": [trend - 0.001, trend + 0.001]}
    slope["pooled"] = {"interval": [trend - 0.002, trend + 0.002]}
    return {
        "widths": widths,
        "per_width": per_width,
        "fits": {"drift": fit, "distance": fit, "gap_trend": slope},
    }


def test_verdict_reads_the_numbers(fl):
    # frozen worse everywhere, drift falling like n^-1/2, gap closing
    lines = fl.verdict(_summary(fl, [0.2, 0.1, 0.06], 0.01, -0.5, -0.05, train_gap=0.1))
    assert "frozen network generalises worse at every width" in lines[0]
    # mean test gap 0.12, of which 0.1 in training sigma: most of it is in fitting
    assert "the gap closes as the drift falls" in lines[4]
    assert "+0.1200" in lines[5] and "+0.1000 is already in training" in lines[5]
    assert ": most of the frozen network" in lines[5]
    assert "falls" in lines[1] and "[-0.5]" in lines[1]
    assert "closes" in lines[3]
    # the opposite numbers give the opposite sentences
    lines = fl.verdict(_summary(fl, [-0.2, -0.1, 0.0], 0.01, 0.3, 0.05))
    assert "generalises better at widths [8, 16]" in lines[0] and "[32]" in lines[0]
    assert "grows" in lines[1] and "neither NTK exponent" in lines[1]
    assert "widens" in lines[3]
    assert "neither the gap closes nor the drift falls" in lines[4]
    assert "significantly worse at no width" in lines[5]
    # frozen worse with no training gap: the deficit is in generalising
    lines = fl.verdict(_summary(fl, [0.2, 0.1, 0.06], 0.01, -0.5, -0.05, train_gap=0.0))
    assert ": less than half of the frozen" in lines[5]
    lines = fl.verdict(_summary(fl, [0.01, -0.01, 0.0], 0.05, 0.0, 0.0))
    assert "no width shows a significant difference" in lines[0]
    assert "no significant trend" in lines[1] and "no significant trend" in lines[3]
    # a trend counts only where the pooled interval agrees with the one over seeds
    summary = _summary(fl, [0.2, 0.1, 0.06], 0.01, -0.15, -0.05)
    # over seeds [-0.25, -0.05], below 0; pooled [-0.35, 0.05], containing 0
    assert "no significant trend" in fl.verdict(summary)[1]
    # and the line shows both intervals, so that it does not read as a contradiction
    assert "[-0.250, -0.050] over seeds, [-0.350, 0.050] pooled" in fl.verdict(summary)[1]
    assert "the gap closes although the drift does not fall" in fl.verdict(summary)[4]
    # an interval holding both NTK exponents and 0 says nothing: it is called too wide, not
    # "consistent with NTK" (two seeds once gave [-6.96, 8.36])
    summary = _summary(fl, [0.2, 0.1, 0.06], 0.01, 0.7, -0.05)
    summary["fits"]["drift"]["interval"] = [-6.96, 8.36]
    line = fl.verdict(summary)[1]
    assert "too wide to tell them apart" in line and "consistent with" not in line


def _runs(widths, seeds, diverged):
    """Synthetic runs and pairs of one architecture: positive, width-dependent numbers, the
    (width, seed, regime) in `diverged` flagged as diverged."""
    runs, pairs = [], []
    for s in seeds:
        for w in widths:
            for regime, sigma in (("evolving", 0.05 + 0.001 * s), ("frozen", 0.3 - 0.002 * s)):
                runs.append(
                    {
                        "architecture": "mlp",
                        "width": w,
                        "seed": s,
                        "regime": regime,
                        "sigma_test": sigma * (1 + 0.01 * math.log2(w)),
                        "sigma_train": sigma,
                        "kernel_drift": (0.5 + 0.1 * s) * w**-0.5 if regime == "evolving" else 0.0,
                        "diverged": (w, s, regime) in diverged,
                    }
                )
            pairs.append(
                {
                    "architecture": "mlp",
                    "width": w,
                    "seed": s,
                    "parameters": 10 * w,
                    "metric_distance": (0.2 + 0.01 * s) * w**-0.1,
                    "diverged": any((w, s, g) in diverged for g in ("evolving", "frozen")),
                }
            )
    return runs, pairs


def test_too_many_diverged_runs_are_refused_not_fitted(fl):
    widths = [8, 16, 32]
    # every run diverged: no exponent or verdict, a message counting them
    seeds = [0, 1]
    everything = {(w, s, g) for w in widths for s in seeds for g in ("evolving", "frozen")}
    runs, pairs = _runs(widths, seeds, everything)
    with pytest.raises(ValueError, match=r"mlp: all 12 runs diverged .* lower --lr"):
        fl.summarise("mlp", widths, runs, pairs, seeds)
    # one diverged run of two seeds leaves its width one sound seed: too few for the fits
    runs, pairs = _runs(widths, seeds, {(16, 1, "frozen")})
    with pytest.raises(ValueError, match=r"1 of 12 runs diverged .* at widths \[16\]"):
        fl.summarise("mlp", widths, runs, pairs, seeds)


def test_a_diverged_run_is_counted_before_the_verdict(fl):
    # one of three seeds diverged at width 16: fitted, with the warning as the first line
    widths, seeds = [8, 16, 32], [0, 1, 2]
    runs, pairs = _runs(widths, seeds, {(16, 1, "evolving")})
    summary = fl.summarise("mlp", widths, runs, pairs, seeds)
    assert summary["diverged_runs"] == 1 and summary["runs"] == 18
    assert summary["diverged"] == [{"width": 16, "seed": 1, "regime": "evolving"}]
    assert [summary["per_width"][str(w)]["diverged_runs"] for w in widths] == [0, 1, 0]
    lines = summary["verdict"]
    assert lines[0].startswith("WARNING: 1 of 18 runs diverged") and "at widths [16]" in lines[0]
    assert len(lines) == 7 and not any("diverged" in line for line in lines[1:])
    # none diverged: no warning
    runs, pairs = _runs(widths, seeds, set())
    assert not fl.summarise("mlp", widths, runs, pairs, seeds)["verdict"][0].startswith("WARN")


def test_a_diverging_rate_ends_in_one_line(fl, capsys):
    """A rate at which the loss overflows: a one-line message from the program's runner,
    no traceback (SGD at 1e300: parameters of order 1e299 after one step, whose products
    overflow within the first epoch)."""
    surface = flows.Hypersurface.fermat_quintic()
    sample = flows.point_sample(surface, flows.sample_points(surface, jax.random.key(5), 40))
    phi = flows.kahler_potential(5, jax.random.key(6), width=4, depth=1)

    def run():
        fl.train(
            phi, "evolving", sample, optimizer=optax.sgd(1e300), epochs=2, batch_size=20, seed=0
        )

    assert solvers.run_program(run, "feature_learning") == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert err.startswith("feature_learning: the evolving run's loss or parameters became")
    assert "non-finite in epoch 1; lower --lr or raise --batch." in err


@pytest.mark.parametrize(
    "argv,message",
    [
        (
            ["--architecture", "bihomogeneous", "--widths", "8", "16"],
            "--widths set the mlp network, which --architecture bihomogeneous does not train",
        ),
        (["--architecture", "bihomogeneous", "--depth", "3"], "--depth set the mlp network"),
        (
            ["--bihomogeneous-widths", "4", "8", "--bihomogeneous-layers", "2"],
            "--bihomogeneous-widths and --bihomogeneous-layers set the bihomogeneous network, "
            "which --architecture mlp does not train",
        ),
        (["--bihomogeneous-init", "near-fs"], "--bihomogeneous-init set the bihomogeneous"),
        (
            ["--architecture", "both", "--bihomogeneous-init", "mlgeometry"]
            + ["--bihomogeneous-noise", "0.5"],
            "--bihomogeneous-init mlgeometry does not use it",
        ),
        (["--epochs", "5", "--lr-halving", "2"], "--lr-halving has no effect"),
        (["--widths", "8", "16"], "--widths needs at least 3 distinct widths, got [8, 16]"),
    ],
)
def test_flags_without_effect_are_refused(fl, tmp_path, capsys, argv, message):
    assert message in refusal(fl, argv, tmp_path, capsys)


def test_flags_with_effect_are_accepted_and_defaults_filled(fl, tmp_path):
    out = ["--out", str(tmp_path)]
    args = fl.parse_args(
        ["--architecture", "bihomogeneous", "--bihomogeneous-widths", "8", "4", "16", *out]
    )
    assert args.bihomogeneous_widths == [4, 8, 16]
    assert (args.bihomogeneous_init, args.bihomogeneous_noise, args.bihomogeneous_layers) == (
        "near-fs",
        1.0,
        1,
    )
    assert args.depth == 2 and args.lr_halving == 10
    args = fl.parse_args(
        ["--architecture", "both", "--depth", "3", "--bihomogeneous-noise", "0.5", *out]
    )
    assert (args.depth, args.bihomogeneous_noise) == (3, 0.5)
    args = fl.parse_args(["--small", "--lr-halving", "3", *out])  # 16 epochs: the rate decays
    assert args.lr_halving == 3


def test_linearised_network_matches_the_library(fl):
    """`regime_potential` against `flows.PotentialFlow`: values and tangent kernels (1e-12:
    the same sums in a different order)."""
    surface = flows.Hypersurface.fermat_quintic()
    sample = flows.point_sample(surface, flows.sample_points(surface, jax.random.key(3), 4))
    phi = flows.kahler_potential(5, jax.random.key(4), width=3, depth=1)
    flow = flows.PotentialFlow(phi, sample, "frozen")  # its sample is not used below
    params0 = fl.initial_parameters(phi)
    params = jax.tree.map(lambda x: x + 0.1 * jnp.cos(jnp.arange(x.size).reshape(x.shape)), params0)
    theta = jax.flatten_util.ravel_pytree(params)[0]
    z = sample.points
    for regime, library in (
        ("frozen", flow.linearised(theta)),
        ("evolving", flow.potential(theta)),
    ):
        mine = fl.regime_potential(phi, params, regime)
        np.testing.assert_allclose(jax.vmap(mine)(z), jax.vmap(library)(z), rtol=1e-12, atol=1e-14)
    # the frozen tangent kernel does not move; the evolving one does
    k0 = fl.tangent_kernel(phi, params0, "frozen", z)
    assert fl.kernel_drift(k0, fl.tangent_kernel(phi, params, "frozen", z)) < 1e-12
    assert fl.kernel_drift(k0, fl.tangent_kernel(phi, params, "evolving", z)) > 1e-3
    assert eqx.tree_equal(fl.initial_parameters(phi), params0)


def test_near_fubini_study_start(fl):
    """The bihomogeneous network's near-FS start: at zero noise every layer is the constant
    1 and the metric is Fubini–Study to rounding (1e-12); with noise it departs from it,
    positive definite, less at larger width (the noise is averaged over the layer)."""
    surface = flows.Hypersurface.fermat_quintic()
    sample = flows.point_sample(surface, flows.sample_points(surface, jax.random.key(5), 200))
    fs = flows.pulled_back_metric(sample)
    departures = []
    for width, layers in ((4, 2), (256, 2), (8, 1)):
        phi = flows.bihomogeneous_potential(5, jax.random.key(width), widths=(width,) * layers)
        exact = fl.near_fubini_study(phi, jax.random.key(7), 0.0)
        assert max_abs(flows.pulled_back_metric(sample, exact) - fs) < 1e-12
        noisy = flows.pulled_back_metric(sample, fl.near_fubini_study(phi, jax.random.key(7), 1.0))
        assert float(jnp.min(jnp.linalg.eigvalsh(noisy))) > 0
        departures.append(float(jnp.sqrt(jnp.mean(jnp.abs(noisy - fs) ** 2))))
    assert departures[1] < 0.5 * departures[0]
    # the study's one-layer start: near Fubini-Study's sigma, not at
    # MLGeometry's 1 to 55
    start = flows.sigma_measure(
        sample,
        flows.pulled_back_metric(
            sample,
            fl.near_fubini_study(
                flows.bihomogeneous_potential(5, jax.random.key(8), widths=(8,)),
                jax.random.key(9),
                1.0,
            ),
        ),
    )[0]
    fs_sigma = flows.sigma_measure(sample, fs)[0]
    assert abs(float(start) - float(fs_sigma)) < 0.1


@pytest.mark.slow
def test_training_loop_is_train_potentials(fl):
    """The program's loop against `solvers.train_potential` (same Adam, order, data):
    parameters equal to 1e-9 relative (rounding of 4 Adam steps of a different summation
    order; a wrong minibatch or learning rate changes them by O(1e-3))."""
    surface = flows.Hypersurface.fermat_quintic()
    sample = flows.point_sample(surface, flows.sample_points(surface, jax.random.key(5), 80))
    train, test = (flows.subsample(sample, np.arange(a, b)) for a, b in ((0, 40), (40, 80)))
    phi = flows.kahler_potential(5, jax.random.key(6), width=4, depth=2)
    for regime in ("evolving", "frozen"):
        optimizer = optax.adam(1e-2)
        params, _ = fl.train(
            phi, regime, train, optimizer=optimizer, epochs=2, batch_size=20, seed=7
        )
        result = solvers.train_potential(
            phi,
            train,
            test,
            regime=regime,
            optimizer=optax.adam(1e-2),
            epochs=2,
            batch_size=20,
            eval_every=2,
            seed=7,
        )
        mine = jax.flatten_util.ravel_pytree(params)[0]
        change = jnp.linalg.norm(result.theta - result.flow.theta0)
        assert change > 1e-3  # they moved
        assert float(jnp.linalg.norm(mine - result.theta)) <= 1e-9 * float(change)


@pytest.mark.slow
@pytest.mark.parametrize("architecture", ["mlp", "bihomogeneous"])
def test_feature_learning_small_run(fl, tmp_path, architecture):
    record = fl.main(["--small", "--architecture", architecture, "--out", str(tmp_path)])
    saved = json.loads((tmp_path / "feature_learning.json").read_text())
    assert saved["summary"].keys() == record["summary"].keys() == {architecture}
    for name in ("feature_learning.png", "feature_learning_distance.png"):
        assert (tmp_path / name).stat().st_size > 0
    widths, seeds = saved["widths"][architecture], saved["seeds"]
    assert len(widths) >= 4 and max(widths) / min(widths) >= 16 and len(seeds) >= 3
    assert saved["dtype"] == "float64" and saved["settings"]["small"]

    # every (width, regime, seed) run is there once, with finite numbers
    keys = sorted((r["width"], r["regime"], r["seed"]) for r in saved["runs"])
    assert keys == sorted((w, g, s) for w in widths for g in ("evolving", "frozen") for s in seeds)
    for run in saved["runs"]:
        for key in (
            "sigma_test",
            "sigma_test_error",
            "sigma_train",
            "kernel_drift",
            "parameter_change",
        ):
            assert run[key] is not None and math.isfinite(run[key]), (key, run)
        assert run["sigma_test_error"] > 0 and run["parameter_change"] > 0
        assert not run["diverged"]  # Adam at 0.01: every run ends below twice its start
        if run["regime"] == "frozen":
            # the linearised network's tangent kernel is Theta_0's by construction: only
            # rounding can move it (measured exactly 0); 1e-10 is 7 decades below the
            # smallest evolving drift seen (2e-3, after 4 steps)
            assert run["kernel_drift"] < 1e-10
        else:
            assert run["kernel_drift"] > 1e-4  # the evolving kernel moves
    assert len(saved["pairs"]) == len(widths) * len(seeds)
    assert all(p["metric_distance"] > 0 for p in saved["pairs"])

    summary = saved["summary"][architecture]
    for name in ("drift", "distance", "gap_trend"):
        fit = summary["fits"][name]
        lo, hi = fit["interval"]
        # an interval, not a point: the seeds' slopes differ
        assert math.isfinite(lo) and lo < fit["mean"] < hi
        assert len(fit["per_seed"]) == len(seeds) and fit["seeds"] == len(seeds)
        assert fit["t_quantile"] == pytest.approx(scipy.stats.t.ppf(0.975, len(seeds) - 1))
    for w in widths:
        per = summary["per_width"][str(w)]
        assert per["frozen_kernel_drift_max"] < 1e-10
        for key in ("sigma_evolving", "sigma_frozen", "gap", "kernel_drift", "metric_distance"):
            assert per[key]["seeds"] == len(seeds) and per[key]["stderr"] >= 0
    assert summary["diverged_runs"] == 0 and len(summary["verdict"]) == 6


def test_an_interval_holding_an_ntk_exponent_and_zero_cannot_tell_them_apart(fl):
    """[-0.7, 0.2] holds -1/2 and 0 but not -1: it read "consistent with NTK exponent(s)
    [-0.5]", though it cannot tell n^(-1/2) from no dependence on width."""
    summary = _summary(fl, [0.2, 0.1, 0.06], 0.01, -0.25, -0.05)
    summary["fits"]["drift"]["interval"] = [-0.7, 0.2]
    line = fl.verdict(summary)[1]
    assert "holds NTK exponent -0.5 and 0 (no dependence on width): too wide" in line
    assert "consistent with" not in line
    # 0 outside: consistent with the exponent, and says why it is not too wide
    line = fl.verdict(_summary(fl, [0.2, 0.1, 0.06], 0.01, -0.5, -0.05))[1]
    assert "consistent with NTK exponent(s) [-0.5] (0 lies outside the interval)" in line


@pytest.mark.parametrize(
    "architecture,widths,depth", [("mlp", [3, 5], 1), ("mlp", [4], 3), ("bihomogeneous", [3, 6], 2)]
)
def test_parameter_count_is_the_networks(fl, tmp_path, architecture, widths, depth):
    """The closed form of the memory estimate against the networks themselves."""
    layers = "--depth" if architecture == "mlp" else "--bihomogeneous-layers"
    flags = [layers, str(depth)]
    args = fl.parse_args(["--architecture", architecture, *flags, "--out", str(tmp_path)])
    for width in widths:
        # shapes only (eqx.filter_eval_shape): no initialisation is computed
        potential = eqx.filter_eval_shape(
            lambda key, width=width: fl.make_potential(architecture, width, key, args),
            jax.random.key(0),
        )
        shapes = jax.tree.leaves(potential.network)
        count = sum(math.prod(x.shape) for x in shapes if isinstance(x, jax.ShapeDtypeStruct))
        assert fl.parameter_count(architecture, width, args) == count


def test_a_width_that_cannot_fit_is_refused_before_any_training(fl, tmp_path, capsys):
    """`--widths 100000000 8 16` was accepted: the widths are sorted, so every smaller width of
    the first seed trained before the huge one failed (RESOURCE_EXHAUSTED, or the machine
    swapping). Now: one line with the estimate (10^16 parameters), before any sampling."""
    argv = ["--widths", "100000000", "8", "16", "--points", "60", "--test-points", "60"]
    argv += ["--probe", "10", "--batch", "30", "--epochs", "1", "--out", str(tmp_path / "out")]
    status = solvers.run_program(lambda: fl.main(argv), "feature_learning")
    err = capsys.readouterr().err
    assert status == 1 and err.count("\n") == 1 and "Traceback" not in err
    assert err.startswith("feature_learning: mlp width 100000000 (1e+16 parameters; at least 12")
    assert "TiB of memory, more than the" in err and "Choose smaller widths" in err
    assert list((tmp_path / "out").iterdir()) == []
    # a sigma loss of one point is 0 (nothing trains), and sigma of one test point too
    for argv, message in (
        (["--batch", "1"], "argument --batch: must be >= 2"),
        (["--test-points", "1"], "argument --test-points: must be >= 2"),
    ):
        assert message in refusal(fl, argv, tmp_path, capsys)


def test_runs_are_written_as_they_complete(fl, tmp_path, monkeypatch, capsys):
    """The JSON was written only at the end: a late failure (here every run diverged, so
    nothing is fitted) threw away every run. Now the runs so far are on disk after each
    (architecture, width, seed), with `complete` false."""
    widths = [8, 16, 32]
    everything = {(w, s, g) for w in widths for s in (0, 1) for g in ("evolving", "frozen")}
    runs, pairs = _runs(widths, [0, 1], everything)
    for r in runs:
        r["sigma_test_start"] = 0.35

    def run_width(architecture, width, data, optimizer, run_seed, args):
        mine = [r for r in runs if (r["width"], r["seed"]) == (width, run_seed)]
        return mine, next(p for p in pairs if (p["width"], p["seed"]) == (width, run_seed))

    monkeypatch.setattr(fl, "seed_data", lambda surface, run_seed, args: None)
    monkeypatch.setattr(fl, "run_width", run_width)
    out = tmp_path / "out"
    argv = ["--widths", "8", "16", "32", "--seeds", "2", "--out", str(out)]
    status = solvers.run_program(lambda: fl.main(argv), "feature_learning")
    err = capsys.readouterr().err
    assert status == 1 and err.startswith("feature_learning: mlp: all 12 runs diverged")
    saved = json.loads((out / "feature_learning.json").read_text())
    assert saved["complete"] is False and "summary" not in saved
    assert len(saved["runs"]) == 12 and len(saved["pairs"]) == 6
    assert saved["settings"]["epochs"] == 50 and saved["seeds"] == [0, 1]
