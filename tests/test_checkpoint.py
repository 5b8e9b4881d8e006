"""Checkpoint and resume, atomic output files, singular flows that stop cleanly.

- A solve killed with SIGKILL partway and resumed from its checkpoint in a new
  process ends bit for bit where an uninterrupted run ends (float64, CPU), and so
  does the same call without a checkpoint: `solve` carries diffrax's whole loop
  state across segments, so the steps are the same. Its first step (dt0 = 1) leaves
  positive definiteness: it is rejected and retried (counted in `stats` and in the
  checkpoint the killed run leaves), and the trajectory stays finite and positive
  definite (a singular step stops or is retried cleanly, never leaving NaN behind).
- A degenerate event in a later segment stops a checkpointed solve bit for bit where
  the plain solve stops, with the reason in the solution and the checkpoint; a
  finished checkpoint returns its solution; a checkpoint made for another problem is
  refused, naming the difference; an unreadable one is refused (with the flow
  dg/dt = -g, which has a closed form).
- An output file whose writing is interrupted (an exception inside the write, or
  SIGKILL in the middle of it) keeps its previous complete contents, for both
  atomic writers (`experiments/_common.py` and `solvers/_checkpoint.py`).
- Round S^2 under Perelman's flow stops at its extinction time with the reason
  recorded, and the saved trajectory and the last good state are finite (a
  singular flow stops cleanly): slow tests here, the plain solve and the solve
  checkpointed one step per segment (bit for bit the plain one);
  `tests/test_solve.py::test_round_sphere_shrinks_linearly_and_goes_extinct[S2-perelman-None]`
  checks the same plain solve, its early saves, stop and last good state, in the
  default suite.

The kill test runs two child processes (each imports JAX and compiles the solve)
and kills the first while it pauses after its third checkpoint (a hook of the
test's), so where it is killed does not depend on timing; the second resumes, then
solves without a checkpoint and with a fresh one. The bit-for-bit comparisons run in
child processes under XLA's default code generation, which the promise is made for
(the test suite's legacy loop emitters, chosen for compile speed, can round a value
differently in two programs that compute it the same way). An output file killed
mid-write is covered by the atomic-writer tests.
"""

import json
import math
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import diffrax
import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import flows
import solvers
from solvers import _checkpoint  # white-box: counts and interrupts the checkpoint writes

from .helpers import EXPERIMENTS, NodalField, max_abs

ROOT = Path(__file__).resolve().parents[1]
EVERY = 2  # steps per checkpoint: the 32-step solve of `problem` writes 16 checkpoints
PAUSE_AFTER = 3  # the child to be killed pauses after its third checkpoint
DT0 = 1.0  # a first step so large that it leaves positive definiteness: rejected, retried


def problem():
    """Ricci–DeTurck flow on T^2 (8^2 nodes) from a seeded random metric to t = 1."""
    torus = flows.Torus(2, 8)
    g0 = flows.random_metric(torus, jax.random.key(0), 2, 0.3)
    return flows.ricci_deturck_flow(torus), g0, 0.0, 1.0


def solve_problem(checkpoint=None, **kwargs):
    flow, g0, t0, t1 = problem()
    if checkpoint is not None:
        kwargs |= {"checkpoint": checkpoint, "checkpoint_every": EVERY}
    return solvers.solve(flow, g0, t0, t1, saveat=5, dt0=DT0, **kwargs)


# What every child process starts with: float64 and strict promotion, as the tests have.
PREAMBLE = textwrap.dedent(
    """
    import sys, time
    import jax
    jax.config.update("jax_enable_x64", True)
    jax.config.update("jax_numpy_dtype_promotion", "strict")
    import numpy as np
    """
)


def _default_codegen_env() -> dict:
    """This process's environment without `XLA_FLAGS`: a child compiles with XLA's default
    code generation, which the bit-for-bit promise is made for (the legacy loop emitters
    conftest.py selects for compile speed can round a value differently in the plain and
    the segmented programs)."""
    return {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}


