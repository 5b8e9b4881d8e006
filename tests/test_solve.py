"""`solvers.solve`: round-sphere extinction, events, the amplification check, compile counts, errors.

Round S^n (docs/conventions.md, Normalisations and tensors): every Perelman form gives g = (1 - 2(n-1)t) g_ref and
goes extinct at 1/(2(n-1)); smoothed forms at T(sigma) = 1/(2(n-1)(1 - beta));
the componentwise local flow of L_P follows c^3 = 1 - 6(n-1)t. These are exact
for the discretisation (the round metric is band-limited and its velocity is
constant in space), so 1e-6 is a loose bound on rounding plus the solver's
error (rtol 1e-8). The extinction event is root-found at c = 1e-4, so it stops
1e-4 T before T, well within the required 1e-3.
"""

import math
import warnings

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import flows
import solvers

from .helpers import NodalField, max_abs


def _scale_factors(solution):
    """c(t) at every saved time, and the largest deviation of g from c(t) g_ref over the nodes."""
    m = solution.manifold
    tangential = jax.vmap(m.tangential)(solution.values)
    c = tangential[:, 0, 0, 0]
    deviation = jnp.max(
        jnp.abs(tangential - c[:, None, None, None] * jnp.eye(m.dim)), axis=(1, 2, 3)
    )
    return np.asarray(c), np.asarray(deviation)


def _beta(sigma, n):
    """beta_sigma of the smoothed extinction time (the formula experiments/sphere_extinction.py uses)."""
    return flows.sphere_smoothing_beta(sigma, n)


def _case(dim, name, sigma, degree, slow=False):
    marks = (pytest.mark.slow,) if slow else ()
    return pytest.param(dim, name, sigma, degree, marks=marks, id=f"S{dim}-{name}-{sigma}")


# (dim, flow name, sigma, degree); the default suite runs the local fixed-measure and the
# smoothed lambda forms on S^2; the rest are marked slow (each solve compiles for 15-30 s
# on 2 cores): run them with -m slow
CASES = [
    _case(2, "perelman", None, 2),  # the local fixed-measure form only at a degree it allows
    _case(3, "perelman_lambda_deturck", None, 6, slow=True),
    _case(2, "smoothed_lambda", 0.3, 6),
    _case(2, "ricci_deturck", None, 6, slow=True),
    _case(2, "perelman_lambda_deturck", None, 6, slow=True),
    _case(3, "ricci_deturck", None, 6, slow=True),
    _case(2, "perelman_lambda", None, 6, slow=True),
    _case(3, "perelman_lambda", None, 6, slow=True),
    _case(3, "perelman", None, 2, slow=True),
    *(_case(d, "smoothed_lambda", s, 6, slow=True) for d in (2, 3) for s in (0.05, 0.6)),
    _case(3, "smoothed_lambda", 0.3, 6, slow=True),
    *(_case(d, "smoothed", 0.6, 6, slow=True) for d in (2, 3)),
]


