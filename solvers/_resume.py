r"""The checkpointed solve: `solve(..., checkpoint=PATH)` in segments that resume bit for bit.

`_solve_in_segments` runs the solve as a sequence of `diffeqsolve` calls of
`checkpoint_every` steps each, and after each segment writes the state, the
trajectory saved so far and a description of the problem (`_fingerprint`)
atomically to PATH (`_checkpoint.py`). A call whose PATH exists checks that the
problem is the same and resumes; a finished checkpoint returns its solution.

Between segments it carries diffrax's whole loop state: $t$, $y$, the solver
state (e.g. the first-same-as-last stage), the PID controller's error history,
and the next step's end $t_\mathrm{next}$ (as proposed, kept in the controller's state,
handed back as the controller's `resume_at`, which `init` returns: not as a `dt0`,
since $t + (t_\mathrm{next} - t)$ need not round to $t_\mathrm{next}$), so the
segments take exactly the steps, saves and event root-finds of one
uninterrupted `diffeqsolve` (`_integrate.py`, the same solver and events).
`_start` computes the state `diffeqsolve` starts from, as diffrax does.
"""

import dataclasses
import os
import re
import time

import diffrax
import equinox as eqx
import equinox.internal as eqxi
import jax
import jax.numpy as jnp
import numpy as np

from . import _checkpoint, _controller
from ._integrate import _event, _make_solver, _smallest_eigenvalue, _term
from ._solution import Solution, StopReason, degenerate_kind, kept_saves, stop_reason


class _DirectedTerm(diffrax.AbstractTerm):
    r"""`term` with time running in `direction` (1 or -1), as `diffeqsolve` wraps its terms.

    The vector field is evaluated at $t \cdot$ `direction`, and the control over
    $[t_0, t_1]$ is `direction` times `term`'s over the interval reflected back
    into `term`'s time ($[-t_1, -t_0]$ when `direction` is -1); products are
    formed with standard dtype promotion. With `direction` = 1 every value is
    bit for bit `term`'s own. Not an `ODETerm`, just as diffrax's own wrapper is
    not, so the PID controller's first step without `dt0` is the same (0.01).
    """

    term: diffrax.AbstractTerm
    direction: jax.Array

    def _interval(self, t0, t1):
        return jnp.where(self.direction == 1, t0, -t1), jnp.where(self.direction == 1, t1, -t0)

    def vf(self, t, y, args):
        return self.term.vf(t * self.direction, y, args)

    def contr(self, t0, t1, **kwargs):
        control = self.term.contr(*self._interval(t0, t1), **kwargs)
        return jax.tree.map(lambda c: self.direction * c, control)

    def prod(self, vf, control):
        with jax.numpy_dtype_promotion("standard"):
            return self.term.prod(vf, control)

    def vf_prod(self, t, y, args, control):
        return self.term.vf_prod(t * self.direction, y, args, control)

    def is_vf_expensive(self, t0, t1, y, args) -> bool:
        return self.term.is_vf_expensive(*self._interval(t0, t1), y, args)


def _arrays(tree):
    return jax.tree.map(jnp.asarray, tree)


@eqx.filter_jit
def _start(flow, y0, t0, t1, dt0, rtol, atol, config):
    r"""The state `diffeqsolve` starts from: $(t_0, t_\mathrm{next}, y_0$, solver state, controller state).

    As `diffeqsolve` computes it (diffrax/_integrate.py): the term wrapped for the
    direction of time (`_DirectedTerm`, which makes the PID controller's own first step 0.01), the
    controller's initial step (dt0, or its own choice) clipped to $t_1$, then the
    solver's initial state.
    """
    direction = jnp.where(t0 < t1, 1, -1)
    term = _DirectedTerm(_term(flow), direction)
    solver = _make_solver(config.solver, config.linear_solver, rtol, atol, flow.manifold)
    controller = _controller.pid(rtol, atol, t0, t1).wrap(direction)
    tnext, controller_state = controller.init(
        term, t0, t1, y0, dt0, None, solver.func, solver.error_order(term)
    )
    tnext = jnp.minimum(tnext, t1)
    solver_state = solver.init(term, t0, tnext, y0, None)
    return _arrays((t0, tnext, y0, solver_state, controller_state))


