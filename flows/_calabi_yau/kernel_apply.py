r"""Matrix-free kernel application on point clouds, chunked and sharded across devices.

For points that carry no grid (the Monte Carlo points of a Calabi–Yau
hypersurface, `point_sample`), a kernel acts on values at the points by the
plain sum

$$(K V)_p = \sum_{b=1}^{B} k(x_p, y_b)\, V_b, \qquad p = 1, \dots, P,$$

targets $x_p$, sources $y_b$, values $V_b$ of any trailing shape, real or
complex. Quadrature weights are the caller's: pass $w_b V_b$ for
$\int k(x, y) V(y)\, d\mu(y)$.

The $P \times B$ matrix is never built. Rows go in blocks of `row_chunk`
(`lax.map`); inside a row block the columns go in blocks of `col_chunk`
(`lax.scan`), each tile $k(x_{p}, y_{b})$ computed, contracted with its
values and dropped, so memory is O(`row_chunk` x `col_chunk`) beyond the
inputs and output. Both point sets are padded to whole blocks; padded
sources are masked out of every tile (they contribute exactly zero) and
padded targets are sliced off. The tile is rematerialised under
differentiation (`jax.checkpoint`), so `jax.grad`/`jax.jvp` with respect to
the values keep the same memory bound.

`sharded_point_kernel_apply` splits the rows (targets) over the devices of a
one-dimensional `jax.sharding.Mesh` (`shard_map`); sources and values are
replicated. Each device runs the same chunked sum on its rows, so the result
equals the single-device one.
"""

import math
import numbers
import sys
from collections.abc import Callable, Sequence

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, PartitionSpec
from jaxtyping import Array, Complex, Float, Inexact, Int

from .._misc import is_traced, real_scalar
from .projective import _distance_squared_of_cosine, _squared_norms, fs_distance_squared

PointKernel = Callable[[Array, Array], Array]

# A 256 x 1024 float64 tile (2 MB) stays in cache: on a 2-core CPU it ran the FS Gaussian on
# 20,000 quintic points at 0.66-0.74 of the exp throughput in lone runs (0.55 inside the full
# bench), against 0.44-0.50 with 512 x 2048 in the same lone runs.
_ROW_CHUNK = 256
_COL_CHUNK = 1024
_AXIS = "rows"
# the least width whose 2 sigma^2 is a normal float64
_SIGMA_MIN = math.sqrt(sys.float_info.min / 2) * (1 + 1e-15)


