"""The experiment programs run, write their files, and meet their required numbers.

torus_modes.py: R's k-th mode decays at k^2 exp(-sigma^2 k^2 / 2) to 1e-3 relative
(measured: ~1e-7; the nonlinear correction is O(amplitude) = 1e-4 at most). The
default suite runs sigma = 0.3 for k = 1..4; the full grid sigma in {0, 0.1, 0.3, 0.5}
is marked slow (about 2 minutes on two cores).
"""

import argparse
import json
import sys

import numpy as np
import pytest

import flows

from .helpers import experiment_program as _program
from .helpers import refusal


def _check_torus_modes(tmp_path, sigmas):
    program = _program("torus_modes")
    ks = ["1", "2", "3", "4"]
    program.main(["--sigma", *map(str, sigmas), "--k", *ks, "--n", "16", "--out", str(tmp_path)])
    record = json.loads((tmp_path / "torus_modes.json").read_text())
    runs = record["runs"]
    assert len(runs) == len(sigmas) * len(ks)
    for run in runs:
        assert {"flow", "sigma", "k", "measured_rate", "predicted_rate"} <= set(run)
        assert run["resolved"], run
        assert run["relative_error"] < 1e-3, run
        assert run["flow"] == ("perelman" if run["sigma"] == 0 else "smoothed")
    assert (tmp_path / "torus_modes.png").stat().st_size > 0


def test_torus_modes_decay_rates(tmp_path):
    _check_torus_modes(tmp_path, [0.3])


def test_torus_modes_marks_an_unresolvable_rate():
    # Log amplitudes with the solver's noise (~1e-12 at 21 times over t1 = 0.05): a
    # rate of 0.1 is measured to ~1e-10; one of 1e-11 (S = 1.5, K = 5) is below the
    # fit's standard error and must be marked, not reported as a rate.
    program = _program("torus_modes")
    t = np.linspace(0.0, 0.05, 21)
    noise = 1e-12 * np.random.default_rng(0).standard_normal(t.size)
    runs = []
    for sigma, rate in ((0.3, 0.1), (1.5, 1e-11)):
        measured, stderr, resolved = program.measure_rate(t, np.exp(-rate * t + noise), rate)
        assert stderr == pytest.approx(1e-12 / np.sqrt(np.sum((t - t.mean()) ** 2)), rel=0.5)
        runs.append(
            {
                "sigma": sigma,
                "k": 5,
                "resolved": resolved,
                "relative_error": abs(measured / rate - 1),
            }
        )
    assert [r["resolved"] for r in runs] == [True, False]
    assert runs[0]["relative_error"] < 1e-8
    record = program.summarise(runs)
    assert record["max_relative_error"] == runs[0]["relative_error"]
    assert record["unresolved"] == [[1.5, 5]]
    assert program.summarise(runs[1:]) == runs[1]  # one run: its own record


@pytest.mark.slow
def test_torus_modes_decay_rates_all_widths(tmp_path):
    _check_torus_modes(tmp_path, [0.0, 0.1, 0.3, 0.5])


@pytest.mark.slow
def test_sphere_extinction_program(tmp_path):
    program = _program("sphere_extinction")
    record = program.main(
        ["--dim", "2", "--sigma", "0.3", "--flow", "smoothed_lambda", "--out", str(tmp_path)]
    )
    saved = json.loads((tmp_path / "sphere_extinction.json").read_text())
    assert saved["flow"] == "smoothed_lambda" and saved["dim"] == 2 and saved["sigma"] == 0.3
    assert abs(saved["extinction_time"] - saved["predicted_extinction_time"]) < 1e-3
    assert record["max_scale_error_before_0.8T"] < 1e-6
    assert (tmp_path / "sphere_extinction.png").stat().st_size > 0
    with pytest.raises(SystemExit) as exit:
        program.main(["--flow", "smoothed", "--sigma", "0", "--out", str(tmp_path)])
    assert exit.value.code == 2


