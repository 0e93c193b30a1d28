"""Pose maps and body masks (pgprep.geometry) against hand-computed values and naive references;
flips of skeletons, maps and masks agree with each other."""

from __future__ import annotations

import numpy as np
import pytest

from pgprep import geometry as g
from pgprep import skeleton as sk


def person(w: int = 64) -> np.ndarray:
    """A front-facing person; the person's right is the image's left. l_ear missing."""
    kp = sk.empty()
    pts = {
        "nose": (32, 8), "neck": (32, 14), "r_shoulder": (26, 14), "r_elbow": (24, 22),
        "r_wrist": (23, 30), "l_shoulder": (38, 14), "l_elbow": (40, 22), "l_wrist": (41, 30),
        "r_hip": (28, 34), "r_knee": (28, 44), "r_ankle": (28, 54), "l_hip": (36, 34),
        "l_knee": (36, 44), "l_ankle": (36, 54), "r_eye": (31, 7), "l_eye": (33, 7),
        "r_ear": (30, 8),
    }
    for name, (x, y) in pts.items():
        kp[sk.J[name]] = (x, y, 0.8)
    return kp


def naive_maps(kp, h, w, kind, radius=4.0, sigma=6.0):
    """Independent reference: pixel loops over the (small) image, per joint."""
    out = np.full((18, h, w), -1.0)
    for j in range(18):
        if kp[j, 2] <= 0:
            continue
        for y in range(h):
            for x in range(w):
                d2 = (x - kp[j, 0]) ** 2 + (y - kp[j, 1]) ** 2
                if kind == "disk":
                    out[j, y, x] = 1.0 if d2 <= radius * radius else -1.0
                else:
                    out[j, y, x] = 2.0 * np.exp(-d2 / (2 * sigma * sigma)) - 1.0
    return out


# ---------------------------------------------------------------- flips (hand-computed)

def test_flip_by_hand_coordinates_and_channels():
    kp = person()
    f = sk.flip(kp, 64)
    # new r_shoulder = old l_shoulder (38, 14) mirrored: 63 - 38 = 25
    assert f[sk.J["r_shoulder"]].tolist() == pytest.approx([25, 14, 0.8])
    assert f[sk.J["l_shoulder"]].tolist() == pytest.approx([37, 14, 0.8])  # 63 - 26
    assert f[sk.J["r_wrist"]].tolist() == pytest.approx([22, 30, 0.8])  # 63 - 41
    assert f[sk.J["l_ankle"]].tolist() == pytest.approx([35, 54, 0.8])  # 63 - 28
    assert f[sk.J["neck"]].tolist() == pytest.approx([31, 14, 0.8])
    assert f[sk.J["r_ear"]].tolist() == [-1, -1, 0]  # the missing l_ear moved to r_ear
    assert f[sk.J["l_ear"]].tolist() == pytest.approx([33, 8, 0.8])  # 63 - 30
    # the channel order is the COCO-18 permutation
    assert sk.FLIP_PERM.tolist() == [0, 1, 5, 6, 7, 2, 3, 4, 11, 12, 13, 8, 9, 10, 15, 14, 17, 16]
    np.testing.assert_array_equal(sk.flip(f, 64), kp)


def test_pose_map_of_flipped_skeleton_is_mirrored_and_channel_swapped():
    kp = person()
    for kind in ("disk", "gaussian"):
        m = g.pose_maps(kp, (64, 64), kind)
        mf = g.pose_maps(sk.flip(kp, 64), (64, 64), kind)
        expect = m[sk.FLIP_PERM][:, :, ::-1]
        np.testing.assert_allclose(mf, expect, atol=1e-6)


def test_mask_of_flipped_skeleton_is_the_mirror():
    kp = person()
    m = g.body_mask(kp, (64, 64))
    np.testing.assert_array_equal(g.body_mask(sk.flip(kp, 64), (64, 64)), m[:, ::-1])


# ---------------------------------------------------------------- pose maps

