r"""The implicit solvers' Newton–Krylov solve: GMRES to a forcing term, preconditioned spectrally.

Each Newton iteration of an implicit Runge–Kutta stage solves $A\,\delta = b$ with
$A = I - c\,J$, $J$ the flow's Jacobian (applied as Jacobian-vector products) and
$c$ the stage's $\gamma\,\Delta t$. For a metric flow the principal part of $J$ is
the Laplacian on each component (Ricci–DeTurck is $\Delta h$ plus lower order
terms at a flat metric), so $P = (1 + c\,(-\Delta))^{-1}$, a multiplier on the
manifold's spectral coefficients, is nearly $A^{-1}$ on the resolved modes:

- $c$ is read off the operator: $c = (\langle v, A v\rangle/\langle v, v\rangle - 1)
  / (\langle v, -\Delta v\rangle/\langle v, v\rangle)$ for a fixed broadband field
  $v$ (symmetric for tensor states; one product with $A$), clipped at 0;
- $P$ acts as that multiplier on the harmonic (Fourier) part and as the identity on
  what the spectral projection leaves out (spheres have more nodes than harmonics),
  so it is invertible;
- GMRES (`_gmres`, right-preconditioned) starts from $P b$ and stops as soon as its
  running residual meets $\|A\delta - b\|_2 \le \min(\eta\,\|b\|_2,\;
  \theta\,\|s\|_2)$: the forcing term $\eta = 0.1$ of an inexact Newton step, or,
  when the Newton solver passes the scale of its tolerance
  $s = \mathrm{atol} + \mathrm{rtol}\,|y|$ (`NewtonKrylov`), a tenth of it
  ($\theta = 0.1$) if that is tighter.

Why the scale. Hairer and Wanner's rate test ends a stage's Newton iteration after
two steps only when the second correction is small against the tolerance, so the
first linear solve must be accurate to the tolerance, not to a fixed fraction of
its (large) right-hand side; the second one's right-hand side is already that small,
and $P b$ alone usually meets it (two products: the probe for $c$ and the residual).
On Ricci–DeTurck flow on $T^2$ at $64^2$ from a rough metric to t = 1 (rtol 1e-6): 53
products per Kvaerno5 step (probes included) with 12 Newton iterations and 22 steps.
A relative forcing term alone needs about 1e-5 to keep the Newton iteration at two
steps a stage (22 steps, 84 products a step); looser, stages fail their Newton
iteration and steps are rejected: 52 steps at 1e-4, 123 at 1e-3 and 1e-2, 194 at 0.1.
lineax's GMRES checks its tolerance only at restarts and runs at
least two restart cycles: 82 products a step on the same solve; with its componentwise
tolerance and restarts of 40, at least 80 products per linear solve.
"""

from typing import Any

import equinox as eqx
import jax
import jax.flatten_util
import jax.numpy as jnp
import lineax
import optimistix

from flows import AbstractManifold

FORCING = 0.1
ACCURACY = 0.1
# a Krylov triangle whose diagonal falls below this, relative to its largest entry, is
# singular to rounding: its least-squares step is not trusted (`_gmres`)
SINGULAR = 1e-10
RESTART = 10
CYCLES = 4


