"""experiments/kernel_points.py: its pure helpers against closed forms, and its `--small` run (slow).

The helpers: `loglog_interpolate` reproduces a power law exactly between the points,
holds the end values beyond them, and flags where it extrapolates; `mean_and_stderr` is the
sample mean and $s/\\sqrt n$; `power_law` recovers $A N^b$ from exact values. The slow
test runs the program with `--small` and checks its record: every N x kernel x draw
present and finite, at least 3 draws with standard errors, the extrapolation, and
positive times and memory per step.
"""

import json
import math
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import flows
import solvers

from .helpers import experiment_program as _program
from .helpers import refusal


def test_loglog_interpolation_is_exact_on_a_power_law():
    kp = _program("kernel_points")
    x = np.array([0.3, 0.01, 0.1, 0.003])  # unsorted on purpose
    y = 2.5 * x**-0.7
    new = np.array([0.002, 0.005, 0.05, 0.2, 0.5])
    value, outside = kp.loglog_interpolate(x, y, new)
    # inside: exact up to rounding of log/exp on O(1) arguments, 1e-13 relative
    np.testing.assert_allclose(value[1:4], 2.5 * new[1:4] ** -0.7, rtol=1e-13)
    # outside: the end values held (same rounding)
    np.testing.assert_allclose(value[[0, 4]], 2.5 * np.array([0.003, 0.3]) ** -0.7, rtol=1e-13)
    assert outside.tolist() == [True, False, False, False, True]


def test_loglog_interpolation_is_piecewise_between_points():
    kp = _program("kernel_points")
    x, y = np.array([1.0, 10.0, 100.0]), np.array([1.0, 10.0, 1.0])  # slope +1, then -1
    value, outside = kp.loglog_interpolate(x, y, np.array([np.sqrt(10.0), np.sqrt(1000.0)]))
    # geometric midpoints of each segment: sqrt(10) on both (rounding only: 1e-13)
    np.testing.assert_allclose(value, [np.sqrt(10.0), np.sqrt(10.0)], rtol=1e-13)
    assert not outside.any()
    with pytest.raises(ValueError, match="distinct"):
        kp.loglog_interpolate([1.0, 1.0], [1.0, 2.0], [1.0])
    with pytest.raises(ValueError, match="positive"):
        kp.loglog_interpolate([1.0, 2.0], [1.0, -2.0], [1.5])


def test_mean_and_stderr():
    kp = _program("kernel_points")
    mean, se = kp.mean_and_stderr([1.0, 2.0, 3.0, 6.0])
    # mean 3, sample variance (4 + 1 + 0 + 9)/3 = 14/3, se = sqrt(14/3/4); exact in float64
    # up to one rounding of each operation: 1e-15 relative
    assert mean == pytest.approx(3.0, rel=1e-15)
    assert se == pytest.approx(math.sqrt(14 / 12), rel=1e-15)
    with pytest.raises(ValueError, match="at least 2"):
        kp.mean_and_stderr([1.0])
    with pytest.raises(ValueError, match="non-finite"):
        kp.mean_and_stderr([1.0, float("nan")])


def test_power_law_recovers_exact_law():
    kp = _program("kernel_points")
    n = np.array([250.0, 1000.0, 4000.0, 16000.0])
    fit = kp.power_law(n, 0.9 * n**-0.15)
    # an exact law: least squares is exact to rounding (1e-12 on logs of size ~10)
    assert fit["exponent"] == pytest.approx(-0.15, abs=1e-12)
    assert fit["prefactor"] == pytest.approx(0.9, rel=1e-12)
    assert fit["exponent_stderr"] < 1e-12


def _finite_positive(x) -> bool:
    return isinstance(x, float) and math.isfinite(x) and x > 0


