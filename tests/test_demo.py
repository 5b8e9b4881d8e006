"""The `metric-flows` command (`solvers/demo/`), the project's main demo.

`test_demo_quick` runs the demo in-process at its smallest size (`--quick`: T²,
S², the network's evolving regime and the quintic, one σ) and checks the
report folder and the numbers against their predictions: R's Fourier modes on
T² decay at k² exp(-σ²k²/2) to 1e-5 relative (measured: ~2e-7), the unit S²
becomes extinct at 1/2 locally and at 1/(2(1 - β_σ)) smoothed, to 1e-3
relative (the degenerate event stops 1e-4 T early), λ never decreases along
the local λ form, the network descends its loss, and the local point kernel
leaves the quintic's test points alone while the Gaussian moves them, and the
quintic's spectral Kähler–Ricci flows, local and smoothed, fall from Fubini–Study
to their floor, the smoothed one more slowly. It is
compile-bound: about 100 s of CPU on two cores. The slow test runs the default
configuration through the installed console script and holds it to under 5
minutes (300 s).
"""

import argparse
import json
import math
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import flows
from solvers import demo

_PNG = b"\x89PNG\r\n\x1a\n"


def _numbers(value, path="report"):
    """Every number in a JSON document, with its path; None (a non-finite number) fails."""
    if value is None:
        raise AssertionError(f"{path} is null (a non-finite number)")
    if isinstance(value, dict):
        for k, v in value.items():
            yield from _numbers(v, f"{path}.{k}")
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from _numbers(v, f"{path}[{i}]")
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        yield path, value


def _check_folder(out: Path, sections: set[str]) -> dict:
    report = json.loads((out / "report.json").read_text())
    assert sections | {"config", "figures", "wall_seconds", "sections_seconds"} <= set(report)
    for path, number in _numbers(report):
        assert math.isfinite(number), path
    assert report["figures"], "no figures"
    for name in report["figures"]:
        data = (out / name).read_bytes()
        assert data.startswith(_PNG) and len(data) > 10_000, name
    summary = (out / "summary.md").read_text()
    assert summary.startswith("# metric-flows") and "|---|" in summary
    assert not list(out.glob(".*.tmp")), "a temporary file was left behind"
    return report


