r"""Checkpoint files for `solve`: atomic writes, reading back, and the same-problem check.

A checkpoint is one `.npz` archive (no pickled objects) holding the state a solve
needs to go on exactly where it stopped: $t$, the nodal metric $y(t)$, the end
$t_\mathrm{next}$ of the step the controller proposed next, the flattened leaves
of diffrax's solver and step-size-controller states, the step counts, the
trajectory saved so far (unreached save slots hold `inf`), whether the solve has
finished and why, and a JSON description of the problem (`fingerprint`) that a
resuming call must match.

It is written atomically: the archive goes to a temporary file in the same
directory, which is flushed and `fsync`ed and then moved onto the checkpoint
with `os.replace` (atomic on POSIX and Windows), and the directory is `fsync`ed.
A process killed at any moment leaves the previous complete checkpoint or the
new complete one, never a truncated one; a kill during the write may leave a
stray `.NAME.*.tmp` beside it, which is never read. A program run by
`run_program` removes it on Ctrl-C: `atomic_write` keeps the temporary files of
the writes in progress, and the files it completed, for that.

Format 2: the step-size controller's state also holds the count of rejected
non-finite steps (`_controller.py`); format-1 checkpoints are refused by name.
"""

import contextlib
import hashlib
import json
import os
import secrets
import threading
import zipfile
from pathlib import Path

import equinox as eqx
import jax
import numpy as np

FORMAT = 3

# The temporary files of the writes in progress, and the files written (in order, once
# each), by this process: `run_program` removes the first and names the second on Ctrl-C.
_IN_PROGRESS: set[Path] = set()
_COMPLETED: dict[Path, None] = {}
# Held while a temporary file is created, and while one is moved into place and recorded:
# `run_program`'s Ctrl-C takes it and never gives it back, so no write starts or finishes
# unrecorded between its clean-up and the process's exit.
_LOCK = threading.Lock()


def _remove_writes_in_progress() -> None:
    for tmp in list(_IN_PROGRESS):
        with contextlib.suppress(OSError):
            os.unlink(tmp)


def _completed_writes() -> list[Path]:
    return list(_COMPLETED)


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike, mode: str = "wb"):
    """Open a temporary file beside `path`; on success `fsync` it and move it onto `path`.

    On an exception inside the `with` block the temporary file is removed and
    `path` is untouched. The file is made readable by all (0o644, as `open`
    would under the usual umask; the temporary file starts private). The one
    atomic writer of the project: checkpoints, the demo's and the experiment
    programs' outputs (`experiments/_common.py`).
    """
    path = Path(path)
    # named and registered before it exists, so that Ctrl-C at any moment finds it
    tmp = path.parent / f".{path.name}.{os.getpid()}.{secrets.token_hex(6)}.tmp"
    with _LOCK:
        _IN_PROGRESS.add(tmp)
        try:
            flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
            fd = os.open(tmp, flags, 0o600)
        except BaseException:
            _IN_PROGRESS.discard(tmp)
            raise
    try:
        with os.fdopen(fd, mode) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
            if hasattr(os, "fchmod"):  # POSIX (Windows has it from Python 3.13)
                os.fchmod(f.fileno(), 0o644)
        with _LOCK:
            os.replace(tmp, path)
            _COMPLETED[path] = None
            _IN_PROGRESS.discard(tmp)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    finally:
        _IN_PROGRESS.discard(tmp)
    _fsync_directory(path.parent)


def _fsync_directory(directory: Path) -> None:
    """Make the rename durable (POSIX); a no-op where directories cannot be opened."""
    with contextlib.suppress(OSError, AttributeError):
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def write(path: str | os.PathLike, arrays: dict[str, np.ndarray]) -> None:
    """Write `arrays` as an uncompressed `.npz` archive at `path`, atomically."""
    with atomic_write(path, "wb") as f:
        np.savez(f, **arrays)


def read(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """Read a checkpoint archive; `ValueError` naming the file if it is not one."""
    try:
        with np.load(path, allow_pickle=False) as archive:
            arrays = {k: archive[k] for k in archive.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as error:
        raise ValueError(
            f"solve: cannot read checkpoint {os.fspath(path)!r} ({error}); it is not a "
            "checkpoint written by solve. Delete it or pass another path."
        ) from None
    if "fingerprint" not in arrays or int(arrays.get("format", -1)) != FORMAT:
        raise ValueError(
            f"solve: {os.fspath(path)!r} is not a format-{FORMAT} checkpoint written by solve. "
            "Delete it or pass another path."
        )
    return arrays


def digest(*arrays) -> str:
    """A SHA-256 of the arrays' dtypes, shapes and bytes (the same in every process)."""
    h = hashlib.sha256()
    for a in arrays:
        a = np.ascontiguousarray(np.asarray(a))
        h.update(f"{a.dtype.str}{a.shape}".encode())
        h.update(a.tobytes())
    return h.hexdigest()


def tree_digest(tree) -> str:
    """`digest` of a pytree's array leaves (e.g. a flow's nodes and weights)."""
    return digest(*jax.tree_util.tree_leaves(eqx.filter(tree, eqx.is_array)))


def encode(fingerprint: dict) -> np.ndarray:
    return np.array(json.dumps(fingerprint, sort_keys=True))


def check_same_problem(path, stored: np.ndarray, fingerprint: dict) -> None:
    """`ValueError` naming every entry where the checkpoint's problem differs from this call's."""
    old = json.loads(str(stored))
    differ = [
        f"{k} (checkpoint {old.get(k)!r}, this call {fingerprint.get(k)!r})"
        for k in sorted(set(old) | set(fingerprint))
        if old.get(k) != fingerprint.get(k)
    ]
    if differ:
        raise ValueError(
            f"solve: checkpoint {os.fspath(path)!r} was made for a different problem; it differs "
            f"in {'; '.join(differ)}. Resume with the same arguments, or delete the checkpoint "
            "or pass another path to start afresh."
        )


def checkpoint_info(path: str | os.PathLike) -> dict:
    """Where the solve checkpointed at `path` stands, without resuming it.

    Returns `t` (the time reached), `t0`, `t1`, `steps`, `accepted_steps`,
    `rejected_steps`, `saved` (how many save times are done), `finished` and
    `stop_reason` (empty while unfinished). `ValueError` if `path` is not a checkpoint.
    """
    data = read(path)
    problem = json.loads(str(data["fingerprint"]))
    steps, accepted, rejected = (int(x) for x in data["steps"])
    return {
        "t": float(data["t"]),
        "t0": problem["t0"],
        "t1": problem["t1"],
        "steps": steps,
        "accepted_steps": accepted,
        "rejected_steps": rejected,
        "saved": int(np.isfinite(data["saved_ts"]).sum()),
        "finished": bool(data["finished"]),
        "stop_reason": str(data["reason"]),
    }