@pytest.mark.parametrize("kind", ["disk", "gaussian"])
def test_pose_maps_match_naive_reference(kind):
    kp = person()
    kp[sk.J["r_elbow"], :2] = (24.4, 21.7)  # sub-pixel joint
    kp[sk.J["nose"], :2] = (1.0, 62.5)  # near a corner: disk clipped at the frame
    got = g.pose_maps(kp, (64, 48), kind)
    ref = naive_maps(kp, 64, 48, kind)
    assert got.shape == (18, 64, 48) and got.dtype == np.float32
    np.testing.assert_allclose(got, ref, atol=1e-5)


def test_disk_peaks_on_joints_radius_and_missing():
    kp = person()
    m = g.pose_maps(kp, (64, 64), "disk", radius=4)
    assert m.min() == -1.0 and m.max() == 1.0 and set(np.unique(m)) == {-1.0, 1.0}
    for j in range(18):
        if kp[j, 2] > 0:
            x, y = int(kp[j, 0]), int(kp[j, 1])
            assert m[j, y, x] == 1.0
            ys, xs = np.nonzero(m[j] > 0)
            # integer centre, radius 4: 49 pixels, centroid on the joint, spans 9 px
            assert len(ys) == 49
            assert (xs.mean(), ys.mean()) == pytest.approx((x, y))
            assert xs.max() - xs.min() == 8
        else:
            assert (m[j] == -1).all()
    assert (m[sk.J["l_ear"]] == -1).all()


def test_gaussian_peak_subpixel_and_range():
    kp = sk.empty()
    kp[sk.J["neck"]] = (20.3, 30.8, 1)
    kp[sk.J["nose"]] = (40, 10, 1)
    m = g.pose_maps(kp, (64, 64), "gaussian", sigma=6)
    assert m.min() >= -1.0 and m.max() <= 1.0
    assert m[sk.J["nose"], 10, 40] == pytest.approx(1.0)
    assert m[sk.J["nose"], 10, 46] == pytest.approx(2 * np.exp(-36 / 72) - 1, abs=1e-6)  # 1 sigma
    neck = (m[sk.J["neck"]] + 1) / 2
    y, x = np.unravel_index(np.argmax(neck), neck.shape)
    assert (x, y) == (20, 31)  # the nearest pixel to (20.3, 30.8)
    # the centroid of the (untruncated in the interior) Gaussian is the sub-pixel joint
    yy, xx = np.mgrid[0:64, 0:64]
    assert (neck * xx).sum() / neck.sum() == pytest.approx(20.3, abs=0.02)
    assert (neck * yy).sum() / neck.sum() == pytest.approx(30.8, abs=0.02)
    assert neck[31, 20] == pytest.approx(np.exp(-(0.3**2 + 0.2**2) / 72), abs=1e-6)
    for j in set(range(18)) - {sk.J["neck"], sk.J["nose"]}:
        assert (m[j] == -1).all()


def test_pose_maps_batched_equals_single():
    kp = person()
    batch = np.stack([kp, sk.flip(kp, 64), sk.empty()])
    for kind in ("disk", "gaussian"):
        out = g.pose_maps(batch, (64, 64), kind)
        assert out.shape == (3, 18, 64, 64)
        for i in range(3):
            np.testing.assert_array_equal(out[i], g.pose_maps(batch[i], (64, 64), kind))
        assert (out[2] == -1).all()


def test_pose_maps_out_of_frame_joint_and_bad_kind():
    kp = sk.empty()
    kp[0] = (70, 70, 1)  # outside a 64x64 frame, disk does not reach in
    kp[1] = (66, 30, 1)  # 2 px right of the frame: the disk's left part is visible
    m = g.pose_maps(kp, (64, 64), "disk")
    assert (m[0] == -1).all()
    assert (m[1] > 0).sum() == sum(1 for dy in range(-4, 5) for x in range(60, 64)
                                   if (x - 66) ** 2 + dy * dy <= 16)
    with pytest.raises(ValueError, match="kind"):
        g.pose_maps(kp, (64, 64), "square")


# ---------------------------------------------------------------- body masks

