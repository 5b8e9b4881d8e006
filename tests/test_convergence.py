"""experiments/convergence.py: each study recovers its expected order.

Default suite: the smoke run of the cheapest study (`resolution --small`, about 10 s) writes
its JSON and PNG, every fitted order and interval is finite, and its rates are log 2 to 0.01
(measured 0.6964 on T² and 0.6932 on S²: a factor or a sign in the rate, the prefactor or the
fit would move them by far more); bad flags exit with status 2. Slow: a solver that returns
NaN is refused by name, not left out as a rounding floor. The fits themselves: tests/test_fits.py.

Slow (one test per study, at the program's default sizes): the expected order lies inside
the reported 95% interval. Measured (seed 0; CPU seconds of each study on two cores, shared
with other jobs at load 7-10, which made wall times about twice these):

- resolution: rate 0.6949 [0.6925, 0.6972] (T²) and 0.6933 [0.6931, 0.6935] (S²),
  expected arccosh(1/0.8) = log 2 = 0.6931; 19 s.
- tolerance: Heun 2.032 [1.989, 2.075], Bosh3 3.038 [2.987, 3.090], RK4 4.048
  [3.983, 4.113]; 29 s.
- sigma: 1.990 [1.973, 2.006] (T²), 1.971 [1.925, 2.017] (S²), expected 2; 26 s.
- width: 0.511 [0.491, 0.531] (T²), 0.506 [0.491, 0.521] (S²), expected 1/2; 59 s
  (the scatter of the draws, not the residuals, sets both intervals; the points study's
  residuals are the wider).
- points: 0.514 [0.473, 0.554], expected 1/2; 29 s.
"""

import json
import math

import pytest

from .helpers import experiment_program, refusal

STUDIES = ("resolution", "tolerance", "sigma", "width", "points")
SERIES_FIELDS = {
    "label",
    "x",
    "error",
    "used_in_fit",
    "order",
    "stderr",
    "systematic",
    "interval",
    "confidence",
    "expected_order",
    "expected_in_interval",
}


def _finite(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _check_outputs(out, study: str) -> dict:
    record = json.loads((out / f"convergence_{study}.json").read_text())
    assert record["study"] == study
    assert isinstance(record["expected_in_interval"], bool)
    assert record["series"]
    for series in record["series"]:
        assert SERIES_FIELDS <= set(series), SERIES_FIELDS - set(series)
        lo, hi = series["interval"]
        for value in (series["order"], series["stderr"], series["systematic"], lo, hi):
            assert _finite(value), (series["label"], value)
        assert _finite(series["expected_order"])
        assert lo <= series["order"] <= hi
        assert series["confidence"] == 0.95
        assert isinstance(series["expected_in_interval"], bool)
        assert series["expected_in_interval"] == (lo <= series["expected_order"] <= hi)
        assert len(series["x"]) == len(series["error"]) == len(series["used_in_fit"])
        assert sum(series["used_in_fit"]) >= 3
        assert all(_finite(e) and e > 0 for e in series["error"])
    assert record["expected_in_interval"] == all(
        s["expected_in_interval"] for s in record["series"]
    )
    assert (out / f"convergence_{study}.png").stat().st_size > 0
    return record


def test_convergence_smoke_run(tmp_path):
    program = experiment_program("convergence")
    returned = program.main(["--study", "resolution", "--small", "--out", str(tmp_path)])
    record = _check_outputs(tmp_path, "resolution")
    assert record["small"] is True
    assert [s["label"] for s in returned["series"]] == [s["label"] for s in record["series"]]
    for series in record["series"]:  # the spectral rate's local estimates are finite too
        assert all(_finite(v) for v in series["local_loglog_orders"])
        assert abs(series["order"] - math.log(2)) < 0.01, (series["label"], series["order"])
        assert abs(series["expected_order"] - math.log(2)) < 1e-12  # arccosh(1/0.8)
        assert series["expected_in_interval"] is True
        assert series["systematic_available"] is True


@pytest.mark.slow  # the refusal itself is power_series's, tested cheaply in test_fits.py
def test_a_solver_that_fails_is_refused_not_taken_for_the_rounding_floor(tmp_path, monkeypatch):
    """The coarsest RK4 solve returns NaN: the tolerance study stops, naming the series and
    the step, instead of dropping the point as 'below the rounding floor' and fitting the rest."""
    program = experiment_program("convergence")
    solve = program._fixed_step_solve

    def failing(flow, solver, y0, t1, dt, max_steps):
        y, n = solve(flow, solver, y0, t1, dt, max_steps)
        if isinstance(solver, program.ClassicalRK4) and float(dt) == 0.2 / 8:
            y = y * float("nan")
        return y, n

    monkeypatch.setattr(program, "_fixed_step_solve", failing)
    argv = ["--study", "tolerance", "--small", "--solvers", "rk4", "--out", str(tmp_path)]
    with pytest.raises(ValueError, match=r"rk4: the error at x = 0.025 is nan"):
        program.main(argv)
    assert not (tmp_path / "convergence_tolerance.json").exists()


def test_a_series_too_short_to_fit_names_its_study_and_the_cure(tmp_path):
    """At a = 0.1 (rate arccosh 10 = 3.0) the small run's rules reach rounding at once."""
    program = experiment_program("convergence")
    argv = ["--study", "resolution", "--small", "--amplitude-a", "0.1", "--out", str(tmp_path)]
    with pytest.raises(
        ValueError, match=r"T², .*: only [0-2] of 5 points lie above 10\^5 rounding"
    ):
        program.main(argv)


def test_convergence_flags_are_checked(tmp_path, capsys):
    program = experiment_program("convergence")
    bad = [
        (["--study", "nonsense"], "invalid choice"),
        (["--seeds", "1"], "argument --seeds: must be >= 2"),
        (["--solvers", "heun,nope"], "--solvers: unknown"),
        (["--amplitude-a", "1"], "argument --amplitude-a: must be a finite number > 0 and < 1"),
        (["--no-such-flag"], "unrecognized arguments: --no-such-flag"),
        (["--solvers", ""], "--solvers: name at least one"),
        (["--solvers", "heun,rk4,heun"], "--solvers: heun named twice"),
        # a flag the chosen study does not read
        (["--study", "sigma", "--solvers", "rk4"], "--solvers is read by the tolerance study"),
        (["--study", "points", "--amplitude-a", "0.5"], "read by the resolution study, not"),
        (["--study", "tolerance", "--seeds", "4"], "read by the width and points studies"),
    ]
    for argv, message in bad:
        assert message in refusal(program, argv, tmp_path, capsys)
    assert not any(tmp_path.iterdir())


@pytest.mark.slow
@pytest.mark.parametrize("study", STUDIES)
def test_convergence_study_recovers_expected_order(tmp_path, study):
    experiment_program("convergence").main(["--study", study, "--out", str(tmp_path)])
    record = _check_outputs(tmp_path, study)
    assert record["small"] is False
    for series in record["series"]:
        print(study, series["label"], series["order"], series["interval"])
        assert series["expected_in_interval"], (
            f"{study}, {series['label']}: expected order {series['expected_order']} outside "
            f"the 95% interval {series['interval']} (fitted {series['order']})"
        )