def _gmres(mv, precondition, b, tolerance, restart: int, cycles: int):
    r"""Right-preconditioned restarted GMRES from $x_0 = P b$ to $\|b - A x\|_2 \le$ `tolerance`.

    Real vectors (`b` and what `mv` and `precondition` take and return). Each cycle computes the true residual (one product with $A$), then
    Arnoldi on $AP$ (one product a step; classical Gram–Schmidt, done twice) with Givens
    rotations, whose running residual ends the cycle as soon as it meets `tolerance`:
    an initial guess that already meets it costs that one product. At most `cycles`
    cycles of `restart` steps. Returns (x, converged, Arnoldi steps taken).

    The running residual equals the true one only while the rotated Hessenberg triangle
    is regular: at a breakdown on a singular (or, to rounding, nearly singular) system
    it falls to zero while the least-squares step blows up. A cycle whose triangle has
    a diagonal entry below `SINGULAR` times its largest, or whose step is not finite,
    is not converged and leaves `x` as it was (the last finite iterate).
    """
    dtype = b.dtype
    rows = jnp.arange(restart + 1)

    def cycle(carry):
        x, _, count, index = carry
        r = b - mv(x)
        beta = jnp.sqrt(jnp.vdot(r, r))
        basis = jnp.zeros((restart + 1, r.size), dtype).at[0].set(r / jnp.where(beta > 0, beta, 1))
        g = jnp.zeros(restart + 1, dtype).at[0].set(beta)
        rotations = jnp.zeros((restart, 2), dtype)
        triangle = jnp.eye(restart, dtype=dtype)  # the unused columns stay the identity

        def arnoldi(state):
            j, basis, triangle, rotations, g = state
            w = mv(precondition(basis[j]))
            h = jnp.zeros(restart + 1, dtype)
            for _ in range(2):  # classical Gram–Schmidt, twice
                dh = jnp.where(rows <= j, basis @ w, 0.0)
                w = w - dh @ basis
                h = h + dh
            norm = jnp.sqrt(jnp.vdot(w, w))
            h = h.at[j + 1].set(norm)
            basis = basis.at[j + 1].set(w / jnp.where(norm > 0, norm, 1))

            def rotate(i, h):
                c, s = rotations[i]
                upper, lower = c * h[i] + s * h[i + 1], -s * h[i] + c * h[i + 1]
                return h.at[i].set(upper).at[i + 1].set(lower)

            h = jax.lax.fori_loop(0, j, rotate, h)
            radius = jnp.hypot(h[j], h[j + 1])
            c = jnp.where(radius > 0, h[j] / radius, 1.0)
            s = jnp.where(radius > 0, h[j + 1] / radius, 0.0)
            column = jnp.where(rows[:restart] <= j, h[:restart].at[j].set(radius), 0.0)
            triangle = triangle.at[:, j].set(column)
            g = g.at[j + 1].set(-s * g[j]).at[j].set(c * g[j])
            return j + 1, basis, triangle, rotations.at[j].set(jnp.stack([c, s])), g

        def going(state):
            j, *_, g = state
            return (j < restart) & (jnp.abs(g[j]) > tolerance)

        j, basis, triangle, _, g = jax.lax.while_loop(
            going, arnoldi, (0, basis, triangle, rotations, g)
        )
        # the least-squares solution in the Krylov space (zero beyond its j steps)
        used = rows[:restart] < j
        y = jax.scipy.linalg.solve_triangular(triangle, jnp.where(used, g[:restart], 0.0))
        step = x + precondition(y @ basis[:restart])
        diagonal = jnp.abs(jnp.diagonal(triangle))
        largest = jnp.max(jnp.where(used, diagonal, 0.0))
        regular = jnp.all(jnp.where(used, diagonal > SINGULAR * largest, True))
        # a non-finite product leaves the rotations at the identity: never "converged"
        trusted = regular & jnp.all(jnp.isfinite(step))
        x = jnp.where(trusted, step, x)
        converged = (jnp.abs(g[j]) <= tolerance) & trusted
        return x, converged, count + j, index + 1

    def more(carry):
        _, converged, _, index = carry
        return (~converged) & (index < cycles)

    start = (precondition(b), jnp.asarray(False), jnp.asarray(0), jnp.asarray(0))
    x, converged, count, _ = jax.lax.while_loop(more, cycle, start)
    return x, converged, count


def _rms(tree) -> jax.Array:
    leaves = jax.tree.leaves(tree)
    total = sum(jnp.sum(leaf**2) for leaf in leaves)
    return jnp.sqrt(total / sum(leaf.size for leaf in leaves))