class FSGaussian(eqx.Module):
    r"""The Gaussian in Fubini–Study distance, $k_\sigma(z, w) = e^{-d_\mathrm{FS}(z, w)^2 / 2\sigma^2}$.

    $d_\mathrm{FS}([z], [w]) = \arccos c$, $c = |\langle z, w\rangle| / (|z||w|)$
    (`fs_distance`; docs/conventions.md, Calabi–Yau hypersurfaces), so $k_\sigma$ is a function of
    points of $\mathbb{CP}^n$ (invariant under $z \to \lambda z$). Not normalised: for
    $\int k_\sigma\, d\mu = 1$ divide by the kernel applied to the weights
    (`PairPointKernel(..., normalise=True)`, which also takes care of narrow widths, below).

    Without an arccos per pair (it costs three times the exp, and the kernel
    is applied to $N^2$ pairs): $d^2 = (1 - c)\,Q(c)$ with
    $Q(c) = \arccos^2 c / (1 - c)$, analytic on $[0, 1]$ ($Q(1) = 2$; its
    nearest singularity is at $c = -1$), evaluated as its degree-18 Chebyshev
    interpolant (`fs_distance_squared`). $Q$ is within 3e-15 relative of its
    interpolant, so $d^2$ is good to $3\cdot10^{-15} d^2$ plus the rounding of
    $c$ (about $10^{-15}$ absolute, as for arccos), and $k_\sigma$ to
    $(3\cdot10^{-15} d^2 + 10^{-15})/2\sigma^2$ relative.

    On the diagonal $k_\sigma(z, z) = e^{-\delta/2\sigma^2}$, $\delta = d^2(z, z)$ as
    computed: 0 or the rounding of $1 - c$, up to about 1e-15 in float64 and 5e-7 in
    float32. So $k_\sigma(z, z)$ is 1 only to within $\delta/2\sigma^2$ (4e-4 at
    $\sigma = 10^{-6}$ in float64; 0.9988 measured at $10^{-2}$ in float32), and narrower
    widths take it to 0 (measured: 2e-11 at $\sigma = 3\cdot10^{-9}$ and 0 below
    $5\cdot10^{-10}$ in float64, 7e-6 at $10^{-4}$ in float32): the unnormalised kernel of
    such a width is 0 at nearly every pair, the diagonal included. A normalised kernel
    divides each row by its largest term instead (the largest `exponent`, a log-sum-exp
    shift, `PairPointKernel`), which is exactly 1 however narrow the width, and tends to
    the nearest-point kernel.

    `point_kernel_apply` scales every point to unit norm once (`prepare`) and
    evaluates `on_prepared`, which needs no norms or division per pair (1.2 times
    faster on 20,000 quintic points).

    **Arguments:** `sigma`, the width, a finite number > 0 (radians of $d_\mathrm{FS}$,
    which lies in $[0, \pi/2]$), at least 1.1e-154 so that $2\sigma^2$ is a normal float64;
    points in float32 need $2\sigma^2$ normal in float32, $\sigma \ge$ 7.7e-20
    (`check_dtype`; the kernel's users refuse a narrower one). It is kept as a NumPy float64, a
    leaf that `jax.jit` and `eqx.filter_jit` trace, so kernels of different widths share one
    compiled flow (a tuning study's trials compile once); it takes the points' dtype where it
    is used.
    """

    sigma: float
    # 2 sigma^2, formed in Python: sigma^2 may be subnormal, which XLA flushes to zero on CPU
    two_sigma2: float = eqx.field(repr=False)

    def __init__(self, sigma: float):
        value = real_scalar(sigma)
        if value is None or not math.isfinite(value) or not value > 0:
            raise ValueError(f"FSGaussian: sigma must be a finite number > 0, got {sigma!r}.")
        sigma = value
        if 2 * float(sigma) ** 2 < sys.float_info.min:  # 1/(2 sigma^2) would be inf: 0/0 at d = 0
            raise ValueError(
                f"FSGaussian: sigma = {sigma!r} is too small: 2 sigma^2 underflows (sigma must be "
                f">= {_SIGMA_MIN:.1e})."
            )
        self.sigma = np.float64(sigma)
        self.two_sigma2 = np.float64(2 * float(sigma) ** 2)

    def check_dtype(self, dtype, caller: str) -> None:
        r"""`ValueError` unless $2\sigma^2$ is a normal number of the real dtype of `dtype`.

        Below it $2\sigma^2$ rounds to a subnormal or 0 in that dtype, and
        $-d^2/2\sigma^2$ becomes $-\infty$, or NaN at $d = 0$. Float64 widths are checked
        when the kernel is made; this is for points in float32 (σ down to 7.7e-20). Does
        nothing while σ is traced (inside `jit`): the callers check before.
        """
        if is_traced(self.two_sigma2):
            return
        info = np.finfo(jnp.finfo(dtype).dtype)
        if not float(self.two_sigma2) >= info.tiny:
            least = math.sqrt(float(info.tiny) / 2) * (1 + 1e-6)
            raise ValueError(
                f"{caller}: FSGaussian sigma = {float(self.sigma):g} is too small for "
                f"{info.dtype.name} points: 2 sigma^2 = {float(self.two_sigma2):.1e} is not a "
                f"normal {info.dtype.name} number (at least {info.tiny:.1e}), so the kernel's "
                f"exponent -d^2/2 sigma^2 would be -inf or NaN. Use sigma >= {least:.1e}, or "
                "float64 points; a width this small acts as NearestPointKernel (normalised) or "
                "LocalPointKernel."
            )

    def _two_sigma_squared(self, like) -> Float[Array, ""]:
        r"""$2\sigma^2$ in the real dtype of the array `like`."""
        dtype = jnp.finfo(jnp.result_type(like)).dtype
        return jnp.asarray(self.two_sigma2, dtype=dtype)

    def __call__(self, z: Complex[Array, " n1"], w: Complex[Array, " n1"]) -> Float[Array, ""]:
        """$k_\\sigma(z, w)$ for two points (homogeneous coordinates, any scaling)."""
        return jnp.exp(self.exponent(z, w))

    def exponent(self, z: Complex[Array, " n1"], w: Complex[Array, " n1"]) -> Float[Array, ""]:
        """$\\log k_\\sigma(z, w) = -d_\\mathrm{FS}^2/2\\sigma^2$."""
        d2 = fs_distance_squared(z, w)
        return -d2 / self._two_sigma_squared(d2)

    def prepare(self, points: Complex[Array, "N n1"]) -> Complex[Array, "N n1"]:
        """The points scaled to unit norm, once per point (`point_kernel_apply` calls it)."""
        norms = jnp.sqrt(_squared_norms(points))[:, None]
        return points / norms.astype(points.dtype)

    def on_prepared(self, x: Complex[Array, " n1"], y: Complex[Array, " n1"]) -> Float[Array, ""]:
        """$k_\\sigma$ of two prepared (unit) points: $c = |\\langle x, y\\rangle|$, no norms per pair."""
        return jnp.exp(self.exponent_on_prepared(x, y))

    def exponent_on_prepared(
        self, x: Complex[Array, " n1"], y: Complex[Array, " n1"]
    ) -> Float[Array, ""]:
        """$\\log k_\\sigma$ of two prepared (unit) points."""
        inner = jnp.sum(jnp.conj(x) * y)
        c = jnp.sqrt(jnp.real(inner) ** 2 + jnp.imag(inner) ** 2)
        d2 = _distance_squared_of_cosine(c)
        return -d2 / self._two_sigma_squared(d2)