@eqx.filter_jit
def _segment(flow, state, ts, t0, t1, s0, tolerances, config):
    """At most `config.max_steps` steps of the solve over $[t_0, t_1]$ from `state`; the saves and the new state.

    `ts` are the save times with those already saved replaced by the current
    time (diffrax wants them non-decreasing within the interval; the caller
    discards their saves). Passing the solver and controller states, and the
    next step's end $t_\\mathrm{next}$ through the controller (`resume_at`, no
    `dt0`), continues diffrax's loop as it was.
    """
    rtol, atol, degenerate_tol, fixed_point_tol, curvature_limit = tolerances
    t, tnext, y, solver_state, controller_state = state
    solver = _make_solver(config.solver, config.linear_solver, rtol, atol, flow.manifold)
    event = _event(flow, s0, t0, degenerate_tol, fixed_point_tol, curvature_limit, config)
    sol = diffrax.diffeqsolve(
        _term(flow),
        solver,
        t,
        t1,
        None,
        y,
        saveat=diffrax.SaveAt(
            subs=[diffrax.SubSaveAt(ts=ts), diffrax.SubSaveAt(t1=True)],
            solver_state=True,
            controller_state=True,
        ),
        stepsize_controller=_controller.pid(rtol, atol, t0, t1, resume_at=tnext),
        event=event,
        max_steps=config.max_steps,
        throw=False,
        solver_state=solver_state,
        controller_state=controller_state,
        progress_meter=diffrax.TextProgressMeter()
        if config.progress
        else diffrax.NoProgressMeter(),
    )
    (ts_out, t_end), (ys_out, y_end) = sol.ts, sol.ys
    t_end, y_end = t_end[0], y_end[0]
    *_, proposed, kept = sol.controller_state
    # the next step's end as diffrax's loop clips it (diffrax/_integrate.py, _clip_to_end)
    floor = t1
    for _ in range(100):
        floor = eqxi.prevbefore(floor)
    tnext = jnp.where(proposed > floor, jnp.where(kept, t1, t_end + 0.5 * (t1 - t_end)), proposed)
    new_state = _arrays((t_end, tnext, y_end, sol.solver_state, sol.controller_state))
    return ts_out, ys_out, new_state, sol.result, sol.event_mask, sol.stats


def _fingerprint(flow, values, t0, t1, dt0, ts, tolerances, config) -> dict:
    """What must agree for a checkpoint to be resumed (JSON; floats compare exactly).

    Not `checkpoint_every`: segments do not change the steps, so a run may resume
    with another segment length.
    """
    rtol, atol, degenerate_tol, fixed_point_tol, curvature_limit = (float(x) for x in tolerances)
    ts = np.asarray(ts)
    return {
        # its fields, static ones (sigma, ...) with values; never an object's address, which
        # differs from process to process (the arrays and functions have digests below)
        "flow": re.sub(r" (object )?at 0x[0-9a-fA-F]+", "", " ".join(repr(flow).split())),
        "flow arrays": _checkpoint.tree_digest(flow),
        # only where the flow holds Python functions (older checkpoints have no such entry)
        **({"flow functions": code} if (code := _checkpoint.function_digest(flow)) else {}),
        "g0 shape": list(values.shape),
        "g0 dtype": str(values.dtype),
        "g0 values": _checkpoint.digest(values),
        "t0": float(t0),
        "t1": float(t1),
        "dt0": None if dt0 is None else float(dt0),
        "saveat": f"{ts.size} times in [{ts.min()}, {ts.max()}], {_checkpoint.digest(ts)[:16]}",
        "solver": config.solver,
        "linear_solver": config.linear_solver,
        "rtol": rtol,
        "atol": atol,
        "degenerate_tol": degenerate_tol,
        "fixed_point_tol": fixed_point_tol if config.fixed_point else None,
        "curvature_limit": curvature_limit if config.curvature else None,
        "max_steps": config.max_steps,
    }