@pytest.mark.parametrize("dim,name,sigma,degree", CASES)
def test_round_sphere_shrinks_linearly_and_goes_extinct(dim, name, sigma, degree):
    sphere = flows.Sphere(dim, degree)
    rate = 2 * (dim - 1) * ((1 - _beta(sigma, dim)) if sigma else 1.0)
    t_ext = 1 / rate
    flow = flows.make_flow(name, sphere, sigma)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        solution = solvers.solve(
            flow,
            flows.reference_metric(sphere),
            0.0,
            2 * t_ext,
            saveat=np.linspace(0, 0.8, 5) * t_ext,
        )
    amplification = solution.amplification
    warned = [w for w in caught if "predicted amplification" in str(w.message)]
    if name == "perelman":
        # the local fixed-measure form: its fastest mode at degree 2 (l = 1, rate n) grows as
        # (c0 / c)^(n / rate) down to the degenerate event at c = 1e-4: 1e4 on S^2, 1e3 on S^3,
        # on S^2 warned about (above 1e3) but allowed (below 1e8), the number in the message;
        # S^3 sits on the threshold
        expected = 1e4 ** (dim / rate)
        assert amplification.value == pytest.approx(expected, rel=1e-9)
        if abs(expected / 1e3 - 1) > 1e-6:
            assert bool(warned) == (expected > 1e3)
            assert not warned or f"= {expected:.3g} " in str(warned[0].message)
        # a singular flow stops cleanly (tests/test_checkpoint.py's slow test runs this solve
        # checkpointed): the saves and the stop, all finite, the last good state positive
        # and nearly extinct at every node
        assert len(solution.ts) == 6 and np.all(np.isfinite(solution.ts))
        assert np.all(np.isfinite(solution.values))
        assert 0 < float(jnp.min(sphere.tangential(solution.values[-1])[:, 0, 0])) < 1e-3
    elif name != "smoothed":  # at these degrees no amplification warning is due
        assert not warned, warned[0].message
        assert amplification.growth_rate == 0.0 or amplification.value < (1e6 if sigma else 1e3)
    c, deviation = _scale_factors(solution)
    early = np.asarray(solution.ts) <= 0.8 * t_ext + 1e-12
    assert early.sum() == 5
    assert np.max(np.abs(c[early] - (1 - rate * np.asarray(solution.ts)[early]))) < 1e-6
    assert np.max(deviation[early]) < 1e-6
    assert solution.stop_reason == solvers.StopReason.DEGENERATE  # extinction
    assert abs(solution.t_final - t_ext) < 1e-3


@pytest.mark.slow
@pytest.mark.parametrize("dim", [2, 3])
def test_componentwise_local_flow_follows_cube_law(dim):
    sphere = flows.Sphere(dim, 4)  # E is tangential: its ambient components have degree 2
    t_ext = 1 / (6 * (dim - 1))
    flow = flows.make_flow("componentwise", sphere)
    times = np.linspace(0, 0.8, 5) * t_ext
    solution = solvers.solve(flow, flows.reference_metric(sphere), 0.0, 2 * t_ext, saveat=times)
    c, deviation = _scale_factors(solution)
    assert np.max(np.abs(c[:5] - np.cbrt(1 - 6 * (dim - 1) * times))) < 1e-6
    assert np.max(deviation[:5]) < 1e-6
    assert abs(solution.t_final - t_ext) < 1e-3


def test_local_fixed_measure_form_is_refused_on_a_fine_sphere():
    # at degree 8 the local fixed-measure flow's fastest mode (l = 4, rate 20) would amplify
    # rounding by exp(20 x log(1e4) / 2) = 1e40 before the degenerate event (c = 1 - 2t at
    # 1e-4): solve refuses, naming the number and the well-posed cures
    sphere = flows.Sphere(2, 8)
    flow, g0 = flows.make_flow("perelman", sphere), flows.reference_metric(sphere)
    with pytest.raises(
        solvers.IllPosedError, match=r"= 1e\+40 .*ricci_deturck.*perelman_lambda_deturck"
    ):
        solvers.solve(flow, g0, 0.0, 1.0)
    # a sphere of radius 0.03 (scale 1e-3) is the same problem rescaled: the same prediction
    # (it stopped 1e-3 before extinction in absolute time, so a small sphere predicted 1)
    unit = solvers.predicted_amplification(flow, g0, 0.0, 1.0)
    small = solvers.predicted_amplification(flow, flows.NodalMetric(sphere, 1e-3 * g0.values), 0, 1)
    assert unit.exponent == pytest.approx(20 * math.log(1e4) / 2, rel=1e-12)
    assert small.exponent == pytest.approx(unit.exponent, rel=1e-12)
    assert small.t_end == pytest.approx(1e-3 * unit.t_end, rel=1e-12) and small.t_end > 0