# The child: solves `problem` with a checkpoint. The test's hook counts the checkpoints
# it writes and, after the `pause`-th (0: never), sleeps until it is killed.
CHILD = PREAMBLE + textwrap.dedent(
    """
    from solvers import _checkpoint
    from tests.test_checkpoint import solve_problem

    path, out, pause = sys.argv[1], sys.argv[2], int(sys.argv[3])
    writes = 0
    write = _checkpoint.write

    def counting_write(*args, **kwargs):
        global writes
        write(*args, **kwargs)
        writes += 1
        if writes == pause:
            time.sleep(600)

    _checkpoint.write = counting_write
    solution = solve_problem(path)
    resumed_writes = writes
    # the resumed child also solves without a checkpoint, and with one in a fresh place
    plain = solve_problem()
    reference = solve_problem(sys.argv[4]) if len(sys.argv) > 4 else plain
    np.savez(
        out, ts=solution.ts, values=solution.values, writes=resumed_writes,
        plain_ts=plain.ts, plain_values=plain.values, plain_steps=plain.stats["num_steps"],
        plain_rejected=plain.stats["num_rejected_steps"], reference_ts=reference.ts,
        reference_values=reference.values, reference_writes=writes - resumed_writes,
        reference_steps=reference.stats["num_steps"],
        reference_rejected=reference.stats["num_rejected_steps"],
        reference_t_final=reference.t_final, reference_reason=str(reference.stop_reason),
    )
    """
)


def _child(path, out, pause, log, *more):
    return subprocess.Popen(
        [sys.executable, "-c", CHILD, str(path), str(out), str(pause), *map(str, more)],
        cwd=ROOT,
        env=_default_codegen_env(),
        stdout=log,
        stderr=subprocess.STDOUT,
    )


def _counting(monkeypatch):
    writes = []
    write = _checkpoint.write

    def counting_write(*args, **kwargs):
        write(*args, **kwargs)
        writes.append(1)

    monkeypatch.setattr(_checkpoint, "write", counting_write)
    return writes


@eqx.filter_jit
def _tsit5_step(flow, values, dt):
    term = diffrax.ODETerm(flow)
    solver = diffrax.Tsit5()
    state = solver.init(term, 0.0, dt, values, None)
    return solver.step(term, 0.0, dt, values, None, state, False)[0]


def _smallest_eigenvalue(values):
    return float(jnp.min(jnp.linalg.eigvalsh(values)[..., 0]))


