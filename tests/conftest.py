import os

# The default suite is dominated by XLA compilation: trade run speed for compile speed
# (about 15% faster here). Set before JAX starts its backend; numerics are unchanged.
os.environ.setdefault("XLA_FLAGS", "--xla_backend_optimization_level=0")
# Many tests compile the same programs (the same flows on the same grids, built afresh in
# each test, in each xdist worker, and in the programs' subprocesses): JAX's persistent
# compilation cache, keyed by the program, JAX version and flags, lets them compile once.
# Measured on three test files (2 cores): 106 s without it, 101 s from an empty cache (as
# in CI), 71 s on a rerun. Environment variables, so that subprocesses share it; in
# pytest's own (ignored) cache directory. The size cap is what makes JAX lock the cache
# (filelock, in the test extra): without it two workers writing and reading one entry race.
_CACHE = os.path.join(os.path.dirname(os.path.dirname(__file__)), ".pytest_cache", "jax")
os.environ.setdefault("JAX_COMPILATION_CACHE_DIR", _CACHE)
os.environ.setdefault("JAX_COMPILATION_CACHE_MAX_SIZE", str(2 * 2**30))
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0")

import jax  # noqa: E402
import pytest  # noqa: E402
from hypothesis import HealthCheck, settings  # noqa: E402

jax.config.update("jax_enable_x64", True)
jax.config.update("jax_numpy_dtype_promotion", "strict")

settings.register_profile(
    "default",
    max_examples=10,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
settings.load_profile("default")


@pytest.fixture
def getkey():
    """A fresh, deterministic PRNG key on each call (seeded per test)."""
    keys = iter(jax.random.split(jax.random.key(5678), 1000))
    return lambda: next(keys)