def test_the_prediction_bounds_the_fastest_mode_of_a_non_uniform_metric():
    # e^{1.4 cos x} delta on 9^2: the Jacobian of the fixed-measure flow there has a mode
    # growing at 78 (measured), four times the rate at the metric's mean scale (20.6); at its
    # smallest scale over the nodes, e^(1.4 cos(8 pi / 9)), the predicted rate bounds it
    torus = flows.Torus(2, 9)
    flow = flows.perelman_flow(torus)
    g0 = flows.conformal_metric(torus, 0.7 * jnp.cos(torus.nodes[:, 0]))
    # through the compiled velocity: one program for the Jacobian (op by op it took 5 s)
    jacobian = jax.jacfwd(flow.evaluate)(g0.values).reshape(torus.nodes.shape[0] * 4, -1)
    fastest = float(np.max(np.real(np.linalg.eigvals(np.asarray(jacobian)))))
    amp = solvers.predicted_amplification(flow, g0, 0.0, 0.1)
    lowest = math.exp(1.4 * float(jnp.min(jnp.cos(torus.nodes[:, 0]))))  # at the nodes
    assert amp.scale == pytest.approx(lowest, rel=1e-12)
    assert 70 < fastest <= amp.growth_rate / amp.scale  # 78 against 119


def test_amplification_arguments_are_checked():
    torus = flows.Torus(2, 8)
    flow, g0 = flows.perelman_flow(torus), flows.reference_metric(torus)
    cases = [
        ({"force": "no"}, "force must be True or False"),  # a truthy string forced the run
        ({"refuse_amplification": float("nan")}, "refuse_amplification must be a finite"),
        ({"refuse_amplification": "1e5"}, "refuse_amplification must be a finite"),
        ({"warn_amplification": 1e10, "refuse_amplification": 1e5}, "must not exceed"),
    ]
    for kwargs, match in cases:
        with pytest.raises(ValueError, match=match):
            solvers.solve(flow, g0, 0.0, 0.5, **kwargs)


@pytest.mark.slow
def test_smoothed_fixed_measure_range_and_refusal():
    # the smoothed fixed-measure form is allowed (predicted amplification up to the degenerate
    # event below 1e6) only for sigma large enough; report the range, and show that solve
    # refuses the local form at a degree where rounding would grow beyond 1e8
    for dim, lowest in ((2, 0.60), (3, 0.40)):
        sphere = flows.Sphere(dim, 16 if dim == 2 else 8)
        g0 = flows.reference_metric(sphere)
        allowed = [
            s
            for s in np.arange(0.2, 0.75, 0.05)
            if solvers.predicted_amplification(
                flows.make_flow("smoothed", sphere, float(s)), g0, 0.0, 1.0
            ).value
            < 1e6
        ]
        print(f"S^{dim}: smoothed fixed-measure form allowed for sigma >= {min(allowed):.2f}")
        assert abs(min(allowed) - lowest) <= 0.051
        with pytest.raises(solvers.IllPosedError, match=r"predicted amplification .* = [0-9.]+e\+"):
            solvers.solve(flows.make_flow("perelman", sphere), g0, 0.0, 1.0)


def test_amplification_warns_refuses_and_can_be_forced():
    torus = flows.Torus(2, 16)
    flow = flows.perelman_flow(torus)
    g0 = flows.reference_metric(torus)
    amp = solvers.predicted_amplification(flow, g0, 0.0, 0.1)
    assert amp.growth_rate == 128.0 and abs(amp.exponent - 12.8) < 1e-9
    with pytest.warns(UserWarning, match="predicted amplification"):
        solvers.solve(flow, g0, 0.0, 0.1, saveat=3)
    with pytest.raises(solvers.IllPosedError, match="ricci_deturck"):
        solvers.solve(flow, g0, 0.0, 0.2, saveat=3)
    with pytest.warns(UserWarning):
        forced = solvers.solve(flow, g0, 0.0, 0.2, saveat=3, force=True)
    assert forced.stop_reason == "reached t1"  # the flat torus is a fixed point
    assert max_abs(forced.values[-1] - g0.values) < 1e-12