@pytest.mark.slow  # ~95 s of CPU, compile-bound: the default suite was over 10 minutes
def test_demo_quick(tmp_path, capsys):
    out = tmp_path / "report"
    assert demo.main(["--quick", "--out", str(out)]) is None  # the console script's exit status 0
    report = _check_folder(out, {"torus", "s2", "network", "quintic"})
    assert report["figures"] == [
        "mode_decay.png",
        "curvature_loss.png",
        "extinction.png",
        "quintic_sigma.png",
    ]
    assert "[" in capsys.readouterr().out  # progress lines

    torus = report["torus"]
    assert set(torus["runs"]) == {"0.0", "0.3"}
    for run in torus["runs"].values():
        predicted = [k**2 * math.exp(-(run["sigma"] ** 2) * k**2 / 2) for k in torus["ks"]]
        np.testing.assert_allclose(run["measured_rates"], predicted, rtol=1e-5)
        assert run["resolved"] == [True] * len(torus["ks"]) and run["unresolved_reasons"] == {}
        assert run["stop_reason"] == "reached t1"
    assert torus["unresolved"] == [] and torus["max_relative_error"] < 1e-5
    lam = np.asarray(torus["runs"]["0.0"]["lambda"])
    assert np.all(np.diff(lam) >= -1e-10) and lam[-1] > lam[0]

    s2 = report["s2"]["runs"]
    assert abs(s2["0.0"]["extinction_time"] - 0.5) < 1e-3
    assert s2["0.3"]["extinction_time"] > 0.5 + 0.03  # smoothing slows the shrinking
    for run in s2.values():
        assert run["relative_error"] < 1e-6  # against (1 - 1e-4) T, where the event fires
        assert run["max_scale_error_before_0.8T"] < 1e-6
        assert run["stop_reason"].startswith("metric degenerate")

    evolving = report["network"]["runs"]["evolving"]
    assert evolving["loss_decrease"] > 0 and evolving["monotone"]
    assert 0 < evolving["kernel_drift"][-1] < 0.5

    runs = report["quintic"]["runs"]
    local, gaussian = runs["local"], runs["gaussian"]
    assert local["sigma_train"][-1] < local["sigma_train"][0]
    assert local["sigma_test"][-1] == pytest.approx(local["sigma_test"][0], abs=1e-12)
    assert gaussian["sigma_test"][-1] < gaussian["sigma_test"][0]

    # the spectral Kähler–Ricci flows (degree 4, 240 points): both leave Fubini–Study
    # (σ 0.40 on these points) for a floor near 0.018 (measured 0.0190 local, 0.0175
    # smoothed); the local one has settled by t1 (velocity × 3e-9: rate 17.4), the
    # smoothed one, whose slowest rate is about 1.5, later (× 2e-6)
    spectral = report["quintic"]["spectral"]["runs"]
    local, smoothed = spectral["local"], spectral["smoothed"]
    assert local["width"] == 0 and smoothed["width"] == 0.3
    assert local["sigma_test"][0] == pytest.approx(smoothed["sigma_test"][0], rel=1e-12)
    for run in (local, smoothed):
        assert run["sigma_test"][-1] < 0.05 < 0.3 < run["sigma_test"][0]
    assert local["velocity"][-1] / local["velocity"][0] < 1e-7
    assert smoothed["velocity"][-1] / smoothed["velocity"][0] > 10 * (
        local["velocity"][-1] / local["velocity"][0]
    )


def test_figures_name_the_curves_that_overlap():
    # a curve hidden under another is named in the panel's title, with the gap
    from solvers.demo._figures import _overlaps  # white-box: the figures' overlap note

    t = np.linspace(0, 1, 11)
    note = _overlaps({"local": t**2, "σ = 0.1": t**2 + 1e-4, "σ = 0.5": 0.5 * t})
    assert note == "overlapping: local and σ = 0.1 (within 1.0e-04)"
    assert _overlaps({"a": t, "b": 2 * t}) == ""


def test_demo_flags_are_checked(tmp_path, capsys):
    bad = [
        ["--manifolds", "klein"],
        ["--manifolds", "torus,s4"],
        ["--flows", "ricci"],
        ["--sigmas", "0"],
        ["--sigmas", "0.1,nan"],
        ["--sigmas", "8.5"],  # past σ ≈ 8.5 the Gaussian on T² is the mean to rounding
        ["--sigmas", "0.3,1e10"],
        ["--sigmas", "1e300"],
        ["--n", "4"],
        ["--dtype", "float16"],
        ["--quintic-sigma", "-1"],
        ["--unknown"],
        ["--manifolds", "s2", "--flows", "evolving"],  # the network runs on the torus
        ["--manifolds", "s2,quintic", "--dtype", "float32"],  # float64-only sections
    ]
    for argv in bad:
        with pytest.raises(SystemExit) as error:
            demo.parse_args([*argv, "--out", str(tmp_path)])
        assert error.value.code == 2, argv
        assert "error" in capsys.readouterr().err, argv
    demo.parse_args(["--sigmas", "8", "--out", str(tmp_path)])  # the widest accepted
    args = demo.parse_args(["--quick", "--flows", "local"])
    assert args.manifolds == ["torus", "s2", "quintic"] and args.flows == ["local"]
    assert args.sigmas == [0.3] and args.n == 8
    args = demo.parse_args(["--sigmas", "0.5,0.1", "--manifolds", "s3,torus"])
    assert args.sigmas == [0.1, 0.5] and args.manifolds == ["s3", "torus"] and args.n == 16
    assert args.out == Path("results") / "metric-flows"


