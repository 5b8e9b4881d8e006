r"""MLGeometry-JAX, the peer, trained in the bench's process on the bench's points.

MLGeometry-JAX (Douglas, Lakshminarasimhan and Qi; `pip install -e ".[peer]"`,
version 2.0.0) trains a bihomogeneous network
$K = \log\big(\sum_j c_j\, x_{L,j}\big)$, $x_l = (W_l x_{l-1})^2$, $x_0$ the real and
imaginary parts of $z_i\bar z_j$ ($i \le j$), with Adam on minibatches of its
`weighted_MAPE` loss. Here it runs as its own code: the network is built from its
layers (`MLGeometry.bihomoNN.Bihomogeneous` and `SquareDense`, stacked as in its
`training/models.py`), the metric and loss are `MLGeometry.loss.compute_cy_metric` and
`compute_loss`; the loop around them does what its `trainer.train_optax` does (a
jitted `value_and_grad` of `compute_loss` and an Optax update per minibatch, the
same shuffling and minibatches) but is driven from here, because `train_optax`
returns only at its end and a second call would re-initialise Adam and recompile:
here test σ is evaluated after every epoch and the run stops at a time budget. As in its trainer, an epoch reshuffles by
`jax.random.permutation`, takes ceil(N / batch) minibatches (the last one partial;
`train_potential` drops a partial one: at 9,000 points and batches of 500 or 1000
there is none) and reads each minibatch's loss back (`.item()`).

The data it trains on are the bench's own `flows.PointSample` (`peer_dataset`):
`points` the sample's points; `Omega_Omegabar` $= |\Omega|^2$; `mass` the sample's
weights $|\Omega|^2/\det g_\mathrm{FS}$ (normalised to mean 1; the peer divides by
their sum); `restriction` $= J^\top$, the transposed embedding Jacobian, so that the
peer's $R\,H\,R^\dagger$ is our $J^\top H \bar J$. Its metric on the test points is
then scored by `flows.sigma_measure`. The two definitions agree point by point
(`agreement`, checked by tests/test_bench.py): the peer's $\partial\bar\partial K$ is
$2^L$ times our `flows.pulled_back_metric` of $\phi = K/2^L - \log|z|^2$ (its
network carries no $1/k$), which σ ignores (σ is invariant under $g \to c\,g$); its
per-point $\eta/\bar\eta$ (`MLGeometry.loss.eta_array`) is ours,
$\eta_a = \det g_a/|\Omega_a|^2$, $\bar\eta = \sum_a w_a\eta_a/\sum_a w_a$; and its
`weighted_MAPE` is our σ, $\sum_a w_a|1 - \eta_a/\bar\eta|/\sum_a w_a$. The one
difference of architecture: its first layer reads the 30 numbers Re and Im of
$z_i\bar z_j$, $i \le j$ (five of them the zero imaginary parts of the diagonal), ours
the 25 independent real ones.

Recipes (`Recipe`): the peer's own (Adam at 0.01 on minibatches of 1000, constant
rate: its Guide notebook) and ours (the bench's: Adam at 5e-3 on minibatches of 500,
decaying continuously with a half-life of 10 epochs after 15, or of 100 for budgets of 600 s and more). Every
record counts `seconds` of training (the minibatch loop, compilation included,
evaluation excluded, as `solvers.train_potential` counts ours) and `wall_seconds`
from the start of the run (data conversion, initialisation, compilation, training
and evaluation).
"""

import dataclasses
import functools
import math
import time
import warnings

import jax
import jax.numpy as jnp
import numpy as np
import optax
from _common import progress as print_progress

import flows

PEER = "MLGeometry-JAX"
PEER_VERSION = "2.0.0"
NOT_INSTALLED = "MLGeometry-JAX not installed: pip install -e '.[peer]'"


def _mlg():
    """The `MLGeometry` package (its import warns that its dependency JAXopt is unmaintained: silenced)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "JAXopt is no longer maintained", DeprecationWarning)
        import MLGeometry
    return MLGeometry


def peer_installed() -> bool:
    """Whether MLGeometry-JAX (the `[peer]` extra) can be imported."""
    try:
        _mlg()
    except ImportError:
        return False
    return True


@dataclasses.dataclass(frozen=True)
class Recipe:
    """Adam at `lr` on minibatches of `batch`; `halving`: (constant epochs, halving period) or None.

    `symmetry`: None, or the group (`flows.SymmetryAugmentation`) that moves the
    training points afresh each epoch.
    """

    name: str
    lr: float
    batch: int
    halving: tuple[int, int] | None = None
    symmetry: str | None = None

    def optimizer(self, steps_per_epoch: int) -> optax.GradientTransformation:
        if self.halving is None:
            return optax.adam(self.lr)
        constant, period = self.halving
        return optax.adam(
            optax.exponential_decay(
                self.lr,
                transition_steps=steps_per_epoch * period,
                decay_rate=0.5,
                transition_begin=steps_per_epoch * constant,
            )
        )

    def augmentation(self) -> flows.SymmetryAugmentation | None:
        """What moves the quintic's training points each epoch under this recipe, or None."""
        if self.symmetry is None:
            return None
        return flows.SymmetryAugmentation(flows.Hypersurface.fermat_quintic(), self.symmetry)

    def describe(self) -> dict:
        return {
            "lr": self.lr,
            "batch": self.batch,
            "halving": self.halving,
            "symmetry": self.symmetry,
        }


