r"""`train_potential`: minibatch training of a Kähler potential network, the evolving or frozen regime at scale.

`flows.PotentialFlow` integrates the gradient flow $\dot\theta = -\nabla_\theta L$
with diffrax on the whole training set. When the training set is large (10,000
quintic points and more) the flow is discretised instead by an Optax
optimiser on minibatches:

- `optax.sgd(lr)` is the flow's explicit Euler discretisation with step `lr`
  and a fresh minibatch per step (stochastic gradient descent);
- `optax.adam(lr)` (the default, as MLGeometry-JAX and cymetric train) preconditions the same
  gradient by its running second moments: the parameters still follow the
  loss's gradient through the network's evolving tangent kernel, with a
  diagonal metric on parameter space.

`regime="frozen"` trains the network linearised at $\theta_0$
(`PotentialFlow.linearised`): the same optimiser, a fixed tangent kernel.
The loss is a `flows.MongeAmpereLoss` on each minibatch ($\bar\eta$ the
minibatch's weighted mean); held-out σ (`flows.sigma_measure`, with its
standard error) is reported every `eval_every` epochs. `augment` (e.g.
`flows.SymmetryAugmentation`) replaces the training points each epoch by their
images under random symmetries of $X$: the same target from more points.
"""

import dataclasses
import math
import numbers
import time
from collections.abc import Callable

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax

import flows
from flows import KahlerPotential, MongeAmpereLoss, PointSample, PotentialFlow

from ._misc import check_count
from ._solution import StopReason

TRAINING_REGIMES = ("evolving", "frozen")


@dataclasses.dataclass(frozen=True)
class PotentialTraining:
    """The result of `train_potential`.

    - `flow`: the `flows.PotentialFlow` whose `metric(theta, sample)` evaluates the
      trained metric (its regime is the training regime);
    - `theta`: the final parameters (flat);
    - `epochs`, `seconds`, `train_loss`, `sigma_test`, `sigma_test_error`: one entry per
      evaluation (epoch 0 is the start; `seconds` counts training steps only,
      compilation included, evaluation excluded; `train_loss` is the mean minibatch loss of
      the epoch, at epoch 0 the loss on the first minibatch);
    - `reached`: for each target σ, the first evaluated `(epoch, seconds)` with
      test σ at or below it, or None;
    - `stop_reason`: `StopReason.EPOCHS` (`"epochs"`), `StopReason.TARGETS_REACHED`
      (`"targets reached"`), `StopReason.TIME_BUDGET` (`"time budget spent"`) or
      `StopReason.NON_FINITE_LOSS` (`"non-finite loss"`: `theta` is the last epoch
      whose loss and parameters were finite, and the curves end on it).
    """

    flow: PotentialFlow
    theta: jax.Array
    epochs: np.ndarray
    seconds: np.ndarray
    train_loss: np.ndarray
    sigma_test: np.ndarray
    sigma_test_error: np.ndarray
    reached: dict
    stop_reason: str


def _cast(tree, dtype):
    """`tree` with its real floating arrays cast to `dtype`, its complex ones to the match."""
    complex_dtype = jnp.dtype(jnp.complex64 if dtype == jnp.float32 else jnp.complex128)

    def cast(x):
        if not eqx.is_array(x):
            return x
        if jnp.issubdtype(x.dtype, jnp.complexfloating):
            return x.astype(complex_dtype)
        if jnp.issubdtype(x.dtype, jnp.floating):
            return x.astype(dtype)
        return x

    return jax.tree.map(cast, tree)


def _minibatch(sample: PointSample, index) -> PointSample:
    """The points `index` of `sample` with their weights as they are.

    Not `flows.subsample`, which renormalises the weights to mean 1: the
    minibatch loss is invariant under that in exact arithmetic, not in rounding. Built
    by `eqx.tree_at`, without `PointSample`'s checks: the sample's were checked once, and
    the weights' check would copy them to the host at every step (stalling the device's
    queue of steps).
    """
    fields = ("points", "patch", "eliminated", "omega", "weights", "g_fs", "jacobian")
    return eqx.tree_at(
        lambda s: tuple(getattr(s, name) for name in fields),
        sample,
        tuple(getattr(sample, name)[index] for name in fields),
    )