# The manifolds by their reprs (the test ids), built in the test, not at collection: every
# xdist worker imports every test module, and S^3's tables take about 4 s to build.
SPECTRAL_GAUSSIAN_MANIFOLDS = {
    "Torus(dim=2, n=8)": lambda: flows.Torus(2, 8),
    "Sphere(dim=2, degree=6)": lambda: flows.Sphere(2, 6),
    "Sphere(dim=3, degree=4)": lambda: flows.Sphere(3, 4),
}


@pytest.mark.parametrize("name", SPECTRAL_GAUSSIAN_MANIFOLDS)
def test_spectral_gaussian_is_the_gaussian_kernel(name):
    """The traced-σ kernel the demo uses has `flows.GaussianKernel`'s multiplier; σ = 0 is the identity."""
    manifold = SPECTRAL_GAUSSIAN_MANIFOLDS[name]()
    assert repr(manifold) == name
    for sigma in (0.1, 0.4):
        ours = flows.SpectralGaussian(manifold, sigma).multiplier(manifold)
        theirs = flows.GaussianKernel(sigma).multiplier(manifold)
        np.testing.assert_allclose(np.asarray(ours), np.asarray(theirs), rtol=1e-13, atol=1e-15)
    identity = flows.SpectralGaussian(manifold, 0.0).multiplier(manifold)
    np.testing.assert_array_equal(np.asarray(identity), 1.0)


@pytest.mark.slow
def test_console_script_default_run(tmp_path):
    """`metric-flows --out DIR` as installed, default configuration: under 300 s, full report."""
    script = Path(sys.executable).parent / "metric-flows"
    command = str(script) if script.exists() else shutil.which("metric-flows")
    assert command, 'the console script is not installed: pip install -e ".[test]"'
    env = dict(os.environ)
    if env.get("XLA_FLAGS") == "--xla_backend_optimization_level=0":
        del env["XLA_FLAGS"]  # set by conftest for the suite; time the command as a user runs it
    out = tmp_path / "report"
    start = time.perf_counter()
    result = subprocess.run(
        [command, "--out", str(out)], capture_output=True, text=True, env=env, timeout=900
    )
    wall = time.perf_counter() - start
    assert result.returncode == 0, result.stderr[-4000:]
    report = _check_folder(out, {"torus", "s2", "s3", "network", "quintic"})
    assert len(report["figures"]) == 4
    assert result.stdout.count("] ") >= 10  # progress lines as it goes
    assert set(report["torus"]["runs"]) == {"0.0", "0.1", "0.3", "0.5"}
    assert report["torus"]["max_relative_error"] < 1e-5
    assert abs(report["s2"]["runs"]["0.0"]["extinction_time"] - 0.5) < 1e-3
    assert abs(report["s3"]["runs"]["0.0"]["extinction_time"] - 0.25) < 1e-3
    assert set(report["network"]["runs"]) == {"evolving", "frozen", "infinite"}
    assert set(report["quintic"]["spectral"]["runs"]) == {"local", "smoothed"}
    assert wall < 300, f"the default run took {wall:.0f} s (it must finish in under 5 minutes)"


def test_demo_bounds_the_kernel_width_with_a_message(tmp_path, capsys):
    # a width past the bound is refused at parse time by name (it crashed with a
    # ZeroDivisionError on T² and an OverflowError on the spheres); the sections refuse it
    # with a ValueError naming the problem when called directly
    for sigmas in ("1e10", "0.1,9"):
        with pytest.raises(SystemExit) as exit:
            demo.parse_args(["--sigmas", sigmas, "--out", str(tmp_path / "new")])
        assert exit.value.code == 2
        err = capsys.readouterr().err
        assert "argument --sigmas: --sigmas must be <= 8" in err and err.startswith("usage:")
    assert not (tmp_path / "new").exists()
    # white-box: the sections, called without the parser
    from solvers.demo import _sections

    args = argparse.Namespace(n=6, degree=2, dtype="float64")
    with pytest.raises(ValueError, match=r"kernel widths \[10000000000.0\] are outside"):
        _sections.run_torus(args, [0.0, 1e10])
    with pytest.raises(ValueError, match="outside"):
        _sections.run_sphere(args, 2, [1e300])


