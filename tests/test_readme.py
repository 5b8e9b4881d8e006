"""The README's API tour runs as written, each block alone, and CI runs exactly the README's test command."""

import ast
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from .helpers import PROGRAMS, experiment_program

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()


BLOCKS = re.findall(r"```python\n(.*?)```", README, flags=re.S)

# Each tour block runs alone in a fresh interpreter; after it, these checks (a marker in
# the block picks them): statements, and text its output must hold.
CHECKS = {
    "gauss_bonnet =": ("assert float(abs(gauss_bonnet - 4 * jnp.pi)) < 1e-3", []),
    "def calabi": ("assert grad.shape == (256, 2, 2)", []),
    "functional_derivative": ("assert E.shape == (256, 2, 2)", []),
    "solvers.solve(flow": (
        "assert solution.stop_reason == 'reached t1'",
        ["reached t1", "exp(128 x 1.221) = 7.9e+67"],
    ),
    "solve_network": (
        "assert set(runs) == {'evolving', 'frozen', 'infinite'}\n"
        "assert all(float(r.loss[-1]) < float(r.loss[0]) for r in runs.values())",
        [],
    ),
    "solve_points": (
        "assert run.stop_reason == 'reached t1'\n"
        "assert float(run.sigma_train[-1]) < 0.1 * float(run.sigma_train[0])\n"
        "assert float(run.sigma_test[-1]) < float(run.sigma_test[0])",
        [],
    ),
}


def test_every_tour_block_is_checked():
    assert len(BLOCKS) == len(CHECKS)
    assert all(sum(marker in b for b in BLOCKS) == 1 for marker in CHECKS)


# the solve_network block compiles an evolving network flow (about 20 s): a slow test
@pytest.mark.parametrize(
    "marker",
    [pytest.param(m, marks=pytest.mark.slow) if m == "solve_network" else m for m in CHECKS],
)
def test_readme_block_runs_alone(marker, tmp_path):
    block = next(b for b in BLOCKS if marker in b)
    statements, outputs = CHECKS[marker]
    run = subprocess.run(
        [sys.executable, "-c", block + "\n" + statements],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    for text in outputs:
        assert text in run.stdout, run.stdout


# every program invocation the README prints, as (program, its flags)
INVOCATIONS = [
    (name, shlex.split(flags))
    for name, flags in re.findall(r"`\.venv/bin/python experiments/(\w+)\.py ([^`]*)`", README)
]


def test_readme_program_invocations_parse_as_printed():
    # every program appears, with concrete flags its own parser accepts (the programs'
    # runs at small sizes are test_readme_program_invocation_runs_at_small_sizes; their
    # failures tests/test_programs.py's)
    assert sorted({name for name, _ in INVOCATIONS}) == sorted(PROGRAMS)
    for name, flags in INVOCATIONS:
        args = experiment_program(name).parse_args(flags)
        assert args.out is not None and "--out" in flags, (name, flags)


# Each program's smallest sizes: flags appended to the README's own (a later value of a
# flag replaces an earlier one), so that every invocation it prints runs in a test.
SMALL = {
    "torus_modes": ["--n", "8", "--k", "1", "2", "--t1", "0.05"],
    "sphere_extinction": [],  # as printed: about 25 s on two cores
    "well_posedness": ["--n", "8", "--t1", "0.02"],
    "lambda_drift": ["--n", "9", "--t1", "0.02", "--saves", "2"],
    "quintic_sigma": ["--points", "2000"],
    "curvature_tour": [],  # no size flags: about a minute
    "ntk_regimes": ["--widths", "8,16", "--t1", "0.02", "--seeds", "1", "--saves", "2"],
    "quintic_kernels": [
        *("--points", "300", "--test-points", "300", "--steps", "3"),
        *("--clusters", "0", "--scaling-points", "100", "200", "400"),
    ],
    "quintic_networks": [
        *("--points", "100", "--test-points", "100", "--width", "4", "--saves", "2"),
        *("--t1-gradient", "1", "--t1-kahler-ricci", "0.05", "--probe", "20"),
        *("--curvature-points", "0"),
    ],
    "quintic_spectral": [
        *("--k-max", "2", "--points", "600", "--test-points", "400", "--saves", "5"),
        *("--rate-ks", "--donaldson-k-max", "1", "--chern-points", "0", "--ricci-points", "0"),
        "--kernel-sigmas",
    ],
    "bench": ["--quick"],
    "convergence": ["--small"],
    "kernel_tuning": ["--small"],
    "kernel_points": [
        *("--points", "200", "400", "--test-points", "200", "--steps", "3", "--draws", "2"),
        *("--scaling-points", "100", "200", "400", "--clustered-max", "0", "--memory-points"),
    ],
    "feature_learning": [
        *("--widths", "4", "8", "16", "--points", "60", "--test-points", "60"),
        *("--probe", "10", "--batch", "30", "--epochs", "2"),
    ],
}
# the cheapest runs in the default suite; the others take 20 s to minutes each
DEFAULT = {"quintic_sigma"}


def _invocation(i, name):
    marks = () if name in DEFAULT else (pytest.mark.slow,)
    return pytest.param(i, marks=marks, id=f"{name}-{i}")


@pytest.mark.parametrize("index", [_invocation(i, n) for i, (n, _) in enumerate(INVOCATIONS)])
def test_readme_program_invocation_runs_at_small_sizes(index, tmp_path):
    # the command as printed, its --out in a fresh folder and its sizes at their smallest:
    # it ends with status 0 and writes its JSON record
    name, flags = INVOCATIONS[index]
    at = flags.index("--out")
    argv = [*flags[:at], *flags[at + 2 :], *SMALL[name], "--out", str(tmp_path / "out")]
    run = subprocess.run(
        [sys.executable, str(ROOT / "experiments" / f"{name}.py"), *argv],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=1800,
    )
    assert run.returncode == 0, (argv, run.stderr[-3000:])
    assert list((tmp_path / "out").glob("*.json")), sorted((tmp_path / "out").iterdir())


def test_every_program_has_its_small_sizes():
    assert set(SMALL) == set(PROGRAMS)


def _commands():
    return re.findall(r"^    (python3 -m venv .*)$", README, flags=re.M)


def test_ci_runs_the_readme_test_command():
    commands = _commands()
    assert len(commands) == 2, commands  # install + demo, install + tests
    test_command = next(c for c in commands if "pytest" in c)
    ci = (ROOT / ".ci" / "run").read_text().splitlines()
    assert test_command in ci


def test_demo_command_is_the_installed_console_script():
    demo = next(c for c in _commands() if "pytest" not in c)
    script = re.search(r"\.venv/bin/(\S+)", demo.split("&&")[-1]).group(1)
    pyproject = (ROOT / "pyproject.toml").read_text()
    assert re.search(rf'^{re.escape(script)} = "solvers\.demo:command"$', pyproject, flags=re.M)


def test_flows_never_imports_solvers():
    for path in (ROOT / "flows").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                names = [node.module or ""]
            else:
                continue
            assert not any(n.split(".")[0] == "solvers" for n in names), path
