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

Format 3: the step-size controller's state holds the episode of non-finite
rejections, the latest proposal and whether the latest step was kept
(`_controller.py`); checkpoints of other formats are refused by name.
"""

import contextlib
import dataclasses
import functools
import hashlib
import json
import os
import re
import secrets
import threading
import types
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
    """Read a checkpoint archive; `ValueError` naming the file if it is absent or not one."""
    if not os.path.isfile(path):
        raise ValueError(f"solve: there is no checkpoint file at {os.fspath(path)!r}.")
    try:
        with np.load(path, allow_pickle=False) as archive:
            arrays = {k: archive[k] for k in archive.files}
    # a damaged zip header can raise any of these (an "encrypted" flag, an unknown method)
    except (
        OSError,
        ValueError,
        EOFError,
        KeyError,
        RuntimeError,
        NotImplementedError,
        zipfile.BadZipFile,
    ) as error:
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


def _functions(obj, seen: set[int]):
    """The Python functions inside `obj` (module fields, containers, partials, closures)."""
    if id(obj) in seen:
        return
    seen.add(id(obj))
    if isinstance(obj, types.MethodType):
        yield from _functions(obj.__func__, seen)
        yield from _functions(obj.__self__, seen)
    elif isinstance(obj, types.FunctionType):
        yield obj
        for cell in obj.__closure__ or ():
            with contextlib.suppress(ValueError):  # an empty cell
                yield from _functions(cell.cell_contents, seen)
        for value in (obj.__defaults__ or ()) + tuple((obj.__kwdefaults__ or {}).values()):
            yield from _functions(value, seen)
    elif isinstance(obj, functools.partial):
        for value in (obj.func, *obj.args, *obj.keywords.values()):
            yield from _functions(value, seen)
    elif dataclasses.is_dataclass(obj) and not isinstance(obj, type):  # equinox modules
        for field in dataclasses.fields(obj):
            yield from _functions(getattr(obj, field.name, None), seen)
    elif isinstance(obj, list | tuple):
        for value in obj:
            yield from _functions(value, seen)
    elif isinstance(obj, dict):
        for value in obj.values():
            yield from _functions(value, seen)


def _code(code: types.CodeType) -> str:
    """A function body's bytecode, names and constants (nested bodies recursively)."""
    constants = [_code(c) if isinstance(c, types.CodeType) else repr(c) for c in code.co_consts]
    return f"{code.co_code.hex()}|{code.co_names}|{code.co_varnames}|{constants}"


def _value(x) -> str:
    """A closed-over or default value: arrays by `digest`, functions by name, modules by their
    repr and array leaves, the rest by repr without memory addresses (they differ per process)."""
    if isinstance(x, np.ndarray | jax.Array):
        return digest(x)
    if isinstance(x, types.FunctionType):
        return f"{x.__module__}.{x.__qualname__}"  # its own body is digested separately
    text = re.sub(r" at 0x[0-9a-fA-F]+", "", repr(x))
    if isinstance(x, eqx.Module):  # its repr shows arrays' shapes, not their values
        text += tree_digest(x)
    return text


def function_digest(tree) -> str | None:
    """A SHA-256 of the Python functions a pytree holds, or None if it holds none.

    Each function counts by its module, qualified name, bytecode, constants, defaults and
    the values it closes over, so two lambdas differing only in a closed-over number, or
    a function whose body was edited, differ. Module-level names its code reads are not
    followed.
    """
    h = hashlib.sha256()
    found = False
    for f in _functions(tree, set()):
        found = True
        cells = []
        for cell in f.__closure__ or ():
            try:
                cells.append(_value(cell.cell_contents))
            except ValueError:
                cells.append("<empty>")
        defaults = [_value(v) for v in f.__defaults__ or ()]
        defaults += [f"{k}={_value(v)}" for k, v in sorted((f.__kwdefaults__ or {}).items())]
        parts = (f.__module__, f.__qualname__, _code(f.__code__), cells, defaults)
        h.update(repr(parts).encode())
    return h.hexdigest() if found else None


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
    try:
        problem = json.loads(str(data["fingerprint"]))
        steps, accepted, rejected = (int(x) for x in data["steps"])
        return {
            "t": float(data["t"]),
            "t0": float(problem["t0"]),
            "t1": float(problem["t1"]),
            "steps": steps,
            "accepted_steps": accepted,
            "rejected_steps": rejected,
            "saved": int(np.isfinite(data["saved_ts"]).sum()),
            "finished": bool(data["finished"]),
            "stop_reason": str(data["reason"]),
        }
    except (KeyError, TypeError, ValueError) as error:  # json's errors are ValueErrors
        raise ValueError(
            f"solve: checkpoint {os.fspath(path)!r} is inconsistent ({type(error).__name__}: "
            f"{error}); it was not written by this version of solve, or was altered."
        ) from None
