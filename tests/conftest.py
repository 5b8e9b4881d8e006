import os

# The default suite is dominated by XLA compilation: trade run speed for compile speed
# (about 15% faster here). Set before JAX starts its backend; numerics are unchanged.
os.environ.setdefault("XLA_FLAGS", "--xla_backend_optimization_level=0")

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


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    """Say how many slow tests the default run left out, and how to run them."""
    left_out = len(terminalreporter.stats.get("deselected", []))
    if left_out and config.getoption("markexpr") == "not slow":
        terminalreporter.write_line(
            f"{left_out} slow tests were not run (marked slow: long studies); "
            "run them with: .venv/bin/python -m pytest -m slow"
        )
