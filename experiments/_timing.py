"""Timing and memory tools of the benchmarks: median times, log-log slopes, peak memory, the machine.

Times are medians of repeats after a warm-up call (compilation excluded); peak memory is
read from outside the measured process (`os.wait4`), and XLA's compiled memory analysis
is the check beside it.
"""

import json
import os
import platform
import subprocess
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np
from _fits import log_fit

import flows


def median_time(fn, repeats: int) -> float:
    """Median seconds of `repeats` calls of `fn` (results blocked on) after one warm-up call.

    Calls whose warm-up (compile included) takes over 10 s are repeated at most twice.
    """
    start = time.perf_counter()
    jax.block_until_ready(fn())
    if time.perf_counter() - start > 10:
        repeats = min(repeats, 2)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        jax.block_until_ready(fn())
        times.append(time.perf_counter() - start)
    return float(np.median(times))


def slope(sizes, seconds) -> float:
    r"""Least-squares slope $b$ of $\log(\text{seconds}) = a + b\log(\text{sizes})$ (`_fits.log_fit`)."""
    return log_fit(sizes, seconds).slope


# Reports the peak RSS of the command it runs. A child started straight from a large
# process inherits that process's high-water mark at exec (Linux records the old address
# space's peak in the new program's ru_maxrss), so the command is forked from this small
# interpreter instead, and its own ru_maxrss read here, from outside, by os.wait4.
_RSS_WRAPPER = (
    "import json, os, subprocess, sys\n"
    "p = subprocess.Popen(sys.argv[1:])\n"
    "_, status, usage = os.wait4(p.pid, 0)\n"
    "print(json.dumps({'exit': os.waitstatus_to_exitcode(status), 'maxrss': usage.ru_maxrss}))\n"
)


def peak_rss(command: list[str], timeout: float | None = None) -> tuple[str, int]:
    """Run `command`; its output and its peak resident memory in bytes (Linux, macOS)."""
    result = subprocess.run(
        [sys.executable, "-c", _RSS_WRAPPER, *command],
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    lines = result.stdout.strip().splitlines()
    report = json.loads(lines[-1]) if lines else {"exit": result.returncode}
    output = "\n".join(lines[:-1])
    if result.returncode != 0 or report["exit"] != 0:
        raise RuntimeError(f"{command[:3]} failed:\n{output}\n{result.stderr}")
    scale = 1 if sys.platform == "darwin" else 1024  # ru_maxrss: bytes on macOS, KB on Linux
    return output, report["maxrss"] * scale


def xla_bytes(count: int, sigma: float) -> int | None:
    r"""XLA's compiled memory (arguments + output + temporaries) of the step's kernel application.

    The step: `flows.point_kernel_apply` with `flows.FSGaussian(sigma)` on `count` points of
    $\mathbb{C}^5$ and 10 complex values per point (None where XLA gives no analysis).
    """
    z = jax.ShapeDtypeStruct((count, 5), jnp.complex128)
    v = jax.ShapeDtypeStruct((count, 10), jnp.complex128)
    apply = jax.jit(lambda z, v: flows.point_kernel_apply(flows.FSGaussian(sigma), z, z, v))
    analysis = apply.lower(z, v).compile().memory_analysis()
    if analysis is None:
        return None
    return int(
        analysis.argument_size_in_bytes
        + analysis.output_size_in_bytes
        + analysis.temp_size_in_bytes
    )


def machine() -> dict:
    """The platform, processor, core count, JAX device and versions, and the load average now."""
    return {
        "load_average_1min_at_end": os.getloadavg()[0] if hasattr(os, "getloadavg") else None,
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "device": str(jax.devices()[0]),
        "device_kind": jax.devices()[0].device_kind,
        "jax": jax.__version__,
        "python": platform.python_version(),
    }