def test_killed_solve_resumes_bit_for_bit(tmp_path):
    path = tmp_path / "run.ckpt"
    logs = {name: open(tmp_path / f"{name}.log", "w") for name in ("killed", "resumed")}
    killed = _child(path, tmp_path / "killed.npz", PAUSE_AFTER, logs["killed"])
    resumed = None
    try:
        # the first step the solve tries leaves positive definiteness
        flow, g0, _, _ = problem()
        assert _smallest_eigenvalue(_tsit5_step(flow, g0.values, jnp.asarray(DT0))) < 0
        deadline = time.monotonic() + 300
        while not (path.exists() and solvers.checkpoint_info(path)["steps"] >= PAUSE_AFTER * EVERY):
            assert killed.poll() is None, (tmp_path / "killed.log").read_text()
            assert time.monotonic() < deadline, "the child wrote no third checkpoint in 300 s"
            time.sleep(0.05)
        os.kill(killed.pid, signal.SIGKILL)
        assert killed.wait(timeout=60) == -signal.SIGKILL
        assert not (tmp_path / "killed.npz").exists()
        info = solvers.checkpoint_info(path)
        assert not info["finished"] and info["steps"] == PAUSE_AFTER * EVERY
        assert info["rejected_steps"] >= 1 and 0 < info["t"] < 1

        # the resumed run, then in the same child the plain solve and the uninterrupted
        # reference (the same call with a checkpoint in a fresh directory)
        fresh = tmp_path / "fresh"
        fresh.mkdir()
        resumed = _child(path, tmp_path / "resumed.npz", 0, logs["resumed"], fresh / "run.ckpt")
        assert resumed.wait(timeout=600) == 0, (tmp_path / "resumed.log").read_text()
    finally:
        for child in (killed, resumed):
            if child is not None and child.poll() is None:
                child.kill()
        for log in logs.values():
            log.close()
    out = np.load(tmp_path / "resumed.npz")
    # it went on from the third checkpoint: one checkpoint per EVERY steps, three of them
    # written by the killed process
    steps = int(out["reference_steps"])
    writes = int(out["reference_writes"])
    assert writes == -(-steps // EVERY) and int(out["writes"]) == writes - PAUSE_AFTER
    assert np.array_equal(out["values"][-1], out["reference_values"][-1])  # the final metric
    assert np.array_equal(out["values"], out["reference_values"])
    assert np.array_equal(out["ts"], out["reference_ts"])
    # segments take the steps of one uninterrupted diffeqsolve: bit for bit the plain solve
    assert np.array_equal(out["plain_values"], out["reference_values"])
    assert np.array_equal(out["plain_ts"], out["reference_ts"])
    assert int(out["plain_steps"]) == steps
    assert int(out["plain_rejected"]) == int(out["reference_rejected"])
    # the too-large first step was rejected and retried (recorded in stats), not accepted:
    # the solve reaches t1 with a finite, positive definite trajectory
    assert int(out["reference_rejected"]) >= 1
    assert str(out["reference_reason"]) == str(solvers.StopReason.REACHED_T1)
    assert float(out["reference_t_final"]) == 1.0
    assert len(out["reference_ts"]) == 5 and np.all(np.isfinite(out["reference_values"]))
    assert _smallest_eigenvalue(out["reference_values"]) > 0.5


def decay(values):
    r"""$\partial_t g = -g$, $g(t) = e^{-t} g_0$: a closed form, and no curvature to compile."""
    return -values


def decay_problem(values=None):
    r"""$\partial_t g = -g$ on T^2 (4^2 nodes) from a seeded random metric (or from `values`).

    The random metric's last digits depend on XLA's code generation: a process with
    other XLA flags is handed the values themselves.
    """
    torus = flows.Torus(2, 4)
    g0 = (
        flows.random_metric(torus, jax.random.key(0), 1)
        if values is None
        else flows.NodalMetric(torus, jnp.asarray(values))
    )
    return NodalField(torus, decay), g0


def run_decay(checkpoint, values=None, **kwargs):
    flow, g0 = decay_problem(values)
    args = {"flow": flow, "g0": g0, "t0": 0.0, "t1": 20.0, "saveat": 5} | kwargs
    positional = [args.pop(k) for k in ("flow", "g0", "t0", "t1")]
    return solvers.solve(*positional, checkpoint=checkpoint, checkpoint_every=3, **args)


# The event child: the checkpointed decay solve and the plain one, under XLA's default
# code generation (`_default_codegen_env`: the legacy loop emitters round the value at
# the event once differently in the two programs).
EVENT_CHILD = PREAMBLE + textwrap.dedent(
    """
    import solvers
    from tests.test_checkpoint import decay_problem, run_decay

    values = np.load(sys.argv[3])
    first = run_decay(sys.argv[1], values)
    flow, g0 = decay_problem(values)
    plain = solvers.solve(flow, g0, 0.0, 20.0, saveat=5)
    np.savez(sys.argv[2], values=first.values, ts=first.ts, plain_values=plain.values,
             plain_ts=plain.ts, steps=first.stats["num_steps"])
    """
)


def _in_default_codegen(script, *args):
    """Run `script` with `args` in a child process under XLA's default code generation;
    return the arrays it saved to its second argument."""
    child = subprocess.run(
        [sys.executable, "-c", script, *map(str, args)],
        cwd=ROOT,
        env=_default_codegen_env(),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert child.returncode == 0, child.stderr
    return np.load(args[1])


@pytest.mark.slow  # about 15 s: two checkpointed solves, one ending on an event
def test_event_in_a_later_segment_and_a_checkpoint_for_another_problem(tmp_path, monkeypatch):
    # dg/dt = -g: the degenerate event (smallest eigenvalue at 1e-4 of its initial value)
    # fires at t = ln(1e4), about the 15th of 3-step segments
    flow, g0 = decay_problem()
    torus = flow.manifold
    path = tmp_path / "run.ckpt"

    def run(checkpoint=path, **kwargs):
        return run_decay(checkpoint, g0.values, **kwargs)

    np.save(tmp_path / "g0.npy", g0.values)
    out = _in_default_codegen(EVENT_CHILD, path, tmp_path / "event.npz", tmp_path / "g0.npy")
    # checkpointed and plain: bit for bit, the state at the event included
    assert np.array_equal(out["values"], out["plain_values"])
    assert np.array_equal(out["ts"], out["plain_ts"])
    # a finished checkpoint returns its solution without integrating (here, in another
    # process than the one that wrote it)
    writes = _counting(monkeypatch)
    first = run()
    assert not writes and np.array_equal(first.values, out["values"])
    assert first.stop_reason == solvers.StopReason.DEGENERATE
    assert abs(first.t_final - math.log(1e4)) < 1e-6 and first.stats["num_steps"] > 30
    assert first.stats["num_steps"] == int(out["steps"])
    assert np.allclose(first.ts, [0.0, 5.0, math.log(1e4)], rtol=1e-6)
    assert np.allclose(first.values[-1], 1e-4 * g0.values, rtol=1e-5)
    info = solvers.checkpoint_info(path)
    assert info["finished"] and info["stop_reason"] == first.stop_reason
    assert info["t"] == first.t_final and info["saved"] == 2
    assert info["steps"] == first.stats["num_steps"]

    other_torus = flows.Torus(2, 5)
    cases = [
        ({"t1": 2.0}, r"t1 \(checkpoint 20.0, this call 2.0\)"),
        ({"t0": 0.5}, r"t0 \(checkpoint 0.0, this call 0.5\)"),
        ({"rtol": 1e-7}, r"rtol \(checkpoint 1e-08, this call 1e-07\)"),
        ({"g0": flows.random_metric(torus, jax.random.key(1), 1)}, r"g0 values"),
        ({"saveat": 3}, r"saveat \(checkpoint '5 times in \[0.0, 20.0\]"),
        ({"solver": "dopri5"}, r"solver \(checkpoint 'tsit5', this call 'dopri5'\)"),
        ({"fixed_point_tol": 1e-9}, r"fixed_point_tol \(checkpoint None, this call 1e-09\)"),
        ({"max_steps": 50}, r"max_steps \(checkpoint 100000, this call 50\)"),
        (
            {"flow": NodalField(other_torus, decay), "g0": flows.reference_metric(other_torus)},
            r"g0 shape \(checkpoint \[16, 2, 2\], this call \[25, 2, 2\]\)",
        ),
        (
            {"flow": flows.ricci_flow(torus)},
            r"flow \(checkpoint .*NodalField\(.*this call .MetricFlow\(",
        ),
    ]
    for change, match in cases:
        with pytest.raises(
            ValueError, match="made for a different problem; it differs in .*" + match
        ):
            run(**change)
    assert not writes

    garbage = tmp_path / "garbage.ckpt"
    garbage.write_bytes(b"not a checkpoint")
    truncated = tmp_path / "truncated.ckpt"
    half = path.read_bytes()[: path.stat().st_size // 2]
    truncated.write_bytes(half)
    for bad in (garbage, truncated):
        with pytest.raises(ValueError, match="cannot read checkpoint .* Delete it"):
            run(bad)
        with pytest.raises(ValueError, match="cannot read checkpoint"):
            solvers.checkpoint_info(bad)
    assert garbage.read_bytes() == b"not a checkpoint" and truncated.read_bytes() == half


def scaled_decay(scale):
    r"""$\partial_t g = -\mathrm{scale}\, g$, as a closure: two of them differ only in `scale`."""
    return lambda values: -scale * values


def _closing_over(metric):
    return lambda values: values * 0 + metric.values


def test_a_flow_holding_another_function_is_another_problem(tmp_path):
    # a flow's functions print alike (<function <lambda>>) and hold no arrays: a checkpoint
    # made with scale 1 answered the call with scale 3 by its own solution
    flow, _ = decay_problem()
    path = tmp_path / "run.ckpt"

    def run(scale):
        return run_decay(path, flow=NodalField(flow.manifold, scaled_decay(scale)), t1=1.0)

    first = run(1.0)
    assert np.array_equal(run(1.0).values, first.values)  # the same function: resumed
    with pytest.raises(ValueError, match="differs in flow functions"):
        run(3.0)
    digest = _checkpoint.function_digest
    assert digest(NodalField(flow.manifold, decay)) == digest(NodalField(flow.manifold, decay))
    assert digest(flow.manifold) is None  # no functions: no entry, older checkpoints still match
    # a closed-over module counts by its arrays' values (its repr shows only their shapes)
    metrics = [flows.random_metric(flow.manifold, jax.random.key(k), 1) for k in (0, 1)]
    assert repr(metrics[0]) == repr(metrics[1])
    closures = [_closing_over(g) for g in metrics]
    assert digest(closures[0]) != digest(closures[1])


def test_a_sphere_checkpoint_is_the_same_problem_for_another_sphere_object(tmp_path):
    """A run resumed after a crash builds its manifold anew, in another process: the
    checkpoint's fingerprint must not hold an object's address (the sphere's harmonic table
    printed one, so no run on a sphere could resume). Two Sphere objects built in one
    process stand in for the two processes: the second call finds the first's checkpoint
    and returns its solution."""
    path = tmp_path / "s2.ckpt"

    def run():
        sphere = flows.Sphere(2, 4)
        flow = NodalField(sphere, decay)
        g0 = flows.reference_metric(sphere)
        return solvers.solve(flow, g0, 0.0, 1.0, saveat=2, checkpoint=path, checkpoint_every=3)

    first = run()
    assert solvers.checkpoint_info(path)["finished"]
    second = run()
    assert np.array_equal(first.values, second.values)
    assert second.stats["num_steps"] == first.stats["num_steps"]


def test_damaged_checkpoints_are_refused_by_name(tmp_path):
    path = tmp_path / "run.ckpt"
    run_decay(path, t1=1.0)
    raw = path.read_bytes()
    entry = raw.find(b"PK\x01\x02")  # the first central-directory entry of the zip archive
    damaged = {
        "encrypted": (entry + 8, raw[entry + 8] | 1),  # its "encrypted" flag set
        "compression": (entry + 10, 99),  # an unknown compression method
    }
    for name, (offset, byte) in damaged.items():
        bad = tmp_path / f"{name}.ckpt"
        bad.write_bytes(raw[:offset] + bytes([byte]) + raw[offset + 1 :])
        for call in (lambda p: run_decay(p, t1=1.0), solvers.checkpoint_info):
            with pytest.raises(ValueError, match="cannot read checkpoint"):  # not a raw error
                call(bad)
    with np.load(path) as archive:
        arrays = {k: archive[k] for k in archive.files}
    arrays["stepz"] = arrays.pop("steps")
    np.savez(tmp_path / "renamed.npz", **arrays)
    with pytest.raises(ValueError, match="is inconsistent \\(KeyError"):
        solvers.checkpoint_info(tmp_path / "renamed.npz")
    with pytest.raises(ValueError, match="there is no checkpoint file at"):
        solvers.checkpoint_info(tmp_path / "absent.ckpt")


def test_a_checkpointed_solve_has_one_progress_meter(tmp_path, capsys):
    # diffrax's meter restarted at 0% in every segment; one line per segment now, rising
    run_decay(tmp_path / "run.ckpt", t1=1.0, progress=True)
    lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith("solve:")]
    shares = [float(line.split("(")[1].split("%")[0]) for line in lines]
    assert len(shares) >= 3 and shares == sorted(shares) and shares[-1] == 100.0


def test_evaluate_refuses_times_outside_the_solve(tmp_path):
    flow, g0 = decay_problem()
    run = solvers.solve(flow, g0, 0.0, 1.0, dense=True)
    assert max_abs(run.evaluate(0.5) - math.exp(-0.5) * g0.values) < 1e-6
    assert max_abs(run.evaluate(1.0) - run.values[-1]) < 1e-12
    for t in (-0.1, 1.5, float("nan")):
        with pytest.raises(ValueError, match=r"t must be one time in \[0.0, 1.0\]"):
            run.evaluate(t)  # the interpolation gave NaN


# One step per segment from the default first step: the early steps are longer than t itself,
# and re-entering the next step's end as t + dt0 was off by an ulp (9e-16 at t = 0.3).
EVERY_STEP_CHILD = PREAMBLE + textwrap.dedent(
    """
    import solvers
    from tests.test_checkpoint import problem

    flow, g0, t0, _ = problem()
    # to t = 0.3 (13 steps; the early ones carry the rounding), writing only at the end
    stepped = solvers.solve(
        flow, g0, t0, 0.3, saveat=3, checkpoint=sys.argv[1], checkpoint_every=1,
        checkpoint_seconds=1e9,
    )
    plain = solvers.solve(flow, g0, t0, 0.3, saveat=3)
    np.savez(sys.argv[2], values=stepped.values, ts=stepped.ts, plain_values=plain.values,
             plain_ts=plain.ts, steps=stepped.stats["num_steps"],
             plain_steps=plain.stats["num_steps"])
    """
)


@pytest.mark.slow  # a child process in default codegen, about 15 s; bit-for-bit resume in the
# default suite: test_killed_solve_resumes_bit_for_bit
def test_one_step_per_segment_from_the_default_first_step_is_bit_for_bit(tmp_path):
    out = _in_default_codegen(EVERY_STEP_CHILD, tmp_path / "run.ckpt", tmp_path / "every.npz")
    assert int(out["steps"]) == int(out["plain_steps"]) >= 10
    assert np.array_equal(out["ts"], out["plain_ts"])
    assert np.array_equal(out["values"], out["plain_values"])


def test_every_entry_of_a_checkpoint_is_validated_before_it_is_used(tmp_path):
    # A checkpoint with the right keys but wrong entries resumed into silently wrong results
    # (saved_ys as int64) or raw KeyError/TypeError; now each is refused by name, untouched.
    # The checks do not depend on the flow: dg/dt = -g, whose checkpointed solve the tests
    # around it compile too.
    path = tmp_path / "run.ckpt"
    good = run_decay(path, t1=1.0)
    with np.load(path) as archive:
        arrays = {k: archive[k] for k in archive.files}
    reached = np.isfinite(arrays["saved_ts"])
    cases = {
        "saved_ys as int64": ("saved_ys", arrays["saved_ys"].astype(np.int64), "saved_ys has"),
        "saved_ts of another shape": ("saved_ts", arrays["saved_ts"][:3], "saved_ts has shape"),
        "finished with no reason": ("reason", np.asarray(""), "finished and its stop reason"),
        "reason not a string": ("reason", np.asarray(3.0), "its reason is not a string"),
        "steps that do not add up": ("steps", np.array([5, 1, 1]), "step counts"),
        "steps as floats": ("steps", arrays["steps"].astype(float), "steps has shape"),
        "a save at another time": (
            "saved_ts",
            np.where(reached, arrays["saved_ts"] + 0.01, np.inf),
            "save times asked for",
        ),
        "a missing save value": (
            "saved_ys",
            np.where(reached[:, None, None, None], np.inf, arrays["saved_ys"]),
            "saved_ys does not match",
        ),
        "no time": ("t", None, "it has no 't'"),
    }
    for name, (key, value, match) in cases.items():
        changed = dict(arrays)
        if value is None:
            del changed[key]
        else:
            changed[key] = value
        bad = tmp_path / "bad.ckpt"
        with open(bad, "wb") as f:
            np.savez(f, **changed)
        before = bad.read_bytes()
        with pytest.raises(ValueError, match=f"is inconsistent: .*{match}"):
            run_decay(bad, t1=1.0)
        assert bad.read_bytes() == before, name
    # the untouched checkpoint still returns its solution
    assert max_abs(run_decay(path, t1=1.0).values - good.values) == 0


def test_checkpoint_argument_errors(tmp_path):
    flow, g0, t0, t1 = problem()
    cases = [
        ({"checkpoint": tmp_path / "missing" / "run.ckpt"}, "directory of checkpoint .* does not"),
        ({"checkpoint": tmp_path}, "is a directory"),
        ({"checkpoint": 3.5}, "checkpoint must be a file path"),
        ({"checkpoint_every": 0}, "checkpoint_every must be an integer >= 1, got 0"),
        ({"checkpoint_every": 2.5}, "checkpoint_every must be an integer >= 1"),
        ({"checkpoint_seconds": -1.0}, "checkpoint_seconds must be None or a finite number >= 0"),
        ({"checkpoint_seconds": float("nan")}, "checkpoint_seconds must be None or a finite"),
        ({"dense": True}, "dense=True cannot be checkpointed"),
    ]
    for change, match in cases:
        kwargs = {"checkpoint": tmp_path / "run.ckpt"} | change
        with pytest.raises(ValueError, match=match):
            solvers.solve(flow, g0, t0, t1, **kwargs)
    assert not any(tmp_path.iterdir())


def _round_sphere_to_extinction(checkpoint=None):
    # round S^2: g(t) = (1 - 2t) g_ref, extinct at t = 1/2; the degenerate event is root-found
    # at c = degenerate_tol = 1e-4 (docs/conventions.md, Normalisations and tensors)
    sphere = flows.Sphere(2, 2)
    times = np.linspace(0, 0.8, 5) * 0.5
    kwargs = {} if checkpoint is None else {"checkpoint": checkpoint, "checkpoint_every": 1}
    # the ill-posed flow's l = 1 mode grows by (c0 / c)^1 = 1e4 down to the degenerate event:
    # warned about, not refused
    with pytest.warns(UserWarning, match=r"predicted amplification .* = 1e\+04"):
        solution = solvers.solve(
            flows.make_flow("perelman", sphere, None),
            flows.reference_metric(sphere),
            0.0,
            1.0,
            saveat=times,
            **kwargs,
        )
    assert solution.stop_reason == solvers.StopReason.DEGENERATE
    assert abs(solution.t_final - 0.5) < 1e-3
    assert len(solution.ts) == 6 and np.all(np.isfinite(solution.ts))
    assert np.all(np.isfinite(solution.values))  # the saved trajectory holds no NaN or inf
    c = jax.vmap(sphere.tangential)(solution.values)[:, :, 0, 0]
    assert np.max(np.abs(c[:5] - (1 - 2 * times[:, None]))) < 1e-6
    assert 0 < float(np.min(c[-1])) < 1e-3  # the last good state: positive, nearly extinct
    return solution


@pytest.mark.slow  # about 8 s of compilation; the same solve's stop, finite saves and last
# good state are checked in the default suite by
# tests/test_solve.py::test_round_sphere_shrinks_linearly_and_goes_extinct[S2-perelman-None]
def test_perelman_sphere_extinction_leaves_a_finite_trajectory():
    # the call of tests/test_solve.py's S2-perelman case, which checks the early saves too;
    # here the stop and the last good state
    _round_sphere_to_extinction()


# The extinction child: the round S^2 to extinction, checkpointed one step per segment
# and plain, under XLA's default code generation (as EVENT_CHILD).
EXTINCTION_CHILD = PREAMBLE + textwrap.dedent(
    """
    from tests.test_checkpoint import _round_sphere_to_extinction

    checkpointed = _round_sphere_to_extinction(sys.argv[1])
    plain = _round_sphere_to_extinction()
    np.savez(sys.argv[2], values=checkpointed.values, ts=checkpointed.ts,
             plain_values=plain.values, plain_ts=plain.ts,
             steps=checkpointed.stats["num_steps"], t_final=checkpointed.t_final,
             reason=str(checkpointed.stop_reason))
    """
)


@pytest.mark.slow
def test_perelman_sphere_extinction_checkpointed_equals_plain(tmp_path):
    # one step per segment: the event is found in the third segment, recorded, and the root
    # find there gives the plain solve's stop bit for bit
    path = tmp_path / "s2.ckpt"
    out = _in_default_codegen(EXTINCTION_CHILD, path, tmp_path / "extinction.npz")
    assert int(out["steps"]) >= 3
    info = solvers.checkpoint_info(path)
    assert info["finished"] and str(info["stop_reason"]) == str(out["reason"])
    assert info["t"] == float(out["t_final"])
    assert np.array_equal(out["values"], out["plain_values"])
    assert np.array_equal(out["ts"], out["plain_ts"])


def _old_and_new(path: Path):
    path.write_text('{"version": "old"}')
    return path.read_bytes()


WRITERS = {"solvers": "from solvers._checkpoint import atomic_write"}


def test_the_programs_write_through_the_one_atomic_writer():
    from solvers import _checkpoint, demo  # white-box: the one writer is _checkpoint's

    from .helpers import experiment_program

    assert experiment_program("_common").atomic_write is _checkpoint.atomic_write
    assert demo.atomic_write is _checkpoint.atomic_write
    assert solvers.atomic_write is _checkpoint.atomic_write


@pytest.mark.parametrize("writer", WRITERS)
def test_interrupted_output_write_keeps_the_old_file(tmp_path, writer):
    namespace = {}
    exec(WRITERS[writer].format(experiments=str(EXPERIMENTS)), namespace)
    atomic_write = namespace["atomic_write"]
    target = tmp_path / "record.json"
    old = _old_and_new(target)

    # an exception in the middle of writing: the old file, and no temporary file left
    with pytest.raises(RuntimeError, match="interrupted"):
        with atomic_write(target, "w") as f:
            f.write('{"version": "new", "data": [')
            f.flush()
            raise RuntimeError("interrupted")
    assert target.read_bytes() == old
    assert sorted(p.name for p in tmp_path.iterdir()) == ["record.json"]

    # SIGKILL in the middle of writing: the old file; the killed process's temporary file
    # (.record.json.*.tmp, half written) stays behind, and nothing reads it
    script = textwrap.dedent(
        f"""
        import sys, time
        {WRITERS[writer].format(experiments=str(EXPERIMENTS))}
        with atomic_write(__import__("pathlib").Path({str(target)!r}), "w") as f:
            f.write('{{"version": "new", "data": [')
            f.flush()
            print("half written", flush=True)
            time.sleep(600)
            f.write("]}}")
        """
    )
    child = subprocess.Popen(
        [sys.executable, "-c", script], cwd=ROOT, stdout=subprocess.PIPE, text=True
    )
    try:
        assert child.stdout.readline().strip() == "half written"
        os.kill(child.pid, signal.SIGKILL)
        child.wait(timeout=60)
    finally:
        if child.poll() is None:
            child.kill()
        child.stdout.close()
    assert child.returncode == -signal.SIGKILL
    assert target.read_bytes() == old
    stray = [p for p in tmp_path.iterdir() if p.name != "record.json"]
    assert len(stray) == 1 and stray[0].name.startswith(".record.json.")
    assert stray[0].name.endswith(".tmp") and stray[0].read_text().startswith('{"version": "new"')

    # and a complete write replaces the file
    with atomic_write(target, "w") as f:
        json.dump({"version": "new"}, f)
    assert json.loads(target.read_text()) == {"version": "new"}


def test_write_json_that_fails_midway_keeps_the_old_file(tmp_path):
    # json.dump writes part of the record before meeting the value it cannot encode
    from .helpers import experiment_program

    common = experiment_program("_common")
    target = tmp_path / "record.json"
    old = _old_and_new(target)
    with pytest.raises(TypeError, match="not JSON serializable"):
        common.write_json(target, {"a": list(range(1000)), "b": object()})
    assert target.read_bytes() == old
    assert sorted(p.name for p in tmp_path.iterdir()) == ["record.json"]