@pytest.mark.slow
def test_small_run_records_every_draw_and_the_extrapolation(tmp_path):
    kp = _program("kernel_points")
    record = kp.main(["--small", "--out", str(tmp_path)])
    on_disk = json.loads((tmp_path / "kernel_points.json").read_text())
    assert on_disk["points"] == record["points"] == [300, 1000, 3000]
    for png in ("kernel_points.png", "kernel_points_extrapolation.png", "kernel_points_cost.png"):
        assert (tmp_path / png).stat().st_size > 0
    draws = on_disk["draws"]
    assert draws >= 3
    for n in on_disk["points"]:
        run = on_disk["runs"][str(n)]
        assert len(run["draws"]) == draws
        for d in run["draws"]:
            names = set(kp.KERNELS) | ({kp.CLUSTERED} if n <= on_disk["clustered_max"] else set())
            assert set(d["kernels"]) == names
            for rec in d["kernels"].values():
                assert _finite_positive(rec["train_gain"]) and _finite_positive(rec["test_gain"])
                assert rec["stop_reason"] == "reached t1" and rec["steps"] == on_disk["steps"]
    # fresh draws: the training sets differ, so the gains differ between draws
    first = on_disk["runs"]["1000"]["draws"]
    assert len({d["kernels"]["delta"]["test_gain"] for d in first}) == draws
    for name in (*kp.KERNELS, kp.CLUSTERED):
        s = on_disk["summary"][name]
        assert s["points"], name
        assert all(k >= 3 for k in s["draws"])
        assert all(_finite_positive(v) for v in s["test_gain_mean"] + s["test_gain_stderr"])
    # the local-on-training kernels fit their training points: gain > 2 (it is about 8 at
    # 20 steps of 2.5e-3); a test gain is far smaller
    for name in ("gaussian", "delta"):
        s = on_disk["summary"][name]
        assert min(s["train_gain_mean"]) > 2
        assert max(s["test_gain_mean"]) < min(s["train_gain_mean"])
    ext = on_disk["extrapolation"]
    assert ext["curve_points"] == 300
    law = ext["distance_law"]
    assert -0.3 < law["exponent"] < -0.05  # the paper's -0.149; a 6-manifold: -1/6
    for name in kp.KERNELS:
        curve, pred = ext["curves"][name], ext["predicted"][name]
        assert len(curve["distance"]) == len(on_disk["noise"])
        assert np.all(np.diff(curve["distance"]) > 0)  # larger kicks, farther points
        assert pred["points"] == on_disk["points"]
        assert all(_finite_positive(g) for g in pred["gain"] + pred["gain_at_measured_distance"])
    for name, rows in on_disk["seconds_per_step"].items():
        assert rows["points"] and all(_finite_positive(s) for s in rows["seconds"]), name
    mem = on_disk["memory"]
    assert len(mem["points"]) >= 2 and all(p > 0 for p in mem["peak_rss_bytes"])
    assert mem["target_points"] == 100_000 and mem["target_bytes"] > max(mem["peak_rss_bytes"])
    assert isinstance(mem["fits_in_2GB"], bool)


def test_more_points_than_memory_allows_are_refused_before_any_work(tmp_path, capsys):
    # 10^9 points at about 10 kB each: refused with the estimate, before any sampling
    program = _program("kernel_points")
    status = solvers.run_program(
        lambda: program.main(["--points", "1000000000", "--out", str(tmp_path / "out")]),
        "kernel_points",
    )
    err = capsys.readouterr().err
    assert status != 0 and "Traceback" not in err and err.count("\n") == 1
    assert err.startswith("kernel_points: a flow on 1000000000 points") and "TiB of memory" in err
    assert list((tmp_path / "out").iterdir()) == []


def test_flags_that_cannot_make_a_curve_or_a_law_are_refused(tmp_path, capsys):
    """One noise scale gave no gain-distance curve, and repeated --scaling-points no distance
    law (an exponent ± 1e7), both found only after every flow had run."""
    program = _program("kernel_points")
    cases = [
        (["--noise", "0.01"], "--noise needs at least 2 distinct scales"),
        (["--noise", "0.01", "0.01"], "--noise needs at least 2 distinct scales"),
        (["--scaling-points", "2", "2", "2"], "--scaling-points needs at least 3 distinct"),
    ]
    for argv, message in cases:
        assert message in refusal(program, argv, tmp_path, capsys)
    # a memory step larger than memory allows is refused before any work, as a ladder is
    args = program.parse_args(["--small", "--memory-points", "1000000000", "--out", str(tmp_path)])
    with pytest.raises(ValueError, match="a flow on 1000000000 points"):
        program.check_memory(args)


