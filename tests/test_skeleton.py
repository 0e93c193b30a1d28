"""COCO-18 skeleton: flips, conversions, column round trips, against hand-made examples."""

import numpy as np
import pandas as pd
import pytest

from pgprep import skeleton as sk


def hand_skeleton():
    """A front-facing person in a 100-px-wide image: the person's right is the image's left."""
    kp = sk.empty()
    coords = {
        "nose": (50, 10), "neck": (50, 20), "r_shoulder": (40, 20), "r_elbow": (35, 35),
        "r_wrist": (33, 50), "l_shoulder": (60, 20), "l_elbow": (65, 35), "l_wrist": (67, 50),
        "r_hip": (44, 55), "r_knee": (43, 75), "r_ankle": (42, 95), "l_hip": (56, 55),
        "l_knee": (57, 75), "l_ankle": (58, 95), "r_eye": (47, 8), "l_eye": (53, 8),
        "r_ear": (44, 9),
    }  # l_ear missing
    for name, (x, y) in coords.items():
        kp[sk.J[name]] = (x, y, 0.9)
    return kp


def test_flip_by_hand():
    kp = hand_skeleton()
    f = sk.flip(kp, width=100)
    # the mirrored person's right shoulder is the old left shoulder at x = 99 - 60 = 39
    assert f[sk.J["r_shoulder"]].tolist() == pytest.approx([39, 20, 0.9])
    assert f[sk.J["l_shoulder"]].tolist() == pytest.approx([59, 20, 0.9])
    assert f[sk.J["r_wrist"]].tolist() == pytest.approx([32, 50, 0.9])
    assert f[sk.J["nose"]].tolist() == pytest.approx([49, 10, 0.9])
    # the missing left ear becomes a missing right ear; the old right ear becomes the left ear
    assert f[sk.J["r_ear"]].tolist() == [-1, -1, 0]
    assert f[sk.J["l_ear"]].tolist() == pytest.approx([55, 9, 0.9])
    # a mirrored front view is still a front view: the right side stays on the image's left
    # (without the channel swap it would wrongly move to the image's right)
    assert f[sk.J["r_hip"], 0] < f[sk.J["l_hip"], 0]
    assert f[sk.J["r_hip"]].tolist() == pytest.approx([43, 55, 0.9])


def test_flip_twice_is_identity_and_batched():
    kp = hand_skeleton()
    np.testing.assert_array_equal(sk.flip(sk.flip(kp, 100), 100), kp)
    batch = np.stack([kp, sk.flip(kp, 100)])
    np.testing.assert_array_equal(sk.flip(batch, 100)[0], sk.flip(kp, 100))


def test_flip_perm_is_an_involution_swapping_left_and_right():
    perm = sk.FLIP_PERM
    assert (perm[perm] == np.arange(18)).all()
    for i, name in enumerate(sk.JOINTS):
        other = sk.JOINTS[perm[i]]
        if name.startswith(("r_", "l_")):
            assert other == {"r": "l", "l": "r"}[name[0]] + name[1:]
        else:
            assert other == name


def test_limbs_match_pg2_list():
    assert len(sk.LIMBS) == 23
    assert (1, 2) in sk.LIMBS and (16, 17) in sk.LIMBS  # 2-3 and 17-18 in 1-based
    assert all(0 <= a < 18 and 0 <= b < 18 for a, b in sk.LIMBS)


def test_body25_hand_example():
    kp25 = np.zeros((25, 3), np.float32)
    for i in range(25):
        kp25[i] = (100 + i, 200 + i, 0.5)
    kp25[4] = 0  # right wrist not detected
    coco = sk.from_body25(kp25)
    assert coco[sk.J["r_hip"]].tolist() == pytest.approx([109, 209, 0.5])  # BODY_25 9
    assert coco[sk.J["l_ankle"]].tolist() == pytest.approx([114, 214, 0.5])  # BODY_25 14
    assert coco[sk.J["l_ear"]].tolist() == pytest.approx([118, 218, 0.5])  # BODY_25 18
    assert coco[sk.J["r_wrist"]].tolist() == [-1, -1, 0]
    assert coco[sk.J["neck"]].tolist() == pytest.approx([101, 201, 0.5])


