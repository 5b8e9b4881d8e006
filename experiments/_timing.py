"""Timing and memory tools of the benchmarks: median times, log-log slopes, peak memory, the machine.

Times are medians of repeats after a warm-up call (compilation excluded); peak memory is
read from outside the measured process (`os.wait4`), and XLA's compiled memory analysis
is the check beside it. A measured process that fails (killed for memory, say) is a
`ChildFailed`, an `OSError`: `solvers.run_program` reports it as one line, exit status 1.
"""

import json
import os
import platform
import signal
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


class ChildFailed(OSError):
    """A measured child process (`peak_rss`) that failed or timed out: its name, how it ended and
    the last line it wrote on stderr. An `OSError`, so a program run by `solvers.run_program`
    ends with this one line and exit status 1, not a traceback."""


def _ending(code: int) -> str:
    """How a process with exit code `code` (`os.waitstatus_to_exitcode`: -N for signal N) ended."""
    if code >= 0:
        return f"exit status {code}"
    try:
        name = signal.Signals(-code).name
    except ValueError:
        name = f"signal {-code}"
    memory = ", as the out-of-memory killer does" if -code == signal.SIGKILL else ""
    return f"killed by {name}{memory}"


def _last_line(text: str, limit: int = 300) -> str:
    """The last non-blank line of `text`, at most `limit` characters ('' if none)."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    if not lines:
        return ""
    return lines[-1] if len(lines[-1]) <= limit else lines[-1][: limit - 3] + "..."


def peak_rss(
    command: list[str], timeout: float | None = None, name: str | None = None
) -> tuple[str, int]:
    """Run `command`; its output and its peak resident memory in bytes (Linux, macOS).

    `ChildFailed` (naming it `name`, by default its executable) if it exits with a non-zero
    status, is killed (by the out-of-memory killer, say) or runs past `timeout` seconds.
    """
    what = name or f"the child process {command[0]!r}"
    try:
        result = subprocess.run(
            [sys.executable, "-c", _RSS_WRAPPER, *command],
            capture_output=True,
            text=True,
            timeout=timeout,
        )
    except subprocess.TimeoutExpired:
        raise ChildFailed(f"{what} did not finish within {timeout:g} s.") from None
    lines = result.stdout.strip().splitlines()
    try:
        report = json.loads(lines[-1])
    except (IndexError, ValueError):
        report = None
    if not (isinstance(report, dict) and {"exit", "maxrss"} <= report.keys()):
        report = {"exit": result.returncode or 1, "maxrss": None}  # the wrapper itself failed
    output = "\n".join(lines[:-1])
    if result.returncode != 0 or report["exit"] != 0:
        code = report["exit"] if report["exit"] != 0 else result.returncode
        last = _last_line(result.stderr)
        raise ChildFailed(f"{what} failed ({_ending(code)})" + (f": {last}" if last else "."))
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
