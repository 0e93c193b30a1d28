"""pgprep masks: masks lie on the person (precision against drawn and synthetic silhouettes),
inside the image, PNG {0, 255} mirroring the image tree; resume, options, stamps, CLI."""

from __future__ import annotations

import json
import os

import cv2
import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from pgprep import skeleton as sk
from pgprep.geometry import body_mask, read_mask
from pgprep.masks import mask_path, run_masks

H = W = 64


def posed_person(rng: np.random.Generator) -> np.ndarray:
    """A random standing person inside a 64x64 frame (arms and legs swing)."""
    cx, top = rng.uniform(22, 42), rng.uniform(4, 8)
    kp = sk.empty()

    def put(name, x, y):
        kp[sk.J[name]] = (x, y, 1.0)

    put("nose", cx, top + 4)
    put("neck", cx, top + 10)
    for side, s in (("r", -1), ("l", 1)):
        sx = cx + s * 6
        put(f"{side}_shoulder", sx, top + 10)
        ea = rng.uniform(0.1, 1.2)
        ex, ey = sx + s * 8 * np.sin(ea), top + 10 + 8 * np.cos(ea)
        put(f"{side}_elbow", ex, ey)
        wa = ea + rng.uniform(-0.5, 0.5)
        put(f"{side}_wrist", ex + s * 8 * np.sin(wa), ey + 8 * np.cos(wa))
        hx = cx + s * 4
        put(f"{side}_hip", hx, top + 30)
        ka = rng.uniform(-0.1, 0.35)
        kx, ky = hx + s * 10 * np.sin(ka), top + 30 + 10 * np.cos(ka)
        put(f"{side}_knee", kx, ky)
        put(f"{side}_ankle", kx + s * rng.uniform(-2, 2), ky + 10)
        put(f"{side}_eye", cx + s * 1.5, top + 3)
        put(f"{side}_ear", cx + s * 3, top + 4)
    return kp


def draw_silhouette(kp: np.ndarray) -> np.ndarray:
    """Truth: a body of thick limbs (7 px wide, i.e. thinner than the mask's 9 px disks plus
    closing), a filled torso and a head disk, as the drawn person's pixels."""
    sil = np.zeros((H, W), np.uint8)
    j = sk.J
    torso = kp[[j["r_shoulder"], j["l_shoulder"], j["l_hip"], j["r_hip"]], :2]
    cv2.fillConvexPoly(sil, np.rint(torso).astype(np.int32), 1)
    for a, b in sk.BONES:
        p, q = np.rint(kp[a, :2]).astype(int), np.rint(kp[b, :2]).astype(int)
        cv2.line(sil, tuple(map(int, p)), tuple(map(int, q)), 1, 7)
    cv2.circle(sil, tuple(map(int, np.rint(kp[j["nose"], :2]))), 5, 1, -1)
    return sil


def write_work(work, kps: list[np.ndarray]) -> list[str]:
    work.mkdir(parents=True, exist_ok=True)
    (work / "work.json").write_text(json.dumps({"root": str(work), "image_size": [H, W]}))
    names, recs = [], []
    for i, kp in enumerate(kps):
        name = f"img/MEN/Tees/id_{i // 3:08d}/{i % 3 + 1:02d}_1_front.jpg"
        names.append(name)
        recs.append({"image": name, "item_id": f"id_{i // 3:08d}", "split": "train",
                     "status": "train", "width": W, "height": H, "persons": 1, **sk.to_columns(kp)})
    pd.DataFrame(recs).to_csv(work / "images.csv", index=False)
    return names


