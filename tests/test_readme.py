"""The README's API tour runs as written, and CI runs exactly the README's test command."""

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()


BLOCKS = re.findall(r"```python\n(.*?)```", README, flags=re.S)
# the network tour stands alone (its own imports), so it runs beside the rest
NETWORK = [b for b in BLOCKS if "solve_network" in b]
QUINTIC = [b for b in BLOCKS if "solve_points" in b]


def test_readme_python_blocks_run():
    assert len(BLOCKS) >= 5 and len(NETWORK) == 1 and len(QUINTIC) == 1
    namespace: dict = {}
    for block in BLOCKS:
        if block not in NETWORK + QUINTIC:
            exec(compile(block, "README.md", "exec"), namespace)
    assert float(abs(namespace["gauss_bonnet"] - 4 * 3.141592653589793)) < 1e-3
    assert namespace["grad"].shape == (256, 2, 2)
    assert namespace["E"].shape == (256, 2, 2)


def test_readme_network_tour_runs():
    namespace: dict = {}
    exec(compile(NETWORK[0], "README.md", "exec"), namespace)
    assert set(namespace["runs"]) == {"evolving", "frozen", "infinite"}
    assert all(float(r.loss[-1]) < float(r.loss[0]) for r in namespace["runs"].values())


def test_readme_quintic_kernel_tour_runs():
    namespace: dict = {}
    exec(compile(QUINTIC[0], "README.md", "exec"), namespace)
    run = namespace["run"]
    assert run.stop_reason == "reached t1"
    assert float(run.sigma_train[-1]) < 0.1 * float(run.sigma_train[0])
    assert float(run.sigma_test[-1]) < float(run.sigma_test[0])


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