@pytest.mark.slow  # a Ricci–DeTurck solve with the fixed-point event compiles for about 6 s;
# a metric at a fixed point stops at t0 with that reason in the default suite too:
# test_the_fixed_point_and_curvature_thresholds_are_located_between_steps (dg/dt = -(g - I)
# from g = I), through the same event
def test_fixed_point_event_stops_ricci_deturck_on_the_flat_torus():
    torus = flows.Torus(2, 8)
    solution = solvers.solve(
        flows.ricci_deturck_flow(torus),
        flows.reference_metric(torus),
        0.0,
        1.0,
        fixed_point_tol=1e-10,
    )
    assert solution.stop_reason.startswith("fixed point")
    assert solution.t_final < 1.0


# The velocity fields of the tests of stopping thresholds, events and singular flows below,
# each a function of the manifold and the nodal values.


def relax(m, values):
    r"""$\partial_t g = -(g - I)$: relaxes to the identity, $\max|\partial_t g| = e^{-t} |g_0 - I|$."""
    return -(values - jnp.eye(values.shape[-1], dtype=values.dtype))


def drift(m, values):
    r"""$\partial_t g = \cos(x)\,\delta$ on $T^2$: $g = g_0 + t \cos(x)\,\delta$."""
    return jnp.cos(m.nodes[:, 0])[:, None, None] * jnp.eye(2, dtype=values.dtype)


def turns_non_finite(m, values):
    r"""$\partial_t g = g$ while the mean of $g_{11}$ is at most 2 ($t \le \ln 2$ from $g_\mathrm{ref}$), NaN beyond."""
    return jnp.where(jnp.mean(values[:, 0, 0]) > 2.0, jnp.nan, values)


def always_nan(m, values):
    r"""$\partial_t g = $ NaN: no step can be taken at all."""
    return jnp.full_like(values, jnp.nan)


def blows_up(m, values):
    r"""$\partial_t g = g^2$ (matrix square): from $g_\mathrm{ref} = I$, $g = I/(1 - t)$, finite before $t = 1$."""
    return values @ values


def pinch(m, values):
    r"""$\partial_t g = -g$ at node 0, 0 elsewhere: positive definiteness lost at one node only."""
    at_first = (jnp.arange(values.shape[0]) == 0)[:, None, None]
    return jnp.where(at_first, -values, jnp.zeros_like(values))


FIELDS = (relax, drift, turns_non_finite, always_nan, blows_up, pinch)


class _Field(flows.AbstractFlow):
    r"""$\partial_t g = f(g)$ for one of `FIELDS`, chosen by an integer array rather than held as
    a function: the solves of one kind (event settings, checkpointed or not, shapes) share
    one compiled program (each function in a `NodalField` compiled its own, 2-3 s apiece),
    and at run time only the chosen branch is evaluated. No growth rate: `solve` warns that
    it has no amplification prediction."""

    manifold: flows.AbstractManifold
    index: jax.Array

    @property
    def name(self):
        return FIELDS[int(self.index)].__name__

    def velocity(self, metric):
        return jax.lax.switch(self.index, FIELDS, self.manifold, metric.values)

    def growth_rate(self):
        return None


def _field(m, function):
    return _Field(m, jnp.asarray(FIELDS.index(function)))


def _at_thresholds(function, g0, t1, **kwargs):
    """`solve` with both thresholds watched (one compiled program for every case): the
    fixed point at 1e-6 and the curvature limit 2 (a case crosses only the one it is about)."""
    with pytest.warns(UserWarning, match="no amplification prediction"):
        return solvers.solve(
            _field(g0.manifold, function),
            g0,
            0.0,
            t1,
            fixed_point_tol=1e-6,
            curvature_limit=2.0,
            **kwargs,
        )


