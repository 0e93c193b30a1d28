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