# MLGeometry's Guide notebook: optax.adam(learning_rate=0.01), BATCH_SIZE = 1000, weighted_MAPE.
PEER_RECIPE = Recipe("peer", 0.01, 1000)


def our_recipe(lr: float, batch: int, halving: int = 10, symmetry: str | None = None) -> Recipe:
    """The bench's recipe: Adam at `lr` on minibatches of `batch`, its rate decaying continuously.

    After 15 epochs the rate decays with a half-life of `halving` epochs.

    `symmetry`: the training points moved by that group each epoch (`Recipe`), or None.
    """
    return Recipe("ours", lr, batch, (15, halving), symmetry)


# The peer's data and network.


def peer_dataset(sample: flows.PointSample, dtype=jnp.float32) -> dict:
    """`sample` as the dictionary MLGeometry's loss reads (module docstring), in `dtype` and its complex match."""
    real = jnp.dtype(dtype)
    complex_ = jnp.dtype(jnp.complex64 if real == jnp.float32 else jnp.complex128)
    return {
        "points": sample.points.astype(complex_),
        "Omega_Omegabar": (jnp.abs(sample.omega) ** 2).astype(real),
        "mass": sample.weights.astype(real),
        "restriction": jnp.swapaxes(sample.jacobian, 1, 2).astype(complex_),
    }


@functools.cache
def _network_class():
    from flax import linen as nn

    bnn = _mlg().bihomoNN

    class KahlerPotential(nn.Module):
        """MLGeometry's bihomogeneous network (its training/models.py: `threelayers` for three widths)."""

        n_units: tuple

        @nn.compact
        def __call__(self, inputs):
            x = bnn.Bihomogeneous(d=inputs.shape[-1])(inputs)
            for width in self.n_units:
                x = bnn.SquareDense(features=width)(x)  # its default activation: x**2
            x = bnn.SquareDense(features=1, activation=None)(x)
            return jnp.log(x)

    return KahlerPotential


def peer_network(widths, ambient_dim: int, seed: int, dtype=jnp.float32):
    """(model, params): MLGeometry's network of `widths` initialised by its `trainer.init_params`."""
    trainer = _mlg().trainer

    model = _network_class()(tuple(int(w) for w in widths))
    with jax.numpy_dtype_promotion("standard"):
        params = trainer.init_params(model, (ambient_dim,), seed)
    return model, jax.tree.map(lambda p: p.astype(dtype), params)


def peer_metric(model, params, data: dict):
    """The peer's metric on X at the points of `data` (`MLGeometry.loss.compute_cy_metric`)."""
    loss = _mlg().loss

    with jax.numpy_dtype_promotion("standard"):
        return loss.compute_cy_metric(model, params, data)


def _cast_sample(sample: flows.PointSample, dtype) -> flows.PointSample:
    """`sample` with its real arrays in `dtype` and its complex ones in the match (as train_potential casts)."""
    real = jnp.dtype(dtype)
    complex_ = jnp.dtype(jnp.complex64 if real == jnp.float32 else jnp.complex128)

    def cast(x):
        if isinstance(x, jax.Array) and jnp.issubdtype(x.dtype, jnp.complexfloating):
            return x.astype(complex_)
        if isinstance(x, jax.Array) and jnp.issubdtype(x.dtype, jnp.floating):
            return x.astype(real)
        return x

    return jax.tree.map(cast, sample)


# The definitions side by side.


