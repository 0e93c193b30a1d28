"""Atomic writes and stage stamps."""

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
