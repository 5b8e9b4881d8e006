"""Helpers shared by the experiment programs: progress lines, atomic output files, figures."""

import contextlib
import json
import math
import os
import tempfile
import time
from pathlib import Path

from matplotlib.figure import Figure  # the object API: saves through Agg, no pyplot state

_START = time.perf_counter()


def elapsed() -> float:
    """Seconds since the program started."""
    return time.perf_counter() - _START


def progress(message: str) -> None:
    """Print `message` with the seconds since the program started."""
    print(f"[{elapsed():6.1f} s] {message}", flush=True)


@contextlib.contextmanager
def atomic_write(path: Path, mode: str = "w"):
    """Open a temporary file beside `path`; on success move it onto `path` (`os.replace`)."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, mode) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
            os.fchmod(f.fileno(), 0o644)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def _finite(value):
    """Non-finite floats become None (strict JSON has no NaN or inf)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value


def write_json(path: Path, record: dict) -> None:
    """Write `record` as indented JSON, atomically (non-finite numbers as null)."""
    with atomic_write(path) as f:
        json.dump(_finite(record), f, indent=2, allow_nan=False)
    progress(f"wrote {path}")


def save_figure(fig: Figure, path: Path) -> None:
    """Save a matplotlib figure as PNG, atomically."""
    with atomic_write(path, "wb") as f:
        fig.savefig(f, format="png", dpi=150)
    progress(f"wrote {path}")