def test_demo_marks_a_rate_it_cannot_resolve():
    """A rate is measured only where the run resolves it (`measure_rate`): a mode whose
    predicted decay over the run is below 1e4 × the integrator's rtol, or whose fit's
    standard error is above 1e-4 of the rate, is not resolved (at --sigmas 8 the demo
    printed k=2: -4.75e-11 against 1.03e-55, "max relative error 4.6e+44")."""
    # white-box: the demo's rate fit and its resolution check
    from solvers.demo._sections import measure_rate

    t = np.linspace(0.0, 0.05, 21)
    noise = 1e-12 * np.random.default_rng(0).standard_normal(t.size)
    floor = {"rtol": 1e-10, "resolution": 1e-4}
    rate, stderr, why = measure_rate(t, np.exp(-0.1 * t + noise), 0.1, **floor)
    assert why is None and rate == pytest.approx(0.1, rel=1e-8)
    assert stderr == pytest.approx(1e-12 / np.sqrt(np.sum((t - t.mean()) ** 2)), rel=0.5)
    # below the integrator's floor: 1e-55 decays by 5e-57 over the run, not 1e4 × 1e-10
    rate, _, why = measure_rate(t, np.exp(-4.75e-11 * t + noise), 1.03e-55, **floor)
    assert why.startswith("below the integrator's floor") and abs(rate) < 1e-10  # noise
    # above the floor, but noisier than 1e-4 of the rate
    noisy = 1e-6 * np.random.default_rng(1).standard_normal(t.size)
    _, stderr, why = measure_rate(t, np.exp(-1e-3 * t + noisy), 1e-3, **floor)
    assert stderr > 1e-7 and "standard error" in why
    # amplitudes that vanish: no fit at all
    assert measure_rate(t, np.zeros_like(t), 1.0, **floor)[2] is not None


def _torus_record() -> dict:
    """A T² section's record (as `run_torus` returns, through `_plain`): one run, k = 2 unresolved."""
    return {
        "manifold": "Torus(dim=2, n=6)",
        "ks": [1, 2],
        "mode_t1": 0.05,
        "curvature_t1": 0.2,
        "resolution": 1e-4,
        "rtol": 1e-10,
        "max_relative_error": 2e-8,
        "unresolved": [[8.0, 2]],
        "runs": {
            "8.0": {
                "sigma": 8.0,
                "label": "σ = 8",
                "measured_rates": [0.011109, -4.75085e-11],
                "predicted_rates": [0.011109, 1.02888e-55],
                "relative_errors": [2e-8, None],
                "resolved": [True, False],
                "unresolved_reasons": {"2": "below the integrator's floor: predicted 1.03e-55"},
                "integral_R2": [24.76, 25.03],
                "integral_R2_linearised": [28.0, 28.5],
                "lambda": [-0.022, -0.0224],
            }
        },
    }


