"""The run's training log: `stats.jsonl` (one JSON object per logged step) + TensorBoard.

Records hold `step` (within the stage), `stage`, `global_step` (Stage-2 steps continue after
Stage 1's), the losses and `samples_per_s`. On resume, lines after the checkpoint's step are
dropped first, so the file reads as if the run had never stopped; a torn last line (a write
cut short by a full disk or a kill) is dropped too, with a message. A failed append is cut
back to the last complete line. TensorBoard events go to
`RUN/tb/` when the `tensorboard` package is installed (silently skipped otherwise).
"""

from __future__ import annotations

import contextlib
import json
import math
import os
from pathlib import Path

from pgprep.atomic import write_text_atomic
from pgprep.errors import PgkitError
from pgtrain.rundir import writing


def read_stats(run) -> list[dict]:
    """The records of RUN/stats.jsonl ([] if there is none); a broken line names its number.

    A torn last line (a write cut short by a full disk, kill -9 or a power cut) is skipped:
    every record before it is complete. A broken line anywhere else is an error.
    """
    return read_stats_torn(run)[0]


def read_stats_torn(run) -> tuple[list[dict], tuple[int, int] | None]:
    """(records, (line number, bytes) of a torn last line or None); see `read_stats`."""
    path = Path(run) / "stats.jsonl"
    if not path.exists():
        return [], None
    try:
        text = path.read_bytes().decode("utf-8", errors="replace")
    except OSError as exc:
        raise PgkitError(path, f"cannot read ({exc.strerror})") from None
    lines = text.split("\n")
    last = max((i for i, ln in enumerate(lines) if ln.strip(" \t\r\x00")), default=-1)
    records, torn = [], None
    for i, line in enumerate(lines[:last + 1]):
        if not line.strip(" \t\r\x00"):
            continue
        try:
            rec = json.loads(line)
            if not isinstance(rec, dict):
                raise ValueError("not a JSON object")
        except (ValueError, RecursionError) as exc:
            if i == last:
                torn = (i + 1, len(line.encode("utf-8", errors="replace")))
                break
            msg = exc.msg if isinstance(exc, json.JSONDecodeError) else str(exc)
            raise PgkitError(path, f"line {i + 1} is not JSON ({msg}); only a torn last line is "
                                   "repaired on --resume") from None
        records.append(rec)
    return records, torn


class StatsWriter:
    """Append-only JSON lines log (+ TensorBoard scalars), written by rank 0 only."""

    def __init__(self, run, enabled: bool = True, keep_until: tuple[int, int] | None = None):
        self.path = Path(run) / "stats.jsonl"
        self.enabled = enabled
        self.tb = None
        if not enabled:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if keep_until is not None:
            self._truncate(keep_until)
        elif self.path.exists():
            self.path.unlink()
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:  # tensorboard not installed: stats.jsonl only
            self.tb = None
        else:
            self.tb = SummaryWriter(os.fspath(Path(run) / "tb"))

    def _truncate(self, keep_until: tuple[int, int]) -> None:
        """Keep records at or before (stage, step) of the checkpoint we resume from; a torn
        last line (the previous run died mid-write) is dropped, and we say so on stdout."""
        records, torn = read_stats_torn(self.path.parent)
        if torn is not None:
            print(f"{self.path}: line {torn[0]} was torn ({torn[1]} bytes, a write cut short by a "
                  f"full disk or a kill); dropped it and kept the {len(records)} complete records before it")
        kept = [r for r in records
                if (r.get("stage", 0), r.get("step", 0)) <= tuple(keep_until)]
        with writing(self.path):
            write_text_atomic(self.path, "".join(json.dumps(r) + "\n" for r in kept))

    def write(self, record: dict) -> None:
        """Append one record. A failed write (full disk) is cut back to the last complete line
        and raised as a PgkitError naming the file."""
        if not self.enabled:
            return
        rec = {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in record.items()}
        line = (json.dumps(rec) + "\n").encode()
        with writing(self.path):
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o666)
            try:
                size = os.fstat(fd).st_size
                try:
                    view = memoryview(line)
                    while view:
                        view = view[os.write(fd, view):]
                except OSError:
                    with contextlib.suppress(OSError):
                        os.ftruncate(fd, size)  # no torn line left behind
                    raise
            finally:
                os.close(fd)
        if self.tb is not None:
            for k, v in record.items():
                if k not in ("step", "stage", "global_step") and isinstance(v, (int, float)):
                    self.tb.add_scalar(f"stage{record['stage']}/{k}", v, record["global_step"])

    def close(self) -> None:
        if self.tb is not None:
            self.tb.close()
