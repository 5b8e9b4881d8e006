"""Every program fails with a message, never a traceback: unusable output folders, ill-posed
requests, Ctrl-C (also in the middle of a write) and an encoding that cannot show σ.

The programs are the fifteen in experiments/ and the `metric-flows` command. Each runs its
`main` through `solvers.run_program` and checks its `--out` with `solvers.output_directory`
before any work (checked on every program's source below, and by running each). Ctrl-C is
sent to a real process: `metric-flows` and one experiment (the quickest to start) in the
default suite, the others in slow tests (each costs a Python start with JAX, a few seconds).
"""

import ast
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import equinox as eqx
import jax.numpy as jnp
import pytest

import solvers

from .helpers import DEMO, EXPERIMENTS, PROGRAMS, experiment_program, refusal

ROOT = Path(__file__).resolve().parents[1]
ALL_PROGRAMS = (*PROGRAMS, DEMO)
PYTHON_BIN = Path(sys.executable).parent


def _run(name, argv, capsys):
    """`run_program` on the program's `main(argv)`: the exit status and stderr."""
    main = experiment_program(name).main
    status = solvers.run_program(lambda: main(argv), name)
    return status, capsys.readouterr().err


def _unwritable_folder(tmp_path) -> Path:
    """An existing folder in which no file can be created, for this user."""
    if os.geteuid() != 0:
        folder = tmp_path / "read-only"
        folder.mkdir()
        folder.chmod(0o555)
        return folder
    if Path("/sys").is_dir():  # root writes anywhere but in sysfs
        return Path("/sys")
    pytest.skip("no folder this (root) user cannot write")


@pytest.fixture
def unusable_outputs(tmp_path):
    a_file = tmp_path / "a-file"
    a_file.write_text("not a folder")
    return {
        "a file": (a_file, "exists and is not a folder"),
        "under a file": (a_file / "out", "cannot be created: Not a directory"),
        "not writable": (_unwritable_folder(tmp_path), "cannot be written: Permission denied"),
    }


def test_output_directory_creates_and_refuses(tmp_path, unusable_outputs):
    made = solvers.output_directory(tmp_path / "new" / "nested")
    assert made.is_dir() and list(made.iterdir()) == []  # its write test leaves nothing
    for path, reason in unusable_outputs.values():
        with pytest.raises(solvers.OutputError, match=reason) as error:
            solvers.output_directory(path)
        assert str(path) in str(error.value)


@pytest.mark.parametrize("name", ALL_PROGRAMS)
def test_every_program_refuses_an_unusable_output_folder_with_a_message(
    name, unusable_outputs, capsys
):
    for path, reason in unusable_outputs.values():
        status, err = _run(name, ["--out", str(path)], capsys)
        assert status == solvers._program.FAILED  # white-box: the status constant
        assert err.startswith(f"{name}: output folder {path}") and reason in err, err
        assert err.count("\n") == 1 and "Traceback" not in err


def test_an_ill_posed_request_is_refused_with_a_message(tmp_path, capsys):
    argv = ["--dim", "2", "--sigma", "0", "--degree", "16", "--flow", "perelman"]
    status, err = _run("sphere_extinction", [*argv, "--out", str(tmp_path)], capsys)
    assert status == 1 and "Traceback" not in err
    assert err.startswith("sphere_extinction: solve refuses: flow 'perelman'"), err
    assert "predicted amplification of rounding" in err and err.count("\n") == 1
    assert list(tmp_path.iterdir()) == []


def test_a_run_time_check_ends_as_its_own_message(capsys):
    # an eqx.error_if inside compiled code: its text is the JIT stack, the message and
    # debugging advice (kilobytes); the program's one line is the message alone
    def check(x):
        return eqx.error_if(x, x > 0, "the metric is not positive definite")

    def main():
        eqx.filter_jit(check)(jnp.asarray(1.0))

    assert solvers.run_program(main, "demo") == 1
    err = capsys.readouterr().err
    assert err == "demo: the metric is not positive definite\n", err
    try:
        check(jnp.asarray(1.0))  # outside jit: the same message
    except eqx.EquinoxRuntimeError as error:
        assert solvers.error_message(error) == "the metric is not positive definite"
    assert solvers.error_message(ValueError("two\n lines")) == "two lines"


@pytest.mark.parametrize("name", ["feature_learning", "kernel_tuning"])
def test_more_points_than_memory_allows_are_refused_with_the_estimate(name, tmp_path, capsys):
    # 10^11 points: refused with the estimate before they are allocated and before any
    # training or trial: by the first draw's sampling (feature_learning), or at parse
    # time for every point flag (kernel_tuning; kernel_points refuses its ladder before
    # sampling: tests/test_kernel_points.py)
    if name == "kernel_tuning":
        err = refusal(experiment_program(name), ["--points", str(10**11)], tmp_path, capsys)
        assert "error: --points 100000000000: drawing" in err
    else:
        status, err = _run(name, ["--points", str(10**11), "--out", str(tmp_path)], capsys)
        assert status != 0 and f"{name}: sample_points: " in err
    assert "Traceback" not in err and "TiB of memory, more than the" in err


