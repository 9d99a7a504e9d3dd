"""Output files that appear whole or not at all, never over something they must not replace.

Every file a command writes for the user (`arena pairs` Parquet, JSON Lines and DatasetDict
folders; the report of `arena rank --out`) goes through `atomic_output`:

    from arena.core.files import atomic_output

    with atomic_output(out, force=force, protected=[db]) as tmp:
        tmp.write_text(html, encoding="utf-8")          # or COPY ... TO tmp, save_to_disk(tmp)
    # here `out` holds the whole new output; on any error (or Ctrl-C) it is as it was

- **Whole or nothing.** The body writes a temporary path beside the target (the same folder, so
  the final rename never crosses a file system): `.arena-tmp-<pid>-<hex>-<name>`, hidden, ending
  like the target so that a writer that reads the compression from the name (`.jsonl.gz`) still
  does. On success the file is flushed to disk (`fsync`) and renamed into place (`os.replace`,
  atomic); a folder (`directory=True`) is renamed into place too, an earlier folder it replaces
  first renamed aside, then removed. On any exception, KeyboardInterrupt included, the temporary
  is removed and the target is untouched.
- **Never clobber.** An existing target is refused (`OutputRefused`, a `UserError`: one line,
  exit code 2) unless `force`; without `force` the final step cannot replace a file that appeared
  meanwhile either (a hard link, which fails when the name is taken, where the file system has
  them). An empty folder does not count as taken.
- **Never the database.** Whatever `force` says, a target that is one of `protected` (resolved,
  so a symlink or `./` spelling does not slip past), the write-ahead log (`<name>.wal`) of one, a
  DuckDB file (the bytes `DUCK` at offset 8), the `.wal` beside one, or a folder that holds any
  of these, is refused and left byte-identical.
- **Scratch of killed runs.** A process killed by SIGKILL cannot clean up, so scratch names carry
  their owner's pid: `.arena-tmp-<pid>-...` (temporaries), `.arena-pairs-<pid>-...` (`scratch_dir`:
  DuckDB spill, intermediate files) and `.arena-snapshot-<pid>-...` (storage/sql.py: a running
  tournament's snapshot for a bulk reader). `remove_stale_scratch(folder)` removes those whose
  owner is gone; `atomic_output` calls it on the target's folder, callers call it where they make
  scratch of their own.

`check_output` runs the same refusals up front, so that a command refuses before any heavy work
(`refuse_never_written` only those that `force` cannot lift).

Simplified on purpose: the owner test is the pid alone (a pid reused by an unrelated process
keeps a stale entry until that process ends; scratch on a file system shared by several machines
could be removed while another machine's process with a pid dead here still writes it); the
aside-then-rename of a replaced folder leaves the target briefly absent (a kill in that moment
leaves no output, never a partial one).

This module imports nothing else of ours but `arena.core.errors`.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import shutil
import sys
import uuid
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Final

from arena.core.errors import UserError

TMP_PREFIX = ".arena-tmp-"
"""Temporaries of `atomic_output` (and folders renamed aside before removal)."""
SCRATCH_PREFIX = ".arena-pairs-"
"""Scratch folders of `scratch_dir` (`arena pairs`: DuckDB's spill files, Parquet parts)."""
SNAPSHOT_PREFIX = ".arena-snapshot-"
"""Scratch folders of bulk reads of a running tournament (storage/sql.py uses the same)."""
_OWNED = re.compile(r"^\.arena-(?:tmp|pairs|snapshot)-(\d+)-")
DUCKDB_MAGIC = b"DUCK"
"""What every DuckDB database file holds at `DUCKDB_MAGIC_OFFSET` (after an 8-byte checksum)."""
DUCKDB_MAGIC_OFFSET = 8
_MAX_NAME = 255 - 40  # room for the prefix, the pid and the random part within NAME_MAX


class OutputRefused(UserError):
    """The output path may not be written: it is taken (and not forced), or it is a database."""


def is_duckdb_file(path: Path) -> bool:
    """Whether `path` is a regular file that starts like a DuckDB database (`DUCK` at offset 8)."""
    try:
        if not path.is_file():  # a folder, or a FIFO that would block the read
            return False
        with path.open("rb") as handle:
            head = handle.read(DUCKDB_MAGIC_OFFSET + len(DUCKDB_MAGIC))
    except OSError:
        return False
    return head[DUCKDB_MAGIC_OFFSET:] == DUCKDB_MAGIC


def pid_alive(pid: int) -> bool:
    """Whether a process with this id exists (it may belong to another user)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _resolved(path: str | os.PathLike[str]) -> Path:
    return Path(path).expanduser().resolve()


def _is_protected(candidate: Path, guarded: list[Path]) -> str | None:
    """Why `candidate` (a resolved file path) must never be written, or None."""
    for db in guarded:
        if candidate == db or _same_file(candidate, db):
            return f"it is the database {db}"
        if candidate == db.with_name(db.name + ".wal"):
            return f"it is the write-ahead log of the database {db}"
    if is_duckdb_file(candidate):
        return "it is a DuckDB database"
    if candidate.name.endswith(".wal") and is_duckdb_file(candidate.with_name(candidate.name[:-4])):
        return "it is the write-ahead log of a DuckDB database"
    return None


def _same_file(a: Path, b: Path) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


def _held(folder: Path, guarded: list[Path]) -> str | None:
    """Why the folder `folder` (resolved) may never be replaced: it holds a database, or None."""
    for db in guarded:
        if db.is_relative_to(folder):
            return f"it holds the database {db}"
    for parent, _subdirs, files in os.walk(folder):
        for name in files:
            why = _is_protected(Path(parent) / name, guarded)
            if why:
                return f"it holds {Path(parent) / name}, and {why}"
    return None


def _taken(target: Path) -> bool:
    """Whether something is at `target` that writing would replace (an empty folder is not)."""
    if target.is_symlink() or target.is_file():
        return True
    if target.is_dir():
        return any(target.iterdir())
    return target.exists()


def _exists_message(target: Path) -> str:
    return f"{target} exists; give --force to replace it, or another name"


def refuse_never_written(
    target: str | os.PathLike[str],
    *,
    protected: Iterable[str | os.PathLike[str]] = (),
    directory: bool = False,
) -> None:
    """Raise `OutputRefused` if `target` may never be written, whatever `force` says: one of
    `protected` or its `.wal`, a DuckDB file or the `.wal` beside one, a folder where a file is to
    be written (`directory` False) or a file where a folder is. Cheap: reads no folder."""
    path = Path(target).expanduser()
    why = _is_protected(path.resolve(), [_resolved(p) for p in protected])
    if why:
        raise OutputRefused(f"will not write {path}: {why}")
    if not directory and path.is_dir():
        raise OutputRefused(f"{path} is a folder; give a file name")
    if directory and (path.is_file() or (path.is_symlink() and not path.is_dir())):
        raise OutputRefused(f"{path} is a file; give a folder name")


def check_output(
    target: str | os.PathLike[str],
    *,
    force: bool = False,
    protected: Iterable[str | os.PathLike[str]] = (),
    directory: bool = False,
) -> None:
    """Raise `OutputRefused` unless `target` may be written (see the module's docstring).

    `refuse_never_written`, then: a taken target is refused without `force`; with it, a folder
    to replace that holds a protected path or a DuckDB file is refused.
    """
    guarded = list(protected)
    refuse_never_written(target, protected=guarded, directory=directory)
    path = Path(target).expanduser()
    if not _taken(path):
        return
    if not force:
        raise OutputRefused(_exists_message(path))
    if directory:
        why = _held(path.resolve(), [_resolved(p) for p in guarded])
        if why:
            raise OutputRefused(f"will not replace {path}: {why}")


def scratch_name(target: Path, prefix: str = TMP_PREFIX) -> Path:
    """A new hidden name beside `target`, owned by this process, that ends like `target`.

    >>> name = scratch_name(Path("out/pairs.jsonl.gz")).name
    >>> name.startswith(f".arena-tmp-{os.getpid()}-") and name.endswith("-pairs.jsonl.gz")
    True
    """
    unique = f"{os.getpid()}-{uuid.uuid4().hex[:12]}"
    return target.with_name(f"{prefix}{unique}-{target.name[-_MAX_NAME:]}")


def _remove(path: Path) -> None:
    """Remove a file or a folder tree, whatever is there; errors are ignored."""
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        with contextlib.suppress(OSError):
            path.unlink(missing_ok=True)


def remove_stale_scratch(folder: str | os.PathLike[str]) -> list[Path]:
    """Remove this package's scratch in `folder` whose owning process is gone; what was removed.

    Matches `.arena-tmp-<pid>-*`, `.arena-pairs-<pid>-*` and `.arena-snapshot-<pid>-*`; leaves
    those of running processes (this one included) and anything else alone.
    """
    removed: list[Path] = []
    try:
        entries = list(Path(folder).iterdir())
    except OSError:
        return removed
    for entry in entries:
        match = _OWNED.match(entry.name)
        if match is None:
            continue
        pid = int(match.group(1))
        if pid == os.getpid() or pid_alive(pid):
            continue
        _remove(entry)
        removed.append(entry)
    return removed


@contextmanager
def scratch_dir(parent: str | os.PathLike[str], prefix: str = SCRATCH_PREFIX) -> Iterator[Path]:
    """A new private folder in `parent` named `<prefix><pid>-<hex>`, removed with what it holds
    when the block ends however it ends (`remove_stale_scratch` removes it after a SIGKILL)."""
    folder = Path(parent) / f"{prefix}{os.getpid()}-{uuid.uuid4().hex[:12]}"
    try:
        folder.mkdir(mode=0o700, parents=True)
    except OSError as exc:
        raise OutputRefused(f"cannot write in the folder {parent}: {exc.strerror}") from None
    try:
        yield folder
    finally:
        _remove(folder)


FSYNC_THREADS: Final = 16
"""Files of a tree flushed at once where the file system cannot be flushed in one call: the
disk commits concurrent flushes together (a 15,000-page `arena view` site: 2.0 s against 3.7 s
one by one)."""


def _fsync(path: Path) -> None:
    """Flush `path` (a file, or every file and folder in a tree, the folders last) to the disk.

    A tree of `2 * FSYNC_THREADS` files or more is flushed with one `syncfs` call on Linux (the
    whole file system that holds it: 0.2 s against 1.7-2.2 s of per-file flushes for a
    15,000-page site); elsewhere, or if that call fails, file by file on `FSYNC_THREADS`
    threads."""
    if not path.is_dir():
        _fsync_one(path)
        return
    files: list[Path] = []
    folders: list[Path] = []
    for top, _subdirs, names in os.walk(path):
        files += [Path(top) / name for name in names]
        folders.append(Path(top))
    if len(files) < 2 * FSYNC_THREADS:
        for file in files:
            _fsync_one(file)
    elif _syncfs(path):
        return
    else:
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(FSYNC_THREADS, thread_name_prefix="arena-fsync") as pool:
            list(pool.map(_fsync_one, files))
    for each in reversed(folders):
        _fsync_one(each, directory=True)


def _syncfs(path: Path) -> bool:
    """Flush the file system that holds the folder `path` (Linux's `syncfs`, which reports
    write errors since Linux 5.8); False where there is no such call or it failed."""
    if not sys.platform.startswith("linux"):
        return False
    import ctypes

    try:
        syncfs = ctypes.CDLL(None, use_errno=True).syncfs
    except (OSError, AttributeError):
        return False
    syncfs.argtypes = [ctypes.c_int]
    syncfs.restype = ctypes.c_int
    try:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    except OSError:
        return False
    try:
        return bool(syncfs(fd) == 0)
    finally:
        os.close(fd)


def _fsync_one(path: Path, directory: bool = False) -> None:
    flags = os.O_RDONLY | (os.O_DIRECTORY if directory else 0)
    try:
        fd = os.open(path, flags)
    except OSError:
        return
    try:
        with contextlib.suppress(OSError):  # some file systems refuse fsync on folders
            os.fsync(fd)
    finally:
        os.close(fd)


def _commit(tmp: Path, target: Path, force: bool, directory: bool) -> None:
    """Move the finished `tmp` to `target` (see `atomic_output`)."""
    if not directory:
        if force:
            os.replace(tmp, target)
            return
        try:
            os.link(tmp, target)  # fails if the name was taken meanwhile: never clobbers
        except FileExistsError:
            raise OutputRefused(_exists_message(target)) from None
        except OSError:  # no hard links on this file system: check, then rename
            if _taken(target):
                raise OutputRefused(_exists_message(target)) from None
            os.replace(tmp, target)
            return
        tmp.unlink()
        return
    if target.is_dir() and any(target.iterdir()):
        if not force:
            raise OutputRefused(_exists_message(target))
        aside = scratch_name(target)
        os.rename(target, aside)
        try:
            os.rename(tmp, target)
        except BaseException:
            with contextlib.suppress(OSError):
                os.rename(aside, target)
            raise
        _remove(aside)
        return
    try:
        os.rename(tmp, target)  # over nothing, or an empty folder
    except OSError as exc:
        if exc.errno in (errno.ENOTEMPTY, errno.EEXIST, errno.ENOTDIR):
            raise OutputRefused(f"{target} was taken while it was written") from None
        raise


@contextmanager
def atomic_output(
    target: str | os.PathLike[str],
    *,
    force: bool = False,
    protected: Iterable[str | os.PathLike[str]] = (),
    directory: bool = False,
) -> Iterator[Path]:
    """Write `target` whole or not at all: yields a temporary path beside it to write.

    `force`: replace an existing target (never a protected one, a database, or one of the other
    kind). `protected`: paths never to write, such as the database being read (its `.wal` is
    protected with it). `directory`: the body makes a folder at the yielded path (else a file).

    Refusals raise `OutputRefused` (a `UserError`) before the body runs, or at the end when the
    name was taken meanwhile and `force` is off. When the block ends normally the temporary must
    exist; it is synced to disk and renamed into place, and the target's folder synced. On any
    exception (KeyboardInterrupt too) the temporary is removed and the exception propagates; the
    target is as it was. Stale scratch of dead processes in the target's folder is removed first.
    """
    path = Path(target).expanduser()
    guarded = list(protected)
    check_output(path, force=force, protected=guarded, directory=directory)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputRefused(f"cannot create the folder {path.parent}: {exc.strerror}") from None
    remove_stale_scratch(path.parent)
    tmp = scratch_name(path)
    try:
        yield tmp
        if not (tmp.is_dir() if directory else tmp.is_file()):
            raise RuntimeError(f"nothing was written to {tmp} for {path}")
        _fsync(tmp)
        check_output(path, force=force, protected=guarded, directory=directory)  # still so?
        _commit(tmp, path, force, directory)
        _fsync_one(path.parent, directory=True)
    finally:
        if tmp.exists() or tmp.is_symlink():
            _remove(tmp)
