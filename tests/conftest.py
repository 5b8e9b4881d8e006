import atexit
import os
import shutil
import tempfile

# The default suite is dominated by XLA compilation: trade run speed for compile speed.
# No backend optimisation, no expensive LLVM passes, and XLA:CPU's older loop emitters in
# place of its fusion emitters (which compile slowly): the README's network block in a
# fresh interpreter, 27 s with the first flag alone, 17 s with all three, two cores.
# Set before JAX starts its backend; results move at rounding level only.
os.environ.setdefault(
    "XLA_FLAGS",
    "--xla_backend_optimization_level=0 --xla_llvm_disable_expensive_passes=true"
    " --xla_cpu_use_fusion_emitters=false",
)

# One compilation cache for the run, shared by the xdist workers (they inherit it from
# the process that starts them) and the programs the tests start: a program compiled
# by one is loaded by the others (the default suite: 560 s against 594 s without, two
# cores). A fresh folder each run, removed at its end; set JAX_COMPILATION_CACHE_DIR to
# choose another.
if "JAX_COMPILATION_CACHE_DIR" not in os.environ:
    _CACHE = tempfile.mkdtemp(prefix="metric-flows-jax-cache-")
    atexit.register(shutil.rmtree, _CACHE, ignore_errors=True)
    os.environ["JAX_COMPILATION_CACHE_DIR"] = _CACHE
    os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0")
    os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES", "0")

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


@pytest.fixture(autouse=True, scope="module")
def _drop_compiled_programs():
    """Drop JAX's compiled programs after each test module.

    XLA:CPU has crashed (a segfault in `backend_compile_and_load`) in worker processes
    that had compiled many hundreds of programs; a module's programs are rarely the next
    module's, so dropping them costs little.
    """
    yield
    jax.clear_caches()


@pytest.fixture
def getkey():
    """A fresh, deterministic PRNG key on each call (seeded per test)."""
    keys = iter(jax.random.split(jax.random.key(5678), 1000))
    return lambda: next(keys)


# Slow tests left out of a default run: counted where they are deselected (each xdist
# worker collects the whole suite, so the controller takes the workers' count).
_SLOW_LEFT_OUT = {"count": 0}


def pytest_deselected(items):
    _SLOW_LEFT_OUT["count"] += sum(1 for item in items if item.get_closest_marker("slow"))


def pytest_sessionfinish(session):
    workeroutput = getattr(session.config, "workeroutput", None)
    if workeroutput is not None:  # an xdist worker: report to the controller
        workeroutput["slow_left_out"] = _SLOW_LEFT_OUT["count"]


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node, error):
    count = getattr(node, "workeroutput", {}).get("slow_left_out", 0)
    _SLOW_LEFT_OUT["count"] = max(_SLOW_LEFT_OUT["count"], count)


@pytest.hookimpl(trylast=True)  # after the durations, just before the final counts
def pytest_terminal_summary(terminalreporter, exitstatus, config):
    """Say how many slow tests the run left out, and how to run them."""
    if _SLOW_LEFT_OUT["count"]:
        terminalreporter.write_line(
            f"{_SLOW_LEFT_OUT['count']} slow tests were not run (marked slow: long studies); "
            "run them with: .venv/bin/python -m pytest -m slow"
        )
