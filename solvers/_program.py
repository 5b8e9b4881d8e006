r"""What a command-line program on the library needs: a usable output folder, and failures as messages.

`output_path` is the argparse type of `--out` (an empty path is refused: it would
mean the current directory); `output_directory(path)` creates the folder a program writes to and proves it
writable before any work is done (a path naming a file, a parent that cannot be
created, a folder without write permission: `OutputError`, naming the path and
the reason), so that no result is lost at the first write.

`run_program(main, name)` runs a program's `main()` as a command:
- an expected failure — bad input (`ValueError`, which `OutputError` and
  `IllPosedError` are, and the library's run-time checks), a file-system error,
  memory exhausted — ends as one paragraph on stderr, `name: message`, and exit
  status 1; argparse's own exit on a bad flag (status 2) passes through;
- Ctrl-C (SIGINT) ends the program at once, even inside a long compiled
  computation: the temporary file of any write in progress is removed
  (`atomic_write`: every output appears whole or not at all), the message says
  which outputs this run had already completed, and the exit status is 130.
  A watcher thread woken by the signal's C-level handler (`_Watcher`) does
  this, so neither JAX's callbacks nor a compilation in progress can swallow or
  delay it;
- standard output and error replace what their encoding cannot show
  (`PYTHONIOENCODING=ascii` prints `\u03c3` for σ) rather than failing.
An unexpected exception — a bug — keeps its traceback.
"""

import argparse
import os
import re
import signal
import socket
import sys
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path

import equinox as eqx
import jax

from . import _checkpoint

# Exit statuses: an expected failure, and Ctrl-C (128 + SIGINT, as a shell reports it).
FAILED = 1
INTERRUPTED = 130


class OutputError(ValueError):
    """An output folder that cannot be created or written, found before any work."""


def output_path(text: str) -> Path:
    """The argparse type of a program's `--out`: the path, never empty (`Path("")` is the
    current directory, where an empty `--out` would write); then `output_directory`."""
    if not text.strip():
        raise argparse.ArgumentTypeError("must name a directory, got an empty path")
    return Path(text)


def output_directory(path: str | os.PathLike) -> Path:
    """Create the folder `path` (and its parents) if needed and check that a file can be written in it.

    Raises `OutputError` naming `path` and the reason: it names an existing file, it
    (or a parent) cannot be created, or files cannot be created in it.
    """
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise OutputError(f"output folder {path} exists and is not a folder.")
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise OutputError(
            f"output folder {path} cannot be created: {error.strerror or error}."
        ) from None
    try:
        fd, probe = tempfile.mkstemp(dir=path, prefix=".write-test.", suffix=".tmp")
        os.close(fd)
        os.unlink(probe)
    except OSError as error:
        raise OutputError(
            f"output folder {path} cannot be written: {error.strerror or error}."
        ) from None
    return path


def _expected(error: BaseException) -> bool:
    """Failures a program reports as a message: bad input, files, memory, the library's run-time checks."""
    if isinstance(error, (ValueError, OSError, MemoryError, eqx.EquinoxRuntimeError)):
        return True
    return isinstance(error, jax.errors.JaxRuntimeError) and "RESOURCE_EXHAUSTED" in str(error)


def _one_paragraph(text: str) -> str:
    return " ".join(str(text).split())


def error_message(error: BaseException) -> str:
    """The message of `error` as one line; for an `eqx.EquinoxRuntimeError`, the check's own
    message alone (its text around it is a JIT stack and debugging advice, kilobytes long)."""
    text = str(error)
    if isinstance(error, eqx.EquinoxRuntimeError):
        found = re.findall(r"EquinoxRuntimeError: (.+?)(?:\n\s*\n|\n-{3,}|$)", text, re.DOTALL)
        if found:
            text = found[-1]
    return _one_paragraph(text)


class _Watcher:
    """A thread that ends the process on SIGINT, whichever thread the signal reaches.

    Python's own handler only flags the signal for the main thread, which sees it
    when it next runs Python code (not inside a compiled computation, and a
    `KeyboardInterrupt` raised in a callback can be lost). The C-level handler,
    which runs at once in the thread that receives the signal, also writes the
    signal's number to the wake-up file (`signal.set_wakeup_fd`): this thread
    reads it from there. The Python-level handler does nothing.
    """

    def __init__(self, name: str):
        self.name = name
        self.done = False
        self.read, self.write = socket.socketpair()
        self.write.setblocking(False)
        self.previous_fd = signal.set_wakeup_fd(self.write.fileno(), warn_on_full_buffer=False)
        self.previous_handler = signal.signal(signal.SIGINT, lambda signum, frame: None)
        self.thread = threading.Thread(target=self._wait, name=f"{name}: SIGINT", daemon=True)
        self.thread.start()

    def _wait(self) -> None:
        while signal.SIGINT not in self.read.recv(64):
            pass
        if self.done:
            return
        _checkpoint._LOCK.acquire()  # held until the exit: no write starts or lands unrecorded
        _checkpoint._remove_writes_in_progress()
        written = _checkpoint._completed_writes()
        kept = (
            f" This run had completed {len(written)} output file(s): "
            + ", ".join(str(p) for p in written)
            + "; anything else in the output folder is from earlier runs."
            if written
            else " It had written no output file."
        )
        message = f"{self.name}: interrupted (Ctrl-C); no half-written file is left.{kept}\n"
        try:
            os.write(2, message.encode("utf-8", "backslashreplace"))
        finally:
            os._exit(INTERRUPTED)

    def stop(self) -> None:
        # the previous handling first, so that a Ctrl-C from here on is not lost
        signal.set_wakeup_fd(self.previous_fd)
        signal.signal(signal.SIGINT, self.previous_handler)
        self.done = True
        self.write.send(bytes([signal.SIGINT]))  # wakes the thread, which sees `done`
        self.thread.join()
        self.read.close()
        self.write.close()


def run_program(main: Callable[[], object], name: str) -> int:
    """Run `main()` as the command `name`: returns the exit status (module docstring).

    Use as `sys.exit(run_program(main, "name"))`, `main` reading `sys.argv` when called
    with no argument (as the programs' `main(argv=None)` do).
    """
    for stream in (sys.stdout, sys.stderr):
        if hasattr(stream, "reconfigure"):
            stream.reconfigure(errors="backslashreplace")
    watcher = _Watcher(name) if threading.current_thread() is threading.main_thread() else None
    try:
        main()
    except BaseException as error:
        if isinstance(error, SystemExit) or not _expected(error):
            raise
        sys.stdout.flush()
        print(f"{name}: {error_message(error)}", file=sys.stderr, flush=True)
        return FAILED
    finally:
        if watcher is not None:
            watcher.stop()
    return 0
