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


# ---------------------------------------------------------------- issue 18: crafted shards

def _reseal(d):
    """Re-record every shard's size and digests in index.json, as a forger would."""
    from pgprep.atomic import file_sha256

    index = json.loads((d / "index.json").read_text())
    for e in index["shards"]:
        p = d / e["file"]
        e.update(bytes=p.stat().st_size, sha256=file_sha256(p), quick_sha256=shards.quick_digest(p))
    (d / "index.json").write_text(json.dumps(index))


def _forge(src, dst, edit):
    """A copy of `src` whose train-00000.h5 was edited by `edit(h5py.File, dst)` and resealed."""
    shutil.copytree(src, dst)
    with h5py.File(dst / "train-00000.h5", "a") as f:
        edit(f, dst)
    _reseal(dst)
    return dst


def _move_out(f, name, other):
    """Delete dataset `name` from f, returning its data (the forger keeps it elsewhere)."""
    data = f[name][...]
    del f[name]
    return data


def _external_link(f, d):
    data = _move_out(f, "images/keypoints", None)
    with h5py.File(d.parent / "outside.h5", "w") as g:
        g["kp"] = data
    f["images/keypoints"] = h5py.ExternalLink(str(d.parent / "outside.h5"), "/kp")


def _external_raw(f, d):
    flip = _move_out(f, "pairs/flip", None)
    (d.parent / "outside.raw").write_bytes(flip.tobytes())
    f.create_dataset("pairs/flip", shape=flip.shape, dtype=np.uint8,
                     external=[(str(d.parent / "outside.raw"), 0, flip.nbytes)])


def _virtual(f, d):
    data = _move_out(f, "images/keypoints", None)
    with h5py.File(d.parent / "outside.h5", "w") as g:
        g["kp"] = data
    layout = h5py.VirtualLayout(shape=data.shape, dtype=data.dtype)
    layout[...] = h5py.VirtualSource(str(d.parent / "outside.h5"), "kp", shape=data.shape)
    f["images"].create_virtual_dataset("keypoints", layout)


def _soft_loop(f, d):
    _move_out(f, "images/keypoints", None)
    f["images/keypoints"] = h5py.SoftLink("/images/loop")
    f["images/loop"] = h5py.SoftLink("/images/keypoints")


LINKS = {"external link": (_external_link, "images/keypoints is an external link"),
         "external raw storage": (_external_raw, "pairs/flip keeps its data in external raw files"),
         "virtual dataset": (_virtual, "images/keypoints is a virtual dataset"),
         "soft-link loop": (_soft_loop, "images/keypoints is a soft link to /images/loop")}


@pytest.mark.parametrize("case", list(LINKS))
def test_links_and_external_storage_are_refused_before_anything_reads_them(packed, tmp_path, case):
    """Issue 18 item 11: data outside the shard escapes its sha256; every reader refuses it."""
    from pgtrain.data import PairDataset

    edit, words = LINKS[case]
    d = _forge(packed / "compact", tmp_path / "s", edit)
    victim = str(d / "train-00000.h5")
    problems = shards.verify(d)
    assert len(problems) == 1 and problems[0].startswith(victim) and words in problems[0], problems
    r = CliRunner().invoke(pgprep_main, ["verify", str(d)])
    assert r.exit_code == 1 and words in r.output and "Traceback" not in r.output, r.output
    with pytest.raises(shards.PgkitError, match=words) as err:
        PairDataset(d, "train")
    assert err.value.path == victim
    r = CliRunner().invoke(pgprep_main, ["inspect", str(d)])
    assert r.exit_code == 1 and words in r.output and len(r.output.strip().splitlines()[-1]) < 400


def _declare_many_images(count):
    """Every image dataset re-declared with `count` entries that are never written: the file
    stays small, a read allocates what the shape says."""
    def edit(f, d):
        for name in ("images/name", "images/jpeg", "images/keypoints", "images/mask"):
            ds = f[name]
            shape, dtype, chunks = (count,) + ds.shape[1:], ds.dtype, (1,) + ds.shape[1:]
            del f[name]
            f.create_dataset(name, shape=shape, dtype=dtype, chunks=chunks)
        f.attrs["images"] = count
    return edit


def test_a_shard_declaring_a_million_names_is_refused_from_its_size(packed, tmp_path):
    """Issue 18 item 10: 10^8 unwritten names took verify to 2.4 GB; the declared size is now
    checked against what the file stores before any read (10^6 here keeps a failure cheap)."""
    from pgtrain.data import PairDataset

    d = _forge(packed / "compact", tmp_path / "s", _declare_many_images(10**6))
    index = json.loads((d / "index.json").read_text())
    index["shards"][0]["images"] = 10**6
    (d / "index.json").write_text(json.dumps(index))
    assert (d / "train-00000.h5").stat().st_size < 200_000
    problems = shards.verify(d)
    assert "images/name declares shape (1000000,) (8,000,000 bytes) but stores 0 bytes" in problems[0], problems
    assert all(p.startswith(str(d / "train-00000.h5")) for p in problems)
    with pytest.raises(shards.PgkitError, match=r"images/name declares shape \(1000000,\)"):
        PairDataset(d, "train")