def test_limb_points_follow_pg2():
    kp = sk.empty()
    kp[sk.J["neck"]] = (10, 10, 1)
    kp[sk.J["r_shoulder"]] = (30, 10, 1)  # limb 2-3, length 20, radius 4: 5 segments
    pts = g.limb_points(kp, radius=4)
    np.testing.assert_allclose(pts, [[10, 10], [14, 10], [18, 10], [22, 10], [26, 10], [30, 10]])
    kp[sk.J["r_shoulder"]] = (13, 10, 1)  # shorter than the radius: both ends only
    np.testing.assert_allclose(g.limb_points(kp, radius=4), [[10, 10], [13, 10]])


def test_body_mask_by_hand_single_limb():
    kp = sk.empty()
    kp[sk.J["neck"]] = (10, 20, 1)
    kp[sk.J["r_shoulder"]] = (30, 20, 1)
    m = g.body_mask(kp, (40, 40), radius=4, close=5)
    assert m.dtype == np.uint8 and set(np.unique(m)) <= {0, 1}
    # a horizontal capsule: x in [6, 34] on the limb's row, y in [16, 24] at a disk centre
    assert np.flatnonzero(m[20]).tolist() == list(range(6, 35))
    assert np.flatnonzero(m[:, 10]).tolist() == list(range(16, 25))
    assert m[20, 5] == 0 and m[15, 10] == 0
    # closing fills the dents between disks: the capsule's edge row y = 16 is solid from 10 to 30
    assert m[16, 10:31].all()
    # no limb with both ends present -> empty mask
    lone = sk.empty()
    lone[0] = (5, 5, 1)
    assert not g.body_mask(lone, (40, 40)).any()


def test_body_mask_disk_centred_outside_the_frame_is_clipped_not_lost():
    # a short limb whose both ends lie just below a 40x40 frame (as in PG², which clipped
    # each disk pixel by pixel, the parts of the disks inside the frame are drawn)
    kp = sk.empty()
    kp[sk.J["neck"]] = (20, 43, 1)
    kp[sk.J["r_shoulder"]] = (20, 42, 1)
    m = g.body_mask(kp, (40, 40), radius=4, close=0)
    # disk at (20, 42), r = 4: row 38 (dy = 4) holds x = 20 only; row 39 (dy = 3) x = 18..22
    assert np.flatnonzero(m[38]).tolist() == [20]
    assert np.flatnonzero(m[39]).tolist() == [18, 19, 20, 21, 22]
    assert not m[:38].any()


def test_body_mask_matches_pixel_loop_and_skimage_closing():
    from skimage.morphology import dilation, erosion

    kp = person()
    kp[sk.J["r_elbow"], :2] = (23.6, 22.5)
    ref = np.zeros((64, 64), np.uint8)
    for cx, cy in g.limb_points(kp, 4):
        for y in range(max(0, int(cy) - 5), min(64, int(cy) + 6)):
            for x in range(max(0, int(cx) - 5), min(64, int(cx) + 6)):
                if np.float32(x - cx) ** 2 + np.float32(y - cy) ** 2 <= 16:
                    ref[y, x] = 1
    foot = np.ones((5, 5), np.uint8)
    ref = erosion(dilation(ref, foot), foot)
    np.testing.assert_array_equal(g.body_mask(kp, (64, 64), radius=4, close=5), ref)
    with pytest.raises(ValueError, match="odd"):
        g.body_mask(kp, (64, 64), close=4)


def test_non_finite_joints_count_as_missing():
    kp = person()
    kp[sk.J["r_wrist"], 0] = np.inf
    kp[sk.J["l_wrist"], 1] = np.nan
    for kind in ("disk", "gaussian"):
        m = g.pose_maps(kp, (64, 64), kind)
        assert np.isfinite(m).all()
        assert (m[sk.J["r_wrist"]] == -1).all() and (m[sk.J["l_wrist"]] == -1).all()
    ok = kp.copy()
    ok[[sk.J["r_wrist"], sk.J["l_wrist"]]] = (-1, -1, 0)
    np.testing.assert_array_equal(g.body_mask(kp, (64, 64)), g.body_mask(ok, (64, 64)))


# ---------------------------------------------------------------- masks are read under the image policy