def test_the_fixed_point_and_curvature_thresholds_are_located_between_steps():
    r"""Both stops are the crossing of their threshold, root-found on the step's interpolant,
    not the end of the step where it happened (steps here grow tenfold, so a step end can
    lie far past it). Each solve watches both thresholds; a case crosses only its own.

    - $\partial_t g = -(g - I)$ from $g = 1.5\,I$: $\max|\partial_t g| = e^{-t}/2$ falls to
      1e-6 at $t = \log(5\times 10^5)$. The solve's own error in $g - I$ (rtol = atol =
      1e-12 against $|g - I| = 10^{-6}$ there) bounds the time to 1e-5; the step's end
      was 0.012 past it at rtol 1e-8. Its curvature stays 0 (a constant metric).
    - $\partial_t g = \cos(x)\,\delta$ on $T^2$ from $\delta$, so $g = (1 + t\cos x)\,\delta$:
      $R = -\Delta\log(1 + t\cos x)/(1 + t\cos x)$, largest in modulus at $x = \pi$,
      $-t/(1 - t)^2$, so $\max|R|$ reaches 2 at $t = 1/2$. The metric is band-limited (its
      curvature on the nodes is exact) and Tsit5 integrates a constant velocity exactly,
      so only the root find's tolerance (1e-10) is left. Its velocity stays 1 in size.
    - A metric already past a threshold stops at $t_0$ without a step: $g = I$ under the
      first flow (a fixed point), $(1 + 0.6\cos x)\,\delta$ under the second.
    """
    torus = flows.Torus(2, 8)
    identity = flows.reference_metric(torus)
    g0 = flows.NodalMetric(torus, 1.5 * identity.values)
    run = _at_thresholds(relax, g0, 30.0, rtol=1e-12, atol=1e-12)
    assert run.stop_reason == solvers.StopReason.FIXED_POINT
    assert abs(run.t_final - math.log(5e5)) < 1e-5
    run = _at_thresholds(relax, identity, 30.0)
    assert run.stop_reason == solvers.StopReason.FIXED_POINT
    assert run.t_final == 0.0 and run.stats["num_steps"] == 0

    run = _at_thresholds(drift, identity, 0.95)
    assert run.stop_reason == solvers.StopReason.CURVATURE
    assert abs(run.t_final - 0.5) < 1e-9 and run.stats["num_steps"] >= 2
    bump = jnp.cos(torus.nodes[:, 0])[:, None, None] * jnp.eye(2)
    run = _at_thresholds(drift, flows.NodalMetric(torus, identity.values + 0.6 * bump), 0.95)
    assert run.stop_reason == solvers.StopReason.CURVATURE
    assert run.t_final == 0.0 and run.stats["num_steps"] == 0


@pytest.mark.slow  # two compilations per flow and sphere; in the default suite the same
# property (the volume-normalised flow fixes a round S^2, the flow itself moves it) for
# Ricci-DeTurck: tests/test_fixed_points.py::
# test_round_sphere_is_a_fixed_point_of_the_volume_normalised_flows[ricci_deturck]
def test_volume_normalised_lambda_flow_fixes_round_spheres():
    for dim in (2, 3):
        sphere = flows.Sphere(dim, 4)
        g = flows.NodalMetric(sphere, 0.7 * sphere.reference_at_nodes())
        for flow in (flows.ricci_flow(sphere), flows.perelman_lambda_flow(sphere)):
            assert max_abs(flows.VolumeNormalised(flow).evaluate(g.values)) < 1e-12
            assert max_abs(flow.evaluate(g.values)) > 1.0  # the check can fail


class _Counting(flows.AbstractFlow):
    inner: flows.AbstractFlow
    counter: list = eqx.field(static=True)

    @property
    def manifold(self):
        return self.inner.manifold

    @property
    def name(self):
        return self.inner.name

    def velocity(self, metric):
        self.counter.append(1)
        return self.inner.velocity(metric)

    def growth_rate(self):
        return self.inner.growth_rate()


def _from_reference(function, t1, saveat=4, checkpoint=None):
    """`solve` of `_field(function)` from the reference metric on T^2 (4^2 nodes) over [0, t1],
    four saves: one compiled program for every such solve below (one more checkpointed)."""
    torus = flows.Torus(2, 4)
    g0 = flows.NodalMetric(torus, torus.reference_at_nodes())
    with pytest.warns(UserWarning, match="no amplification prediction"):
        return solvers.solve(
            _field(torus, function), g0, 0.0, t1, saveat=saveat, checkpoint=checkpoint
        )


