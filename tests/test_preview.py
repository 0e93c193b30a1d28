"""pgprep preview: the contact sheet shows each sampled pair with flips applied as the trainer
sees them (mirrored images, L/R-swapped skeleton, mirrored mask), and the CLI writes a PNG."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pandas as pd
from click.testing import CliRunner

from pgprep import draw
from pgprep import skeleton as sk
from pgprep.geometry import encode_jpeg, read_rgb
from pgprep.masks import run_masks
from pgprep.pairs import run_pairs
from pgprep.preview import contact_sheet, load_example, sample_pairs

H = W = 48


def tiny_person(seed: int) -> tuple[np.ndarray, np.ndarray]:
    """An asymmetric stick person on grey (a red right arm raised) and its keypoints."""
    rng = np.random.default_rng(seed)
    cx = rng.uniform(18, 30)
    kp = sk.empty()
    pts = {"nose": (cx, 6), "neck": (cx, 11), "r_shoulder": (cx - 5, 11), "r_elbow": (cx - 9, 6),
           "r_wrist": (cx - 11, 1 + seed % 3), "l_shoulder": (cx + 5, 11), "l_elbow": (cx + 6, 19),
           "l_wrist": (cx + 6, 26), "r_hip": (cx - 3, 26), "r_knee": (cx - 4, 35),
           "r_ankle": (cx - 4, 44), "l_hip": (cx + 3, 26), "l_knee": (cx + 4, 35), "l_ankle": (cx + 4, 44)}
    for name, (x, y) in pts.items():
        kp[sk.J[name]] = (x, y, 1.0)
    img = np.full((H, W, 3), 128, np.uint8)
    for a, b in sk.BONES:
        if kp[a, 2] > 0 and kp[b, 2] > 0:
            colour = (220, 30, 30) if "r_" in sk.JOINTS[a] + sk.JOINTS[b] else (30, 30, 220)
            cv2.line(img, tuple(int(v) for v in kp[a, :2]), tuple(int(v) for v in kp[b, :2]), colour, 3)
    return img, kp


def make_work(tmp_path):
    root, work = tmp_path / "root", tmp_path / "work"
    work.mkdir()
    recs = []
    for i in range(8):
        item = f"id_{i // 4:08d}"
        name = f"img/WOMEN/Dresses/{item}/{i % 4 + 1:02d}_1_front.jpg"
        img, kp = tiny_person(i)
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(encode_jpeg(img, quality=100))
        recs.append({"image": name, "item_id": item, "split": "train" if i < 4 else "test",
                     "status": "train", "width": W, "height": H, "persons": 1, **sk.to_columns(kp)})
    pd.DataFrame(recs).to_csv(work / "images.csv", index=False)
    (work / "work.json").write_text(json.dumps({"root": str(root), "image_size": [H, W]}))
    run_pairs(work, seed=0)
    run_masks(work, jobs=1)
    return root, work


def test_sheet_cells_show_pairs_with_flips(tmp_path):
    root, work = make_work(tmp_path)
    pairs = sample_pairs(work, "train", 6, seed=2)
    assert len(pairs) == 6
    sheet = contact_sheet(work, n=6, split="train", seed=2)
    # the layout of pgprep.draw.grid: label band on top, row labels on the left, 2 px padding
    top, left, pad = draw._label_height(W), draw._row_label_width(W), 2
    assert sheet.shape == (top + 6 * (H + pad) + pad, left + 4 * (W + pad) + pad, 3)
    assert pairs["flip"].nunique() == 2  # the sample shows both kinds of row
    images = pd.read_csv(work / "images.csv").set_index("image", drop=False)
    for r, (src, dst, flip) in enumerate(pairs[["from", "to", "flip"]].itertuples(index=False)):
        y = top + pad + r * (H + pad)

        def cell(c, y=y):
            x = left + pad + c * (W + pad)
            return sheet[y:y + H, x:x + W]

        cond, target = read_rgb(root / src), read_rgb(root / dst)
        if flip:
            cond, target = cond[:, ::-1], target[:, ::-1]
        np.testing.assert_array_equal(cell(0), cond)
        np.testing.assert_array_equal(cell(1), target)
        kp = sk.from_columns(images.loc[dst])
        kp = sk.flip(kp, W) if flip else kp
        np.testing.assert_array_equal(cell(2), draw.skeleton_image(kp, (H, W)))
        # the mask overlay tints exactly the mask's pixels of the (flipped) target
        tinted = np.any(cell(3) != target, axis=-1)
        ex = load_example(work, root, images, src, dst, bool(flip))
        assert tinted.sum() > 0 and not (tinted & (ex["mask"] == 0)).any()


def test_flipped_example_skeleton_keeps_right_side_on_image_left(tmp_path):
    root, work = make_work(tmp_path)
    images = pd.read_csv(work / "images.csv").set_index("image", drop=False)
    name = images["image"].iloc[0]
    plain = load_example(work, root, images, name, name, False)
    flipped = load_example(work, root, images, name, name, True)
    np.testing.assert_array_equal(flipped["mask"], plain["mask"][:, ::-1])
    np.testing.assert_array_equal(flipped["target"], plain["target"][:, ::-1])
    # the raised arm (person's right, image left) is the person's LEFT arm after mirroring
    rw, lw = sk.J["r_wrist"], sk.J["l_wrist"]
    assert flipped["keypoints"][lw, 1] == plain["keypoints"][rw, 1]
    assert flipped["keypoints"][lw, 0] == W - 1 - plain["keypoints"][rw, 0]


def test_cli_preview_writes_png(tmp_path):
    from pgprep.cli import main

    _, work = make_work(tmp_path)
    out = tmp_path / "sheet.png"
    r = CliRunner().invoke(main, ["preview", str(work), "-o", str(out), "-n", "4", "--cell", "64"])
    assert r.exit_code == 0, r.output
    img = read_rgb(out)
    assert img.shape[1] == draw._row_label_width(64) + 4 * 66 + 2 and img.std() > 10
    r = CliRunner().invoke(main, ["preview", str(tmp_path / "missing"), "-o", str(out)])
    assert r.exit_code == 1 and "missing" in r.output


def test_cli_preview_never_overwrites_inputs_or_foreign_files(tmp_path):
    from pgprep.cli import main
    from pgprep.preview import is_pgkit_preview

    root, work = make_work(tmp_path)
    args = ["preview", str(work), "-n", "2", "--cell", "32"]
    images_csv = (work / "images.csv").read_bytes()
    for target in (work / "images.csv", root / "img/WOMEN/Dresses/id_00000000/01_1_front.jpg"):
        before = target.read_bytes()
        for extra in ([], ["--force"]):
            r = CliRunner().invoke(main, [*args, "-o", str(target), *extra])
            assert r.exit_code == 1 and "is an input under" in r.output and "refusing" in r.output, r.output
            assert target.read_bytes() == before
    foreign = tmp_path / "notes.png"
    foreign.write_bytes(b"my own notes")
    r = CliRunner().invoke(main, [*args, "-o", str(foreign)])
    assert r.exit_code == 1 and "not a contact sheet pgkit wrote" in r.output and "--force" in r.output
    assert foreign.read_bytes() == b"my own notes"
    r = CliRunner().invoke(main, [*args, "-o", str(foreign), "--force"])
    assert r.exit_code == 0, r.output
    assert is_pgkit_preview(foreign) and read_rgb(foreign).shape[0] > 32
    sheet = tmp_path / "sheet.png"  # a sheet pgkit wrote is replaced without --force
    assert CliRunner().invoke(main, [*args, "-o", str(sheet)]).exit_code == 0
    assert CliRunner().invoke(main, [*args, "-o", str(sheet), "--seed", "1"]).exit_code == 0
    sheet_in_work = work / "sheet.png"  # ... also inside WORK
    assert CliRunner().invoke(main, [*args, "-o", str(sheet_in_work)]).exit_code == 0
    assert CliRunner().invoke(main, [*args, "-o", str(sheet_in_work)]).exit_code == 0
    assert (work / "images.csv").read_bytes() == images_csv


def test_preview_refuses_names_outside_root_read_back_from_pairs(tmp_path):
    from pgprep.cli import main

    _, work = make_work(tmp_path)
    secret = tmp_path / "secret.jpg"
    secret.write_bytes(encode_jpeg(np.zeros((H, W, 3), np.uint8)))
    for split in ("train", "test"):
        pairs = pd.read_csv(work / f"pairs-{split}.csv", dtype=str)
        pairs["from"] = "../secret.jpg"
        pairs.to_csv(work / f"pairs-{split}.csv", index=False)
    r = CliRunner().invoke(main, ["preview", str(work), "-o", str(tmp_path / "s.png"), "-n", "2"])
    assert r.exit_code == 1 and "refused image name '../secret.jpg': absolute or contains '..'" in r.output
    assert "pairs-" in r.output and not (tmp_path / "s.png").exists()


def test_preview_errors_name_the_file_for_broken_masks_bombs_and_unknown_names(tmp_path):
    """Issue 18 items 7, 8, 9, 20. Before: a 0-byte mask raised OpenCV's `!buf.empty()`, a
    30000x30000 mask PNG took 2.7 GB, a pairs CSV naming an image missing from images.csv
    raised KeyError, a keypoint at x = 3e7 (mask computed on the fly) took gigabytes; no file
    named. After: exit 1 with one line naming the file; nothing is written."""
    from test_geometry import png_bomb

    from pgprep.cli import main
    from pgprep.masks import mask_path

    _, work = make_work(tmp_path)
    out = tmp_path / "s.png"
    args = ["preview", str(work), "-o", str(out), "-n", "1000", "--split", "train"]  # every pair
    targets = pd.read_csv(work / "pairs-train.csv", dtype=str)["to"].unique()
    masks = {n: mask_path(work, n).read_bytes() for n in targets}
    mp = mask_path(work, targets[0])

    def fails_with(message: str) -> None:
        r = CliRunner().invoke(main, args)
        assert r.exit_code == 1 and "Traceback" not in r.output, r.output
        assert r.output.startswith("error: ") and message in r.output and len(r.output.splitlines()) == 1, r.output
        assert not out.exists()

    mp.write_bytes(b"")
    fails_with(f"error: {mp}: unusable mask: empty image file; rerun `pgprep masks WORK`")
    mp.write_bytes(png_bomb())
    fails_with(f"error: {mp}: unusable mask: image too large: the header claims 900,000,000 pixels")
    mp.write_bytes(png_bomb(96, 48))
    fails_with(f"error: {mp}: mask is 96x48 (HxW), expected 48x48")
    mp.write_bytes(masks[targets[0]])
    images = pd.read_csv(work / "images.csv")
    good = images.copy()
    images.loc[images["image"] == targets[0], "x4"] = 3e7
    images.to_csv(work / "images.csv", index=False)
    mp.unlink()  # computed on the fly from the keypoints
    fails_with(f"error: {work / 'images.csv'}: {targets[0]}: bad-pose: keypoint r_wrist at x=3e+07")
    good.loc[good["image"] != targets[0]].to_csv(work / "images.csv", index=False)
    fails_with(f"error: {work / 'pairs-train.csv'}: names {targets[0]}, which is not in images.csv")