def _as_run(monkeypatch, name):
    """sys.argv[0] as when `python experiments/<name>.py` runs: argparse names the program by it."""
    monkeypatch.setattr(sys, "argv", [f"experiments/{name}.py"])


def _refused_at_parse_time(monkeypatch, capsys, cases, out):
    """Each (program, argv, message): argparse's exit, status 2, the usage and one line naming
    the program and holding `message`; `out` never created."""
    for name, argv, message in cases:
        _as_run(monkeypatch, name)
        with pytest.raises(SystemExit) as exit:
            _program(name).main([*argv, "--out", str(out)])
        assert exit.value.code == 2, (name, argv)
        err = capsys.readouterr().err
        assert err.startswith(f"usage: {name}.py ") and message in err, (name, argv, err)
        assert err.strip().splitlines()[-1].startswith(f"{name}.py: error: "), err
    assert not out.exists()


def test_experiment_flags_are_checked(tmp_path, capsys, monkeypatch):
    # argparse's exit (status 2, usage and one line naming the program), before --out exists
    out = tmp_path / "new"
    cases = [
        ("sphere_extinction", ["--flow", "smoothed", "--sigma", "0"], "--sigma > 0"),
        ("well_posedness", ["--sigma", "0"], "argument --sigma: must be a finite number > 0"),
        ("torus_modes", ["--amplitude", "0.1"], "argument --amplitude: must be a finite number"),
    ]
    _refused_at_parse_time(monkeypatch, capsys, cases, out)


def test_flag_combinations_are_refused_before_any_output(tmp_path, capsys, monkeypatch):
    """A smoothed flow without a width, or a local one with a width, is a bad flag
    combination: argparse's status 2 with the usage, before --out is created (they ended
    with status 1 at run time, an empty folder left behind)."""
    out = tmp_path / "new"
    cases = [
        ("sphere_extinction", ["--flow", "smoothed", "--sigma", "0"], "--flow smoothed needs"),
        ("sphere_extinction", ["--flow", "smoothed_lambda"], "--flow smoothed_lambda needs"),
        ("sphere_extinction", ["--flow", "perelman_lambda", "--sigma", "0.3"], "is local"),
        ("sphere_extinction", ["--flow", "ricci_deturck", "--sigma", "0.3"], "is local"),
        ("torus_modes", ["--flow", "smoothed_lambda", "--sigma", "0"], "needs a kernel width"),
        ("torus_modes", ["--flow", "smoothed_lambda", "--sigma", "0.3", "0"], "needs a kernel"),
    ]
    _refused_at_parse_time(monkeypatch, capsys, cases, out)
    # the combinations that make sense still parse
    for name, argv in (
        ("sphere_extinction", ["--flow", "componentwise", "--sigma", "0"]),
        ("sphere_extinction", ["--flow", "componentwise", "--sigma", "0.3"]),
        ("sphere_extinction", ["--flow", "smoothed", "--sigma", "0.3"]),
        ("torus_modes", ["--flow", "smoothed", "--sigma", "0"]),  # the local perelman flow
        ("torus_modes", ["--flow", "componentwise", "--sigma", "0"]),
    ):
        _program(name).parse_args([*argv, "--out", str(out)])


def test_kernel_widths_are_bounded(tmp_path, capsys):
    # past the bound the kernel is the mean to float64 rounding (sphere_extinction: 1e8 on
    # the unit sphere; torus_modes: 8 on T²); --sigma 1e300 ended in an OverflowError traceback
    for name, argv in (
        ("sphere_extinction", ["--flow", "smoothed", "--sigma", "1e300"]),
        ("sphere_extinction", ["--flow", "smoothed", "--sigma", "2e8"]),
        ("torus_modes", ["--sigma", "1e10"]),
        ("torus_modes", ["--sigma", "0.3", "9"]),
    ):
        err = refusal(_program(name), argv, tmp_path, capsys)
        assert "argument --sigma: must be a finite number >= 0 and <= " in err, (name, err)
    out = str(tmp_path)
    _program("sphere_extinction").parse_args(["--flow", "smoothed", "--sigma", "1e8", "--out", out])
    _program("torus_modes").parse_args(["--sigma", "8", "--out", out])