def agreement(model, params, sample: flows.PointSample) -> dict:
    r"""The peer's metric, η/η̄ and σ against ours on `sample` (max relative differences).

    - `metric`: $\max|g_\mathrm{peer}/2^L - g_\mathrm{ours}| / \max|g_\mathrm{ours}|$,
      $g_\mathrm{ours}$ = `flows.pulled_back_metric(sample, phi)` with
      $\phi(z) = K(z)/2^L - \log|z|^2$, $K$ the peer's network;
    - `eta_ratio`: the peer's per-point $\eta/\bar\eta$ (`compute_loss` with `eta_array`)
      against $\eta_a/\bar\eta$ from the sample's $\Omega$ and weights (`sigma_measure`'s
      definition), max relative difference;
    - `sigma`: the peer's `weighted_MAPE` against `flows.sigma_measure`, both on the
      peer's metric, relative difference; `sigma_peer`, `sigma_ours` the two values.
    """
    loss = _mlg().loss

    data = peer_dataset(sample, sample.weights.dtype)
    k = 2 ** len(model.n_units)
    g_peer = peer_metric(model, params, data)

    def phi(z):
        with jax.numpy_dtype_promotion("standard"):
            return jnp.real(model.apply(params, z[None])[0, 0]) / k - jnp.log(
                jnp.sum(jnp.abs(z) ** 2)
            )

    g_ours = flows.pulled_back_metric(sample, phi)
    with jax.numpy_dtype_promotion("standard"):
        ratio_peer = loss.compute_loss(model, params, data, loss.eta_array)
        sigma_peer = loss.compute_loss(model, params, data, loss.weighted_MAPE)
    g = g_peer.astype(sample.omega.dtype)
    eta = jnp.real(jnp.linalg.det(g)) / jnp.abs(sample.omega) ** 2
    ratio_ours = eta / (jnp.sum(sample.weights * eta) / jnp.sum(sample.weights))
    sigma_ours, _ = flows.sigma_measure(sample, g)
    return {
        "metric": float(jnp.max(jnp.abs(g_peer / k - g_ours)) / jnp.max(jnp.abs(g_ours))),
        "eta_ratio": float(jnp.max(jnp.abs(ratio_peer / ratio_ours - 1))),
        "sigma": float(abs(sigma_peer / sigma_ours - 1)),
        "sigma_peer": float(sigma_peer),
        "sigma_ours": float(sigma_ours),
    }


# Training.


def train_peer(
    train: flows.PointSample,
    test: flows.PointSample,
    widths,
    recipe: Recipe,
    *,
    budget: float,
    label: str = "",
    epochs: int,
    seed: int = 0,
    targets=(0.02, 0.01),
    stop_at_targets: bool = False,
    dtype=jnp.float32,
    progress=print_progress,
) -> dict:
    """Train the peer on `train` by `recipe` until `budget` seconds of training or `epochs` epochs.

    With `stop_at_targets`, it stops after the epoch that reaches the last of `targets`
    (as `solvers.train_potential` does).

    After every epoch (and at epoch 0) its metric on `test` is scored by
    `flows.sigma_measure` (in `dtype`, as `train_potential` scores ours). Returns the
    curve (`epochs`, `seconds`, `wall_seconds`, `train_loss`, `sigma_test`,
    `sigma_test_error`), `reached` (for each target the first epoch and seconds at or
    below it, or None), `stop` and `sigma_agreement` (the peer's own σ of its final
    metric on the test points against ours, relative). `train_loss` is the epoch's mean
    minibatch loss (None at epoch 0); `label` names the run in the progress lines.
    """
    mlg_loss = _mlg().loss

    start_wall = time.perf_counter()
    data = peer_dataset(train, dtype)
    test_data = peer_dataset(test, dtype)
    test_cast = _cast_sample(test, dtype)
    model, params = peer_network(widths, train.points.shape[1], seed, dtype)
    n = train.count
    batch_size = recipe.batch
    batches = int(np.ceil(n / batch_size))  # the peer's count: the last minibatch may be partial
    optimizer = recipe.optimizer(batches)
    loss_metric = mlg_loss.weighted_MAPE

    # the step, shuffling and minibatches of MLGeometry.trainer.train_optax
    @jax.jit
    def step(current_params, current_opt_state, batch_data):
        loss_val, grads = jax.value_and_grad(
            lambda p: mlg_loss.compute_loss(model, p, batch_data, loss_metric)
        )(current_params)
        updates, new_opt_state = optimizer.update(grads, current_opt_state, current_params)
        new_params = optax.apply_updates(current_params, updates)
        return new_params, new_opt_state, loss_val

    metric = jax.jit(lambda p: mlg_loss.compute_cy_metric(model, p, test_data))

    def evaluate(p):
        sigma, error = flows.sigma_measure(test_cast, metric(p))
        return float(sigma), float(error)

    curve = {k: [] for k in ("epochs", "seconds", "wall_seconds", "train_loss", "sigma", "error")}
    reached = dict.fromkeys(float(t) for t in targets)
    seconds, stop = 0.0, "epochs"

    def log(epoch, train_loss):
        sigma, error = evaluate(params)
        wall = time.perf_counter() - start_wall
        for key, value in zip(curve, (epoch, seconds, wall, train_loss, sigma, error), strict=True):
            curve[key].append(value)
        for t in reached:
            if reached[t] is None and sigma <= t:
                reached[t] = {"epoch": epoch, "seconds": seconds, "wall_seconds": wall}
        progress(
            f"{PEER} ({label}) epoch {epoch}: train loss "
            f"{'-' if train_loss is None else f'{train_loss:.4f}'}, test sigma {sigma:.4f} "
            f"+- {error:.4f} ({seconds:.0f} s of training)"
        )

    augment = recipe.augmentation()  # as train_potential moves ours: fresh points each epoch
    augment_key = jax.random.key(seed)

    with jax.numpy_dtype_promotion("standard"):  # the peer is not written for strict promotion
        opt_state = optimizer.init(params)
        rng = jax.random.PRNGKey(seed)
        log(0, None)  # the peer's trainer reports epoch means only
        for epoch in range(1, epochs + 1):
            begin, previous = time.perf_counter(), params
            rng, perm_rng = jax.random.split(rng)
            perm = jax.random.permutation(perm_rng, n)
            if augment is not None:
                moved = augment(train, jax.random.fold_in(augment_key, epoch))
                data = peer_dataset(moved, dtype)
            shuffled = jax.tree_util.tree_map(lambda x, perm=perm: x[perm], data)
            epoch_loss = 0.0
            for i in range(batches):
                chunk = jax.tree_util.tree_map(
                    lambda x, i=i: x[i * batch_size : (i + 1) * batch_size], shuffled
                )
                params, opt_state, loss_val = step(params, opt_state, chunk)
                epoch_loss += loss_val.item()
            seconds += time.perf_counter() - begin
            if not (math.isfinite(epoch_loss) and _finite_tree(params)):
                params, stop = previous, "non-finite loss"
                break
            log(epoch, epoch_loss / batches)
            if stop_at_targets and all(v is not None for v in reached.values()):
                stop = "targets reached"  # as train_potential says it
                break
            if seconds >= budget:
                stop = "time budget spent"  # as train_potential says it
                break
        final = agreement_on(model, params, test_cast, test_data)
    return {
        "recipe": recipe.name,
        **recipe.describe(),
        "epochs": curve["epochs"],
        "seconds": curve["seconds"],
        "wall_seconds": curve["wall_seconds"],
        "train_loss": curve["train_loss"],
        "sigma_test": curve["sigma"],
        "sigma_test_error": curve["error"],
        "reached": {str(t): v for t, v in reached.items()},
        "stop": stop,
        "sigma_agreement": final,
    }


