"""Atomic writes and stage stamps."""

import json
import os

import pytest

from pgprep import atomic


def test_atomic_path_renames_only_on_success(tmp_path):
    target = tmp_path / "out.txt"
    with pytest.raises(RuntimeError), atomic.atomic_path(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("killed")
    assert not target.exists()
    assert os.listdir(tmp_path) == []  # no temporary left behind
    atomic.write_text_atomic(target, "whole")
    assert target.read_text() == "whole"


def test_stamps_detect_changed_inputs_and_missing_outputs(tmp_path):
    src = tmp_path / "in.csv"
    out = tmp_path / "out.csv"
    src.write_text("a\n1\n")
    out.write_text("x")
    fp = atomic.fingerprint([src], {"radius": 4})
    assert not atomic.is_up_to_date(tmp_path, "stage", fp, [out])
    atomic.mark_done(tmp_path, "stage", fp)
    assert atomic.is_up_to_date(tmp_path, "stage", fp, [out])
    assert atomic.fingerprint([src], {"radius": 8}) != fp
    src.write_text("a\n1\n2\n")
    assert atomic.fingerprint([src], {"radius": 4}) != fp
    out.unlink()
    assert not atomic.is_up_to_date(tmp_path, "stage", fp, [out])


def test_file_sha256(tmp_path):
    p = tmp_path / "b"
    p.write_bytes(b"abc")
    assert atomic.file_sha256(p) == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"


def test_atomic_outputs_get_the_usual_permissions_not_mkstemps_0600(tmp_path):
    import os
    import stat

    from pgprep.atomic import write_text_atomic

    write_text_atomic(tmp_path / "x.txt", "hi")
    mask = os.umask(0)
    os.umask(mask)
    assert stat.S_IMODE((tmp_path / "x.txt").stat().st_mode) == 0o666 & ~mask


# ---------------------------------------------------------------- issue 18 item 14: one output rule

def test_check_user_output_replaces_only_what_pgkit_marked(tmp_path):
    import cv2
    import numpy as np

    from pgprep.atomic import check_user_output, has_pgkit_mark, json_mark, mark_image
    from pgprep.errors import PgkitError

    img = np.random.default_rng(0).integers(0, 255, (12, 20, 3), np.uint8)
    for ext, params in ((".png", []), (".jpg", []), (".webp", [cv2.IMWRITE_WEBP_QUALITY, 101])):
        plain = cv2.imencode(ext, img, params)[1].tobytes()
        mine, theirs = tmp_path / f"mine{ext}", tmp_path / f"theirs{ext}"
        mine.write_bytes(mark_image(plain, "pgkit generate"))
        theirs.write_bytes(plain)
        assert has_pgkit_mark(mine) and not has_pgkit_mark(theirs)
        decoded = cv2.imdecode(np.frombuffer(mine.read_bytes(), np.uint8), cv2.IMREAD_COLOR)
        np.testing.assert_array_equal(decoded, cv2.imdecode(np.frombuffer(plain, np.uint8), cv2.IMREAD_COLOR))
        check_user_output(mine, force=False)  # pgkit's own: replaced freely
        with pytest.raises(PgkitError, match="exists and was not written by pgkit; refusing to overwrite it "
                                             r"\(choose another -o, or pass --force to replace it\)") as err:
            check_user_output(theirs, force=False)
        assert err.value.path == str(theirs)
        check_user_output(theirs, force=True)
    report = tmp_path / "eval.json"
    report.write_text(json.dumps({**json_mark("pgkit eval"), "rows": {}}))
    notes = tmp_path / "notes.json"
    notes.write_text(json.dumps({"written_by": "me"}))
    check_user_output(report)
    with pytest.raises(PgkitError, match="not written by pgkit"):
        check_user_output(notes)
    check_user_output(tmp_path / "new.png")  # nothing there
    (tmp_path / "folder.png").mkdir()
    (tmp_path / "link.png").symlink_to(tmp_path / "mine.png")
    for p in ("folder.png", "link.png"):
        with pytest.raises(PgkitError, match="never replaces one"):
            check_user_output(tmp_path / p, force=True)
    with pytest.raises(PgkitError, match="is an input under .*also with --force"):
        check_user_output(tmp_path / "mine.png", force=True, inputs=[tmp_path])
    with pytest.raises(PgkitError, match="not written by pgkit"):  # a custom mark (e.g. a CSV's first line)
        check_user_output(tmp_path / "mine.png", marker=lambda p: False)


def test_one_png_text_helper_for_the_mark_the_mask_record_and_the_preview_mark(tmp_path):
    """Issue 21: masks' record, preview's mark and `mark_image` share atomic's tEXt helpers;
    the bytes are those each wrote before: a tEXt chunk right after IHDR."""
    import struct
    import zlib

    import numpy as np

    from pgprep import masks, preview
    from pgprep.atomic import has_pgkit_mark, mark_image, png_texts
    from pgprep.geometry import encode_png

    png = encode_png(np.zeros((4, 5, 3), np.uint8))

    def text_chunk(data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + b"tEXt" + data + struct.pack(">I", zlib.crc32(b"tEXt" + data))

    rec = {"keypoints": "ab", "size": [4, 5]}
    assert masks.add_record(png, rec) == \
        png[:33] + text_chunk(b"pgkit-mask\0" + json.dumps(rec, sort_keys=True).encode()) + png[33:]
    sheet = preview.mark_png(png)
    assert sheet == mark_image(png, "pgkit preview") == png[:33] + text_chunk(b"Software\0pgkit preview") + png[33:]
    both = masks.add_record(sheet, rec)
    assert list(png_texts(both)) == [(b"pgkit-mask", json.dumps(rec, sort_keys=True).encode()),
                                     (b"Software", b"pgkit preview")]
    assert masks.read_record(both) == rec and masks.read_record(sheet) is None
    for name, data, mark, is_sheet in (("a.png", sheet, True, True), ("b.png", both, True, False),
                                       ("c.png", png, False, False),
                                       ("d.png", mark_image(png, "pgkit generate"), True, False)):
        (tmp_path / name).write_bytes(data)
        assert has_pgkit_mark(tmp_path / name) is mark
        assert preview.is_pgkit_preview(tmp_path / name) is is_sheet