class SpectralGMRES(lineax.AbstractLinearSolver):
    r"""GMRES to a forcing term; preconditioned by $(1 + c(-\Delta))^{-1}$ on nodal states.

    `_gmres` to $\|A\delta - b\|_2 \le \min(\eta\|b\|_2, \theta\|s\|_2)$ ($\eta$ =
    `forcing`, $\theta$ = `accuracy`, $s$ the option `scale` when given), at most
    `cycles` cycles of `restart` steps. `manifold`: the nodal states' manifold, for
    the preconditioner $P$ and the initial guess $P b$; with None, or a state that is
    not one array (a network's parameters), no preconditioner and the initial guess
    $b$. Complex states go to lineax's GMRES with the forcing term in its max norm.
    """

    manifold: AbstractManifold | None
    forcing: float = FORCING
    accuracy: float = ACCURACY
    restart: int = RESTART
    cycles: int = CYCLES

    def init(self, operator: lineax.AbstractLinearOperator, options: dict[str, Any]):
        return operator

    def _preconditioner(self, operator, vector):
        m = self.manifold
        eigenvalues = m.laplace_eigenvalues().astype(vector.dtype)
        resolved = m.resolved_slots().astype(vector.dtype)
        # a fixed broadband probe, band-limited to the resolved modes
        noise = jax.random.normal(jax.random.key(0), vector.shape, dtype=vector.dtype)
        if vector.ndim == 3 and vector.shape[1] == vector.shape[2]:
            # a metric flow sees the symmetric part of a tensor only
            noise = noise + jnp.swapaxes(noise, 1, 2)
        probe = m.spectral_multiply(noise, resolved)
        size = jnp.vdot(probe, probe)
        stiffness = jnp.vdot(probe, m.spectral_multiply(probe, eigenvalues)) / size
        ratio = jnp.vdot(probe, operator.mv(probe)) / size
        c = (ratio - 1) / stiffness
        c = jnp.where(jnp.isfinite(c) & (c > 0), c, 0.0)
        damping = 1 / (1 + c * eigenvalues) - 1

        def apply(v):
            return v + m.spectral_multiply(v, damping * resolved)

        return lineax.FunctionLinearOperator(apply, jax.eval_shape(lambda: vector))

    def compute(self, state, vector, options: dict[str, Any]):
        flat, unravel = jax.flatten_util.ravel_pytree(vector)
        if jnp.iscomplexobj(flat):
            gmres = lineax.GMRES(
                rtol=0.0,
                atol=self.forcing * _rms(vector),
                restart=self.restart,
                stagnation_iters=self.restart,
            )
            return gmres.compute(gmres.init(state, options), vector, options)

        def mv(v):
            return jax.flatten_util.ravel_pytree(state.mv(unravel(v)))[0]

        if self.manifold is not None and isinstance(vector, jax.Array):
            preconditioner = self._preconditioner(state, vector)

            def precondition(v):
                return preconditioner.mv(v.reshape(vector.shape)).reshape(-1)
        else:

            def precondition(v):
                return v

        tolerance = self.forcing * jnp.sqrt(jnp.vdot(flat, flat))
        if "scale" in options:
            scale = jax.flatten_util.ravel_pytree(options["scale"])[0]
            tolerance = jnp.minimum(tolerance, self.accuracy * jnp.sqrt(jnp.vdot(scale, scale)))
        value, converged, steps = _gmres(
            mv, precondition, flat, tolerance, self.restart, self.cycles
        )
        result = lineax.RESULTS.where(
            converged, lineax.RESULTS.successful, lineax.RESULTS.max_steps_reached
        )
        stats = {"num_steps": steps, "max_steps": self.restart * self.cycles}
        return unravel(value), result, stats

    def transpose(self, state, options: dict[str, Any]):
        raise NotImplementedError("SpectralGMRES is used for forward solves only.")

    def conj(self, state, options: dict[str, Any]):
        raise NotImplementedError("SpectralGMRES is used for forward solves only.")

    def assume_full_rank(self) -> bool:
        return True


class NewtonKrylov(optimistix.Newton):
    r"""`optimistix.Newton` that passes its tolerance's scale to the linear solver.

    Each step solves $J\,\delta = f(y)$ with the option `scale`
    $= \mathrm{atol} + \mathrm{rtol}\,|y|$ (`SpectralGMRES` stops at a tenth of it
    when that is tighter than its forcing term; other solvers ignore it; for diffrax's
    Kvaerno solvers $y$ is a stage's vector-field value), then updates
    $y$ and the state as `optimistix.Newton` does (without its `lower`/`upper` bounds,
    which the implicit stages do not use); termination is optimistix's (with
    `cauchy_termination=False`, Hairer and Wanner's rate test).
    """

    def _scale(self, y):
        return jax.tree.map(lambda leaf: self.atol + self.rtol * jnp.abs(leaf), y)

    def step(self, fn, y, args, options, state, tags):
        del options
        fx, linear, aux = jax.linearize(lambda z: fn(z, args), y, has_aux=True)
        operator = lineax.FunctionLinearOperator(linear, jax.eval_shape(lambda: y), tags=tags)
        solution = lineax.linear_solve(
            operator, fx, self.linear_solver, options={"scale": self._scale(y)}, throw=False
        )
        diff = solution.value
        new_y = jax.tree.map(lambda a, b: a - b, y, diff)
        diffsize = self.norm(jax.tree.map(lambda a, b: a / b, diff, self._scale(new_y)))
        state = eqx.tree_at(
            lambda s: (s.diff, s.diffsize, s.diffsize_prev, s.result, s.step),
            state,
            (
                diff,
                jnp.asarray(diffsize, dtype=state.diffsize.dtype),
                state.diffsize,
                optimistix.RESULTS.promote(solution.result),
                state.step + 1,
            ),
        )
        if self.cauchy_termination:
            state = eqx.tree_at(lambda s: s.f, state, fx, is_leaf=lambda x: x is None)
        return new_y, state, aux