def train_potential(
    potential: KahlerPotential,
    train: PointSample,
    test: PointSample,
    *,
    regime: str = "evolving",
    loss: MongeAmpereLoss | None = None,
    optimizer: optax.GradientTransformation | None = None,
    epochs: int = 100,
    batch_size: int = 1000,
    eval_every: int = 1,
    targets=(),
    stop_at_targets: bool = False,
    max_seconds: float | None = None,
    augment: Callable[[PointSample, jax.Array], PointSample] | None = None,
    seed: int = 0,
    dtype=None,
    progress: Callable[[str], None] | None = None,
) -> PotentialTraining:
    r"""Train `potential` on `train` by minibatches; report held-out σ on `test` (module docstring).

    **Arguments:** `potential` (a `flows.KahlerPotential`), `train`, `test`
    (`flows.PointSample`s of one hypersurface), `regime` (`"evolving"` or
    `"frozen"`), `loss` (default `MongeAmpereLoss(1.0)`, the σ loss), `optimizer`
    (default `optax.adam(1e-3)`), `epochs`, `batch_size` (the last, partial
    minibatch of an epoch is dropped), `eval_every` (epochs between
    evaluations), `targets` (σ values whose first crossing is recorded),
    `stop_at_targets` (stop once every target is reached), `max_seconds` (None, or stop
    after the first epoch before the last that ends with this many seconds of training,
    counted as `seconds`, spent; that epoch is evaluated), `augment` (None, or a
    callable `augment(train, key)` returning a `PointSample` of as many points, e.g.
    `flows.SymmetryAugmentation(hypersurface)`: each epoch trains on
    `augment(train, fold_in(key(seed), epoch))`, `train` in its own precision, the
    call's cost counted in `seconds`), `seed` (the shuffling order and the
    augmentation's keys), `dtype` (None: as given; `jnp.float32` or `jnp.float64`: the network's
    parameters and the samples' real arrays are cast to it, their complex arrays to
    the matching complex type, so training and evaluation run in that precision;
    single precision is what MLGeometry-JAX and cymetric train in, and about 1.4 times faster on a
    CPU), `progress` (called with one line per evaluation).
    """
    if regime not in TRAINING_REGIMES:
        raise ValueError(
            f"train_potential: regime must be one of {TRAINING_REGIMES}, got {regime!r}."
        )
    for name, sample in (("train", train), ("test", test)):
        if not isinstance(sample, PointSample):
            raise ValueError(
                f"train_potential: {name} must be a PointSample, got {type(sample).__name__}."
            )
    epochs = check_count(epochs, "train_potential: epochs must be an integer >= 1", minimum=1)
    batch_size = check_count(
        batch_size, "train_potential: batch_size must be an integer >= 1", minimum=1
    )
    eval_every = check_count(
        eval_every, "train_potential: eval_every must be an integer >= 1", minimum=1
    )
    if batch_size > train.count:
        raise ValueError(
            f"train_potential: batch_size {batch_size} exceeds the {train.count} training points."
        )
    source = train  # what `augment` moves, in its own precision (then cast as `train` is)
    if dtype is not None:
        try:
            precision = jnp.dtype(dtype)
        except (TypeError, ValueError):
            precision = jnp.dtype(jnp.int8)  # not understood: refused below
        if precision.name not in ("float32", "float64"):
            raise ValueError(
                f"train_potential: dtype must be None, float32 or float64, got {dtype!r}."
            )
        potential, train, test = (_cast(x, precision) for x in (potential, train, test))
    if max_seconds is not None:
        try:  # any real number (NumPy's too), not a bool or a string
            budget = float(max_seconds) if isinstance(max_seconds, numbers.Real) else math.nan
        except OverflowError:
            budget = math.inf
        if isinstance(max_seconds, bool) or not (math.isfinite(budget) and budget > 0):
            raise ValueError(
                "train_potential: max_seconds must be None or a finite number > 0, got "
                f"{max_seconds!r}."
            )
        max_seconds = budget
    if augment is not None and not callable(augment):
        raise ValueError(
            "train_potential: augment must be None or a callable augment(train, key) -> "
            f"PointSample, got {augment!r}."
        )
    targets = tuple(float(t) for t in targets)
    if any(not (math.isfinite(t) and t > 0) for t in targets):
        raise ValueError(f"train_potential: targets must be finite numbers > 0, got {targets}.")
    loss = MongeAmpereLoss(1.0) if loss is None else loss
    optimizer = optax.adam(1e-3) if optimizer is None else optimizer
    flow = PotentialFlow(potential, train, regime, loss)

    def batch_loss(theta, batch):
        # the flow's metric (the linearised one in the frozen regime) at the minibatch's points
        return loss(batch.omega, batch.weights, flow.metric(theta, batch))

    @eqx.filter_jit
    def step(theta, state, batch):
        value, grad = jax.value_and_grad(batch_loss)(theta, batch)
        with jax.numpy_dtype_promotion("standard"):  # optax mixes Python floats and int32 counts
            updates, state = optimizer.update(grad, state, theta)
        return optax.apply_updates(theta, updates), state, value

    def evaluate(theta):
        sigma, error = flows.sigma_measure(test, flow.metric(theta, test))
        return float(sigma), float(error)

    with jax.numpy_dtype_promotion("standard"):
        state = optimizer.init(flow.theta0)
    theta = flow.theta0
    rng = np.random.default_rng(seed)
    augment_key = jax.random.key(seed)

    def epoch_data(epoch):
        if augment is None:
            return train
        moved = augment(source, jax.random.fold_in(augment_key, epoch))
        if not isinstance(moved, PointSample) or moved.count != train.count:
            got = moved.count if isinstance(moved, PointSample) else type(moved).__name__
            raise ValueError(
                f"train_potential: augment must return a PointSample of {train.count} points, "
                f"got {got}."
            )
        return moved if dtype is None else _cast(moved, precision)

    batches = train.count // batch_size
    record = {k: [] for k in ("epochs", "seconds", "train_loss", "sigma", "error")}
    reached = dict.fromkeys(targets)
    elapsed, stop_reason = 0.0, StopReason.EPOCHS

    def log(epoch, train_loss):
        sigma, error = evaluate(theta)
        for key, value in zip(record, (epoch, elapsed, train_loss, sigma, error), strict=True):
            record[key].append(value)
        for t in targets:
            if reached[t] is None and sigma <= t:
                reached[t] = (epoch, elapsed)
        if progress is not None:
            progress(
                f"{regime} epoch {epoch}: train loss {train_loss:.4f}, test sigma "
                f"{sigma:.4f} +- {error:.4f} ({elapsed:.0f} s of training)"
            )

    first = np.arange(batch_size)
    previous_loss = float(batch_loss(theta, _minibatch(train, first)))
    log(0, previous_loss)
    for epoch in range(1, epochs + 1):
        order = rng.permutation(train.count)
        start, losses, previous = time.perf_counter(), [], theta
        data = epoch_data(epoch)
        for b in range(batches):
            index = order[b * batch_size : (b + 1) * batch_size]
            theta, state, value = step(theta, state, _minibatch(data, index))
            losses.append(value)
        losses = np.asarray(jax.device_get(losses))
        if not (np.all(np.isfinite(losses)) and bool(jnp.all(jnp.isfinite(theta)))):
            # keep the last good epoch, and end the curve on it: the curve's last entry is
            # always the returned parameters' (training seconds up to that epoch)
            theta, stop_reason = previous, StopReason.NON_FINITE_LOSS
            if progress is not None:
                progress(f"{regime} epoch {epoch}: non-finite loss; kept epoch {epoch - 1}")
            if record["epochs"][-1] != epoch - 1:
                log(epoch - 1, previous_loss)
            break
        elapsed += time.perf_counter() - start
        previous_loss = float(np.mean(losses))
        # the budget ends a run only before its last epoch, which ends it anyway (EPOCHS)
        spent = max_seconds is not None and elapsed >= max_seconds and epoch < epochs
        if epoch % eval_every == 0 or epoch == epochs or spent:
            log(epoch, previous_loss)
            if stop_at_targets and targets and all(v is not None for v in reached.values()):
                stop_reason = StopReason.TARGETS_REACHED
                break
        if spent:
            stop_reason = StopReason.TIME_BUDGET
            break
    return PotentialTraining(
        flow=flow,
        theta=theta,
        epochs=np.asarray(record["epochs"]),
        seconds=np.asarray(record["seconds"]),
        train_loss=np.asarray(record["train_loss"]),
        sigma_test=np.asarray(record["sigma"]),
        sigma_test_error=np.asarray(record["error"]),
        reached=reached,
        stop_reason=stop_reason,
    )