@pytest.mark.parametrize("checkpointed", [False, True], ids=["one-solve", "checkpointed"])
def test_a_velocity_that_turns_non_finite_stops_the_solve_within_a_few_steps(
    checkpointed, tmp_path
):
    # diffrax rejects a step with a NaN error estimate and its PID controller then proposes a
    # NaN step: the solve used to run to max_steps (99,924 accepted steps creeping towards
    # t = ln 2, then 'max_steps reached'). Now a rejected non-finite step shorter than 1e-5
    # of the first one stops it, with the last finite state: measured 49 steps (about six
    # per tenfold of resolution; a coarser one misses a sphere's extinction event, which
    # the slow extinction tests check), 3e-7 before ln 2.
    checkpoint = tmp_path / "run.ckpt" if checkpointed else None
    run = _from_reference(turns_non_finite, 2.0, checkpoint=checkpoint)
    assert run.stop_reason == solvers.StopReason.NON_FINITE
    assert run.stats["num_steps"] <= 60
    assert bool(jnp.all(jnp.isfinite(run.values)))
    # the last state is g = e^t g_ref just before t = ln 2 (Tsit5 at rtol 1e-8)
    assert np.log(2) - 1e-6 < run.t_final < np.log(2)
    reference = flows.Torus(2, 4).reference_at_nodes()
    assert max_abs(run.values[-1] - np.exp(run.t_final) * reference) < 1e-6


def test_a_velocity_that_is_never_finite_stops_where_it_started():
    # no step is accepted: the rejected steps shrink fivefold each, from diffrax's first
    # 0.01, below 1e-5 of the first after nine; the solve stops where it started, the
    # initial metric kept
    run = _from_reference(always_nan, 1.0)
    assert run.stop_reason == solvers.StopReason.NON_FINITE
    assert run.stats["num_steps"] == 9 and run.stats["num_accepted_steps"] == 0
    reference = flows.Torus(2, 4).reference_at_nodes()
    assert run.t_final == 0.0 and np.array_equal(run.values[-1], reference)


def test_a_velocity_that_grows_without_bound_stops_as_a_collapse_of_the_step():
    # The velocity stays finite all the way to the singular time t = 1: the PID controller
    # crept towards it, alternating accepted and rejected steps, to max_steps. A rejected
    # step below 1e-12 of the interval now stops it, the last accepted state kept, at the
    # numerical solution's own singular time: 1 + O(rtol) (measured 1 + 1.5e-8).
    run = _from_reference(blows_up, 2.0, saveat=jnp.array([0.0, 0.5, 0.9, 2.0]))
    assert run.stop_reason == solvers.StopReason.STEP_COLLAPSED
    assert run.stats["num_steps"] < 500  # measured 402: each step covers ~5% of the way left
    assert abs(run.t_final - 1.0) < 1e-7
    assert bool(jnp.all(jnp.isfinite(run.values)))
    assert float(jnp.min(jnp.linalg.eigvalsh(run.values[-1]))) > 1e6  # near the pole
    for i, t in ((1, 0.5), (2, 0.9)):  # the saves before it: g = I / (1 - t), to rtol
        exact = flows.Torus(2, 4).reference_at_nodes() / (1.0 - t)
        assert max_abs(run.values[i] - exact) / max_abs(exact) < 1e-6


def relaxes(values):
    r"""$\partial_t g = -1000\,(g - I)$: relaxes to the identity within about 0.01."""
    return -1000.0 * (values - jnp.eye(values.shape[-1], dtype=values.dtype))


def test_a_stiff_start_over_a_long_interval_is_not_a_collapse():
    # diffrax's first step, 0.01, is rejected: 1e-13 of the interval [0, 1e11], which stopped
    # the solve at t = 0 as a collapse when the threshold was 1e-12 of the interval. With the
    # interval capped by 1e6 times the time elapsed (none yet) it is not one; Kvaerno5 relaxes
    # the metric and steps on.
    torus = flows.Torus(2, 4)
    g0 = flows.random_metric(torus, jax.random.key(0), 1)
    with pytest.warns(UserWarning, match="no amplification prediction"):
        run = solvers.solve(NodalField(torus, relaxes, rate=None), g0, 0.0, 1e11, solver="kvaerno5")
    assert run.stop_reason == solvers.StopReason.REACHED_T1 and run.t_final == 1e11
    assert run.stats["num_rejected_steps"] >= 1 and run.stats["num_steps"] < 200
    assert max_abs(run.values[-1] - torus.reference_at_nodes()) < 1e-8


