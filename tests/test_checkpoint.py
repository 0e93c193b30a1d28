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
    assert msg.startswith(f"{path}: IS weights: refused: fc.weight is an object array")
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
    assert str(err.value).startswith(f"{pt}: refused: it holds Python objects other than tensors")
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


# ---------------------------------------------------------------- issue 18 item 12: bombs

def _repack(src, dst, big: dict[str, bytes]):
    """A copy of zip archive `src` whose entries named in `big` hold those bytes, deflated."""
    import zipfile

    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w") as zout:
        for info in zin.infolist():
            name = info.filename
            hit = next((k for k in big if name.endswith(k)), None)
            if hit is None:
                zout.writestr(info, zin.read(name))
            else:
                zout.writestr(name, big[hit], compress_type=zipfile.ZIP_DEFLATED)


def _declare(path, entry_suffix: str, size: int):
    """Patch the central directory so the entry ending with `entry_suffix` declares `size`
    bytes unpacked (what torch's reader allocates), the data unchanged."""
    import struct

    data = bytearray(path.read_bytes())
    i = 0
    while (i := data.find(b"PK\x01\x02", i)) >= 0:
        n = struct.unpack("<H", data[i + 28:i + 30])[0]
        if bytes(data[i + 46:i + 46 + n]).endswith(entry_suffix.encode()):
            data[i + 24:i + 28] = struct.pack("<I", size)
        i += 4
    path.write_bytes(bytes(data))


def test_a_pt_decompression_bomb_is_refused_before_torch_allocates(tmp_path):
    """A 14 MB .pt with one deflated storage declaring 3 GiB loaded at 3.4 GB RSS; now the
    zip directory's declared sizes are checked first (here a 64 MiB entry against a 1 MiB
    limit, and a 3 GiB declaration against the default)."""
    import torch

    from pgtrain import checkpoint

    plain = tmp_path / "plain.pt"
    torch.save({"w": torch.zeros(16 << 20)}, plain)  # 64 MiB of float32 zeros
    bomb = tmp_path / "bomb.pt"
    _repack(plain, bomb, {"data/0": bytes(64 << 20)})
    assert bomb.stat().st_size < 1 << 20
    with pytest.raises(PgkitError, match=r"entries declare 67,109,\d+ bytes unpacked from a [\d,]+-byte file, "
                                         r"over the limit of 1,048,576") as err:
        checkpoint.safe_torch_load(bomb, limit=1 << 20)
    assert err.value.path == str(bomb)
    assert checkpoint.safe_torch_load(bomb)["w"].shape == (16 << 20,)  # within the default limit

    small = tmp_path / "small.pt"
    checkpoint.save(small, {"options": {}, "stage": 1, "step": 0, "nets": {"g1": {"w": torch.zeros(1000)}}})
    _repack(small, bomb, {"data/0": bytes(4000)})
    _declare(bomb, "data/0", 3 << 30)
    with pytest.raises(PgkitError, match=r"declare 3,221,22\d,\d+ bytes unpacked") as err:
        checkpoint.load(bomb)  # what eval, generate and fit --resume call
    assert err.value.path == str(bomb)


def test_an_npz_bomb_is_refused_from_its_headers(tmp_path):
    """A 3 MB .npz took 3.4 GB then asked for 6.4 GB; the zip sizes and each .npy header
    (shape x dtype against the entry) are read before any array is allocated."""
    import zipfile

    from pgtrain import checkpoint

    good = tmp_path / "good.npz"
    np.savez(good, a=np.arange(6, dtype=np.float32).reshape(2, 3), b=np.int64(7))
    got = checkpoint.safe_npz_load(good)
    np.testing.assert_array_equal(got["a"], np.arange(6, dtype=np.float32).reshape(2, 3))
    assert got["b"] == 7

    bomb = tmp_path / "bomb.npz"
    np.savez_compressed(bomb, w=np.zeros(8 << 20, np.uint8))
    assert bomb.stat().st_size < 100_000
    with pytest.raises(PgkitError, match=r"entries declare 8,388,\d+ bytes unpacked .* over the limit of 1,048,576"):
        checkpoint.safe_npz_load(bomb, limit=1 << 20)

    liar = tmp_path / "liar.npz"  # a header declaring 10^9 float64 over 80 bytes of data
    header = np.lib.format.header_data_from_array_1_0(np.zeros(10, np.float64))
    header["shape"] = (10**9,)
    buf = __import__("io").BytesIO()
    np.lib.format.write_array_header_1_0(buf, header)
    with zipfile.ZipFile(liar, "w") as z:
        z.writestr("w.npy", buf.getvalue() + bytes(80))
    with pytest.raises(PgkitError, match=r"w declares shape \(1000000000,\) of float64 \(8,000,000,000 bytes\) "
                                         r"but its entry holds \d+") as err:
        checkpoint.safe_npz_load(liar)
    assert err.value.path == str(liar)

    objects = tmp_path / "objects.npz"
    np.savez(objects, w=np.array([{"a": 1}, None], dtype=object))
    with pytest.raises(PgkitError, match="refused: w is an object array"):
        checkpoint.safe_npz_load(objects)


def _tiny_checkpoint(path, options, width=4):
    from pgtrain import checkpoint, nets

    opts = {"image_size": [32, 32], "channels": width, "fc_dim": 8, "preset": "g1"}
    state = {"options": {**opts, **options} if isinstance(options, dict) else options, "stage": 1,
             "step": 1, "done": True, "nets": {"g1": nets.build("g1", opts).state_dict()}}
    checkpoint.save(path, state)
    return path


def test_options_wider_than_the_weights_are_refused_before_building(tmp_path, monkeypatch):
    """channels=300 beside 4-wide weights built a 300-wide G1 (1.07 GB at 256 px) before the
    shape error; now the shapes are compared on the meta device and nothing real is built."""
    import torch

    from pgtrain import checkpoint, nets

    path = _tiny_checkpoint(tmp_path / "run" / "checkpoints" / "last.pt", {"channels": 300})
    built = []
    real_build = nets.build
    monkeypatch.setattr(nets, "build", lambda kind, o: (built.append(torch.empty(0).device.type), real_build(kind, o))[1])
    with pytest.raises(PgkitError, match=r"its G1 does not match this pgkit's G1 \(.*: the checkpoint holds "
                                         r"\(\d+, \d+, 3, 3\), its options imply \(300, \d+, 3, 3\)\)") as err:
        checkpoint.load_generators(tmp_path / "run")
    assert err.value.path == str(path) and built == ["meta"]


@pytest.mark.parametrize("options, words", [
    (["not", "a", "dict"], "its options must be an object"),
    ({"pose_radius": float("inf")}, "pose radius must be a number in"),
    ({"channels": 10**400}, "option channels must be a whole number in 1..1024"),
    ({"image_size": [32, 10**9]}, "option image_size must be"),
])
def test_bad_checkpoint_options_are_one_line_naming_the_checkpoint(tmp_path, options, words):
    """Issue 18 item 20: options not a dict, pose_radius inf: a TypeError / bad pose maps."""
    from pgtrain import checkpoint

    path = _tiny_checkpoint(tmp_path / "run" / "checkpoints" / "last.pt", options)
    with pytest.raises(PgkitError, match=words) as err:
        checkpoint.load_generators(tmp_path / "run")
    assert err.value.path == str(path) and "\n" not in str(err.value) and len(str(err.value)) < 300