def test_a_flow_that_stops_is_refused_not_averaged():
    """At a learning rate of 1e3 a metric value leaves positive definiteness in the first step:
    such a draw's gains were averaged with the others and extrapolated, exit status 0."""
    program = _program("kernel_points")
    quintic = flows.Hypersurface.fermat_quintic()
    train = flows.chart_sample(
        flows.point_sample(quintic, flows.sample_points(quintic, jax.random.key(0), 400))
    )
    flow = flows.PointKernelFlow(flows.LocalPointKernel(), flows.MongeAmpereLoss(1.0), train, train)
    groups = {"test": np.arange(train.count)}
    with pytest.raises(ValueError, match=r"N = 9, draw 0, local: the flow stopped after 1 of 3"):
        program.run_flow(flow, 1e3, 3, groups, "N = 9, draw 0, local")
    assert program.run_flow(flow, 1e-4, 3, groups)["stop_reason"] == "reached t1"


def test_noise_sigma_and_clustering_flags_that_cannot_work_are_refused(tmp_path, capsys):
    """Refused at parse time, each of which passed before: noise scales whose test sets share
    one name (`noise {scale:g}`: the run ended after every flow, 45 minutes at the defaults,
    with `loglog_interpolate: the x values must be distinct`), a width FSGaussian refuses
    (after the sampling and the first flows), and the clustering's flags without clusters."""
    program = _program("kernel_points")
    cases = [
        (["--noise", "0.1", "0.1000001"], "--noise 0.1 and 0.1000001 are one test set's name"),
        (["--noise", "0.01", "0.03", "0.01"], "--noise 0.01 is given twice"),
        (["--sigma", "1e-200"], "argument --sigma: FSGaussian: sigma = 1e-200 is too small"),
        (["--clusters", "0", "--batch-size", "50"], "--batch-size is the clustering's"),
        (["--clusters", "0", "--clustered-max", "10"], "--clustered-max is the clustering's"),
    ]
    for argv, message in cases:
        assert message in refusal(program, argv, tmp_path, capsys)
    # the library's own bound: 2 sigma^2 a normal float64 (sigma >= 1.1e-154)
    assert program.parse_args(["--sigma", "1.2e-154", "--out", str(tmp_path)]).sigma == 1.2e-154
    args = program.parse_args(["--clusters", "0", "--out", str(tmp_path)])
    assert args.batch_size == 500 and args.clustered_max == 10000


def _fake_memory_step(peaks):
    def memory_step(count, args):
        child = {"count": count, "seconds": 1.0, "first_seconds": 2.0, "matrix_free": True}
        return {**child, "setup_maxrss_kb": 1}, peaks[count]

    return memory_step


def test_memory_at_a_target_not_measured_says_so(tmp_path, monkeypatch):
    """A target of 5000 with steps measured at 6000 and 12000 points was reported as
    `target_measured: true`, "measured at the target size", with the 12000-point peak."""
    program = _program("kernel_points")
    monkeypatch.setattr(program, "memory_step", _fake_memory_step({6000: 0.70e9, 12000: 0.76e9}))
    monkeypatch.setattr(program, "xla_bytes", lambda count, sigma: None)  # no compile
    argv = ["--small", "--memory-target", "5000", "--out", str(tmp_path)]
    mem = program.memory(program.parse_args(argv))
    assert mem["target_measured"] is False and mem["target_method"] == "extrapolated"
    assert mem["nearest_measured_points"] == 6000 and mem["nearest_measured_bytes"] == 0.70e9
    assert "not measured (nearest measured: 6000 points)" in mem["note"]
    # linear through (6000, 0.70e9) and (12000, 0.76e9): 1e4 bytes a point, 0.69e9 at 5000
    assert mem["target_bytes"] == pytest.approx(0.69e9, rel=1e-12)
    # between two measured sizes: interpolated between them, not from the two largest
    estimate = program.target_estimate([1000, 3000, 10000], [1.0, 2.0, 9.0], [True] * 3, 5000)
    assert estimate["target_method"] == "interpolated"
    assert estimate["estimated_from_points"] == [3000, 10000]
    assert estimate["target_bytes"] == pytest.approx(2.0 + 7.0 * 2000 / 7000, rel=1e-12)
    # a size within 1% of the target is a measurement at it
    estimate = program.target_estimate([6000, 99500], [0.7, 1.3], [True, True], 100_000)
    assert estimate["target_measured"] is True and estimate["target_bytes"] == 1.3