def agreement_on(model, params, test_cast, test_data) -> dict:
    """The peer's own σ (`weighted_MAPE`) of its metric on the test points against `flows.sigma_measure`."""
    loss = _mlg().loss

    @jax.jit
    def both(p):
        own = loss.compute_loss(model, p, test_data, loss.weighted_MAPE)
        return own, flows.sigma_measure(test_cast, loss.compute_cy_metric(model, p, test_data))[0]

    with jax.numpy_dtype_promotion("standard"):
        own, ours = (float(x) for x in both(params))
    return {"sigma_peer_definition": own, "sigma_ours": ours, "relative": abs(own / ours - 1)}


def _finite_tree(tree) -> bool:
    return all(bool(jnp.all(jnp.isfinite(x))) for x in jax.tree.leaves(tree))


# Summaries of a curve.


def epoch_seconds(seconds) -> float | None:
    """Median seconds of an epoch after the first (which compiles); None with fewer than two epochs."""
    steps = np.diff(np.asarray(seconds, dtype=float))
    return float(np.median(steps[1:])) if steps.size >= 2 else None


def _finite_or_inf(x) -> float:
    """`x` where it is a finite number, else +inf (NaN would compare false with everything)."""
    return float(x) if x is not None and math.isfinite(x) else math.inf


def best_within(run: dict, budget: float) -> dict:
    """The smallest test σ of the epochs ended within `budget` seconds of training, with its epoch.

    Non-finite σ (a diverged epoch) is passed over; `sigma` is None where no epoch within
    the budget has a finite one.
    """
    inside = [i for i, s in enumerate(run["seconds"]) if s <= budget]
    i = min(inside, key=lambda i: _finite_or_inf(run["sigma_test"][i]))
    sigma = _finite_or_inf(run["sigma_test"][i])
    return {
        "sigma": sigma if math.isfinite(sigma) else None,
        "sigma_error": run["sigma_test_error"][i],
        "epoch": run["epochs"][i],
        "seconds": run["seconds"][i],
        "ran_whole_budget": bool(run["seconds"][-1] >= budget),
    }