def png_bomb(h: int = 30000, w: int = 30000, record: dict | None = None) -> bytes:
    """A valid 1-bit greyscale PNG of h x w zeros (30000x30000: ~110 KB, 900 MB once decoded to
    8 bits), optionally carrying a `pgkit-mask` record: issue 18 item 8's mask bomb."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    z, row = zlib.compressobj(9), bytes(1 + (w + 7) // 8)
    body = b"".join(z.compress(row * 1000) for _ in range(h // 1000)) + z.compress(row * (h % 1000)) + z.flush()
    png = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 1, 0, 0, 0, 0))
    png += chunk(b"IDAT", body) + chunk(b"IEND", b"")
    if record is not None:
        from pgprep.masks import add_record

        png = add_record(png, record)
    return png


def test_read_mask_checks_the_header_before_decoding(tmp_path):
    """Issue 18 item 8. Before: read_mask decoded whatever the PNG declared (2.7 GB for a
    30000x30000 bomb in pack and preview). After: the pixel limit and the expected size are
    checked from the header; nothing is decoded."""
    from pgprep.errors import PgkitError

    bomb = tmp_path / "bomb.png"
    bomb.write_bytes(png_bomb())
    assert bomb.stat().st_size < 200_000
    with pytest.raises(PgkitError, match=r"bomb.png: unusable mask: image too large: the header claims "
                                         r"900,000,000 pixels, over the limit of 50,000,000"):
        g.read_mask(bomb)
    small = tmp_path / "small.png"
    small.write_bytes(png_bomb(128, 96))  # under the pixel limit, but not the image's size
    with pytest.raises(PgkitError, match=r"small.png: mask is 128x96 \(HxW\), expected 64x64"):
        g.read_mask(small, (64, 64))
    assert g.read_mask(small).shape == (128, 96) and not g.read_mask(small).any()
    empty = tmp_path / "empty.png"
    empty.write_bytes(b"")
    with pytest.raises(PgkitError, match="empty.png: unusable mask: empty image file"):
        g.read_mask(empty, (64, 64))
    jpeg = tmp_path / "jpeg.png"
    jpeg.write_bytes(g.encode_jpeg(np.zeros((64, 64, 3), np.uint8)))
    with pytest.raises(PgkitError, match="jpeg.png: unusable mask: a JPEG file, not a PNG"):
        g.read_mask(jpeg, (64, 64))


# ---------------------------------------------------------------- parse_hw and Letterbox

def test_parse_hw_is_the_one_hxw_parser():
    from pgprep.errors import PgkitError
    from pgprep.geometry import parse_hw

    assert parse_hw("256") == (256, 256) and parse_hw(" 256 X 176 ") == (256, 176)
    assert parse_hw(64) == (64, 64) and parse_hw((256, 176)) == (256, 176)
    with pytest.raises(PgkitError, match="N or HxW"):
        parse_hw("256x")
    with pytest.raises(PgkitError, match="outside 16..4096"):
        parse_hw("8x8", lo=16, hi=4096)


def test_letterbox_image_keypoints_and_box_agree():
    from pgprep.geometry import Letterbox

    f = Letterbox.fit((100, 300), (64, 64))  # wide photo: white bars above and below
    assert (f.new_h, f.new_w, f.pad_x, f.pad_y) == (21, 64, 0, 21) and f.box == (0.0, 21.0, 64.0, 42.0)
    img = np.zeros((100, 300, 3), np.uint8)
    img[50, 150] = 255
    out = f.image(img)
    assert (out[:21] == 255).all() and (out[42:] == 255).all() and (out[21:42] < 255).any()
    kp = np.full((2, 18, 3), -1.0, np.float32)
    kp[:, 0] = (150, 50, 0.9)
    moved = f.keypoints(kp)  # batches too; the bright pixel lands where its keypoint does
    assert moved.shape == (2, 18, 3) and (moved[:, 1] == -1).all()
    x, y = moved[0, 0, :2]
    assert out[int(round(y)), int(round(x))].max() > 0 and f.box[1] <= y < f.box[3]
    ident = Letterbox.fit((64, 64), (64, 64))
    assert ident.identity and ident.image(img[:64, :64]) is not None
    np.testing.assert_array_equal(ident.keypoints(kp), kp)