def test_masks_on_drawn_people_precision_and_files(tmp_path):
    rng = np.random.default_rng(0)
    kps = [posed_person(rng) for _ in range(6)]
    work = tmp_path / "work"
    names = write_work(work, kps)
    s = run_masks(work, jobs=1, scale=False)
    assert s["written"] == 6 and s["empty"] == 0 and not s["up_to_date"]
    rows = pd.read_csv(work / "images.csv").set_index("image")
    precisions = []
    for name, kp in zip(names, kps, strict=True):
        path = mask_path(work, name)
        assert path == work / "masks" / name.replace(".jpg", ".png")
        raw = cv2.imread(os.fspath(path), cv2.IMREAD_UNCHANGED)
        assert raw.dtype == np.uint8 and raw.shape == (H, W) and set(np.unique(raw)) == {0, 255}
        m = read_mask(path)
        # the stored mask is the one computed from the (2-decimal) keypoints of images.csv
        np.testing.assert_array_equal(m, body_mask(sk.from_columns(rows.loc[name]), (H, W)))
        sil = draw_silhouette(kp)
        precisions.append((m & sil).sum() / m.sum())
        assert (m & sil).sum() / sil.sum() > 0.6  # and it covers most of the body
    assert min(precisions) >= 0.8, precisions


def test_resume_skips_complete_masks_and_options_recompute(tmp_path):
    rng = np.random.default_rng(1)
    work = tmp_path / "work"
    names = write_work(work, [posed_person(rng) for _ in range(4)])
    run_masks(work, jobs=1, scale=False)
    # simulate a run killed half-way: two masks gone, stamp gone
    for n in names[:2]:
        mask_path(work, n).unlink()
    (work / ".pgkit" / "masks.json").unlink()
    before = mask_path(work, names[3]).stat().st_mtime_ns
    s = run_masks(work, jobs=1, scale=False)
    assert (s["written"], s["skipped_existing"]) == (2, 2)
    assert mask_path(work, names[3]).stat().st_mtime_ns == before
    # same inputs again: nothing to do
    assert run_masks(work, jobs=1, scale=False)["up_to_date"]
    # another radius recomputes every mask
    s = run_masks(work, radius=8, jobs=1, scale=False)
    assert s["written"] == 4 and s["skipped_existing"] == 0
    kp = sk.from_columns(pd.read_csv(work / "images.csv").iloc[0])
    np.testing.assert_array_equal(read_mask(mask_path(work, names[0])), body_mask(kp, (H, W), radius=8))


def test_parallel_equals_serial(tmp_path):
    rng = np.random.default_rng(2)
    kps = [posed_person(rng) for _ in range(70)]  # > one chunk of 64
    a, b = tmp_path / "a", tmp_path / "b"
    names = write_work(a, kps)
    write_work(b, kps)
    run_masks(a, jobs=1, scale=False)
    run_masks(b, jobs=2, scale=False)
    for n in names[::7]:
        assert mask_path(a, n).read_bytes() == mask_path(b, n).read_bytes()


def synth_precision(root, work) -> tuple[float, float]:
    """(pooled, worst per-image) fraction of mask pixels on the true silhouette."""
    truth = pd.read_csv(root / "truth.csv").set_index("image")
    images = pd.read_csv(work / "images.csv")
    assert len(images) >= 8
    hits = total = 0
    worst = 1.0
    for name in images["image"]:
        m = read_mask(mask_path(work, name)).astype(bool)
        sil = cv2.imread(os.fspath(root / truth.loc[name, "silhouette"]), cv2.IMREAD_GRAYSCALE) > 0
        assert m.shape == sil.shape  # same size as the image: every mask pixel is inside it
        hits += int((m & sil).sum())
        total += int(m.sum())
        worst = min(worst, (m & sil).sum() / max(m.sum(), 1))
    return hits / total, worst


@pytest.mark.slow
def test_masks_on_synthetic_people_256px_pg2_defaults(tmp_path):
    """At the size PG²'s parameters are meant for (256 px, radius 4, 5x5 closing)."""
    from pgprep.filter import run_filter
    from pgprep.synth import synthesize

    root, work = tmp_path / "root", tmp_path / "work"
    synthesize(root, items=4, seed=1, size=256, jobs=1)
    run_filter(root, root / "pose" / "openpose", work)
    s = run_masks(work, jobs=1)
    assert (s["radius"], s["close"]) == (4, 5)
    pooled, worst = synth_precision(root, work)
    assert pooled >= 0.8 and worst >= 0.7, (pooled, worst)


