"""pgtrain.checkpoint: load errors name the file in our words (issue 12, case 16)."""

from __future__ import annotations

import numpy as np
import pytest

from pgprep.errors import PgkitError


def test_object_array_npz_is_refused_naming_the_file(tmp_path):
    from pgtrain.metrics.inception import _read_head

    path = tmp_path / "head.npz"
    np.savez(path, **{"fc.weight": np.array([{"a": 1}, None], dtype=object)})
    with pytest.raises(PgkitError) as err:
        _read_head(path)
    msg = str(err.value)
    assert msg.startswith(f"{path}: IS weights: refused: it holds an object array")
    assert "allow_pickle" not in msg


def test_broken_npz_and_torch_files_name_the_file(tmp_path):
    from pgtrain.metrics.inception import _read_head

    bad = tmp_path / "head.npz"
    bad.write_bytes(b"PK\x03\x04garbage")
    with pytest.raises(PgkitError, match="not a readable .npz file") as err:
        _read_head(bad)
    assert err.value.path == str(bad)
    pt = tmp_path / "head.pt"
    import argparse

    import torch

    torch.save({"fc.weight": argparse.Namespace()}, pt)
    with pytest.raises(PgkitError) as err:
        _read_head(pt)
    assert str(err.value).startswith(f"{pt}: not a TorchScript classifier, state dict or .npz: refused")
    assert "weights_only" not in str(err.value)


def test_a_checkpoint_of_other_networks_is_a_clean_error(tmp_path):
    from pgprep.errors import PgkitError
    from pgtrain import checkpoint, nets

    opts = {"image_size": [32, 32], "channels": 4, "fc_dim": 8, "preset": "g1"}
    other = {**opts, "channels": 8}
    state = {"options": opts, "stage": 1, "step": 1, "done": True,
             "nets": {"g1": nets.build("g1", other).state_dict()}}
    path = tmp_path / "run" / "checkpoints" / "last.pt"
    checkpoint.save(path, state)
    with pytest.raises(PgkitError, match="does not match this pgkit's G1") as e:
        checkpoint.load_generators(tmp_path / "run")
    assert str(path) in str(e.value)