def test_coco17_and_blazepose_neck_is_mid_shoulders():
    kp17 = np.zeros((17, 3), np.float32)
    kp17[5] = (60, 20, 1)  # left shoulder
    kp17[6] = (40, 22, 1)  # right shoulder
    kp17[0] = (50, 10, 1)
    c = sk.from_coco17(kp17)
    assert c[sk.J["neck"]].tolist() == pytest.approx([50, 21, 1])
    assert c[sk.J["r_shoulder"]].tolist() == pytest.approx([40, 22, 1])
    assert c[sk.J["l_eye"]].tolist() == [-1, -1, 0]

    kp33 = np.zeros((33, 3), np.float32)
    kp33[11] = (60, 20, 0.8)
    kp33[12] = (40, 20, 0.6)
    kp33[27] = (58, 95, 0.9)  # left ankle
    kp33[5] = (47, 8, 0.7)  # right eye
    b = sk.from_blazepose(kp33)
    assert b[sk.J["neck"]].tolist() == pytest.approx([50, 20, 0.6])
    assert b[sk.J["l_ankle"]].tolist() == pytest.approx([58, 95, 0.9])
    assert b[sk.J["r_eye"]].tolist() == pytest.approx([47, 8, 0.7])


def test_openpose_list_round_trip_and_missing_zeros():
    kp = hand_skeleton()
    values = sk.to_openpose_list(kp)
    assert len(values) == 54
    assert values[17 * 3:] == [0, 0, 0]  # missing l_ear -> 0, 0, 0
    np.testing.assert_allclose(sk.from_openpose_list(values), kp, atol=1e-3)
    with pytest.raises(ValueError, match="54"):
        sk.from_openpose_list([1.0] * 30)


def test_columns_round_trip():
    kp = hand_skeleton()
    row = sk.to_columns(kp)
    assert list(row) == sk.KP_COLUMNS
    np.testing.assert_allclose(sk.from_columns(row), kp, atol=1e-2)
    frame = pd.DataFrame([row, sk.to_columns(sk.flip(kp, 100))])
    both = sk.frame_columns(frame)
    np.testing.assert_allclose(both[1], sk.flip(kp, 100), atol=1e-2)


def test_clean_turns_nan_into_missing():
    kp = hand_skeleton()
    kp[3] = (np.nan, 5, 0.9)
    c = sk.clean(kp)
    assert c[3].tolist() == [-1, -1, 0]
    assert sk.present(c).sum() == 16


def test_openpose_list_offframe_and_body25_are_the_readers_rules():
    """Issue 21: formats.read_openpose_people converts through `from_openpose_list` (its copy
    `_coco18` is gone): score <= 0 is missing; `offframe` keeps a detected joint's negative
    coordinates; BODY_25 maps through BODY25_TO_COCO18."""
    rng = np.random.default_rng(0)
    v = rng.uniform(-20, 100, (25, 3)).astype(np.float32)
    v[::4, 2] = 0.0  # undetected
    v[[1, 2], 2] = 0.9
    v[1, 0] = -3.0  # neck detected left of the frame
    want = sk.from_body25(v)
    want[want[:, 2] <= 0] = (sk.MISSING, sk.MISSING, 0.0)
    np.testing.assert_array_equal(sk.from_openpose_list(v.ravel().tolist()), sk.clean(want))
    raw = sk.from_openpose_list(v.ravel(), offframe=True)
    np.testing.assert_array_equal(raw, np.where(v[sk.BODY25_TO_COCO18, 2:] > 0, v[sk.BODY25_TO_COCO18],
                                                np.float32([sk.MISSING, sk.MISSING, 0.0])))
    assert raw[1, 0] == -3.0 and sk.from_openpose_list(v.ravel())[1, 2] == 0.0
    np.testing.assert_array_equal(sk.clean(raw), sk.from_openpose_list(v.ravel()))
    v18 = v[:18].ravel()
    np.testing.assert_array_equal(sk.from_openpose_list(v18, offframe=True)[:, 2], np.where(v[:18, 2] > 0, v[:18, 2], 0))
