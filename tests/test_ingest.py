"""pgprep ingest: a folder of photos -> a DeepFashion-shaped tree, with the transform recorded."""

from __future__ import annotations

import io

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner
from PIL import Image

from pgprep import deepfashion, formats, imageio, skeleton
from pgprep.cli import main
from pgprep.errors import PgkitError
from pgprep.filter import run_filter
from pgprep.geometry import Letterbox
from pgprep.ingest import map_keypoints, parse_size, run_ingest


def photo(h, w, colour=(200, 40, 40)):
    """A coloured h x w photo with a black dot at (row h//4, col w//3) to follow through the resize."""
    img = np.full((h, w, 3), colour, np.uint8)
    img[h // 4 - 2:h // 4 + 3, w // 3 - 2:w // 3 + 3] = 0
    return img


def save(path, rgb, fmt="JPEG", orientation=None, trailer=b""):
    path.parent.mkdir(parents=True, exist_ok=True)
    ex = Image.Exif()
    if orientation:
        ex[imageio.ORIENTATION_TAG] = orientation
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, fmt, exif=ex.tobytes(), quality=95)
    path.write_bytes(buf.getvalue() + trailer)


@pytest.fixture
def photos(tmp_path):
    d = tmp_path / "photos"
    save(d / "anna" / "front.jpg", photo(560, 420))
    # an upright 560x420 phone photo stored as 420x560 pixels with "rotate 90 CW" (6)
    save(d / "anna" / "IMG_2.jpg", np.ascontiguousarray(np.rot90(photo(560, 420, (40, 200, 40)), 1)), orientation=6)
    save(d / "anna" / "back.webp", photo(300, 200), "WEBP")
    save(d / "ben" / "side.jpg", photo(256, 256), trailer=b"\x00" * 100 + b"MotionPhoto")
    save(d / "ben" / "x.png", photo(100, 300), "PNG")
    save(d / "loose.jpg", photo(700, 500))
    (d / "notes.txt").write_text("not a photo")
    (d / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 nothing else")
    (d / "IMG_9.heic").write_bytes(b"\x00\x00\x00\x18ftypheic")
    return d


def test_parse_size_is_height_by_width():
    assert parse_size("256") == (256, 256)
    assert parse_size("256x176") == (256, 176)
    with pytest.raises(PgkitError, match="N or HxW"):
        parse_size("big")


def test_fit_keeps_the_aspect_and_centres_on_white():
    f = Letterbox.fit((560, 420), (256, 256))
    assert (f.new_h, f.new_w, f.pad_x, f.pad_y) == (256, 192, 32, 0)
    assert f.box == (32.0, 0.0, 224.0, 256.0)
    f = Letterbox.fit((100, 300), (256, 176))
    assert (f.new_h, f.new_w, f.pad_x, f.pad_y) == (59, 176, 0, 98)


def test_ingest_writes_a_deepfashion_tree_with_the_transform(photos, tmp_path):
    root = tmp_path / "root"
    c = run_ingest(photos, root, size="256", test_fraction=0.4, seed=1, progress=False)
    assert (c["images"], c["items"], c["rejected"], c["ignored"]) == (6, 3, 2, 1)
    rec = pd.read_csv(root / "ingest.csv").set_index("source")
    # items: folder anna (3 views), ben (2), loose.jpg (1); ids in sorted key order
    assert rec.loc["anna/IMG_2.jpg", "image"] == "img/WOMEN/Photos/id_00000001/01_1_full.jpg"
    assert rec.loc["anna/back.webp", "image"] == "img/WOMEN/Photos/id_00000001/01_2_back.jpg"
    assert rec.loc["anna/front.jpg", "image"] == "img/WOMEN/Photos/id_00000001/01_3_front.jpg"
    assert rec.loc["ben/side.jpg", "image"] == "img/WOMEN/Photos/id_00000002/01_1_side.jpg"
    assert rec.loc["loose.jpg", "item_id"] == "id_00000003"
    # EXIF orientation applied: upright 560x420 original, scale 256/560, 32 px white each side
    r = rec.loc["anna/IMG_2.jpg"]
    assert (r.orig_height, r.orig_width, r.orientation, r.pad_x, r.pad_y) == (560, 420, 6, 32, 0)
    assert r.scale == pytest.approx(256 / 560)
    img = imageio.read_rgb(root / r.image)
    assert img.shape == (256, 256, 3)
    assert (img[:, :28] > 245).all() and abs(int(img[128, 128, 1]) - 200) < 12  # white pad, green photo
    # the dot at (140, 140) of the original maps onto the dark pixel of the ingested image
    kp = skeleton.empty()
    kp[0] = (420 // 3, 560 // 4, 0.9)
    x, y = map_keypoints(kp, r.scale, r.pad_x, r.pad_y)[0, :2]
    assert img[int(round(y)), int(round(x))].max() < 90
    # partition: by item, test side is query + gallery, every image listed once
    part = deepfashion.read_partition(root)
    assert len(part) == 6 and part.groupby("item_id")["split"].nunique().max() == 1
    assert set(part["split"]) == {"train", "test"}
    rej = pd.read_csv(root / "ingest-rejects.csv").set_index("source")["reason"]
    assert rej["broken.jpg"] == "bad-image: truncated or corrupt JPEG header"
    assert rej["IMG_9.heic"] == "bad-image: not a JPEG, PNG or WebP image"


def test_rerun_does_nothing_and_a_change_redoes_only_that_photo(photos, tmp_path):
    root = tmp_path / "root"
    run_ingest(photos, root, progress=False)
    again = run_ingest(photos, root, progress=False)
    assert again["skipped"] is True
    save(photos / "ben" / "x.png", photo(120, 300), "PNG")
    third = run_ingest(photos, root, progress=False)
    assert (third["converted"], third["reused"]) == (1, 5)
    (photos / "loose.jpg").unlink()
    fourth = run_ingest(photos, root, progress=False)
    assert fourth["removed"] == 1 and not list((root / "img/WOMEN/Photos/id_00000003").glob("*.jpg"))
    assert len(deepfashion.read_partition(root)) == 5


def test_a_killed_run_resumes_from_the_journal(photos, tmp_path):
    root = tmp_path / "root"
    run_ingest(photos, root, progress=False)
    (root / "ingest.csv").unlink()  # as if killed before the records were written
    (root / ".pgkit" / "ingest.json").unlink()
    c = run_ingest(photos, root, progress=False)
    assert (c["converted"], c["reused"], c["skipped"]) == (0, 6, False)
    # an output overwritten behind the journal's back (another photo, a killed run) is redone
    image = pd.read_csv(root / "ingest.csv")["image"][0]
    (root / image).write_bytes((root / pd.read_csv(root / "ingest.csv")["image"][1]).read_bytes())
    (root / ".pgkit" / "ingest.json").unlink()
    c = run_ingest(photos, root, progress=False)
    assert (c["converted"], c["reused"]) == (1, 5)


def test_items_csv_views_and_patn_size(photos, tmp_path):
    items = tmp_path / "items.csv"
    items.write_text("file,item,view\nanna/front.jpg,A,front\nben/side.jpg,A,side\nloose.jpg,B,\n"
                     "../etc/passwd,C,front\n")
    root = tmp_path / "root"
    c = run_ingest(photos, root, size="256x176", items=items, progress=False)
    rec = pd.read_csv(root / "ingest.csv").set_index("source")
    assert c["items"] == 2 and rec.loc["ben/side.jpg", "image"].endswith("id_00000001/01_2_side.jpg")
    assert rec.loc["loose.jpg", "view"] == "full"
    assert imageio.read_rgb(root / rec.loc["loose.jpg", "image"]).shape == (256, 176, 3)
    assert pd.read_csv(root / "ingest-rejects.csv")["reason"].str.startswith("bad-name: line 5").any()


def test_poses_made_on_the_originals_are_mapped_in_and_the_filter_keeps_them(tmp_path):
    photos = tmp_path / "photos"
    save(photos / "p1" / "front.jpg", photo(512, 384), orientation=None)
    save(photos / "p2" / "front.webp", photo(512, 384), "WEBP")
    src = tmp_path / "orig-poses"
    person = np.array([(192, 60), (192, 100), (150, 102), (140, 170), (135, 230), (234, 102), (244, 170),
                       (249, 230), (165, 240), (165, 340), (165, 440), (219, 240), (219, 340), (219, 440),
                       (185, 52), (199, 52), (178, 58), (206, 58)], np.float32)
    kp = np.concatenate([person, np.full((18, 1), 0.9, np.float32)], 1)
    for name in ("p1/front.jpg", "p2/front.webp"):
        formats.write_openpose_json(src / formats.openpose_json_name(name), [kp])
    root = tmp_path / "root"
    c = run_ingest(photos, root, poses=src, test_fraction=0.5, progress=False)
    assert c["poses_mapped"] == 2
    got = formats.read_openpose_json(root / "pose/openpose/WOMEN/Photos/id_00000001/01_1_front_keypoints.json")[0]
    np.testing.assert_allclose(got[0, :2], ((192.5) * 0.5 - 0.5 + 32, 60.5 * 0.5 - 0.5), atol=1e-4)
    counts = run_filter(root, root / "pose/openpose", tmp_path / "work", jobs=1)
    assert counts["kept"] == 2


def test_refuses_a_root_it_did_not_write(photos, tmp_path):
    root = tmp_path / "df"
    (root / "img").mkdir(parents=True)
    with pytest.raises(PgkitError, match="did not write"):
        run_ingest(photos, root, progress=False)


def test_cli_reports_and_says_up_to_date(photos, tmp_path):
    runner = CliRunner()
    args = ["ingest", str(photos), "-o", str(tmp_path / "root"), "--size", "128"]
    res = runner.invoke(main, args)
    assert res.exit_code == 0, res.output
    assert "| images               | 6" in res.output and "128x128" in res.output
    res = runner.invoke(main, args)
    assert res.exit_code == 0 and "up to date" in res.output
    res = runner.invoke(main, ["ingest", str(photos), "-o", str(tmp_path / "r2"), "--size", "huge"])
    assert res.exit_code == 1 and "N or HxW" in res.output


def test_stale_removal_touches_only_images_ingest_wrote(tmp_path):
    import hashlib

    from pgprep.ingest import RECORDS, _load_manifest, _remove_stale

    (tmp_path / "img").mkdir()
    (tmp_path / "img" / "old.jpg").write_bytes(b"x")
    (tmp_path / "img" / "new.jpg").write_bytes(b"y")
    (tmp_path / "notes.txt").write_text("mine")
    (tmp_path / RECORDS).write_text("image\nimg/old.jpg\nnotes.txt\n")  # ingest.csv: never trusted
    assert _remove_stale(tmp_path, set(), _load_manifest(tmp_path)) == (0, 0, {})
    sha = hashlib.sha256(b"x").hexdigest()
    owned = {"img/old.jpg": {sha}, "img/new.jpg": {sha}, "img/gone.jpg": {sha}, "../notes.txt": {sha}}
    assert _remove_stale(tmp_path, set(), owned) == (1, 1, {})  # new.jpg: other bytes than recorded
    assert not (tmp_path / "img" / "old.jpg").exists() and (tmp_path / "img" / "new.jpg").exists()
    assert (tmp_path / "notes.txt").read_text() == "mine"


# ---------------------------------------------------------------- issue 18: integrity, round two

def _pose_files(poses, names):
    kp = np.concatenate([np.full((18, 2), 50, np.float32), np.full((18, 1), 0.9, np.float32)], 1)
    for name in names:
        formats.write_openpose_json(poses / formats.openpose_json_name(name), [kp])


def _tree(root):
    """Every path below root (files, links, folders) with the bytes of the regular files."""
    return {p.relative_to(root).as_posix(): (p.read_bytes() if p.is_file() and not p.is_symlink() else None)
            for p in sorted(root.rglob("*"))}


@pytest.mark.parametrize("mine", ["Eval/list_eval_partition.txt", "ingest-rejects.csv",
                                  "pose/openpose/WOMEN/Photos/id_00000001/01_1_full_keypoints.json"])
def test_refuses_to_overwrite_a_file_of_the_users_outside_img(photos, tmp_path, mine):
    poses = tmp_path / "poses"
    _pose_files(poses, ["anna/IMG_2.jpg", "ben/side.jpg"])
    root = tmp_path / "root"
    (root / mine).parent.mkdir(parents=True)
    (root / mine).write_text("my own notes\n")
    before = _tree(root)
    res = CliRunner().invoke(main, ["ingest", str(photos), "-o", str(root), "--poses", str(poses)])
    assert res.exit_code == 1, res.output
    assert res.output.count("\n") == 1 and "Traceback" not in res.output
    assert f"{root / mine}: exists and was not written by pgprep ingest" in res.output
    assert _tree(root) == before  # nothing written, not even .pgkit/


def test_a_rerun_replaces_only_the_files_ingest_wrote(photos, tmp_path):
    poses = tmp_path / "poses"
    _pose_files(poses, ["anna/IMG_2.jpg"])
    root = tmp_path / "root"
    run_ingest(photos, root, poses=poses, progress=False)
    manifest = (root / ".pgkit" / "ingest-files.jsonl").read_text().splitlines()
    assert len(manifest) == 6 + 3 + 1  # images, ingest.csv + rejects + partition, one pose
    (photos / "loose.jpg").unlink()
    c = run_ingest(photos, root, poses=poses, progress=False)  # its own files: replaced
    assert (c["images"], c["removed"]) == (5, 1)
    (root / deepfashion.PARTITION).write_text("edited by hand\n")
    with pytest.raises(PgkitError, match="list_eval_partition.txt: exists and was not written by"):
        run_ingest(photos, root, poses=poses, force=True, progress=False)
    assert (root / deepfashion.PARTITION).read_text() == "edited by hand\n"


@pytest.mark.parametrize("bad", ['{"people":[{"pose_keypoints_2d":[' + "9" * 5000 + "]}]}",
                                 '{"people":[{"pose_keypoints_2d":[1e400' + ",1" * 53 + "]}]}"],
                         ids=["5000-digit-int", "1e400"])
def test_a_bad_pose_json_rejects_its_photo_only(photos, tmp_path, bad):
    poses = tmp_path / "poses"
    _pose_files(poses, ["anna/IMG_2.jpg", "ben/side.jpg"])
    (poses / "ben" / "side_keypoints.json").write_text(bad)
    root = tmp_path / "root"
    res = CliRunner().invoke(main, ["ingest", str(photos), "-o", str(root), "--poses", str(poses)])
    assert res.exit_code == 0, res.output
    rej = pd.read_csv(root / "ingest-rejects.csv").set_index("source")["reason"]
    assert rej["ben/side.jpg"].startswith(f"bad-pose: {poses / 'ben/side_keypoints.json'}: ")
    rec = pd.read_csv(root / "ingest.csv")
    assert "ben/side.jpg" not in set(rec["source"]) and len(rec) == 5
    assert len(deepfashion.read_partition(root)) == 5
    assert len(list((root / "pose" / "openpose").rglob("*.json"))) == 1
    assert sorted(p.relative_to(root).as_posix() for p in (root / "img").rglob("*.jpg")) == sorted(rec["image"])


def test_a_symlink_loop_in_the_items_csv_is_rejected_per_photo(photos, tmp_path):
    (photos / "loop.jpg").symlink_to("loop.jpg")
    items = tmp_path / "items.csv"
    items.write_text("file,item\nanna/front.jpg,A\nloop.jpg,B\n")
    res = CliRunner().invoke(main, ["ingest", str(photos), "-o", str(tmp_path / "root"), "--items", str(items)])
    assert res.exit_code == 0, res.output
    rej = pd.read_csv(tmp_path / "root" / "ingest-rejects.csv").set_index("source")["reason"]
    assert rej["loop.jpg"] == "bad-image: symbolic link loop"
    assert len(pd.read_csv(tmp_path / "root" / "ingest.csv")) == 1


def test_stale_removal_deletes_only_unchanged_images_ingest_wrote(photos, tmp_path):
    root = tmp_path / "root"
    run_ingest(photos, root, progress=False)
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "victim.jpg").write_bytes(b"not yours")
    (root / "img" / "WOMEN" / "link").symlink_to(outside, target_is_directory=True)
    (root / "img" / "WOMEN" / "mine.jpg").write_bytes(b"mine")
    rec = pd.read_csv(root / "ingest.csv")
    forged = pd.concat([rec, pd.DataFrame({"source": ["a", "b", "c"], "image": [
        "img/WOMEN/mine.jpg", "img/WOMEN/link/victim.jpg", "img/WOMEN/Photos"]})])
    forged.to_csv(root / "ingest.csv", index=False)  # ingest.csv is not trusted: a rerun replaces it
    (root / deepfashion.PARTITION).unlink()
    # an ingested image the user retouched, whose photo then goes
    retouched = root / rec.set_index("source").loc["loose.jpg", "image"]
    retouched.write_bytes(retouched.read_bytes() + b"retouched")
    (photos / "loose.jpg").unlink()
    with pytest.raises(PgkitError, match="ingest.csv: exists and was not written by"):
        run_ingest(photos, root, progress=False)
    (root / "ingest.csv").unlink()
    c = run_ingest(photos, root, progress=False)
    assert (c["images"], c["removed"], c["kept_changed"]) == (5, 0, 1)
    assert (root / "img" / "WOMEN" / "mine.jpg").read_bytes() == b"mine"
    assert (outside / "victim.jpg").read_bytes() == b"not yours"
    assert retouched.read_bytes().endswith(b"retouched")
    # a recorded image the user replaced by a folder, or reached through a symlinked folder
    (photos / "ben" / "x.png").unlink()
    gone = root / rec.set_index("source").loc["ben/x.png", "image"]
    gone.unlink()
    gone.mkdir()
    c = run_ingest(photos, root, progress=False)
    assert c["removed"] == 0 and gone.is_dir()


def test_stale_removal_never_follows_a_symlinked_folder(photos, tmp_path):
    root = tmp_path / "root"
    run_ingest(photos, root, progress=False)
    rec = pd.read_csv(root / "ingest.csv").set_index("source")
    item_dir = (root / rec.loc["loose.jpg", "image"]).parent
    moved = tmp_path / "elsewhere"
    item_dir.rename(moved)
    item_dir.symlink_to(moved, target_is_directory=True)  # same bytes, now reached through a link
    (photos / "loose.jpg").unlink()
    c = run_ingest(photos, root, progress=False)
    assert c["removed"] == 0 and len(list(moved.glob("*.jpg"))) == 1


def test_special_files_in_photos_are_recorded_rejections(photos, tmp_path):
    import os

    (photos / "zero.jpg").symlink_to("/dev/zero")
    os.mkfifo(photos / "fifo.jpg")
    (photos / "loop.jpg").symlink_to("loop.jpg")
    (photos / "x.jpg").mkdir()
    (photos / "gone.jpg").symlink_to(tmp_path / "nowhere.jpg")
    root = tmp_path / "root"
    c = run_ingest(photos, root, progress=False)
    rej = pd.read_csv(root / "ingest-rejects.csv").set_index("source")["reason"]
    assert rej["zero.jpg"] == "bad-image: not a regular file (character device)"
    assert rej["fifo.jpg"] == "bad-image: not a regular file (FIFO)"
    assert rej["loop.jpg"] == "bad-image: symbolic link loop"
    assert rej["x.jpg"] == "bad-image: not a regular file (directory)"
    assert rej["gone.jpg"] == "bad-image: symbolic link to a missing file"
    assert (c["images"], c["rejected"]) == (6, 2 + 5)


def test_a_rerun_after_a_kill_removes_the_orphans_of_the_killed_run(photos, tmp_path, monkeypatch):
    from pgprep import ingest

    root = tmp_path / "root"

    def killed(*a, **k):
        raise KeyboardInterrupt  # as if killed after the images were written, before the records

    with monkeypatch.context() as m:
        m.setattr(ingest, "assign_partition", killed)
        with pytest.raises(KeyboardInterrupt):
            run_ingest(photos, root, progress=False)
    assert len(list((root / "img").rglob("*.jpg"))) == 6 and not (root / "ingest.csv").exists()
    (photos / "loose.jpg").unlink()
    c = run_ingest(photos, root, progress=False)
    assert (c["images"], c["removed"]) == (5, 1)
    assert sorted(p.relative_to(root).as_posix() for p in (root / "img").rglob("*.jpg")) == \
        sorted(pd.read_csv(root / "ingest.csv")["image"])


def test_the_items_csv_is_bounded_and_must_be_a_regular_file(photos, tmp_path, monkeypatch):
    from pgprep import ingest

    runner = CliRunner()
    res = runner.invoke(main, ["ingest", str(photos), "-o", str(tmp_path / "r1"), "--items", "/dev/zero"])
    assert res.exit_code == 1 and res.output.count("\n") == 1
    assert "/dev/zero: items CSV is not a regular file (character device)" in res.output
    items = tmp_path / "items.csv"
    items.write_text("file,item\n" + "anna/front.jpg,A\n" * 100)
    monkeypatch.setattr(ingest, "MAX_ITEMS_BYTES", 1000, raising=False)
    res = runner.invoke(main, ["ingest", str(photos), "-o", str(tmp_path / "r2"), "--items", str(items)])
    assert res.exit_code == 1 and res.output.count("\n") == 1
    assert f"{items}: items CSV of 1,710 bytes is larger than the 1,000-byte limit" in res.output
    assert not (tmp_path / "r2").exists()


def test_a_huge_photo_is_rejected_by_its_size_before_it_is_read(photos, tmp_path, monkeypatch):
    from pgprep import ingest

    big = photos / "big.jpg"
    with open(big, "wb") as f:  # a sparse file: a JPEG header, then 64 MiB of nothing
        f.write((photos / "loose.jpg").read_bytes()[:200])
        f.truncate(64 << 20)
    monkeypatch.setattr(ingest, "max_photo_bytes", lambda: 1 << 20, raising=False)
    root = tmp_path / "root"
    c = run_ingest(photos, root, progress=False)
    rej = pd.read_csv(root / "ingest-rejects.csv").set_index("source")["reason"]
    assert rej["big.jpg"] == ("bad-image: photo of 67,108,864 bytes is larger than the 1,048,576-byte limit "
                              "(4 bytes a pixel of PGKIT_MAX_PIXELS)")
    assert c["images"] == 6


# ---------------------------------------------------------------- issue 20: each photo read once

def _count_reads(monkeypatch):
    """Patch the readers: photo reads (`_read_photo`), probes, decodes, and opens of a JPEG
    below ROOT (an output re-read to hash it)."""
    import os

    from pgprep import ingest

    n = {"read": 0, "probe": 0, "decode": 0, "output": 0}
    for mod, name, key in ((ingest, "_read_photo", "read"), (imageio, "probe", "probe"), (imageio, "decode", "decode")):
        orig = getattr(mod, name)
        monkeypatch.setattr(mod, name, lambda *a, _o=orig, _k=key, **k: (n.__setitem__(_k, n[_k] + 1), _o(*a, **k))[1])
    real_open = os.open

    def counting_open(path, *a, **k):
        if str(path).endswith(".jpg") and "dir_fd" in k:  # `_look` opens an output by name in its folder
            n["output"] += 1
        return real_open(path, *a, **k)
    monkeypatch.setattr(os, "open", counting_open)
    return n


def test_each_photo_is_read_decoded_and_hashed_once_and_a_rerun_reads_none(photos, tmp_path, monkeypatch):
    root = tmp_path / "root"
    n = _count_reads(monkeypatch)
    c = run_ingest(photos, root, progress=False)
    # 6 good photos + broken.jpg and IMG_9.heic (read once to be refused); before: 2 reads, 2 probes each
    assert c["converted"] == 6 and n == {"read": 8, "probe": 8, "decode": 6, "output": 0}
    assert not (root / ".pgkit" / "ingest-staging").exists()
    for force in (False, True):  # nothing changed: skipped; --force: redone from the journal
        n.update(read=0, probe=0, decode=0, output=0)
        again = run_ingest(photos, root, progress=False, force=force)
        assert again["skipped"] is not force and n == {"read": 0, "probe": 0, "decode": 0, "output": 0}
    assert again["reused"] == 6
    save(photos / "ben" / "x.png", photo(120, 300), "PNG")  # one photo changed: only it is read
    n.update(read=0, probe=0, decode=0, output=0)
    third = run_ingest(photos, root, progress=False)
    assert (third["converted"], third["reused"]) == (1, 5) and n == {"read": 1, "probe": 1, "decode": 1, "output": 0}
    # an output edited behind ingest's back (its stat changed) is hashed again and kept as the user's
    out = root / pd.read_csv(root / "ingest.csv").set_index("source").loc["loose.jpg", "image"]
    out.write_bytes(out.read_bytes() + b"edit")
    res = CliRunner().invoke(main, ["ingest", str(photos), "-o", str(root), "--force"])
    assert res.exit_code == 1 and "was not written by pgprep ingest" in res.output


def test_a_journal_without_output_stats_hashes_the_outputs_once(photos, tmp_path, monkeypatch):
    """A ROOT of the pgkit before issue 20 (journal lines without `out_stat`): the first rerun
    hashes the images it already wrote (reading no photo), records their stat, and the next
    one opens none."""
    import json

    root = tmp_path / "root"
    run_ingest(photos, root, progress=False)
    journal = root / ".pgkit" / "ingest-journal.jsonl"
    lines = [json.loads(line) for line in journal.read_text().splitlines()]
    journal.write_text("".join(json.dumps({k: v for k, v in r.items() if k != "out_stat"}) + "\n" for r in lines))
    n = _count_reads(monkeypatch)
    run_ingest(photos, root, progress=False, force=True)
    assert n["read"] == 0 and n["output"] == 6
    n.update(read=0, probe=0, decode=0, output=0)
    assert run_ingest(photos, root, progress=False, force=True)["reused"] == 6
    assert n == {"read": 0, "probe": 0, "decode": 0, "output": 0}