def test_summary_reports_an_unresolved_rate_as_not_resolved():
    # white-box: summary.md's renderer, on records of the sections' shape
    from solvers.demo._report import summary_markdown

    config = {"started": "now", "dtype": "float64", "device": "cpu"}
    report = {"config": config, "wall_seconds": 1.0, "figures": [], "torus": _torus_record()}
    summary = summary_markdown(report, 1e-4)
    assert "| σ = 8 | 2 | not resolved | 1.02888e-55 | — |" in summary
    assert "-4.75085e-11" not in summary and "4.6e+44" not in summary
    assert "- σ = 8, k = 2: below the integrator's floor" in summary
    assert "| σ = 8 | 1 | 0.011109 | 0.011109 | 2.0e-08 |" in summary
    # the spectral flows' floor sentence comes from the run's velocities and tolerances
    velocity = [1.0, 1e-3, 1e-6, 4e-9, 2e-9, 3e-9, 1e-9, 2e-9]
    run = {"width": 0.0, "times": [0.0, 3.0], "sigma_test": [0.4, 0.02], "velocity": velocity}
    spectral = {
        "k": 4,
        "basis_size": 5,
        "points": 10,
        "test_points": 10,
        "rtol": 1e-8,
        "atol": 1e-10,
    }
    report["quintic"] = {
        "points": 10,
        "steps": 1,
        "gaussian_sigma": 0.3,
        "test_kick": 0.01,
        "mean_test_distance": 0.01,
        "runs": {},
        "spectral": {**spectral, "runs": {"local": run}},
    }
    summary = summary_markdown(report, 1e-4)
    assert "1e-10 to 1e-8" not in summary  # the old fixed text
    assert "rtol 1e-08, atol 1e-10" in summary
    assert "| local | 0.4000 → 0.02000 | 3 | 2.0e-09 | 1.0e-09 to 4.0e-09 |" in summary


def test_demo_says_which_requested_manifolds_its_flows_cannot_run(tmp_path, capsys, monkeypatch):
    # --flows evolving runs only the network (on T²): s2 and the quintic are named as not
    # run, in a progress line, report.json and summary.md, not dropped silently
    # white-box: the network section and its figure replaced by stubs (no computation)
    from solvers.demo import _cli

    network = {
        "width": 1,
        "network_sigma": 0.5,
        "t1": 0.1,
        "runs": {"evolving": {"loss": [1.0, 0.5]}},
        "distances": {},
    }
    monkeypatch.setattr(_cli, "run_network", lambda args, regimes: network)
    monkeypatch.setattr(_cli, "plot_curvature_loss", lambda torus, network, path: None)
    out = tmp_path / "report"
    demo.main(["--manifolds", "torus,s2,quintic", "--flows", "evolving", "--out", str(out)])
    printed = capsys.readouterr().out
    for name in ("s2", "quintic", "torus"):
        assert f"] {name}: not run (--flows evolving has neither local nor smoothed" in printed
    report = json.loads((out / "report.json").read_text())
    assert set(report["skipped"]) == {"torus", "s2", "quintic"} and "network" in report
    assert (
        "Skipped s2: --flows evolving has neither local nor smoothed"
        in (out / "summary.md").read_text()
    )
    # the network regimes without the torus are named too
    args = demo.parse_args(["--manifolds", "s2", "--flows", "local,frozen", "--out", str(out)])
    assert _cli._not_run(args) == {
        "network": "--flows frozen run on the torus, which --manifolds does not name"
    }


@pytest.mark.slow  # one T² section at n = 6: ~15 s of compilation
def test_demo_reports_an_unresolvable_rate_as_not_resolved(tmp_path, capsys):
    out = tmp_path / "report"
    argv = ["--manifolds", "torus", "--flows", "smoothed", "--sigmas", "8", "--n", "6"]
    demo.main([*argv, "--out", str(out)])
    printed = capsys.readouterr().out
    assert "k=2: not resolved (below the integrator's floor" in printed
    assert "max relative error 4.6e+44" not in printed and "no rate resolved" in printed
    report = json.loads((out / "report.json").read_text())
    torus = report["torus"]
    run = torus["runs"]["8.0"]
    assert run["resolved"] == [False, False] and run["relative_errors"] == [None, None]
    assert torus["unresolved"] == [[8.0, 1], [8.0, 2]] and torus["max_relative_error"] is None
    assert set(run["unresolved_reasons"]) == {"1", "2"}
    summary = (out / "summary.md").read_text()
    assert "| σ = 8 | 2 | not resolved | 1.02888e-55 | — |" in summary
