"""The run's training log: `stats.jsonl` (one JSON object per logged step) + TensorBoard.

Records hold `step` (within the stage), `stage`, `global_step` (Stage-2 steps continue after
Stage 1's), the losses and `samples_per_s`. On resume, lines after the checkpoint's step are
dropped first, so the file reads as if the run had never stopped. TensorBoard events go to
`RUN/tb/` when the `tensorboard` package is installed (silently skipped otherwise).
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

from pgprep.atomic import write_text_atomic
from pgprep.errors import PgkitError


def read_stats(run) -> list[dict]:
    """The records of RUN/stats.jsonl ([] if there is none); a broken line names its number."""
    path = Path(run) / "stats.jsonl"
    if not path.exists():
        return []
    records = []
    for lineno, line in enumerate(path.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError as exc:
            raise PgkitError(path, f"line {lineno} is not JSON ({exc.msg})") from None
    return records


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
        """Keep records at or before (stage, step) of the checkpoint we resume from."""
        kept = [r for r in read_stats(self.path.parent) if (r["stage"], r["step"]) <= tuple(keep_until)]
        write_text_atomic(self.path, "".join(json.dumps(r) + "\n" for r in kept))

    def write(self, record: dict) -> None:
        if not self.enabled:
            return
        rec = {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in record.items()}
        with open(self.path, "a") as f:
            f.write(json.dumps(rec) + "\n")
        if self.tb is not None:
            for k, v in record.items():
                if k not in ("step", "stage", "global_step") and isinstance(v, (int, float)):
                    self.tb.add_scalar(f"stage{record['stage']}/{k}", v, record["global_step"])

    def close(self) -> None:
        if self.tb is not None:
            self.tb.close()