@pytest.mark.slow
def test_masks_on_shared_64px_synth_scaled(work_dir, synth_root, tmp_path):
    """The shared 64 px fixture: its masks exist; with --scale (radius 1) they lie on the people.
    (PG²'s radius 4 at 64 px would paint limbs 4x too thick: precision ~0.6.)"""
    import shutil

    images = pd.read_csv(work_dir / "images.csv")
    assert all(mask_path(work_dir, n).exists() for n in images["image"])
    work = tmp_path / "work"
    work.mkdir()
    for f in ("images.csv", "work.json"):
        shutil.copy(work_dir / f, work / f)
    s = run_masks(work, jobs=1, scale=True)
    assert (s["radius"], s["close"]) == (1, 1)
    pooled, worst = synth_precision(synth_root, work)
    assert pooled >= 0.8, (pooled, worst)


def test_scaled_options():
    from pgprep.masks import scaled_options

    assert scaled_options(4, 5, (256, 256)) == (4, 5)
    assert scaled_options(4, 5, (64, 64)) == (1, 1)
    assert scaled_options(4, 5, (128, 64)) == (2, 3)  # by the height: a standing person spans it
    assert scaled_options(4, 5, (256, 176)) == (4, 5)  # PATN's 256x176 crops keep PG²'s values
    assert scaled_options(4, 5, (512, 512)) == (8, 11)  # 10 -> the next odd size
    assert scaled_options(4, 0, (128, 128)) == (2, 0)


def test_cli_masks(tmp_path):
    from pgprep.cli import main

    rng = np.random.default_rng(3)
    work = tmp_path / "work"
    write_work(work, [posed_person(rng) for _ in range(3)])
    r = CliRunner().invoke(main, ["masks", str(work), "--jobs", "1"])
    assert r.exit_code == 0, r.output
    assert "masks written" in r.output and "| 3 " in r.output
    r = CliRunner().invoke(main, ["masks", str(work), "--jobs", "1"])
    assert r.exit_code == 0 and "up to date" in r.output
    r = CliRunner().invoke(main, ["masks", str(work), "--close", "4"])
    assert r.exit_code == 1 and "odd" in r.output and "Traceback" not in r.output


def test_masks_are_recomputed_when_an_images_keypoints_change(tmp_path):
    """filter -> masks, then filter again from other keypoints: the masks must follow."""
    rng = np.random.default_rng(3)
    work = tmp_path / "work"
    names = write_work(work, [posed_person(rng) for _ in range(4)])
    run_masks(work, jobs=1, scale=False)
    images = pd.read_csv(work / "images.csv")
    for j in range(18):  # a second keypoint source: images 1 and 2 shifted 5 px right
        images.loc[[1, 2], f"x{j}"] = np.where(images.loc[[1, 2], f"c{j}"] > 0,
                                              images.loc[[1, 2], f"x{j}"] + 5, -1)
    images.to_csv(work / "images.csv", index=False)
    before = mask_path(work, names[0]).stat().st_mtime_ns
    s = run_masks(work, jobs=1, scale=False)
    assert (s["written"], s["skipped_existing"]) == (2, 2)
    assert mask_path(work, names[0]).stat().st_mtime_ns == before
    rows = pd.read_csv(work / "images.csv").set_index("image")
    for n in names:
        np.testing.assert_array_equal(read_mask(mask_path(work, n)), body_mask(sk.from_columns(rows.loc[n]), (H, W)))


def test_names_from_images_csv_never_write_outside_work(tmp_path):
    rng = np.random.default_rng(4)
    work = tmp_path / "w" / "work"
    names = write_work(work, [posed_person(rng) for _ in range(3)])
    images = pd.read_csv(work / "images.csv")
    escape, absolute = "../../escape.jpg", str(tmp_path / "abs" / "x.jpg")
    images.loc[0, "image"], images.loc[1, "image"] = escape, absolute
    images.to_csv(work / "images.csv", index=False)
    s = run_masks(work, jobs=1, scale=False)
    assert not (tmp_path / "w" / "escape.png").exists() and not (tmp_path / "abs").exists()
    assert not list(tmp_path.rglob("escape.png"))
    assert s["written"] == 1 and [r["image"] for r in s["refused"]] == [escape, absolute]
    assert all("refused image name" in r["reason"] for r in s["refused"])
    assert mask_path(work, names[2]).exists()
    from pgprep.cli import main

    r = CliRunner().invoke(main, ["masks", str(work), "--force"])
    assert r.exit_code == 0 and "refused 2 image name(s)" in r.output and escape in r.output, r.output


