"""Writing what the commands produce: never over what they read, and atomically (written under
a temporary name in the same folder and renamed into place), so that an interrupted write
leaves the old file or none, never half of one."""

import contextlib
import errno
import io
import os
import socket
import tempfile
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import BinaryIO

from registry import RunFailure, UsageError

SQLITE_HEADER = b"SQLite format 3\x00"  # the first bytes of every SQLite database
# The first bytes of files no command writes over unless it writes that kind itself.
STORAGE_MAGIC = {
    SQLITE_HEADER: "an SQLite database (a study storage?)",
    b"\x37\x7f\x06\x82": "an SQLite write-ahead log",
    b"\x37\x7f\x06\x83": "an SQLite write-ahead log",
}
CHECKPOINT_MAGIC = {b"PK\x03\x04": "a zip archive (a checkpoint?)"}


def check_output(path: Path, reads: Iterable[Path | str] = (), text: bool = True) -> None:
    """Refuse, before any work is done, to write `path` over a file the command `reads`, over
    a folder, over a study storage, or (a `text` output: a report, a config) over a
    checkpoint; make its folder and check that a file can be written there."""
    path = Path(path)
    if path.is_dir():
        raise UsageError(f"{path} is a folder; name a file to write")
    if path.exists():
        for read in reads:
            if Path(read).exists() and os.path.samefile(path, read):
                raise UsageError(f"will not write {path} over the file this command reads")
        with path.open("rb") as existing:
            head = existing.read(16)
        protected = {**STORAGE_MAGIC, **(CHECKPOINT_MAGIC if text else {})}
        for magic, what in protected.items():
            if head.startswith(magic):
                raise UsageError(f"will not write over {path}: it is {what}; choose another name")
    check_folder(path.parent)


def check_folder(folder: Path) -> None:
    """Make `folder` (and its parents) and check that a file can be written in it."""
    for above in [folder, *folder.parents]:
        if above.exists() and not above.is_dir():
            raise UsageError(f"{above} is a file, not a folder")
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as error:
        raise UsageError(f"cannot write in {folder}: {error.strerror}") from None


class OutOfSpace(RunFailure):
    """A disk (or a quota) is full: not the fault of what was being written."""


def cannot_write(path: Path, error: OSError) -> RunFailure:
    """One line for a write that failed; a full disk says what to do."""
    if error.errno in (errno.ENOSPC, errno.EDQUOT):
        return OutOfSpace(f"cannot write {path}: {error.strerror}; free some space there (or "
                          "write elsewhere) and run the same command again")  # fmt: skip
    return RunFailure(f"cannot write {path}: {error.strerror}")


@contextlib.contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """A temporary path beside `path` to write to; renamed to `path` when the block ends
    without an error, removed otherwise."""
    path = Path(path)
    try:
        handle, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        os.close(handle)
    except OSError as error:
        raise cannot_write(path, error) from None
    partial = Path(name)
    try:
        yield partial
        os.chmod(partial, 0o666 & ~_umask())  # mkstemp's 0600 would hide it from others
        os.replace(partial, path)
    except OSError as error:
        partial.unlink(missing_ok=True)
        raise cannot_write(path, error) from None
    except BaseException:
        partial.unlink(missing_ok=True)
        raise


def write_through(path: Path, write: Callable[[BinaryIO], object]) -> None:
    """`write(file)` into `path`, atomically: serialized in memory, then written by Python, so
    that a full disk is OSError's "No space left on device" (one line), where torch's zip
    writer fails with an internal message ("unexpected pos 2688 vs 2582")."""
    serialized = io.BytesIO()
    write(serialized)
    with atomic_path(path) as partial:
        partial.write_bytes(serialized.getbuffer())


def write_text(path: Path, text: str) -> None:
    with atomic_path(path) as partial:
        partial.write_text(text, encoding="utf-8")


def _umask() -> int:
    current = os.umask(0)
    os.umask(current)
    return current


@contextlib.contextmanager
def owned(folder: Path, command: str) -> Iterator[None]:
    """`folder` written by this process alone while the block runs: a lock file in it, made
    with O_EXCL, names the process. Another command that would write the same folder at once
    fails with one line instead of replacing this one's files unseen; a lock whose process
    is gone (killed) is taken over."""
    folder = Path(folder)
    check_folder(folder)
    lock = folder / ".lock"
    holder = f"{os.getpid()} {socket.gethostname()} {command}"
    for _ in range(2):  # the second time after a dead holder's lock is removed
        try:
            descriptor = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            pid, host, *what = (lock.read_text().split() or ["0", ""]) + [""]
            if host == socket.gethostname() and not _alive(int(pid or 0)):
                lock.unlink(missing_ok=True)
                continue
            raise UsageError(
                f"{folder} is being written by another {' '.join(what).strip() or 'command'} "
                f"(pid {pid} on {host}); wait for it to end, or choose another folder"
            ) from None
        try:
            with os.fdopen(descriptor, "w") as written:
                written.write(holder)
        except OSError as error:  # a full disk, say: the command cannot write its outputs
            lock.unlink(missing_ok=True)
            raise cannot_write(lock, error) from None
        break
    try:
        yield
    finally:
        lock.unlink(missing_ok=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: alive
        return True
    return pid > 0