def _checked_at_run_time(x) -> bool:
    """Traced arrays, and arrays spread over several hosts, are checked by `_guard` instead."""
    return is_traced(x) or (isinstance(x, jax.Array) and not x.is_fully_addressable)


def _check_chunk(value, name: str, caller: str) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise ValueError(f"{caller}: {name} must be an integer >= 1, got {value!r}.")
    return int(value)


def _check_inputs(caller: str, kernel, targets, sources, values):
    """Shapes, emptiness, dtypes and (for concrete arrays) finiteness; the kernel's output dtype."""
    if not callable(kernel):
        raise ValueError(f"{caller}: kernel must be a callable k(x, y) -> scalar, got {kernel!r}.")
    arrays = {"targets": targets, "sources": sources, "values": values}
    for name, x in arrays.items():
        if not hasattr(x, "shape") or not hasattr(x, "dtype"):
            raise ValueError(f"{caller}: {name} must be an array, got {type(x).__name__}.")
        if not jnp.issubdtype(x.dtype, jnp.inexact):
            raise ValueError(
                f"{caller}: {name} must be a real or complex floating array, got dtype {x.dtype}."
            )
    for name in ("targets", "sources"):
        x = arrays[name]
        if x.ndim != 2:
            raise ValueError(
                f"{caller}: {name} must have shape (count, D), one point per row, got shape "
                f"{x.shape}."
            )
        if x.shape[0] == 0:
            raise ValueError(
                f"{caller}: {name} is empty (shape {x.shape}); pass at least one point."
            )
    if targets.shape[1] != sources.shape[1]:
        raise ValueError(
            f"{caller}: targets and sources must be points of the same dimension, got shapes "
            f"{targets.shape} and {sources.shape}."
        )
    if values.ndim < 1 or values.shape[0] != sources.shape[0]:
        raise ValueError(
            f"{caller}: values must have shape ({sources.shape[0]}, ...), one entry per source, "
            f"got shape {values.shape}."
        )
    for name, x in arrays.items():
        if _checked_at_run_time(x):
            continue
        finite = np.isfinite(np.asarray(x)).reshape(x.shape[0], -1).all(axis=1)
        if not finite.all():
            bad = int(np.argmin(finite))
            raise ValueError(f"{caller}: {name} has a non-finite entry (first in row {bad}).")
    if hasattr(kernel, "prepare") and hasattr(kernel, "on_prepared"):
        for name in ("targets", "sources"):
            x = arrays[name]
            if _checked_at_run_time(x):
                continue
            with jax.ensure_compile_time_eval():  # concrete points inside a jit: still concrete
                prepared = np.asarray(kernel.prepare(x))
            ok = np.isfinite(prepared).reshape(x.shape[0], -1).all(axis=1)
            if not ok.all():
                raise ValueError(
                    f"{caller}: {name} row {int(np.argmin(ok))} is a point the kernel cannot take "
                    f"({type(kernel).__name__}.prepare gives non-finite values: every coordinate "
                    "zero?)."
                )
    if isinstance(kernel, FSGaussian):
        for name in ("targets", "sources"):
            kernel.check_dtype(arrays[name].dtype, caller)
    try:
        k = jax.eval_shape(kernel, targets[0], sources[0])
    except Exception as error:  # report what the kernel could not do, with its own message
        raise ValueError(
            f"{caller}: kernel(targets[0], sources[0]) failed: {type(error).__name__}: {error}"
        ) from error
    if not hasattr(k, "shape") or k.shape != () or not jnp.issubdtype(k.dtype, jnp.inexact):
        raise ValueError(
            f"{caller}: kernel(x, y) must return a real or complex scalar for two single points "
            f"of shape ({targets.shape[1]},), got {k!r}."
        )
    return k.dtype