def test_flags_that_would_mislead_are_refused(tmp_path, capsys):
    """A local flow given a width (its prediction used the width it ignored: a 20% "error"),
    a width whose square overflows (a traceback), psi whose fifth power overflows (a
    traceback), and too few points for a standard error (2 points: 0.041 +- 0.001 against
    0.374) are refused, as are repeated widths, with messages that name the problem."""
    cases = [
        ("torus_modes", ["--flow", "perelman", "--sigma", "0.3"], "--flow perelman is local"),
        ("ntk_regimes", ["--sigma", "1e300"], "--sigma 1e+300 is too large"),
        ("ntk_regimes", ["--widths", "4,4"], "needs at least two distinct widths"),
        ("quintic_sigma", ["--psi", "1e200"], "--psi 1e+200 is too large"),
        ("quintic_sigma", ["--points", "2"], "argument --points: must be >= 50"),
    ]
    for name, argv, message in cases:
        assert message in refusal(_program(name), argv, tmp_path, capsys), (name, argv)
    # a local flow at width 0 and a smoothed flow at a width are still accepted
    _program("torus_modes").parse_args(
        ["--flow", "perelman", "--sigma", "0", "--out", str(tmp_path)]
    )
    _program("torus_modes").parse_args(
        ["--flow", "smoothed_lambda", "--sigma", "0.3", "--out", str(tmp_path)]
    )


@pytest.mark.slow
def test_well_posedness_linear_rates(tmp_path):
    program = _program("well_posedness")
    program.main(["--sigma", "0.2", "--n", "16", "--skip-nonlinear", "--out", str(tmp_path)])
    record = json.loads((tmp_path / "well_posedness.json").read_text())
    for name, entry in record["flows"].items():
        assert entry["k"] == [1, 2, 3, 4]
        for measured, predicted in (
            ("gauge_rate", "predicted_gauge_rate"),
            ("r_mode_rate", "predicted_r_mode_rate"),
        ):
            for a, b in zip(entry[measured], entry[predicted], strict=True):
                assert abs(a - b) <= 1e-6 * max(abs(b), 1.0), (name, measured)
    assert (tmp_path / "rates.png").stat().st_size > 0
    with pytest.raises(SystemExit) as exit:
        program.main(["--sigma", "0", "--out", str(tmp_path)])
    assert exit.value.code == 2


@pytest.mark.slow
def test_ntk_regimes_program(tmp_path, capsys):
    # a small run: the files, the fields, and the distances falling with width
    program = _program("ntk_regimes")
    args = ["--manifold", "sphere", "--widths", "8,128", "--t1", "0.05", "--seeds", "1"]
    program.main([*args, "--saves", "3", "--resolution", "6", "--out", str(tmp_path)])
    # a progress line per solve, before the first width's summary (it can take minutes)
    printed = capsys.readouterr().out
    first = printed.index("width 8, network 1 of 1: evolving flow, reached t1")
    assert first < printed.index("width 8: at t1")
    record = json.loads((tmp_path / "ntk_regimes.json").read_text())
    assert record["widths"] == [8, 128]
    for key in ("evolving_frozen", "frozen_infinite", "kernel_drift"):
        small, large = (record["per_width"][w][f"final_{key}"] for w in ("8", "128"))
        assert large < small, key
        assert record["slopes"][key]["slope"] < 0
        assert record["slopes"][key]["verdict"] == "no interval: two widths"
    assert (tmp_path / "ntk_regimes.png").stat().st_size > 0
    with pytest.raises(SystemExit) as exit:
        program.main(["--widths", "0,4", "--out", str(tmp_path)])
    assert exit.value.code == 2