# the memory child: measures 100 points, fails at any other size as a process killed for
# memory would, with a line on stderr
_FAILING_CHILD = """
import json, sys
if int(sys.argv[2]) != 100:
    sys.stderr.write("MemoryError: out of memory in the step\\n")
    raise SystemExit(1)
print(json.dumps({"count": 100, "finite": True, "seconds": 0.1, "first_seconds": 0.2,
                  "matrix_free": False, "setup_maxrss_kb": 1}))
"""


def test_a_failed_child_process_is_one_line_not_a_traceback(capsys):
    """`peak_rss` raised RuntimeError, which `run_program` does not expect: a traceback, with
    the child's whole program text in it."""
    # white-box: the measuring helper of experiments/_timing.py, called directly
    timing = _program("_timing")
    command = [sys.executable, "-c", "import sys; sys.stderr.write('boom\\n'); sys.exit(3)"]
    status = solvers.run_program(lambda: timing.peak_rss(command), "bench")
    err = capsys.readouterr().err
    assert (
        status == 1
        and err == f"bench: the child process {sys.executable!r} failed (exit status 3): boom\n"
    )
    status = solvers.run_program(lambda: timing.peak_rss(command, name="the child"), "bench")
    assert (
        status == 1 and capsys.readouterr().err == "bench: the child failed (exit status 3): boom\n"
    )


def _fake_draw(args, surface, n, draw, noised, timed):
    """A draw's record with the structure `run_draw` gives, no flow run."""
    groups = ["test"] + ([f"noise {s:g}" for s in args.noise] if noised else [])
    gain = 1.0 + 0.1 * (draw + 1)
    kernels = {
        name: {
            "train_gain": 8.0,
            "test_gain": gain,
            "gains": {g: gain * (1 + i) for i, g in enumerate(groups)},
        }
        for name in _program("kernel_points").KERNELS
    }
    return {
        "draw": draw,
        "test_distance": {g: 0.3 / (1 + i) for i, g in enumerate(groups)},
        "kernels": kernels,
        "seconds_per_step": {name: 0.01 for name in kernels} if timed else {},
        "matrix_free": False,
    }


def test_a_failed_memory_step_keeps_every_flow(tmp_path, monkeypatch, capsys):
    """A memory child that fails ends the program with one line and exit status 1, after
    the JSON of every flow and of the memory measured before it (`complete` false); it gave
    a traceback after the whole run (45 minutes at the defaults) and no JSON."""
    program = _program("kernel_points")
    monkeypatch.setattr(program, "run_draw", _fake_draw)
    law = {"sizes": [10, 20, 40], "mean_distance": [0.5, 0.45, 0.4]}
    law.update(program.power_law(law["sizes"], law["mean_distance"]))
    monkeypatch.setattr(program, "distance_law", lambda surface, sizes, seed: law)
    monkeypatch.setattr(program, "MEMORY_STEP", _FAILING_CHILD)
    out = tmp_path / "out"
    argv = ["--points", "20", "40", "--draws", "2", "--clusters", "0", "--test-points", "10"]
    argv += ["--memory-points", "100", "200", "--out", str(out)]
    status = solvers.run_program(lambda: program.main(argv), "kernel_points")
    err = capsys.readouterr().err
    assert status == 1 and err.count("\n") == 1 and "Traceback" not in err
    assert err.startswith("kernel_points: the memory step on 200 points (a fresh process) failed")
    assert "(exit status 1): MemoryError: out of memory in the step" in err
    assert "complete: false" in err
    saved = json.loads((out / "kernel_points.json").read_text())
    assert saved["complete"] is False
    assert set(saved["runs"]) == {"20", "40"} and saved["summary"]["gaussian"]["points"] == [20, 40]
    assert saved["memory"]["points"] == [100] and "out of memory" in saved["memory"]["failed"]
    assert not (out / "kernel_points.png").exists()


@pytest.fixture(scope="module")
def chart_sample():
    """Training points of one chart of the Fermat quintic (400 sampled, 27 in the chart)."""
    quintic = flows.Hypersurface.fermat_quintic()
    sample = flows.point_sample(quintic, flows.sample_points(quintic, jax.random.key(0), 400))
    return flows.chart_sample(sample)