def _guard(x, name: str, caller: str):
    """Arrays not checked on the host: a run-time error (`eqx.error_if`) on non-finite entries."""
    if _checked_at_run_time(x):
        return eqx.error_if(x, ~jnp.all(jnp.isfinite(x)), f"{caller}: non-finite {name}")
    return x


def _pad_rows(x, multiple: int):
    """`x` with its first row repeated to a multiple of `multiple` rows (a valid point)."""
    pad = (-x.shape[0]) % multiple
    if pad == 0:
        return x
    return jnp.concatenate([x, jnp.broadcast_to(x[:1], (pad,) + x.shape[1:])])


def _real_work(values, kernel_dtype):
    """`values` (B, F) ready for a real or complex kernel: (values, split, F, work dtype).

    A real kernel on complex values makes one real product on [Re V, Im V]
    (`split`); `_blocked_sum`'s result is put back together by `_unsplit`.
    """
    split = jnp.issubdtype(values.dtype, jnp.complexfloating) and not jnp.issubdtype(
        kernel_dtype, jnp.complexfloating
    )
    f = values.shape[1]
    if split:
        values = jnp.concatenate([jnp.real(values), jnp.imag(values)], axis=1)
    work_dtype = np.promote_types(kernel_dtype, values.dtype)
    return values.astype(work_dtype), split, f, work_dtype


def _unsplit(out, split: bool, f: int):
    """The complex result of a split product (`_real_work`), or `out` itself."""
    return jax.lax.complex(out[:, :f], out[:, f:]) if split else out


