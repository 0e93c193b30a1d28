"""Reliability across the pipeline: corrupt inputs at every stage end as a recorded rejection
or a one-line error, and never as a half-written file that looks complete.

Per-stage bad-input cases are tested in each stage's own file; this file runs the whole
chain (filter -> pairs -> masks -> pack -> PairDataset) over one damaged synthetic set, and
simulates a full disk with RLIMIT_FSIZE in a real subprocess.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner

from pgprep.cli import main as pgprep_main

pytestmark = pytest.mark.slow


def _corrupt_copy(synth_root: Path, dst: Path) -> dict[str, str]:
    """Copy the synthetic set and damage five train/test images in five different ways.

    Returns {image: expected reason code}.
    """
    shutil.copytree(synth_root, dst)
    part = pd.read_csv(dst / "Eval" / "list_eval_partition.txt", sep=r"\s+", skiprows=1)
    truth = pd.read_csv(dst / "truth.csv")
    good = truth[(truth.persons == 1) & (truth.complete == 1)].image.tolist()
    victims = good[:5]
    truncated, empty, broken_json, nan_kp, unlisted = victims
    img = dst / truncated
    img.write_bytes(img.read_bytes()[: img.stat().st_size // 2])
    (dst / empty).write_bytes(b"")
    pose_dir = dst / "pose" / "openpose"
    below = lambda name: pose_dir / Path(name).relative_to("img").with_name(  # noqa: E731
        Path(name).stem + "_keypoints.json")
    below(broken_json).write_text('{"people": [ {"pose_keypoints_2d": [1, 2,')
    doc = json.loads(below(nan_kp).read_text())
    doc["people"][0]["pose_keypoints_2d"][3] = float("nan")
    below(nan_kp).write_text(json.dumps(doc))  # json.dumps writes NaN, as Python tools do
    # an image whose partition row is missing: it must simply not appear anywhere
    lines = (dst / "Eval" / "list_eval_partition.txt").read_text().splitlines()
    kept = [ln for ln in lines if not ln.startswith(unlisted + " ")]
    kept[0] = str(len(kept) - 2)
    (dst / "Eval" / "list_eval_partition.txt").write_text("\n".join(kept) + "\n")
    assert len(part) == len(lines) - 2
    return {truncated: "bad-image", empty: "bad-image", broken_json: "bad-pose",
            nan_kp: "nan-keypoint", unlisted: None}


def test_damaged_set_flows_through_every_stage(synth_root, tmp_path):
    root, work, shards = tmp_path / "root", tmp_path / "work", tmp_path / "shards"
    expected = _corrupt_copy(synth_root, root)
    run = CliRunner().invoke
    r = run(pgprep_main, ["filter", str(root), "--poses", str(root / "pose" / "openpose"), "-o", str(work)])
    assert r.exit_code == 0, r.output
    rejects = pd.read_csv(work / "rejects.csv")
    images = pd.read_csv(work / "images.csv")
    for image, code in expected.items():
        assert image not in set(images.image)
        if code is None:
            assert image not in set(rejects.image)
        else:
            reason = rejects.set_index("image").loc[image, "reason"]
            assert reason.startswith(code), (image, reason)
    for stage in (["pairs", str(work)], ["masks", str(work), "--scale"],
                  ["pack", str(work), "-o", str(shards), "--jobs", "1"], ["verify", str(shards)]):
        r = run(pgprep_main, stage)
        assert r.exit_code == 0, (stage, r.output)
    pairs = pd.concat([pd.read_csv(work / f"pairs-{s}.csv") for s in ("train", "test")])
    assert not set(pairs["from"]) & set(expected) and not set(pairs["to"]) & set(expected)
    index = json.loads((shards / "index.json").read_text())
    assert sum(s["pairs"] for s in index["shards"]) == len(pairs)

    from pgtrain.data import PairDataset

    ds = PairDataset(shards, "test")
    item = ds[len(ds) - 1]
    assert item["condition"].shape[0] == 3 and item["pose"].shape[0] == 18


def test_image_damaged_after_filter_is_reported_by_pack_not_written(work_dir, tmp_path):
    """An input that turns unreadable between stages: pack lists the pairs it removed."""
    work = tmp_path / "work"
    shutil.copytree(work_dir, work)
    meta = json.loads((work / "work.json").read_text())
    root = tmp_path / "root"
    shutil.copytree(meta["root"], root)
    meta["root"] = str(root)
    (work / "work.json").write_text(json.dumps(meta))
    pairs = pd.read_csv(work / "pairs-test.csv")
    victim = pairs["to"].iloc[0]
    (root / victim).write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    n_removed = int(((pairs["from"] == victim) | (pairs["to"] == victim)).sum())
    shards = tmp_path / "shards"
    r = CliRunner().invoke(pgprep_main, ["pack", str(work), "-o", str(shards), "--jobs", "1"])
    assert r.exit_code == 0, r.output
    assert victim in r.output
    index = json.loads((shards / "index.json").read_text())
    assert index["splits"]["test"]["pairs"] == len(pairs) - n_removed


_DISK_FULL = textwrap.dedent("""
    import resource, signal, sys
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)       # get EFBIG instead of being killed
    resource.setrlimit(resource.RLIMIT_FSIZE, (int(sys.argv[1]), int(sys.argv[1])))
    from pgprep.cli import main
    main(sys.argv[2:], prog_name="pgprep")
""")


@pytest.mark.parametrize("layout", ["compact", "dense"])
def test_disk_full_during_pack_leaves_nothing_that_looks_complete(work_dir, tmp_path, layout):
    shards = tmp_path / "shards"
    env = dict(os.environ, PGKIT_NO_PROGRESS="1")
    limit = 40_000  # bytes per file: enough for JSON sidecars, not for a shard of images
    r = subprocess.run([sys.executable, "-c", _DISK_FULL, str(limit), "pack", str(work_dir), "-o",
                        str(shards), "--layout", layout, "--jobs", "1"],
                       capture_output=True, text=True, env=env, timeout=300)
    assert r.returncode == 1, (r.stdout, r.stderr)
    err_lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert err_lines[-1].startswith("error:") and "Traceback" not in r.stderr
    assert not (shards / "index.json").exists()
    assert not [p for p in shards.glob("*.h5")] or CliRunner().invoke(
        pgprep_main, ["verify", str(shards)]).exit_code == 1
    # with space again, the same command finishes the job and the result verifies
    r = CliRunner().invoke(pgprep_main, ["pack", str(work_dir), "-o", str(shards), "--layout", layout,
                                         "--jobs", "1"])
    assert r.exit_code == 0, r.output
    assert CliRunner().invoke(pgprep_main, ["verify", str(shards)]).exit_code == 0
    assert not list(shards.glob("*.tmp")) and not list(shards.glob(".*.tmp"))


def test_filter_fingerprint_does_not_depend_on_how_paths_are_spelled(synth_root, tmp_path, monkeypatch):
    from pgprep.filter import run_filter

    work = tmp_path / "work"
    assert not run_filter(synth_root, synth_root / "pose" / "openpose", work)["skipped"]
    monkeypatch.chdir(synth_root.parent)
    rel_work = os.path.relpath(work, synth_root.parent)
    assert run_filter("root", "./root/pose/openpose/", rel_work)["skipped"]
