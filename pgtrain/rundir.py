"""The run directory's integrity: one `fit` at a time, no stale temporary files, no silent
change of training data on `--resume`, and write failures (a full disk) named by their file.

- `RUN/.lock` is held with `fcntl.flock` for the whole `fit` (rank 0 under torchrun). The
  kernel drops the lock when the process ends, however it ends (also `kill -9`), so a killed
  run never blocks the next one.
- With the lock held, temporary files that pgkit's atomic writer (`pgprep.atomic`) left
  behind in RUN and RUN/checkpoints when a run was killed mid-write are removed: only names of
  the form `.<name>.<8 random characters>.tmp` whose <name> is one pgkit writes there.
- `--resume` compares the data it is given with the data the checkpoint was trained on: the
  resolved SHARDS path and the sha256 of SHARDS/index.json. Either differing stops the run
  unless `allow_new_data` (`--allow-new-data`).
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import re
from collections.abc import Iterator
from pathlib import Path

from pgprep.atomic import file_sha256, temp_target
from pgprep.errors import PgkitError

LOCK_NAME = ".lock"
_OWN_NAMES = {  # directory (relative to RUN) -> final names `fit` writes there atomically
    # (not eval.json & co.: `pgtrain eval` may be writing those while a fit runs)
    ".": re.compile(r"^(options\.json|stats\.jsonl)$"),
    "checkpoints": re.compile(r"^[\w.-]+\.pt$"),
    "samples": re.compile(r"^step-\d+\.png$"),
}
_DISK_FULL = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)


@contextlib.contextmanager
def writing(path: str | os.PathLike) -> Iterator[None]:
    """Turn an OSError while writing `path` (full disk, quota, permissions) into a PgkitError
    naming the file; a full disk says how to continue."""
    try:
        yield
    except OSError as exc:
        if isinstance(exc, PgkitError):
            raise
        what = exc.strerror or str(exc)
        hint = ("; free some space, then rerun with --resume (nothing half-written is kept "
                "under a final name)") if exc.errno in _DISK_FULL else ""
        raise PgkitError(path, f"cannot write: {what}{hint}") from None


class RunLock:
    """An exclusive, non-blocking flock on RUN/.lock; `release()` (or process exit) drops it."""

    def __init__(self, run: str | os.PathLike):
        import fcntl

        self.run = Path(run)
        self.created = not self.run.exists()
        self.run.mkdir(parents=True, exist_ok=True)
        self.path = self.run / LOCK_NAME
        self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            os.close(self.fd)
            self.fd = None
            if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                holder = _read_pid(self.path)
                raise PgkitError(self.run, "another `pgtrain fit` is training into this run "
                                 f"(it holds {self.path}{f', pid {holder}' if holder else ''}); "
                                 "wait for it to finish or stop it, or choose another -o") from None
            raise PgkitError(self.path, f"cannot lock the run directory ({exc.strerror})") from None
        os.ftruncate(self.fd, 0)
        os.write(self.fd, f"{os.getpid()}\n".encode())

    def release(self) -> None:
        if self.fd is None:
            return
        import fcntl

        # A run that never got going (bad SHARDS, refused options) leaves no directory behind.
        if self.created and {p.name for p in self.run.iterdir()} == {LOCK_NAME}:
            with contextlib.suppress(OSError):
                self.path.unlink()
                self.run.rmdir()
        fcntl.flock(self.fd, fcntl.LOCK_UN)
        os.close(self.fd)
        self.fd = None

    def __enter__(self) -> RunLock:
        return self

    def __exit__(self, *exc) -> None:
        self.release()


def _read_pid(path: Path) -> str | None:
    try:
        text = path.read_text(errors="replace").strip()
    except OSError:
        return None
    return text if text.isdigit() else None


def clean_stale_temps(run: str | os.PathLike) -> list[Path]:
    """Remove the temporary files a killed run's atomic writes left in RUN, RUN/checkpoints and
    RUN/samples (call only with the run lock held: then no writer of this run is alive).
    Returns the removed paths."""
    removed = []
    for sub, own in _OWN_NAMES.items():
        folder = Path(run) / sub
        if not folder.is_dir():
            continue
        for p in folder.iterdir():
            target = temp_target(p.name)
            if target and own.match(target) and p.is_file() and not p.is_symlink():
                with contextlib.suppress(FileNotFoundError):
                    p.unlink()
                    removed.append(p)
    return sorted(removed)


def check_fresh_run(run: str | os.PathLike) -> None:
    """A new run (no checkpoint yet) replaces RUN/options.json and RUN/stats.jsonl: refuse when
    they are not `pgtrain fit`'s own (a killed fit's are: its options.json has a preset)."""
    options, stats = Path(run) / "options.json", Path(run) / "stats.jsonl"
    if options.exists():
        try:
            doc = json.loads(options.read_text())
        except (OSError, ValueError):
            doc = None
        if not (isinstance(doc, dict) and "preset" in doc and "image_size" in doc):
            raise PgkitError(options, "not written by `pgtrain fit`, and a new run would replace it; "
                                      "choose another -o")
    elif stats.exists():
        raise PgkitError(stats, "not written by `pgtrain fit` (no options.json beside it), and a new "
                                "run would replace it; choose another -o")


def data_identity(shards) -> dict:
    """{"shards_resolved": absolute path, "shards_index_sha256": sha256 of index.json} of a shard
    directory ({} for a Dataset object or a directory without an index)."""
    if not isinstance(shards, (str, os.PathLike)):
        return {}
    index = Path(shards) / "index.json"
    out = {"shards_resolved": str(Path(shards).resolve())}
    if index.is_file():
        out["shards_index_sha256"] = file_sha256(index)
    return out


def check_same_data(run: str | os.PathLike, saved: dict, current: dict, allow_new_data: bool) -> str | None:
    """Compare the data a checkpoint was trained on (`saved` options) with `current`
    (`data_identity`). Returns a note when the data changed and `allow_new_data`; raises
    PgkitError when it changed and not; None when it is the same (or unknown)."""
    changes = []
    old_path, new_path = saved.get("shards_resolved"), current.get("shards_resolved")
    if old_path and new_path and old_path != new_path:
        changes.append(f"SHARDS was {old_path}, now {new_path}")
    old_sha, new_sha = saved.get("shards_index_sha256"), current.get("shards_index_sha256")
    if old_sha and new_sha and old_sha != new_sha:
        changes.append(f"index.json changed (sha256 {old_sha[:12]}… -> {new_sha[:12]}…)")
    if not changes:
        return None
    if not allow_new_data:
        raise PgkitError(run, "--resume with other training data than the checkpoint's: "
                         + "; ".join(changes) + ". Pass the same SHARDS, or --allow-new-data "
                         "to continue on this data on purpose")
    return "continuing on new data (--allow-new-data): " + "; ".join(changes)