def _sigma(sample, h):
    r"""σ = Σ w|1 - η/η̄|/Σ w, η = det h/|Ω|², η̄ its w-mean: written out in NumPy."""
    eta = np.real(np.linalg.det(h)) / np.abs(np.asarray(sample.omega)) ** 2
    w = np.asarray(sample.weights)
    return np.sum(w * np.abs(1 - eta / (np.sum(w * eta) / np.sum(w)))) / np.sum(w)


@pytest.mark.slow  # an independent Euler loop beside the program's flow (6 s)
def test_a_reported_gain_matches_a_hand_written_euler_loop(chart_sample, monkeypatch, capsys):
    """`run_flow`'s train and test gains of the normalised Gaussian against Euler steps
    written out with dense NumPy kernel matrices and `jax.grad` of a hand-written σ loss:
    $h_a \\leftarrow h_a - \\mathrm{lr}\\,\\sum_b k_{ab} (w_b/N) G_b / \\sum_b k_{ab} w_b/N$,
    $G_b = (N/w_b)\\,\\partial L/\\partial h_b$. Then the same flow in chunks of 3 + 1 steps
    (the path of large N, with a progress line after a chunk) gives the same gains and steps."""
    program = _program("kernel_points")
    train = flows.subsample(chart_sample, np.arange(0, chart_sample.count, 2))
    test = flows.subsample(chart_sample, np.arange(1, chart_sample.count, 2))
    sigma, lr, steps = 0.3, 2.5e-3, 4
    z, y = np.asarray(train.points), np.asarray(test.points)
    w, n = np.asarray(train.weights), train.count

    def gaussian(a, b):  # arccos of |<a, b>|/|a||b|, the FS distance, in NumPy
        c = np.abs(np.conj(a) @ b.T) / np.outer(
            np.linalg.norm(a, axis=1), np.linalg.norm(b, axis=1)
        )
        return np.exp(-(np.arccos(np.clip(c, -1, 1)) ** 2) / (2 * sigma**2))

    def loss(re, im):
        eta = jnp.real(jnp.linalg.det(jax.lax.complex(re, im))) / jnp.abs(train.omega) ** 2
        mean = jnp.sum(train.weights * eta) / jnp.sum(train.weights)
        return jnp.sum(train.weights * jnp.abs(1 - eta / mean)) / jnp.sum(train.weights)

    k_train, k_test = gaussian(z, z), gaussian(y, z)
    h, p = np.asarray(train.g_fs), np.asarray(test.g_fs)
    start = _sigma(train, h), _sigma(test, p)
    for _ in range(steps):
        re, im = jax.grad(loss, argnums=(0, 1))(jnp.real(h), jnp.imag(h))
        g = (np.asarray(re) + 1j * np.asarray(im)) * (n / w)[:, None, None]
        h, p = (
            x - lr * np.einsum("ab,bij->aij", k * (w / n), g) / (k @ (w / n))[:, None, None]
            for x, k in ((h, k_train), (p, k_test))
        )
    expected = start[0] / _sigma(train, h), start[1] / _sigma(test, p)
    flow = flows.PointKernelFlow(
        flows.gaussian_point_kernel(sigma, normalise=True), flows.MongeAmpereLoss(1.0), train, test
    )
    groups = {"test": np.arange(test.count)}
    record = program.run_flow(flow, lr, steps, groups)
    # measured 8e-16: rounding of the two summation orders, 1e-12 allows for the Chebyshev
    # d^2 (3e-15 relative) and the log-sum-exp normalisation
    assert record["train_gain"] == pytest.approx(expected[0], rel=1e-12)
    assert record["test_gain"] == pytest.approx(expected[1], rel=1e-12)
    assert expected[0] > 1.5  # the flow moved: the check is not of a standing start
    monkeypatch.setattr(program, "PROGRESS_AFTER", 0.0)  # a progress line after each chunk
    capsys.readouterr()
    chunked = program.run_flow(flow, lr, steps, groups, "N = 14, draw 0, gaussian", chunk=3)
    assert "] N = 14, draw 0, gaussian: 3 of 4 steps (" in capsys.readouterr().out
    assert chunked["steps"] == steps
    assert chunked["train_gain"] == pytest.approx(record["train_gain"], rel=1e-13)
    assert chunked["test_gain"] == pytest.approx(record["test_gain"], rel=1e-13)