@eqx.filter_jit
def _initial_eigenvalue(manifold, values):
    return _smallest_eigenvalue(manifold, values)


def _check_entries(path, data, ts, values, max_steps: int) -> None:
    """`ValueError` naming the first entry of a checkpoint that is not what `solve` writes.

    The state's leaves are checked by the caller (structure, shapes, dtypes); here the rest:
    the saves (shapes, dtypes, and saved exactly where and what was asked), the step counts,
    the finished flag and its reason, and the time.
    """
    ts = np.asarray(ts)

    def problem(what: str):
        return ValueError(
            f"solve: checkpoint {os.fspath(path)!r} is inconsistent: {what}. It was not written "
            "by this version of solve, or was altered; delete it to start afresh."
        )

    expected = {
        "saved_ts": (ts.shape, ts.dtype),
        "saved_ys": (ts.shape + values.shape, values.dtype),
        "steps": ((3,), np.dtype(np.int64)),
        "finished": ((), np.dtype(bool)),
        "t": ((), values.dtype),
    }
    for name, (shape, dtype) in expected.items():
        if name not in data:
            raise problem(f"it has no {name!r}")
        a = data[name]
        if a.shape != shape or a.dtype != dtype:
            raise problem(
                f"{name} has shape {a.shape} and dtype {a.dtype}, not {shape} and {dtype}"
            )
    reason = data.get("reason")
    if reason is None or reason.shape != () or reason.dtype.kind != "U":
        raise problem("its reason is not a string")
    saved_ts, saved_ys, steps = data["saved_ts"], data["saved_ys"], data["steps"]
    reached = np.isfinite(saved_ts)
    if np.any(saved_ts[~reached] != np.inf) or np.any(saved_ts[reached] != ts[reached]):
        raise problem("saved_ts holds times other than the save times asked for")
    if not np.all(np.isfinite(saved_ys[reached])) or np.any(saved_ys[~reached] != np.inf):
        raise problem("saved_ys does not match saved_ts (finite where saved, inf elsewhere)")
    if np.any(steps < 0) or steps[0] != steps[1] + steps[2] or steps[0] > max_steps:
        raise problem(f"its step counts {steps.tolist()} are not (all, accepted, rejected)")
    if bool(data["finished"]) != bool(str(reason)):
        raise problem("finished and its stop reason disagree")
    if not np.isfinite(data["t"]):
        raise problem("its time is not finite")


