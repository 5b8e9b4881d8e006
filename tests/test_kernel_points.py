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

import jax
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