def test_masks_scale_with_the_image_height_by_default_and_explicit_values_are_kept(tmp_path):
    """Before: 4 px disks at any size (thin lines on 560-px photos, blobs at 64 px) unless
    --scale was given. After: PG²'s 4 / 5 at 256 px scaled to the height by default."""
    rng = np.random.default_rng(5)
    work = tmp_path / "work"
    names = write_work(work, [posed_person(rng) for _ in range(2)])
    s = run_masks(work, jobs=1)
    assert (s["radius"], s["close"]) == (1, 1)
    kp = sk.from_columns(pd.read_csv(work / "images.csv").set_index("image").loc[names[0]])
    np.testing.assert_array_equal(read_mask(mask_path(work, names[0])), body_mask(kp, (H, W), radius=1, close=1))
    assert (lambda r: (r["radius"], r["close"]))(run_masks(work, radius=4, jobs=1)) == (4, 5)
    assert (lambda r: (r["radius"], r["close"]))(run_masks(work, jobs=1, scale=False)) == (4, 5)
    assert (lambda r: (r["radius"], r["close"]))(run_masks(work, radius=8, jobs=1, scale=True)) == (2, 1)
    from pgprep.geometry import scaled_pose

    assert scaled_pose((560, 420)) == (8.75, 13.125) and scaled_pose((256, 176)) == (4.0, 6.0)
    assert scaled_pose((64, 64), radius=4.0) == (4.0, 1.5)


# ---------------------------------------------------------------- issue 18: masks notice what happened to them

def test_masks_redo_emptied_resaved_and_edited_masks_even_with_their_old_mtimes(tmp_path):
    """Issue 18 items 7, 15, 16. Before: a 0-byte mask, one re-saved without its record and an
    all-255 one still carrying its record all left `pgprep masks` "up to date" (pack then
    crashed, refused, or packed the wrong mask). After: each is noticed and redone."""
    from pgprep.cli import main
    from pgprep.geometry import encode_png
    from pgprep.masks import add_record, read_record

    rng = np.random.default_rng(6)
    work = tmp_path / "work"
    names = write_work(work, [posed_person(rng) for _ in range(5)])
    run_masks(work, jobs=1, scale=False)
    good = {n: mask_path(work, n).read_bytes() for n in names}
    stats = {n: mask_path(work, n).stat() for n in names}
    empty, resaved, edited = (mask_path(work, n) for n in names[:3])
    empty.write_bytes(b"")
    cv2.imwrite(os.fspath(resaved), read_mask(resaved) * 255)  # same pixels, record lost
    record = read_record(good[names[2]])
    edited.write_bytes(add_record(encode_png(np.full((H, W), 255, np.uint8)), record))  # the old record
    for p, n in ((empty, names[0]), (resaved, names[1]), (edited, names[2])):  # hide it from mtimes
        os.utime(p, ns=(stats[n].st_atime_ns, stats[n].st_mtime_ns))
    s = run_masks(work, jobs=1, scale=False)
    assert not s["up_to_date"] and (s["written"], s["skipped_existing"]) == (3, 2)
    for n in names:
        assert mask_path(work, n).read_bytes() == good[n]  # exactly the masks pgkit made
    assert mask_path(work, names[3]).stat().st_mtime_ns == stats[names[3]].st_mtime_ns  # untouched ones kept
    r = CliRunner().invoke(main, ["masks", str(work), "--jobs", "1", "--no-scale"])
    assert r.exit_code == 0 and "up to date" in r.output


