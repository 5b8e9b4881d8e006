"""Helpers every room of `flows` uses: argument checks, the tracing test, memory requests.

One copy each, here, as `equinox/_misc.py` holds equinox's. Errors follow the
package's convention: a `ValueError` whose message names the caller and the
argument, and ends with what was given.
"""

import numbers
import os
from typing import Any

import jax
import jax.numpy as jnp


def check_count(value, message: str, *, minimum: int | None = None, allowed=None) -> int:
    """An integer argument (Python or NumPy integer, not bool), checked; `ValueError` otherwise."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise ValueError(f"{message}, got {value!r}.")
    value = int(value)
    if (minimum is not None and value < minimum) or (allowed is not None and value not in allowed):
        raise ValueError(f"{message}, got {value!r}.")
    return value


def real_scalar(value) -> float | None:
    """A real number or a concrete 0-d real array as a float; None for anything else.

    None for a bool (a flag is not a width), a complex or non-numeric value, an array of
    any other shape, and a traced value (whose number is not known yet). Callers add
    their own range checks and name themselves in the message.
    """
    if isinstance(value, bool):
        return None
    if isinstance(value, numbers.Real):
        return float(value)
    shape, dtype = getattr(value, "shape", None), getattr(value, "dtype", None)
    if shape != () or dtype is None or is_traced(value):
        return None
    if not (jnp.issubdtype(dtype, jnp.integer) or jnp.issubdtype(dtype, jnp.floating)):
        return None  # bool and complex arrays
    return float(value)


def check_key(key, caller: str) -> None:
    """`ValueError` unless `key` is a JAX PRNG key: `jax.random.key(seed)` or a raw uint32 (2,) key."""
    dtype = getattr(key, "dtype", None)
    typed = dtype is not None and jnp.issubdtype(dtype, jax.dtypes.prng_key)
    raw = dtype == jnp.uint32 and getattr(key, "shape", None) == (2,)
    if not (typed and key.shape == ()) and not raw:
        raise ValueError(
            f"{caller}: key must be a single JAX PRNG key, e.g. jax.random.key(seed), got {key!r}."
        )


def is_traced(x: Any) -> bool:
    """Whether `x` is a JAX tracer (inside `jit`, `grad`, `vmap`): its values cannot be checked."""
    return isinstance(x, jax.core.Tracer)


def available_memory() -> int | None:
    """Bytes of memory available to a new allocation (Linux `MemAvailable`), or None where unknown."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (AttributeError, OSError, ValueError):
        return None


def _bytes(n: float) -> str:
    for unit, size in (("TiB", 2**40), ("GiB", 2**30), ("MiB", 2**20)):
        if n >= size:
            return f"{n / size:.3g} {unit}"
    return f"{n:.0f} bytes"


def check_memory(nbytes: float, what: str, cure: str = "") -> None:
    """`ValueError` when `what` needs more than the memory available: named, with both sizes.

    Called before the work, with an estimate of the request's peak memory.
    """
    available = available_memory()
    if available is not None and nbytes > available:
        raise ValueError(
            f"{what} would need about {_bytes(nbytes)} of memory, more than the {_bytes(available)} "
            f"available.{' ' + cure if cure else ''}"
        )
