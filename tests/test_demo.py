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
        assert run["stop_reason"] == "reached t1"
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
