"""pgtrain.stats: stats.jsonl records, truncation on resume, TensorBoard scalars."""

from __future__ import annotations

import math

import pytest

from pgtrain.stats import StatsWriter, read_stats


def _records():
    return [{"step": s, "stage": 1, "global_step": s, "l1": 1.0 / s} for s in (10, 20, 30)] + \
           [{"step": 10, "stage": 2, "global_step": 40, "d": 0.5, "g": math.inf}]


def test_jsonl_records_and_nonfinite_values_become_null(tmp_path):
    w = StatsWriter(tmp_path)
    for r in _records():
        w.write(r)
    w.close()
    got = read_stats(tmp_path)
    assert [(r["stage"], r["step"]) for r in got] == [(1, 10), (1, 20), (1, 30), (2, 10)]
    assert got[1]["l1"] == pytest.approx(0.05) and got[3]["g"] is None


def test_resume_keeps_only_records_up_to_the_checkpoint(tmp_path):
    w = StatsWriter(tmp_path)
    for r in _records():
        w.write(r)
    w.close()
    StatsWriter(tmp_path, keep_until=(1, 20)).close()
    assert [r["step"] for r in read_stats(tmp_path)] == [10, 20]


def test_tensorboard_scalars_when_installed(tmp_path):
    try:
        from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    except ImportError:
        pytest.skip("tensorboard is not installed (pip install 'pgkit[tb]'); stats.jsonl only")
    w = StatsWriter(tmp_path)
    for r in _records():
        w.write(r)
    w.close()
    ea = EventAccumulator(str(tmp_path / "tb"))
    ea.Reload()
    assert {"stage1/l1", "stage2/d"} <= set(ea.Tags()["scalars"])
    assert [e.step for e in ea.Scalars("stage1/l1")] == [10, 20, 30]
    assert ea.Scalars("stage1/l1")[2].value == pytest.approx(1 / 30)


# ------------------------------------------------------------------ torn tail and full disk (issue 12)

def _write(tmp_path, records):
    w = StatsWriter(tmp_path)
    for r in records:
        w.write(r)
    w.close()


def test_resume_repairs_a_torn_last_line_and_says_so(tmp_path, capsys):
    _write(tmp_path, _records()[:3])
    with open(tmp_path / "stats.jsonl", "a") as f:
        f.write('{"step": 40, "stage": 1, "glo')  # the disk filled up mid-record
    assert [r["step"] for r in read_stats(tmp_path)] == [10, 20, 30]  # readers skip it too
    StatsWriter(tmp_path, keep_until=(1, 30)).close()
    out = capsys.readouterr().out
    assert "line 4 was torn" in out and "kept the 3 complete records" in out
    assert (tmp_path / "stats.jsonl").read_text().count("\n") == 3
    assert [r["step"] for r in read_stats(tmp_path)] == [10, 20, 30]


def test_a_broken_line_before_the_last_is_still_an_error(tmp_path):
    from pgprep.errors import PgkitError

    _write(tmp_path, _records()[:3])
    lines = (tmp_path / "stats.jsonl").read_text().splitlines()
    lines[1] = lines[1][:-5]
    (tmp_path / "stats.jsonl").write_text("\n".join(lines) + "\n")
    with pytest.raises(PgkitError, match="line 2 is not JSON"):
        StatsWriter(tmp_path, keep_until=(1, 30))


def test_full_disk_leaves_no_torn_line_and_names_the_file(tmp_path):
    """RLIMIT_FSIZE in a child process: the kernel writes part of the record, then EFBIG."""
    import subprocess
    import sys
    import textwrap

    _write(tmp_path, _records()[:2])
    size = (tmp_path / "stats.jsonl").stat().st_size
    code = textwrap.dedent(f"""
        import resource, pathlib
        from pgprep.errors import PgkitError
        from pgtrain.stats import StatsWriter
        w = StatsWriter.__new__(StatsWriter)  # no TensorBoard import: a fast child
        w.path, w.enabled, w.tb = pathlib.Path({str(tmp_path)!r}) / "stats.jsonl", True, None
        resource.setrlimit(resource.RLIMIT_FSIZE, ({size} + 10, resource.RLIM_INFINITY))
        try:
            w.write({{"step": 30, "stage": 1, "global_step": 30, "l1": 0.123456789}})
        except PgkitError as exc:
            print("ERR", exc)
    """)
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert f"ERR {tmp_path / 'stats.jsonl'}: cannot write: File too large; free some space" in res.stdout, \
        res.stdout + res.stderr
    assert (tmp_path / "stats.jsonl").stat().st_size == size
    assert [r["step"] for r in read_stats(tmp_path)] == [10, 20]