def _column_blocks(sources, cc: int):
    """Sources padded to whole blocks of `cc`: (blocks, cc, D), the valid mask and each block's offset."""
    b = sources.shape[0]
    n_cols = -(-b // cc)
    src = _pad_rows(sources, cc).reshape(n_cols, cc, sources.shape[1])
    valid = (jnp.arange(n_cols * cc) < b).reshape(n_cols, cc)
    return src, valid, jnp.arange(n_cols) * cc


def _column_values(values, n_cols: int, cc: int):
    """`values` (B, F) zero-padded to whole blocks of `cc`: (blocks, cc, F)."""
    pad = jnp.zeros((n_cols * cc - values.shape[0], values.shape[1]), values.dtype)
    return jnp.concatenate([values, pad]).reshape(n_cols, cc, values.shape[1])


def _blocked_sum(tile, rows, columns, width: int, dtype, p: int):
    r"""$\sum_c$ `tile(row block, column block c)` for each row block: (p, `width`).

    `rows` and `columns` are pytrees whose leaves' first axis runs over blocks; the
    row blocks are mapped (`lax.map`) and the column blocks scanned, so the memory
    is one tile's, whatever the number of points.
    """

    def row_block(block):
        def step(acc, col):
            return acc + tile(block, col), None

        rc = jax.tree.leaves(block)[0].shape[0]
        return jax.lax.scan(step, jnp.zeros((rc, width), dtype), columns)[0]

    return jax.lax.map(row_block, rows).reshape(-1, width)[:p]


def _chunked_apply(kernel, targets, sources, values, kernel_dtype, row_chunk, col_chunk):
    """The chunked sum on one device; `values` (B, F) real or complex, checked."""
    if hasattr(kernel, "prepare") and hasattr(kernel, "on_prepared"):
        # per-point work once (FSGaussian: unit norms), not once per pair
        targets, sources, kernel = (
            kernel.prepare(targets),
            kernel.prepare(sources),
            kernel.on_prepared,
        )
    p, b = targets.shape[0], sources.shape[0]
    rc, cc = min(row_chunk, p), min(col_chunk, b)
    values, split, f, work_dtype = _real_work(values, kernel_dtype)
    src, valid, _ = _column_blocks(sources, cc)
    vals = _column_values(values, src.shape[0], cc)
    rows = _pad_rows(targets, rc).reshape(-1, rc, targets.shape[1])

    @jax.checkpoint
    def tile(x_block, y_block, v_block, mask):
        k = jax.vmap(lambda x: jax.vmap(lambda y: kernel(x, y))(y_block))(x_block)
        k = jnp.where(mask[None, :], k, 0).astype(work_dtype)
        return jnp.matmul(k, v_block, precision=jax.lax.Precision.HIGHEST)

    out = _blocked_sum(
        lambda x_block, col: tile(x_block, *col),
        rows,
        (src, vals, valid),
        values.shape[1],
        work_dtype,
        p,
    )
    return _unsplit(out, split, f)


def _shifted_exp(e: Float[Array, "P B"]) -> tuple[Float[Array, "P B"], Float[Array, " P"]]:
    r"""$(e^{e_{pb} - t_p}, t_p)$, $t_p = \max_b e_{pb}$: each row's largest term exactly 1.

    The term at the row's argmax is set to 1 by its index, the others are
    $e^{\min(e - t, 0)} \le 1$, for the reason `_shifted_chunked_apply` gives. A row
    of $-\infty$ (no valid column) gives $t = 0$ and zeros but the forced 1: its
    caller masks it.
    """
    top = jnp.argmax(e, axis=-1)
    peak = jnp.take_along_axis(e, top[..., None], axis=-1)
    peak = jnp.where(jnp.isfinite(peak), peak, jnp.zeros_like(peak))
    k = jnp.exp(jnp.minimum(e - peak, 0))
    k = jnp.where(jnp.arange(e.shape[-1]) == top[..., None], jnp.ones_like(k), k)
    return k, peak[..., 0]


def _shifts_chunked(gaussian, targets, sources, row_chunk, col_chunk):
    r"""$(s_p, b_p)$: each target's largest exponent $\max_b \log k_\sigma(x_p, y_b)$ and its column."""
    x, y = gaussian.prepare(targets), gaussian.prepare(sources)
    exponent = gaussian.exponent_on_prepared
    p = x.shape[0]
    rc, cc = min(row_chunk, p), min(col_chunk, y.shape[0])
    src, valid, offsets = _column_blocks(y, cc)
    rows = _pad_rows(x, rc).reshape(-1, rc, x.shape[1])
    real = jnp.finfo(x.dtype).dtype

    def row_block(x_block):
        def step(carry, col):
            best, index = carry
            y_block, mask, offset = col
            e = jax.vmap(lambda a: jax.vmap(lambda b: exponent(a, b))(y_block))(x_block)
            e = jnp.where(mask[None, :], e, -jnp.inf)
            top = jnp.argmax(e, axis=1)
            peak = jnp.take_along_axis(e, top[:, None], axis=1)[:, 0]
            better = peak > best  # ties keep the lower column
            return (jnp.where(better, peak, best), jnp.where(better, offset + top, index)), None

        init = (jnp.full((rc,), -jnp.inf, real), jnp.zeros((rc,), offsets.dtype))
        return jax.lax.scan(step, init, (src, valid, offsets))[0]

    shift, nearest = jax.lax.map(row_block, rows)
    return shift.reshape(-1)[:p], nearest.reshape(-1)[:p]


def _shifted_chunked_apply(
    gaussian, targets, sources, values, shift, nearest, row_chunk, col_chunk
):
    r"""$\sum_b e^{E(x_p, y_b) - s_p} V_b$, $E = \log k_\sigma$, $s_p$ the row's largest exponent at column $b_p$.

    The term at $b_p$ is set to 1 by its index and the others are
    $e^{\min(E - s_p, 0)} \le 1$, not $e^{E - s_p}$ alone: XLA recomputes the
    exponents in each fusion that reads them rather than storing them, and the
    copies (here, and in the pass that found $s_p$) can round differently, by an
    ulp of $E$, which $1/2\sigma^2$ turns into $e^{\pm\text{huge}}$ at a narrow width
    (measured: the largest term 0.99999999 at σ = 1e-12, 0 or inf at 1e-100).
    Each row thus keeps a term exactly 1 (times its value). `values` (B, F).
    """
    targets, sources = gaussian.prepare(targets), gaussian.prepare(sources)
    exponent = gaussian.exponent_on_prepared
    p, b = targets.shape[0], sources.shape[0]
    rc, cc = min(row_chunk, p), min(col_chunk, b)
    values, split, f, work_dtype = _real_work(values, jnp.finfo(targets.dtype).dtype)
    src, valid, offsets = _column_blocks(sources, cc)
    vals = _column_values(values, src.shape[0], cc)
    rows = _pad_rows(targets, rc).reshape(-1, rc, targets.shape[1])
    shifts = _pad_rows(shift.astype(work_dtype), rc).reshape(-1, rc)
    nearest = _pad_rows(nearest, rc).reshape(-1, rc)

    @jax.checkpoint
    def tile(x_block, s_block, n_block, y_block, v_block, mask, offset):
        e = jax.vmap(lambda x: jax.vmap(lambda y: exponent(x, y))(y_block))(x_block)
        k = jnp.exp(jnp.minimum(e.astype(work_dtype) - s_block[:, None], 0))
        top = (offset + jnp.arange(cc))[None, :] == n_block[:, None]
        k = jnp.where(top, jnp.ones_like(k), k)
        k = jnp.where(mask[None, :], k, jnp.zeros_like(k))
        return jnp.matmul(k, v_block, precision=jax.lax.Precision.HIGHEST)

    out = _blocked_sum(
        lambda block, col: tile(*block, *col),
        (rows, shifts, nearest),
        (src, vals, valid, offsets),
        values.shape[1],
        work_dtype,
        p,
    )
    return _unsplit(out, split, f)


@eqx.filter_jit
def _shifts_jit(gaussian, targets, sources, row_chunk, col_chunk):
    return _shifts_chunked(gaussian, targets, sources, row_chunk, col_chunk)


@eqx.filter_jit
def _shifted_apply(gaussian, targets, sources, values, shifts, row_chunk, col_chunk):
    flat = values.reshape(values.shape[0], -1)
    if shifts is None:
        shifts = _shifts_chunked(gaussian, targets, sources, row_chunk, col_chunk)
    out = _shifted_chunked_apply(gaussian, targets, sources, flat, *shifts, row_chunk, col_chunk)
    return out.reshape((targets.shape[0],) + values.shape[1:])


def _check_shifted(caller, gaussian, targets, sources, values, row_chunk, col_chunk):
    row_chunk = _check_chunk(row_chunk, "row_chunk", caller)
    col_chunk = _check_chunk(col_chunk, "col_chunk", caller)
    if not isinstance(gaussian, FSGaussian):
        raise ValueError(f"{caller}: the row shift is for an FSGaussian, got {gaussian!r}.")
    _check_inputs(caller, gaussian, targets, sources, values)
    targets, sources, values = (
        _guard(x, name, caller)
        for x, name in ((targets, "targets"), (sources, "sources"), (values, "values"))
    )
    return targets, sources, values, row_chunk, col_chunk


def _row_shifts(
    gaussian: "FSGaussian",
    targets: Inexact[Array, "P D"],
    sources: Inexact[Array, "B D"],
    *,
    row_chunk: int = _ROW_CHUNK,
    col_chunk: int = _COL_CHUNK,
    caller: str = "_row_shifts",
) -> tuple[Float[Array, " P"], Int[Array, " P"]]:
    r"""$(s_p, b_p)$: $s_p = \max_b \log k_\sigma(x_p, y_b)$, the largest exponent of each target's row, and its column $b_p$.

    Matrix-free (memory O(`row_chunk` x `col_chunk`)); the same exponents as the
    kernel evaluates. Depends on the points only: a flow on fixed points computes it
    once (`PairPointKernel.prepare`) for `_row_shifted_apply`.
    """
    targets, sources, _, row_chunk, col_chunk = _check_shifted(
        caller, gaussian, targets, sources, sources[:, :1], row_chunk, col_chunk
    )
    return _shifts_jit(gaussian, targets, sources, row_chunk, col_chunk)


def _row_shifted_apply(
    gaussian: "FSGaussian",
    targets: Inexact[Array, "P D"],
    sources: Inexact[Array, "B D"],
    values: Inexact[Array, "B *shape"],
    shifts: tuple | None = None,
    *,
    row_chunk: int = _ROW_CHUNK,
    col_chunk: int = _COL_CHUNK,
    caller: str = "_row_shifted_apply",
) -> Inexact[Array, "P *shape"]:
    r"""$e^{-s_p}(KV)_p$ for the FS Gaussian, $s_p = \max_b \log k_\sigma(x_p, y_b)$: each row shifted by its largest exponent.

    The log-sum-exp form of `point_kernel_apply` for a kernel normalised row by
    row (`PairPointKernel(FSGaussian(sigma), normalise=True)`): the factor
    $e^{-s_p}$ cancels in $(KV)_p/(Kw)_p$, and the row's largest term is exactly
    1, so the denominator cannot underflow to 0 (a 0/0) however narrow σ is,
    at training rows (whose own term $e^{-\delta/2\sigma^2}$ underflows for
    σ below about 5e-10: `FSGaussian`) and at test rows alike. `shifts`: the rows'
    `_row_shifts` for these points, computed here if None (one more pass). Memory
    and chunks as `point_kernel_apply`; the same checks, naming `caller`. Not
    public: the point kernels call it.
    """
    targets, sources, values, row_chunk, col_chunk = _check_shifted(
        caller, gaussian, targets, sources, values, row_chunk, col_chunk
    )
    if shifts is not None and any(x.shape != (targets.shape[0],) for x in shifts):
        raise ValueError(
            f"{caller}: the row shifts are for {shifts[0].shape[0]} targets, got "
            f"{targets.shape[0]}."
        )
    if values.size == 0:
        return jnp.zeros((targets.shape[0],) + values.shape[1:], values.dtype)
    return _shifted_apply(gaussian, targets, sources, values, shifts, row_chunk, col_chunk)


def _row_shifted_gram(
    gaussian: "FSGaussian",
    targets: Inexact[Array, "P D"],
    sources: Inexact[Array, "B D"],
    caller: str = "_row_shifted_gram",
) -> Float[Array, "P B"]:
    r"""$e^{E_{pb} - \max_{b'} E_{pb'}}$, $E = \log k_\sigma$: the FS Gaussian's matrix, each row shifted by its largest exponent.

    Dense ($P \times B$ in memory); the largest entry of each row is exactly 1
    (`_row_shifted_apply`). Checked as `point_kernel_apply`'s inputs.
    """
    if not isinstance(gaussian, FSGaussian):
        raise ValueError(f"{caller}: the row shift is for an FSGaussian, got {gaussian!r}.")
    _check_inputs(caller, gaussian, targets, sources, sources[:, :1])
    return _shifted_gram_jit(gaussian, targets, sources)


@eqx.filter_jit
def _shifted_gram_jit(gaussian, targets, sources):
    x, y = gaussian.prepare(targets), gaussian.prepare(sources)
    e = jax.lax.map(lambda t: jax.vmap(lambda z: gaussian.exponent_on_prepared(t, z))(y), x)
    return _shifted_exp(e)[0]


@eqx.filter_jit
def _apply(kernel, targets, sources, values, kernel_dtype, row_chunk, col_chunk):
    flat = values.reshape(values.shape[0], -1)
    if flat.shape[1] == 0:  # no value per point: nothing to sum
        dtype = np.promote_types(kernel_dtype, values.dtype)
        return jnp.zeros((targets.shape[0],) + values.shape[1:], dtype)
    out = _chunked_apply(kernel, targets, sources, flat, kernel_dtype, row_chunk, col_chunk)
    return out.reshape((targets.shape[0],) + values.shape[1:])


def point_kernel_apply(
    kernel: PointKernel,
    targets: Inexact[Array, "P D"],
    sources: Inexact[Array, "B D"],
    values: Inexact[Array, "B *shape"],
    *,
    row_chunk: int = _ROW_CHUNK,
    col_chunk: int = _COL_CHUNK,
) -> Inexact[Array, "P *shape"]:
    r"""$(KV)_p = \sum_b k(x_p, y_b)\, V_b$ without the $P \times B$ matrix: memory O(`row_chunk` x `col_chunk`).

    Rows in blocks of `row_chunk` under `lax.map`, columns in blocks of
    `col_chunk` accumulated under `lax.scan`; padded sources are masked to
    contribute exactly zero. Jittable; differentiable in `values` (forward
    and reverse mode, the tile recomputed rather than stored). On the
    Monte Carlo points of a hypersurface, $\frac1B\sum_b w_b k(x, y_b) V_b$
    estimates $\int_X k(x, y) V(y)\, d\mathrm{Vol}_\Omega / \mathrm{Vol}_\Omega$.

    **Arguments:**

    - `kernel`: $k(x, y)$, a JAX function of two single points of shape (D,)
      returning a real or complex scalar (e.g. `FSGaussian(sigma)`). A kernel with
      methods `prepare` (all points at once) and `on_prepared` (two prepared points)
      has its per-point work done once: the sum uses `on_prepared` on the prepared points.
    - `targets`: (P, D) points $x_p$ at which the result is wanted.
    - `sources`: (B, D) points $y_b$.
    - `values`: (B, ...) real or complex values $V_b$ at the sources (any trailing shape).
    - `row_chunk`, `col_chunk`: tile size (integers >= 1; capped at P and B).

    **Returns:** (P, ...) with the trailing shape of `values`; complex if
    `values` or the kernel is. Raises `ValueError` on shapes, empty point
    sets, non-finite inputs (concrete arrays; traced ones raise at run time
    through `eqx.error_if`) or a kernel that does not return a scalar.
    """
    caller = "point_kernel_apply"
    row_chunk = _check_chunk(row_chunk, "row_chunk", caller)
    col_chunk = _check_chunk(col_chunk, "col_chunk", caller)
    kernel_dtype = _check_inputs(caller, kernel, targets, sources, values)
    targets, sources, values = (
        _guard(x, name, caller)
        for x, name in ((targets, "targets"), (sources, "sources"), (values, "values"))
    )
    return _apply(kernel, targets, sources, values, kernel_dtype, row_chunk, col_chunk)


def point_mesh(devices: Sequence[jax.Device] | None = None) -> Mesh:
    """A one-dimensional `Mesh` named `"rows"` over `devices` (default: every device, all hosts)."""
    devices = jax.devices() if devices is None else list(devices)
    if len(devices) == 0:
        raise ValueError("point_mesh: devices is empty; pass at least one device.")
    return Mesh(np.asarray(devices), (_AXIS,))


@eqx.filter_jit
def _sharded_apply(kernel, targets, sources, values, kernel_dtype, row_chunk, col_chunk, mesh):
    count = mesh.devices.size
    p = targets.shape[0]
    per_device = -(-p // count)
    padded = _pad_rows(targets, per_device * count) if per_device * count != p else targets
    flat = values.reshape(values.shape[0], -1)
    if flat.shape[1] == 0:  # no value per point: nothing to sum
        dtype = np.promote_types(kernel_dtype, values.dtype)
        return jnp.zeros((p,) + values.shape[1:], dtype)
    rows = PartitionSpec(_AXIS)
    replicated = PartitionSpec()

    def local(x, y, v):
        return _chunked_apply(kernel, x, y, v, kernel_dtype, row_chunk, col_chunk)

    out = jax.shard_map(
        local,
        mesh=mesh,
        in_specs=(rows, replicated, replicated),
        out_specs=rows,
        check_vma=False,  # the scan's zero carry is per-device; nothing crosses devices
    )(padded, sources, flat)
    return out[:p].reshape((p,) + values.shape[1:])


def sharded_point_kernel_apply(
    kernel: PointKernel,
    targets: Inexact[Array, "P D"],
    sources: Inexact[Array, "B D"],
    values: Inexact[Array, "B *shape"],
    *,
    devices: Sequence[jax.Device] | None = None,
    row_chunk: int = _ROW_CHUNK,
    col_chunk: int = _COL_CHUNK,
) -> Inexact[Array, "P *shape"]:
    r"""`point_kernel_apply` with the rows (targets) split over devices: $(KV)_p$ on the device owning $x_p$.

    A one-dimensional `jax.sharding.Mesh` over `devices` (default
    `jax.devices()`, every device of every host, so the same call runs
    multi-host); targets are padded to a multiple of the device count and
    sharded along the mesh, sources and values replicated, and each device
    runs the chunked sum on its rows (`jax.shard_map`). Per row the
    arithmetic is that of `point_kernel_apply` with the same `col_chunk`, so
    the two agree to rounding. Memory per device: its rows' output plus
    O(`row_chunk` x `col_chunk`).

    **Arguments:** as `point_kernel_apply`, and `devices`: a sequence of devices.

    **Returns:** (P, ...), sharded by rows over the mesh.
    """
    caller = "sharded_point_kernel_apply"
    row_chunk = _check_chunk(row_chunk, "row_chunk", caller)
    col_chunk = _check_chunk(col_chunk, "col_chunk", caller)
    if devices is not None and len(list(devices)) == 0:
        raise ValueError(f"{caller}: devices is empty; pass at least one device, or None for all.")
    kernel_dtype = _check_inputs(caller, kernel, targets, sources, values)
    targets, sources, values = (
        _guard(x, name, caller)
        for x, name in ((targets, "targets"), (sources, "sources"), (values, "values"))
    )
    mesh = point_mesh(devices)
    return _sharded_apply(
        kernel, targets, sources, values, kernel_dtype, row_chunk, col_chunk, mesh
    )
