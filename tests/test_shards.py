"""The shard format: both layouts decode to the same tensors; verify and inspect."""

from __future__ import annotations

import json
import shutil

import h5py
import numpy as np
import pytest
from click.testing import CliRunner
from test_pack import make_work

from pgprep import shards
from pgprep.cli import main as pgprep_main
from pgprep.pack import run_pack


@pytest.fixture(scope="module")
def packed(tmp_path_factory):
    base = tmp_path_factory.mktemp("shards")
    work = make_work(base, items=3, views=3, size=48)
    run_pack(work, base / "compact", jobs=1, max_pairs=12)
    run_pack(work, base / "dense", layout="dense", jobs=1, max_pairs=12)
    run_pack(work, base / "gauss", jobs=1, pose_kind="gaussian", pose_sigma=3.0)
    return base


def _readers(d):
    index = shards.read_index(d)
    return [shards.ShardReader(d / e["file"]) for e in index["shards"]]


def test_compact_and_dense_decode_to_identical_examples(packed):
    n = 0
    for rc, rd in zip(_readers(packed / "compact"), _readers(packed / "dense"), strict=True):
        assert len(rc) == len(rd) > 0
        for i in range(len(rc)):
            assert rc.names(i) == rd.names(i)
            ec, ed = rc.example(i), rd.example(i)
            for k in ("condition", "target", "pose", "mask", "keypoints"):
                assert ec[k].dtype == ed[k].dtype == np.float32
                np.testing.assert_array_equal(ec[k], ed[k], err_msg=f"{k} of pair {i}")
            raw_c, raw_d = rc.raw(i), rd.raw(i)
            for k in ("condition", "target", "mask", "keypoints"):
                np.testing.assert_array_equal(raw_c[k], raw_d[k])
            n += 1
    assert n == 3 * 3 * 2 * 2  # 3 items x 6 ordered pairs x (flip 0, flip 1)


def test_gaussian_pose_settings_travel_with_the_shards(packed):
    r = _readers(packed / "gauss")[0]
    # sigma given; the unused disk radius is PG²'s 4 scaled to the 48-px height
    assert r.meta["pose"] == {"kind": "gaussian", "radius": 0.75, "sigma": 3.0}
    kp = r.example(0)["keypoints"]
    pose = r.example(0)["pose"]
    j = int(np.flatnonzero(kp[:, 2] > 0)[0])
    x, y = kp[j, :2]
    yy, xx = np.mgrid[0:48, 0:48]
    want = 2 * np.exp(-((xx - x) ** 2 + (yy - y) ** 2) / (2 * 9.0)) - 1
    np.testing.assert_allclose(pose[j], want, atol=1e-5)


