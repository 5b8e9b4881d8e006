r"""The step-size controller of every solve: diffrax's PID controller, stopped by a non-finite step.

diffrax rejects a step whose error estimate is not finite, but its PID controller
then proposes a NaN step size, so every later step is rejected too and the solve
spins until `max_steps` (100,000 by default) without ever saying why; and where
the velocity is finite up to some time and not beyond, the steps that are
accepted creep towards that time without reaching it (measured: 99,924 accepted
steps of a flow that turns NaN at $t = \ln 2$). `FiniteStepController` wraps
the PID controller: a step whose candidate state or error estimate has a
non-finite entry is rejected and the next one is `factormin` (0.2) times as
long, so a step that overshot into a region where the velocity overflows can
recover. It counts such rejections until an accepted step ends beyond the end
of the latest one (the solve got past where it failed); at `patience` (10) the
solve stops, its last accepted (finite) state kept. diffrax's results cannot be
extended, so the stop is reported as `RESULTS.dt_min_reached`: no solve of this
package sets a minimum step, and `stop_reason` reads it as `StopReason.NON_FINITE`.
Steps with finite values pass through untouched: the steps, and so the
trajectories, are bit for bit those of the PID controller alone.

Its state also keeps its latest proposal $t_\mathrm{next}$ (before diffrax clips it to
$t_1$) and whether the latest step was kept: with them a checkpointed solve
(`_resume.py`) goes on with exactly the step the uninterrupted loop would take next.
"""

import diffrax
import jax
import jax.numpy as jnp

# Non-finite rejections, with no accepted step past them, after which a solve stops.
PATIENCE = 10

# diffrax's result that carries the stop (`solvers._solution.stop_reason` reads it back).
NON_FINITE_RESULT = diffrax.RESULTS.dt_min_reached


def _all_finite(tree) -> jax.Array:
    leaves = [jnp.all(jnp.isfinite(x)) for x in jax.tree.leaves(tree)]
    return jnp.all(jnp.stack(leaves)) if leaves else jnp.asarray(True)


class FiniteStepController(diffrax.AbstractAdaptiveStepSizeController):
    r"""`pid`, rejecting and shrinking steps with non-finite values.

    State: (pid's state, the count of non-finite rejections, the end of the latest one,
    the latest proposal $t_\mathrm{next}$, whether the latest step was kept).
    """

    pid: diffrax.PIDController
    patience: int = PATIENCE

    @property
    def rtol(self):
        return self.pid.rtol

    @property
    def atol(self):
        return self.pid.atol

    @property
    def norm(self):
        return self.pid.norm

    def wrap(self, direction):
        return FiniteStepController(self.pid.wrap(direction), self.patience)

    def init(self, terms, t0, t1, y0, dt0, args, func, error_order):
        tnext, state = self.pid.init(terms, t0, t1, y0, dt0, args, func, error_order)
        count, bad_end = jnp.asarray(0, dtype=jnp.int32), jnp.asarray(t0)
        return tnext, (state, count, bad_end, jnp.asarray(tnext), jnp.asarray(True))

    def adapt_step_size(self, t0, t1, y0, y1_candidate, args, y_error, error_order, state):
        old_pid_state, count, bad_end, _, _ = state
        keep, tprev, tnext, jump, pid_state, result = self.pid.adapt_step_size(
            t0, t1, y0, y1_candidate, args, y_error, error_order, old_pid_state
        )
        bad = ~(_all_finite(y1_candidate) & _all_finite(y_error))
        keep = keep & ~bad
        pid_state = jax.tree.map(
            lambda old, new: jnp.where(bad, old, new), old_pid_state, pid_state
        )
        tprev = jnp.where(bad, t0, tprev)
        tnext = jnp.where(bad, t0 + self.pid.factormin * (t1 - t0), tnext)
        count = jnp.where(bad, count + 1, jnp.where(keep & (t1 > bad_end), 0, count))
        bad_end = jnp.where(bad, jnp.asarray(t1, bad_end.dtype), bad_end)
        result = diffrax.RESULTS.where(count >= self.patience, NON_FINITE_RESULT, result)
        return keep, tprev, tnext, jump, (pid_state, count, bad_end, tnext, keep), result


def pid(rtol: float, atol: float) -> FiniteStepController:
    """The controller of the package's solves: PID with tolerances `rtol`, `atol`, finite steps only."""
    return FiniteStepController(diffrax.PIDController(rtol=rtol, atol=atol))