def _solve_in_segments(
    flow, values, t0, t1, dt0, ts, tolerances, config, amp, path, every, seconds
) -> Solution:
    """`solve` in segments of `every` steps, writing and resuming the checkpoint at `path`."""
    fingerprint = _fingerprint(flow, values, t0, t1, dt0, ts, tolerances, config)
    rtol, atol = tolerances[:2]
    start = (flow, values, t0, t1, dt0, rtol, atol, config)
    if path.exists():
        data = _checkpoint.read(path)
        _checkpoint.check_same_problem(path, data["fingerprint"], fingerprint)
        template = eqx.filter_eval_shape(_start, *start)
        leaves, treedef = jax.tree_util.tree_flatten(template)
        stored = [data.get(f"state_{i}") for i in range(len(leaves))]
        if any(
            a is None or a.shape != x.shape or a.dtype != x.dtype
            for a, x in zip(stored, leaves, strict=True)
        ):
            raise ValueError(
                f"solve: checkpoint {os.fspath(path)!r} holds a solver state of another "
                "structure (written by another version of solve?); delete it to start afresh."
            )
        state = jax.tree_util.tree_unflatten(treedef, [jnp.asarray(a) for a in stored])
        _check_entries(path, data, ts, values, config.max_steps)
        saved_ts, saved_ys = data["saved_ts"], data["saved_ys"]
        steps = data["steps"].astype(np.int64)
        finished, reason = bool(data["finished"]), StopReason.parse(str(data["reason"]))
    else:
        state = _start(*start)
        saved_ts = np.full(ts.shape, np.inf, dtype=np.asarray(ts).dtype)
        saved_ys = np.full(ts.shape + values.shape, np.inf, dtype=values.dtype)
        steps = np.zeros(3, dtype=np.int64)  # all, accepted, rejected
        finished, reason = False, ""

    def write():
        arrays = {f"state_{i}": np.asarray(x) for i, x in enumerate(jax.tree.leaves(state))}
        arrays |= {
            "format": np.asarray(_checkpoint.FORMAT),
            "fingerprint": _checkpoint.encode(fingerprint),
            "t": np.asarray(state[0]),
            "saved_ts": saved_ts,
            "saved_ys": saved_ys,
            "steps": steps,
            "finished": np.asarray(finished),
            "reason": np.asarray(str(reason)),  # the message, as a plain string
        }
        _checkpoint.write(path, arrays)

    s0 = _initial_eigenvalue(flow.manifold, values)
    last_write = time.monotonic()
    while not finished:
        # the steps per segment are static: a shorter last segment (max_steps) compiles anew
        # one meter for the whole solve (below), not diffrax's, which restarts each segment
        segment_config = dataclasses.replace(
            config, max_steps=min(every, config.max_steps - int(steps[0])), progress=False
        )
        saved = np.isfinite(saved_ts)
        segment_ts = jnp.where(jnp.asarray(saved), state[0], ts)
        ts_out, ys_out, state, result, mask, stats = _segment(
            flow,
            state,
            segment_ts,
            t0,
            t1,
            s0,
            tolerances,
            segment_config,
        )
        ts_out = np.asarray(ts_out)
        new = ~saved & np.isfinite(ts_out)
        saved_ts = np.where(new, ts_out, saved_ts)
        saved_ys = np.where(new[:, None, None, None], np.asarray(ys_out), saved_ys)
        steps = steps + np.array(
            [int(stats[k]) for k in ("num_steps", "num_accepted_steps", "num_rejected_steps")]
        )
        event = any(bool(v) for v in mask.values())
        if event or not bool(result == diffrax.RESULTS.max_steps_reached):
            reason = stop_reason(result, mask)
            reason = degenerate_kind(reason, flow.manifold, values, state[2], tolerances[2])
            finished = True
        elif steps[0] >= config.max_steps:
            finished, reason = True, stop_reason(result, None)
        if finished or seconds is None or time.monotonic() - last_write >= seconds:
            write()
            last_write = time.monotonic()
        if config.progress:
            done = float((state[0] - t0) / (t1 - t0))
            print(
                f"solve: t = {float(state[0]):.6g} of [{float(t0):g}, {float(t1):g}] "
                f"({100 * done:.2f}%), {int(steps[0])} steps",
                flush=True,
            )

    t_end, y_end = np.asarray(state[0]), np.asarray(state[2])
    ts_all = np.concatenate([saved_ts, t_end[None]])
    ys_all = np.concatenate([saved_ys, y_end[None]])
    idx = kept_saves(ts_all)
    stats = {
        "max_steps": config.max_steps,
        "num_accepted_steps": int(steps[1]),
        "num_rejected_steps": int(steps[2]),
        "num_steps": int(steps[0]),
    }
    return Solution(
        flow.name,
        flow.manifold,
        jnp.asarray(ts_all[idx]),
        jnp.asarray(ys_all[idx]),
        float(ts_all[idx][-1]),
        reason,
        amp,
        stats,
        None,
    )