def _entry_call(tree: ast.Module):
    """The call under `if __name__ == "__main__":`, as source."""
    for node in tree.body:
        if isinstance(node, ast.If) and "__main__" in ast.unparse(node.test):
            return ast.unparse(node.body[0])
    return None


@pytest.mark.parametrize("name", PROGRAMS)
def test_every_program_runs_under_run_program_and_checks_its_output_first(name):
    source = (EXPERIMENTS / f"{name}.py").read_text()
    tree = ast.parse(source)
    assert _entry_call(tree) == f"sys.exit(solvers.run_program(main, {name!r}))"
    main = next(n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == "main")
    lines = [ast.unparse(s) for s in main.body[:3]]
    assert "args = parse_args(argv)" in lines
    assert "args.out = solvers.output_directory(args.out)" in lines


def test_the_command_runs_under_run_program():
    pyproject = (ROOT / "pyproject.toml").read_text()
    assert 'metric-flows = "solvers.demo:command"' in pyproject
    source = (ROOT / "solvers" / "demo" / "_cli.py").read_text()
    assert 'run_program(main, "metric-flows")' in source
    assert "args.out = output_directory(args.out)" in source


def _command(name: str, out: Path) -> list[str]:
    if name == DEMO:
        return [str(PYTHON_BIN / "metric-flows"), "--out", str(out)]
    return [sys.executable, str(EXPERIMENTS / f"{name}.py"), "--out", str(out)]


def _interrupt_after_first_line(command: list[str], cwd: Path):
    """Start `command`, send SIGINT once it has printed a line; (status, stderr, seconds to exit)."""
    process = subprocess.Popen(
        command, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        first = process.stdout.readline()
        assert first, process.stderr.read()
        process.send_signal(signal.SIGINT)
        sent = time.monotonic()
        _, err = process.communicate(timeout=60)
        return process.returncode, err, time.monotonic() - sent
    finally:
        process.kill()


def _check_interrupted(name, tmp_path):
    out = tmp_path / "out"
    status, err, seconds = _interrupt_after_first_line(_command(name, out), tmp_path)
    assert status == solvers._program.INTERRUPTED, err  # white-box: the status constant
    assert err.startswith(f"{name}: interrupted (Ctrl-C); no half-written file is left."), err
    assert "Traceback" not in err and err.count("\n") == 1
    assert seconds < 10  # at once, not at the end of a compilation or a solve
    assert not [p for p in out.iterdir() if p.name.endswith(".tmp")]


# the default suite interrupts the command and one experiment; the rest are slow tests
_QUICK = (DEMO, "quintic_sigma")


@pytest.mark.parametrize(
    "name",
    [n if n in _QUICK else pytest.param(n, marks=pytest.mark.slow) for n in ALL_PROGRAMS],
)
def test_ctrl_c_ends_every_program_with_a_message(name, tmp_path):
    _check_interrupted(name, tmp_path)


WRITER = """
import os, signal, sys, time
from pathlib import Path
import solvers

out = Path(sys.argv[1])

def main():
    print("writing σ", flush=True)  # not ASCII: PYTHONIOENCODING=ascii must not fail here
    with solvers.atomic_write(out / "first.txt", "w") as f:
        f.write("complete")
    with solvers.atomic_write(out / "second.txt", "w") as f:
        f.write("half")
        f.flush()
        os.kill(os.getpid(), signal.SIGINT)  # Ctrl-C in the middle of the write
        time.sleep(60)
        f.write(" and the rest")

sys.exit(solvers.run_program(main, "writer"))
"""


def test_ctrl_c_during_a_write_leaves_the_old_file_and_names_the_new_ones(tmp_path):
    script = tmp_path / "writer.py"
    script.write_text(textwrap.dedent(WRITER))
    out = tmp_path / "out"
    out.mkdir()
    (out / "second.txt").write_text("old")
    env = {**os.environ, "PYTHONIOENCODING": "ascii"}
    run = subprocess.run(
        [sys.executable, str(script), str(out)], capture_output=True, text=True, env=env, timeout=60
    )
    assert run.returncode == 130, run.stderr
    assert run.stdout == "writing \\u03c3\n"
    assert run.stderr.startswith("writer: interrupted (Ctrl-C); no half-written file is left.")
    assert f"completed 1 output file(s): {out / 'first.txt'};" in run.stderr
    assert "Traceback" not in run.stderr
    assert sorted(p.name for p in out.iterdir()) == ["first.txt", "second.txt"]  # no .tmp
    assert (out / "second.txt").read_text() == "old"
    assert (out / "first.txt").read_text() == "complete"