@pytest.mark.parametrize("checkpointed", [False, True], ids=["one-solve", "checkpointed"])
def test_a_local_loss_of_positive_definiteness_is_told_apart_from_extinction(
    checkpointed, tmp_path
):
    # g = e^-t g_ref at node 0 only: its smallest eigenvalue reaches 1e-4 at t = ln 1e4 while
    # the others stay 1. It used to stop with the extinction message.
    checkpoint = tmp_path / "pinch.ckpt" if checkpointed else None
    run = _from_reference(pinch, 20.0, checkpoint=checkpoint)
    assert run.stop_reason == solvers.StopReason.LOCALLY_DEGENERATE
    assert abs(run.t_final - np.log(1e4)) < 1e-6


def test_right_hand_side_compiles_once_per_problem_shape():
    torus = flows.Torus(2, 8)
    counter = []
    flow = _Counting(flows.ricci_deturck_flow(torus), counter)
    g0 = flows.random_metric(torus, jax.random.key(0), 1, 0.1)
    solvers.solve(flow, g0, 0.0, 0.05, saveat=3)
    traced = len(counter)
    assert traced >= 1
    solvers.solve(flow, g0, 0.0, 0.1, saveat=3)
    solvers.solve(flow, g0, 0.01, 0.07, saveat=3, rtol=1e-7)
    assert len(counter) == traced


@pytest.mark.slow
def test_implicit_solver_is_matrix_free_on_a_64_grid():
    # 64^2 nodes x 4 components: a dense Jacobian would have 2.7e8 entries (2 GB)
    torus = flows.Torus(2, 64)
    g0 = flows.random_metric(torus, jax.random.key(3), 2, 0.1)
    flow = flows.ricci_deturck_flow(torus)
    implicit = solvers.solve(flow, g0, 0.0, 0.02, saveat=2, solver="kvaerno5", rtol=1e-7, atol=1e-9)
    explicit = solvers.solve(flow, g0, 0.0, 0.02, saveat=2, rtol=1e-9, atol=1e-11)
    assert implicit.stop_reason == "reached t1"
    assert max_abs(implicit.values[-1] - explicit.values[-1]) < 1e-6


def test_solve_bad_input():
    torus = flows.Torus(2, 8)
    flow = flows.ricci_deturck_flow(torus)
    g0 = flows.reference_metric(torus)
    with pytest.raises(ValueError, match="t1 must be greater than t0"):
        solvers.solve(flow, g0, 1.0, 1.0)
    with pytest.raises(ValueError, match="t0 must be a finite number"):
        solvers.solve(flow, g0, float("nan"), 1.0)
    bad = g0.values.at[3].set(-g0.values[3])
    with pytest.raises(
        ValueError,
        match="initial metric g0 is not positive definite on the tangent space at node 3",
    ):
        solvers.solve(flow, bad, 0.0, 1.0)
    with pytest.raises(ValueError, match="initial metric g0 is not finite at node 5"):
        solvers.solve(flow, g0.values.at[5, 0, 0].set(jnp.nan), 0.0, 1.0)
    with pytest.raises(ValueError, match="must have shape"):
        solvers.solve(flow, jnp.ones((3, 2, 2)), 0.0, 1.0)
    with pytest.raises(ValueError, match="lives on"):
        solvers.solve(flow, flows.reference_metric(flows.Torus(2, 9)), 0.0, 1.0)
    with pytest.raises(ValueError, match="unknown solver"):
        solvers.solve(flow, g0, 0.0, 1.0, solver="euler")
    with pytest.raises(ValueError, match="rtol must be a finite number > 0"):
        solvers.solve(flow, g0, 0.0, 1.0, rtol=0.0)
    with pytest.raises(ValueError, match="flow must be"):
        solvers.solve("ricci", g0, 0.0, 1.0)
