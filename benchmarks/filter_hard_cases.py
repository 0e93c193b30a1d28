"""The completeness rule's variants on the synthetic hard cases (issue 20; docs/filter.md).

    python benchmarks/filter_hard_cases.py OUT [--blazepose]

Renders `pgprep synth OUT/hard --items 120 --seed 3 --hard-cases 0.5` and the plain
`--items 80 --seed 5`, runs `pgprep filter` once per rule variant on the synth's keypoints
(and, with --blazepose, on `pgprep pose`'s) and prints images kept per truth kind.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pandas as pd

from pgprep.filter import run_filter
from pgprep.synth import synthesize

VARIANTS = {  # name -> run_filter thresholds
    "before (knee-room 0, hidden-legs no)": dict(knee_room=0, hidden_legs="no"),
    "knee-room 0.5": dict(knee_room=0.5, hidden_legs="no"),
    "knee-room 1.0": dict(knee_room=1.0, hidden_legs="no"),
    "knee-room 1.5": dict(knee_room=1.5, hidden_legs="no"),
    "knee-room 2.0": dict(knee_room=2.0, hidden_legs="no"),
    "lone knee >= 0.8 anywhere": dict(knee_room=1e9, hidden_legs="no"),
    "knee-room 1.5 + require torso": dict(knee_room=1.5, hidden_legs="no", require="torso"),
    "knee-room 1.5 + room 1.2": dict(knee_room=1.5, hidden_legs="room", leg_room=1.2),
    "knee-room 1.5 + room 1.4": dict(knee_room=1.5, hidden_legs="room", leg_room=1.4),
    "knee-room 1.5 + room 1.6 (default)": dict(knee_room=1.5, hidden_legs="room", leg_room=1.6),
    "knee-room 1.5 + room 2.0": dict(knee_room=1.5, hidden_legs="room", leg_room=2.0),
    "knee-room 1.5 + hem 1.6": dict(knee_room=1.5, hidden_legs="hem", leg_room=1.6),
}


def table(root: Path, poses: Path, work: Path) -> str:
    truth = pd.read_csv(root / "truth.csv").set_index("image")
    kinds = truth["kind"].value_counts()
    good = (truth["complete"] == 1) & (truth["persons"] == 1)
    lines = ["| variant | " + " | ".join(kinds.index) + " | wrong keeps | lost good |",
             "|---" * (len(kinds) + 3) + "|"]
    for name, kw in VARIANTS.items():
        shutil.rmtree(work, ignore_errors=True)
        run_filter(root, poses, work, jobs=1, force=True, **kw)
        kept = truth.index.isin(pd.read_csv(work / "images.csv")["image"])
        per = [f"{int(kept[(truth['kind'] == k).to_numpy()].sum())}/{n}" for k, n in kinds.items()]
        lines.append(f"| {name} | " + " | ".join(per) + f" | {int((kept & ~good).sum())} | {int((~kept & good).sum())} |")
    return "\n".join(lines)


def main(out: str, blazepose: bool = False) -> None:
    out = Path(out)
    sets = {"hard": dict(items=120, seed=3, hard_cases=0.5), "plain": dict(items=80, seed=5)}
    for name, opts in sets.items():
        root = out / name
        synthesize(root, size=256, **opts)
        sources = {"synth keypoints": root / "pose" / "openpose"}
        if blazepose:
            from pgprep.estimate import estimate_poses

            estimate_poses(root, out / f"{name}-blazepose")
            sources["BlazePose"] = out / f"{name}-blazepose"
        for label, poses in sources.items():
            print(f"\n### {name} set ({opts}), {label}\n")
            print(table(root, poses, out / "work"))


if __name__ == "__main__":
    main(sys.argv[1], "--blazepose" in sys.argv[2:])