def test_masks_reject_sizes_and_keypoints_they_cannot_draw_and_go_on(tmp_path):
    """Issue 18 item 9. Before: a keypoint x = 1e12 asked numpy for terabytes (MemoryError),
    3e7 took 3.2 GB, width/height 30,000 took 1.8 GB then crashed OpenCV, 100,000 asked for
    9.3 GiB: each aborted the whole run. After: a rejection naming each image; the rest run."""
    from pgprep.cli import main

    rng = np.random.default_rng(7)
    work = tmp_path / "work"
    names = write_work(work, [posed_person(rng) for _ in range(9)])
    run_masks(work, jobs=1, scale=False)  # masks of the good numbers, then images.csv is edited
    images = pd.read_csv(work / "images.csv")
    images.loc[0, "x4"] = 1e12          # r_wrist: 3.6 TiB of limb points
    images.loc[1, "x4"] = 3e7
    images.loc[2, ["width", "height"]] = 30000
    images.loc[3, ["width", "height"]] = 100000
    images.loc[4, "y10"] = float("inf")
    images.loc[5, "width"] = float("nan")
    images.loc[6, "c3"] = float("nan")
    images.to_csv(work / "images.csv", index=False)
    s = run_masks(work, jobs=1, scale=False)
    why = {r["image"]: r["reason"] for r in s["rejected"]}
    assert set(why) == set(names[:7]) and (s["written"], s["skipped_existing"]) == (0, 2)
    assert why[names[0]].startswith("bad-pose: keypoint r_wrist at x=1e+12, y=")
    assert "far outside the 64x64 (HxW) image" in why[names[1]]
    assert why[names[2]] == ("bad-size: images.csv says width 30000, height 30000; expected whole numbers "
                             ">= 1 of at most 50,000,000 pixels in all (PGKIT_MAX_PIXELS)")
    assert why[names[3]].startswith("bad-size: images.csv says width 100000, height 100000")
    assert why[names[4]] == "nan-keypoint: images.csv column y10 holds inf, not a finite number"
    assert why[names[5]].startswith("bad-size: images.csv says width nan")
    assert why[names[6]].startswith("nan-keypoint: images.csv column c3 holds nan")
    assert not any(mask_path(work, n).exists() for n in names[:7])  # the earlier run's are gone too
    assert all(mask_path(work, n).exists() for n in names[7:])
    r = CliRunner().invoke(main, ["masks", str(work), "--force", "--no-scale"])
    assert r.exit_code == 0 and "rejected 7 image(s) of images.csv" in r.output
    assert f"{names[2]}: bad-size: images.csv says width 30000" in r.output


def test_masks_remove_only_their_own_stale_temp_files(tmp_path):
    """Issue 18 item 22. Before: `.X.png.XXXXXXXX.tmp` left by a kill -9 stayed forever. After:
    the next run deletes exactly the files pgkit's temp rule (atomic.temp_target) names for a
    mask PNG, and nothing else (other names, other targets, symlinks)."""
    rng = np.random.default_rng(8)
    work = tmp_path / "work"
    names = write_work(work, [posed_person(rng) for _ in range(2)])
    run_masks(work, jobs=1, scale=False)
    folder = mask_path(work, names[0]).parent
    ours = [folder / ".01_1_front.png.k3j_x9q2.tmp", folder / ".gone_image.png.abcdefgh.tmp"]
    theirs = [folder / "notes.tmp", folder / ".01_1_front.jpg.abcdefgh.tmp",
              folder / ".01_1_front.png.SHORT.tmp", folder / "01_1_front.png.abcdefgh.tmp",
              tmp_path / "outside.png"]
    for p in ours + theirs:
        p.write_bytes(b"partial")
    link = folder / ".02_1_front.png.zzzzzzzz.tmp"
    link.symlink_to(tmp_path / "outside.png")
    s = run_masks(work, jobs=1, scale=False)
    assert not any(p.exists() for p in ours)
    assert s["up_to_date"] and s["temp_removed"] == 2
    assert all(p.read_bytes() == b"partial" for p in theirs) and link.is_symlink()