def test_ntk_regimes_compares_each_slope_with_its_expectation():
    # exact power laws with a little scatter: width^-1/2 is consistent with the expected
    # -1/2, width^-1 for the drift is consistent with -1 and its interval excludes -1/2,
    # width^-0.2 is shallower than either; two widths give no interval
    program = _program("ntk_regimes")
    widths = [16, 64, 256, 1024]
    scatter = [1.0, 1.01, 0.99, 1.0]
    laws = {"frozen_infinite": -0.5, "kernel_drift": -1.0, "evolving_frozen": -0.2}
    record = {
        str(w): {f"final_{k}": e * w**p for k, p in laws.items()}
        for w, e in zip(widths, scatter, strict=True)
    }
    slopes = program.fit_slopes(widths, record)
    assert slopes["frozen_infinite"]["verdict"] == "consistent"
    assert slopes["kernel_drift"]["verdict"] == "consistent"
    assert slopes["evolving_frozen"]["verdict"] == "shallower"
    low, high = slopes["kernel_drift"]["interval"]
    assert low < -1 < high < -0.5
    two = program.fit_slopes(widths[:2], record)["frozen_infinite"]
    assert two["interval"] is None and two["slope"] == pytest.approx(
        -0.5 + np.log(1.01) / np.log(4)
    )


def test_ntk_regimes_refuses_a_width_beyond_memory(tmp_path):
    # 10^10 features: the kernel drift's gradients would need ~3e14 bytes; refused by name
    # before anything is allocated
    program = _program("ntk_regimes")
    with pytest.raises(ValueError, match="kernel drift at width 10000000000 .* more than the"):
        program.main(["--widths", "4,10000000000", "--out", str(tmp_path)])
    assert list(tmp_path.iterdir()) == []


def test_curvature_tour_flags_a_metric_too_rough_for_its_rules():
    # T^2, band limit 2 (held from n = 5), amplitude 0.5: on n = 3 and 7 the Gauss-Bonnet
    # error is far above rounding, so the study has not converged and n = 3 does not
    # hold the metric; band limit 1, amplitude 0.1 converges to rounding by n = 16
    # (error 2e-18 against the scale int |R|/2 dV = 0.18)
    tour = _program("curvature_tour")
    rough = argparse.Namespace(seed=0, band_limit=2, amplitude=0.5)
    grids = [flows.Torus(2, n) for n in (3, 7)]
    record, _ = tour.gauss_bonnet_study("T^2", flows.Torus(2, 5), grids, 0, rough)
    assert record["holds_metric"] == [False, True]
    assert not record["converged"]
    assert record["abs_error"][-1] > 1e-10 * record["scale_int_abs_half_R_dV"] > 0
    smooth = argparse.Namespace(seed=0, band_limit=1, amplitude=0.1)
    grids = [flows.Torus(2, n) for n in (3, 16)]
    record, _ = tour.gauss_bonnet_study("T^2", flows.Torus(2, 3), grids, 0, smooth)
    assert record["holds_metric"] == [True, True] and record["converged"]


def test_invariant_errors_scale_int_r3_by_int_abs_r3():
    # int R^3 dV crosses zero along the scalar flow: its error is relative to int |R|^3 dV,
    # the others' to their own values
    common = _program("_common")
    reference = {
        "volume": np.array([2.0, 2.0]),
        "integral_R2": np.array([4.0, 1.0]),
        "integral_R3": np.array([-1.0, 1e-9]),
        "integral_abs_R3": np.array([3.0, 0.5]),
    }
    series = [
        {"volume": 2.0 + 2e-6, "integral_R2": 4.0, "integral_R3": -1.0 + 3e-6},
        {"volume": 2.0, "integral_R2": 1.0 - 1e-7, "integral_R3": 1e-9 + 5e-8},
    ]
    errors = common.invariant_errors(series, reference)
    assert errors["volume"] == pytest.approx([1e-6, 0.0])
    assert errors["integral_R2"] == pytest.approx([0.0, 1e-7])
    assert errors["integral_R3"] == pytest.approx([1e-6, 1e-7])
