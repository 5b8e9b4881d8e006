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
recover. The first such rejection opens an episode, which closes when an
accepted step ends past the end of the latest rejected one (the solve got past
where it failed: an overshoot). Within an episode the accepted steps creep
towards a time beyond which the velocity is not finite, and would go on creeping;
the solve stops, its last accepted (finite) state kept, when a rejected step is
shorter than `resolution` (1e-5) times the episode's first rejected step. Each
tenfold of resolution costs about six steps: a flow that turns NaN at
$t = \ln 2$ stops after 49 steps, 3e-7 before it; a velocity that
is never finite stops after 9 rejections, where it started. A flow whose metric
vanishes at a finite time (a sphere's extinction) creeps the same way, and its
degenerate event fires on the way, once the metric has shrunk to `degenerate_tol`
(1e-4 by default) of its size, a time window of about `degenerate_tol` times the
extinction time: `resolution` is ten times finer (at 1e-4 a round S^2 under the
DeTurck λ flow stopped "non-finite" 6e-5 before extinction). A much smaller
`degenerate_tol` may stop "non-finite" first. diffrax's
results cannot be extended, so the stop is reported as `RESULTS.dt_min_reached`:
no solve of this package sets a minimum step, and `stop_reason` reads it as
`StopReason.NON_FINITE`. Steps with finite values pass through untouched: the
steps, and so the trajectories, are bit for bit those of the PID controller alone.

A flow whose velocity grows without bound while staying finite (a finite-time
singularity: measured, a network flow whose kernel was scaled by 1e8) makes the
PID controller creep towards the singular time, alternating accepted and rejected
steps that shrink geometrically: it used to spin to `max_steps`. A rejected step
shorter than `COLLAPSE` (1e-12) times the solve's interval $|t_1 - t_0|$ stops the
solve, reported as `RESULTS.max_steps_rejected` (`StopReason.STEP_COLLAPSED`):
finishing at that step would take $10^{12}$ steps. Early in a long solve the
interval is capped by `ELAPSED` ($10^6$) times the time elapsed since $t_0$: a
stiff start rejects diffrax's first step, 0.01, whatever the interval, and over
$[0, 10^{11}]$ that is $10^{-13}$ of it, but nothing has elapsed yet, so the
solve goes on (and at least 16 units in the last place of $t$ always stop it).

Its state also keeps its latest proposal $t_\mathrm{next}$ (before diffrax clips it to
$t_1$) and whether the latest step was kept: with them a checkpointed solve
(`_resume.py`) goes on with exactly the step the uninterrupted loop would take next,
handed back through `resume_at` (`init` returns it as the first step's end).
"""

import diffrax
import jax
import jax.numpy as jnp

# Within an episode of non-finite rejections, a rejected step this much shorter than
# the episode's first one stops the solve.
RESOLUTION = 1e-5

# A rejected step shorter than this times the solve's interval stops the solve ...
COLLAPSE = 1e-12
# ... the interval capped by this times the time elapsed since t0.
ELAPSED = 1e6

# diffrax's result that carries the stop (`solvers._solution.stop_reason` reads it back).
NON_FINITE_RESULT = diffrax.RESULTS.dt_min_reached
# ... and the one that carries a collapse of the step size (no solver of this package
# produces it otherwise: it belongs to diffrax's clipping controller)
COLLAPSED_RESULT = diffrax.RESULTS.max_steps_rejected


def _all_finite(tree) -> jax.Array:
    leaves = [jnp.all(jnp.isfinite(x)) for x in jax.tree.leaves(tree)]
    return jnp.all(jnp.stack(leaves)) if leaves else jnp.asarray(True)


class FiniteStepController(diffrax.AbstractAdaptiveStepSizeController):
    r"""`pid`, rejecting and shrinking steps with non-finite values.

    State: (pid's state, the end of the latest non-finite rejection, the length of the
    episode's first one (0: no episode), the latest proposal $t_\mathrm{next}$, whether
    the latest step was kept). `origin`, `span`: the solve's $t_0$ and $|t_1 - t_0|$; a
    rejected step shorter than `COLLAPSE` times min(`span`, `ELAPSED` times the time
    elapsed since `origin`) stops the solve. `resume_at`: when set, the
    end of the first step (`init` returns it: diffrax takes it when given a controller
    state and no `dt0`), the step an interrupted solve had proposed.
    """

    pid: diffrax.PIDController
    origin: float | jax.Array = 0.0
    span: float | jax.Array = 0.0
    resolution: float = RESOLUTION
    resume_at: jax.Array | None = None

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
        # diffrax runs time as direction * t: so do the origin (resume_at is already its time)
        origin = jnp.asarray(self.origin) * direction
        return FiniteStepController(
            self.pid.wrap(direction), origin, self.span, self.resolution, self.resume_at
        )

    def init(self, terms, t0, t1, y0, dt0, args, func, error_order):
        if self.resume_at is not None:  # no first-step estimate: the stored step is the next
            dt0 = self.resume_at - t0
        tnext, state = self.pid.init(terms, t0, t1, y0, dt0, args, func, error_order)
        if self.resume_at is not None:
            tnext = jnp.asarray(self.resume_at, jnp.result_type(tnext))
        bad_end, first = jnp.asarray(t0), jnp.zeros_like(jnp.asarray(t0))
        return tnext, (state, bad_end, first, jnp.asarray(tnext), jnp.asarray(True))

    def adapt_step_size(self, t0, t1, y0, y1_candidate, args, y_error, error_order, state):
        old_pid_state, bad_end, first, _, _ = state
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
        length = jnp.asarray(jnp.abs(t1 - t0), first.dtype)
        # an episode opens at a non-finite rejection and closes once a step gets past it
        first = jnp.where(bad & (first == 0), length, first)
        first = jnp.where(keep & (t1 > bad_end), jnp.zeros_like(first), first)
        bad_end = jnp.where(bad, jnp.asarray(t1, bad_end.dtype), bad_end)
        stop = bad & (length < self.resolution * first)
        elapsed = jnp.abs(t0 - jnp.asarray(self.origin, jnp.result_type(t0)))
        ulp = jnp.nextafter(jnp.abs(t0), jnp.inf) - jnp.abs(t0)
        span = jnp.minimum(jnp.asarray(self.span, elapsed.dtype), ELAPSED * elapsed)
        min_step = jnp.maximum(COLLAPSE * span, 16 * ulp).astype(length.dtype)
        collapsed = ~keep & (length < min_step)
        result = diffrax.RESULTS.where(collapsed, COLLAPSED_RESULT, result)
        result = diffrax.RESULTS.where(stop, NON_FINITE_RESULT, result)
        return keep, tprev, tnext, jump, (pid_state, bad_end, first, tnext, keep), result


def pid(rtol: float, atol: float, t0, t1, resume_at=None) -> FiniteStepController:
    """The controller of a solve over $[t_0, t_1]$: PID with tolerances `rtol`, `atol`, finite steps only.

    `resume_at`: the end of the first step, for a solve that goes on from a checkpoint.
    """
    span = jnp.abs(jnp.asarray(t1) - jnp.asarray(t0))
    pid_controller = diffrax.PIDController(rtol=rtol, atol=atol)
    return FiniteStepController(pid_controller, jnp.asarray(t0), span, RESOLUTION, resume_at)
