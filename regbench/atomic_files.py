"""How regbench writes every file: into a temporary file beside it, synced to disk, then renamed over it. A reader
never sees half a file, and a write that fails (no space left, a file-size limit) keeps the previous version,
removes its temporary file and raises WriteFailed, one line naming the file and the cause. A file that several
processes read, change and write back is changed under a lock (`locked`)."""
from __future__ import annotations

import errno
import os
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any, Iterator, Union

from regbench.errors import UserError

try:
    import fcntl
except ImportError:  # Windows
    fcntl = None

PathLike = Union[str, Path]
TEMPORARY = ".tmp"  # the suffix of the temporary files, which a killed process may leave behind


class WriteFailed(UserError):
    """A file could not be written; its previous version, if any, is untouched."""

    exit_code = 1  # the machine's state (disk, limits, permissions), not the command line

    def __init__(self, path: Path, cause: str) -> None:
        super().__init__(f"cannot write {path}: {cause}")
        self.path, self.cause = path, cause


@contextmanager
def atomic_write(path: PathLike, mode: str = "w") -> Iterator[IO[Any]]:
    """A file object whose contents replace `path` when the block ends without an error."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}{TEMPORARY}")  # per process: parallel jobs may share a cache
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(tmp, mode) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
        _sync_folder(path.parent)
    except BaseException as err:
        tmp.unlink(missing_ok=True)
        if isinstance(err, OSError):
            raise WriteFailed(path, _cause(err)) from None
        raise


def _sync_folder(folder: Path) -> None:
    """Make a rename in `folder` durable: a crash right after it could otherwise bring back the old file."""
    if not hasattr(os, "O_DIRECTORY"):  # Windows cannot open a folder; its renames are journaled
        return
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _cause(err: OSError) -> str:
    return f"{err.strerror} ({errno.errorcode.get(err.errno, err.errno)})" if err.errno else str(err)


def remove_temporaries(folder: PathLike) -> None:
    """Delete what writes into `folder` and its subfolders left behind when their process was killed (only safe
    where no other process writes at the same time, like a run folder)."""
    for tmp in Path(folder).rglob(f".*{TEMPORARY}"):
        tmp.unlink(missing_ok=True)


@contextmanager
def locked(path: PathLike) -> Iterator[None]:
    """Hold an exclusive lock on the file `path` (created empty if missing) for the block, so that processes locking
    the same file run their blocks one after the other; the lock goes with the process. POSIX advisory locks (flock);
    where Python has no fcntl (Windows) the block runs unlocked."""
    if fcntl is None:
        yield
        return
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as err:
        raise WriteFailed(Path(path), _cause(err)) from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # releases the lock


def write_text(path: PathLike, text: str) -> None:
    with atomic_write(path) as f:
        f.write(text)


def copy_file(source: PathLike, path: PathLike) -> None:
    """Copy `source` to `path` atomically."""
    with open(source, "rb") as src, atomic_write(path, "wb") as f:
        shutil.copyfileobj(src, f)


@contextmanager
def staged_files(folder: PathLike) -> Iterator[Path]:
    """A temporary folder inside `folder` for tools that write by path (paddle.jit.save, paddle2onnx): when the block
    ends without an error, each file left at its top level replaces its namesake in `folder` by one rename."""
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=folder, prefix=".staged-") as tmp:
            yield Path(tmp)
            for f in sorted(Path(tmp).iterdir()):
                if f.is_file():
                    os.replace(f, folder / f.name)
            _sync_folder(folder)
    except OSError as err:
        raise WriteFailed(folder, _cause(err)) from None