def test_verify_passes_then_names_the_shard_with_one_flipped_byte(packed, tmp_path):
    d = tmp_path / "copy"
    shutil.copytree(packed / "compact", d)
    r = CliRunner().invoke(pgprep_main, ["verify", str(d)])
    assert r.exit_code == 0 and r.output.startswith("ok: 3 shards"), r.output
    victim = d / "train-00001.h5"
    data = bytearray(victim.read_bytes())
    data[len(data) // 2] ^= 0x01
    victim.write_bytes(bytes(data))
    problems = shards.verify(d)
    assert len(problems) == 1 and problems[0].startswith(str(victim)) and "sha256" in problems[0]
    r = CliRunner().invoke(pgprep_main, ["verify", str(d)])
    assert r.exit_code == 1 and "train-00001.h5" in r.output and "train-00000.h5" not in r.output


def test_verify_checks_schema_not_only_hashes(packed, tmp_path):
    d = tmp_path / "copy"
    shutil.copytree(packed / "compact", d)
    index = json.loads((d / "index.json").read_text())
    index["shards"][0]["pairs"] += 1  # hashes still match, the schema does not
    (d / "index.json").write_text(json.dumps(index))
    with pytest.raises(shards.PgkitError, match="index.json: split train claims 24 pairs, its shards list 25"):
        shards.verify(d)  # the index itself no longer adds up
    index["splits"]["train"]["pairs"] += 1
    (d / "index.json").write_text(json.dumps(index))
    problems = shards.verify(d)
    assert any("train-00000.h5: attribute pairs=12, index.json says 13" in p for p in problems), problems
    (d / "index.json").write_text(json.dumps({**index, "format": "other"}))
    r = CliRunner().invoke(pgprep_main, ["verify", str(d)])
    assert r.exit_code == 1 and "index.json" in r.output


def test_inspect_reports_pairs_images_bytes_and_attributes(packed):
    r = CliRunner().invoke(pgprep_main, ["inspect", str(packed / "compact")])
    assert r.exit_code == 0, r.output
    size = sum(p.stat().st_size for p in (packed / "compact").glob("train-*.h5"))
    line = next(ln for ln in r.output.splitlines() if ln.startswith("| train"))
    cells = [c.strip() for c in line.strip("|").split("|")]
    assert cells[1:4] == ["2", "24", "6"]
    assert cells[4].replace(",", "") == str(size) and cells[5] == str(round(size / 24))
    for text in ("normalisation: (x - 127.5) / 127.5", "pose_kind: disk", "layout: compact",
                 "images/jpeg", "images/mask", "gzip"):
        assert text in r.output


def test_shard_attributes_explain_the_file(packed):
    with h5py.File(packed / "compact" / "train-00000.h5", "r") as f:
        a = dict(f.attrs)
    assert a["format"] == "pgkit-shards" and a["schema_version"] == 1 and a["layout"] == "compact"
    assert list(a["image_size"]) == [48, 48] and a["pose_radius"] == 0.75  # PG²'s 4 at 256 px, scaled
    assert json.loads(a["joints"])[2] == "r_shoulder" and list(a["flip_perm"])[2] == 5


def test_same_inputs_give_byte_identical_shards(packed, tmp_path):
    work = packed / "work"
    run_pack(work, tmp_path / "again", jobs=1, max_pairs=12)
    for p in (packed / "compact").glob("*.h5"):
        assert (tmp_path / "again" / p.name).read_bytes() == p.read_bytes()


# ---------------------------------------------------------------- issue 12: index.json on read

def _edit_index(src, dst, edit):
    shutil.copytree(src, dst)
    index = json.loads((dst / "index.json").read_text())
    edit(index)
    (dst / "index.json").write_text(json.dumps(index))
    return dst


def _set(path, value):
    def edit(index):
        *head, last = path
        obj = index
        for k in head:
            obj = obj[k]
        obj[last] = value
    return edit


BAD_INDEXES = {  # edit -> words the error must contain (it always names index.json)
    "sigma 0": (_set(["pose", "sigma"], 0.0), "sigma"),
    "radius nan": (_set(["pose", "radius"], float("nan")), "radius"),
    "radius text": (_set(["pose", "radius"], "4"), "radius"),
    "pose kind": (_set(["pose", "kind"], "star"), "kind"),
    "image_size short": (_set(["image_size"], [48]), "image_size"),
    "image_size zero": (_set(["image_size"], [0, 48]), "image_size"),
    "layout": (_set(["layout"], "sparse"), "layout"),
    "shards not a list": (_set(["shards"], {"a": 1}), "shards"),
    "pairs text": (_set(["shards", 0, "pairs"], "12"), "pairs"),
    "pairs negative": (_set(["shards", 0, "pairs"], -1), "pairs"),
    "split unknown": (_set(["shards", 0, "split"], "val"), "split"),
    "sha256 not hex": (_set(["shards", 0, "sha256"], 5), "sha256"),
    "file ..": (_set(["shards", 0, "file"], "../compact/train-00000.h5"), "refused"),
    "file absolute": (_set(["shards", 0, "file"], "/tmp/train-00000.h5"), "refused"),
    "split total": (_set(["splits", "train", "pairs"], 5), "split train"),
    "removed garbage": (_set(["removed"], [{"image": 1}]), "removed"),
}


@pytest.mark.parametrize("case", list(BAD_INDEXES))
def test_a_malformed_index_is_refused_on_every_read_naming_index_json(packed, tmp_path, case):
    from pgprep.errors import PgkitError
    from pgtrain.data import PairDataset

    edit, words = BAD_INDEXES[case]
    d = _edit_index(packed / "gauss", tmp_path / "gauss", edit)
    with pytest.raises(PgkitError, match=words) as err:
        shards.read_index(d)
    assert err.value.path == str(d / "index.json")
    with pytest.raises(PgkitError, match="index.json"):
        PairDataset(d, "train")
    r = CliRunner().invoke(pgprep_main, ["verify", str(d)])
    assert r.exit_code == 1 and "index.json" in r.output and "Traceback" not in r.output


@pytest.mark.parametrize("case", ["fewer pairs", "pose radius", "pose kind", "image size"])
def test_index_settings_are_cross_checked_against_the_shards(packed, tmp_path, case):
    """A consistent but edited index.json: the shards' own attributes disagree."""
    from pgprep.errors import PgkitError
    from pgtrain.data import PairDataset

    def edit(index):
        if case == "fewer pairs":  # splits and shard entry agree: trained on a subset before
            index["shards"][0]["pairs"] -= 1
            index["splits"]["train"]["pairs"] -= 1
        elif case == "pose radius":
            index["pose"]["radius"] = 5.0
        elif case == "pose kind":
            index["pose"]["kind"] = "disk"
        else:
            index["image_size"] = [40, 40]

    d = _edit_index(packed / "gauss", tmp_path / "gauss", edit)
    first = d / "train-00000.h5"
    problems = shards.verify(d)
    assert any(p.startswith(str(first)) and "index.json says" in p for p in problems), problems
    with pytest.raises(PgkitError, match="train-00000.h5") as err:
        ds = PairDataset(d, "train")
        ds[0]
    assert "index.json" in str(err.value)


def test_verify_refuses_unsafe_names_even_when_the_hash_matches(packed, tmp_path):
    d = tmp_path / "s"
    shutil.copytree(packed / "compact", d)
    shutil.copytree(packed / "compact", tmp_path / "elsewhere")
    index = json.loads((d / "index.json").read_text())
    index["shards"][0]["file"] = "../elsewhere/train-00000.h5"  # same bytes, outside SHARDS
    (d / "index.json").write_text(json.dumps(index))
    r = CliRunner().invoke(pgprep_main, ["verify", str(d)])
    assert r.exit_code == 1 and "refused" in r.output and "index.json" in r.output, r.output