def test_a_stored_image_claiming_more_pixels_than_image_size_is_refused_before_decoding(packed, tmp_path):
    """Issue 18 item 10: a JPEG header patched to 30000x30000 made the loader decode 2.7 GB;
    the header is compared with index.json's image_size first (3000x3000 keeps a failure cheap)."""
    from pgtrain.data import PairDataset

    def patch(f, d):
        data = bytes(f["images/jpeg"][0])
        sof = next(i for i in range(2, len(data)) if data[i] == 0xFF and data[i + 1] in (0xC0, 0xC2))
        assert data[sof + 5:sof + 9] == (48).to_bytes(2, "big") * 2
        big = data[:sof + 5] + (3000).to_bytes(2, "big") * 2 + data[sof + 9:]
        f["images/jpeg"][0] = np.frombuffer(big, np.uint8)

    d = _forge(packed / "compact", tmp_path / "s", patch)
    ds = PairDataset(d, "train")
    reader = ds.readers[0]
    i = next(k for k in range(len(reader)) if reader.meta["from"][k] == 0 or reader.meta["to"][k] == 0)
    with pytest.raises(shards.PgkitError, match=r"header says 3000x3000 \(HxW\), index.json's image_size is 48x48"):
        ds[i]
    with pytest.raises(shards.PgkitError, match="images/jpeg\\[0\\]"):
        PairDataset(d, "train", raw=True)[i]


def _retype(name, dtype):
    def edit(f, d):
        data = f[name][...]
        del f[name]
        f[name] = data.astype(dtype)
    return edit


def test_wrong_dtypes_are_found_by_verify_and_named_by_the_reader(packed, tmp_path):
    """Issue 18 item 20: float32 pair indices verified ok, then fit stopped with a TypeError."""
    from pgtrain.data import PairDataset

    d = _forge(packed / "compact", tmp_path / "s", _retype("pairs/from", np.float32))
    problems = shards.verify(d)
    assert problems == [f"{d / 'train-00000.h5'}: pairs/from has type float32, expected int32"]
    with pytest.raises(shards.PgkitError, match="pairs/from has type float32, expected int32"):
        PairDataset(d, "train")
    d = _forge(packed / "dense", tmp_path / "dense", _retype("keypoints", np.float64))
    assert any("keypoints has type float64, expected float32" in p for p in shards.verify(d))


@pytest.mark.parametrize("case", ["nested", "huge int", "huge radius", "binary"])
def test_an_unparsable_index_is_one_line_naming_it(packed, tmp_path, case):
    """Issue 18 item 20: index.json nested 1,000 deep was a RecursionError; a 5,000-digit
    integer a ValueError without the file's name."""
    from pgtrain.data import PairDataset

    d = tmp_path / "s"
    shutil.copytree(packed / "compact", d)
    text = (d / "index.json").read_text()
    text = {"nested": '{"format": "pgkit-shards", "x": ' + "[" * 100_000 + "]" * 100_000 + "}",
            "huge int": text.replace('"version": 1', '"version": 1' + "0" * 5000),
            "huge radius": text.replace('"radius": 0.75', '"radius": 1' + "0" * 4000),
            "binary": "\xff\xfe{"}[case]
    (d / "index.json").write_bytes(text.encode("utf-8", "surrogateescape") if case != "binary" else b"\xff\xfe{")
    words = {"nested": "nested too deeply", "huge int": "unreadable index", "huge radius": "pose radius",
             "binary": "unreadable index"}[case]
    with pytest.raises(shards.PgkitError, match=words) as err:
        shards.read_index(d)
    assert err.value.path == str(d / "index.json") and len(str(err.value)) < 300
    with pytest.raises(shards.PgkitError, match=words):
        PairDataset(d, "train")
    r = CliRunner().invoke(pgprep_main, ["verify", str(d)])
    assert r.exit_code == 1 and words in r.output and "Traceback" not in r.output


def test_verify_checks_bytes_and_images_and_refuses_a_shard_listed_twice(packed, tmp_path):
    """Issue 18 item 23: verify ignored `bytes` and `images`; a copied shard with an added
    index entry trained on its pairs twice."""
    from pgtrain.data import PairDataset

    d = _edit_index(packed / "compact", tmp_path / "bytes", _set(["shards", 0, "bytes"], 5))
    assert shards.verify(d) == [f"{d / 'train-00000.h5'}: size {(d / 'train-00000.h5').stat().st_size:,} "
                                "bytes, index.json records 5"]
    d = _edit_index(packed / "compact", tmp_path / "images", _set(["shards", 0, "images"], 7))
    problems = shards.verify(d)
    assert len(problems) == 1 and "index.json's images says 7" in problems[0], problems
    with pytest.raises(shards.PgkitError, match="index.json's images says 7"):
        PairDataset(d, "train")

    d = tmp_path / "copied"
    shutil.copytree(packed / "compact", d)
    shutil.copy(d / "train-00001.h5", d / "train-00002.h5")
    index = json.loads((d / "index.json").read_text())
    index["shards"].insert(2, {**index["shards"][1], "file": "train-00002.h5"})
    index["splits"]["train"]["pairs"] += index["shards"][1]["pairs"]
    (d / "index.json").write_text(json.dumps(index))
    with pytest.raises(shards.PgkitError, match="same sha256 as train-00001.h5"):
        PairDataset(d, "train")
    r = CliRunner().invoke(pgprep_main, ["verify", str(d)])
    assert r.exit_code == 1 and "listed twice" in r.output, r.output
