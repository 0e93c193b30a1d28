"""pgprep.draw: the shared drawing used by preview, sample grids and figures."""

import numpy as np
import torch

from pgprep import draw, skeleton
from pgprep.geometry import pose_maps


def _kp():
    kp = skeleton.empty()
    kp[skeleton.J["neck"]] = (32, 20, 1)
    kp[skeleton.J["r_shoulder"]] = (24, 20, 1)
    kp[skeleton.J["l_shoulder"]] = (40, 20, 1)
    kp[skeleton.J["r_hip"]] = (27, 40, 1)
    kp[skeleton.J["l_hip"]] = (37, 40, 1)
    return kp


def test_to_uint8_accepts_chw_tensors_and_hwc_arrays():
    x = torch.tensor([-1.0, 0.0, 1.0]).view(3, 1, 1).expand(3, 2, 2)
    img = draw.to_uint8(x)
    assert img.shape == (2, 2, 3) and img.dtype == np.uint8
    assert tuple(img[0, 0]) == (0, 128, 255)
    assert draw.to_uint8(np.zeros((4, 5, 1), np.float32)).shape == (4, 5, 3)


def test_skeleton_colours_right_warm_left_cool():
    img = draw.skeleton_image(_kp(), (64, 64))
    r = img[20, 24].astype(int)  # right shoulder
    left = img[20, 40].astype(int)
    assert r[0] > r[2] and left[2] > left[0]
    assert img[5, 5].sum() == 0  # background untouched


def test_pose_map_image_colours_each_joint():
    kp = _kp()
    img = draw.pose_map_image(pose_maps(kp, (64, 64)))
    assert tuple(img[20, 24]) == tuple(draw.JOINT_COLOURS[skeleton.J["r_shoulder"]])
    assert img[60, 60].sum() == 0


def test_mask_overlay_tints_only_mask():
    img = np.full((8, 8, 3), 100, np.uint8)
    m = np.zeros((8, 8), np.uint8)
    m[2:4, 2:4] = 1
    out = draw.mask_overlay(img, m, color=(255, 0, 0), alpha=0.5)
    assert tuple(out[2, 2]) == (178, 50, 50) and tuple(out[0, 0]) == (100, 100, 100)


def test_grid_places_images_and_labels(tmp_path):
    a = np.full((16, 16, 3), 10, np.uint8)
    b = np.full((16, 16, 3), 200, np.uint8)
    g = draw.grid([[a, b], [b, a]], col_labels=["x", "y"], pad=2)
    top = draw._label_height(16)
    assert g.shape == (top + 2 * 18 + 2, 2 * 18 + 2, 3)
    assert tuple(g[top + 2, 2]) == (10, 10, 10) and tuple(g[top + 2, 20]) == (200, 200, 200)
    draw.save_png(tmp_path / "g.png", g)
    import cv2

    back = cv2.cvtColor(cv2.imread(str(tmp_path / "g.png")), cv2.COLOR_BGR2RGB)
    assert np.array_equal(back, g)
