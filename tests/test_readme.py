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
        ["reached t1", "exp(128 x 0.9901) = 1.09e+55"],
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


@pytest.mark.parametrize("marker", CHECKS)
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
    # small runs are tests/test_experiments.py's; their failures tests/test_programs.py's)
    assert sorted({name for name, _ in INVOCATIONS}) == sorted(PROGRAMS)
    for name, flags in INVOCATIONS:
        args = experiment_program(name).parse_args(flags)
        assert args.out is not None and "--out" in flags, (name, flags)


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
