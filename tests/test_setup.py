"""pgtrain.setup: the resume / overwrite policy, option reconciliation, device and data
choices, the run record and where a (resumed) run starts."""

from __future__ import annotations

import json

import pytest
import torch
from test_loop import TINY, Interrupt, ToyPairs, interrupt_at

from pgprep.errors import PgkitError
from pgtrain import checkpoint, presets, setup
from pgtrain.dist import DistInfo
from pgtrain.loop import fit
from pgtrain.trainer import Trainer

pytestmark = pytest.mark.usefixtures("one_thread")


def _checkpoint(run, preset="pg2", *, at=(1, 2), done=False, **overrides):
    """RUN/checkpoints/last.pt at (stage, step) `at`, holding only what the policy reads (no weights)."""
    (stage, step), options = at, {**presets.resolve(preset, **overrides).to_dict(), "image_size": [32, 32]}
    checkpoint.save(setup.last_checkpoint(run), {
        "options": options, "stage": stage, "step": step, "done": done, "nets": {},
        "final": {"step": step, "stage": stage, "l1": 0.5}})
    return options


# ---------------------------------------------------------------- plan: what fit does with RUN

def test_a_run_without_checkpoint_starts_fresh_with_the_resolved_options(tmp_path):
    p = setup.plan(tmp_path / "new", "wgan-triplet", {"steps1": 7, "clip": 0})
    assert p.checkpoint is None and p.done is None and p.notes == ()
    assert p.options == presets.resolve("wgan-triplet", steps1=7, clip=None)
    assert p.options.clip is None and p.options.steps1 == 7 and p.options.optimizer == "rmsprop"
    assert setup.plan(tmp_path / "new", None, {}).options.preset == "g1"
    # --resume on a run that has no checkpoint yet starts fresh too
    assert setup.plan(tmp_path / "new", "pg2", {}, resume=True).options == presets.resolve("pg2")
    assert setup.plan(tmp_path / "new", "g1", {}, tiny=True).options == presets.resolve("g1", tiny=True)


def test_a_finished_run_asked_again_has_nothing_to_do(tmp_path):
    _checkpoint(tmp_path, "pg2", at=(2, 3), done=True, steps1=2, steps2=3)
    p = setup.plan(tmp_path, "pg2", {"steps1": 2, "steps2": 3})
    assert p.done == "already trained with these options; nothing to do"
    assert p.result(tmp_path) == {"step": 3, "stage": 2, "l1": 0.5, "run": str(tmp_path),
                                  "checkpoint": str(tmp_path / "checkpoints" / "last.pt")}
    # cosmetic options (logging, device) do not make it another run; the preset defaults to the saved one
    assert setup.plan(tmp_path, None, {"steps1": 2, "steps2": 3, "log_every": 9, "device": "cpu"}).done
    # any other difference is refused without --resume
    with pytest.raises(PgkitError, match="already holds a run .stage 2, step 3.; pass --resume"):
        setup.plan(tmp_path, "pg2", {"steps1": 2, "steps2": 4})


def test_an_unfinished_run_is_never_restarted_over(tmp_path):
    _checkpoint(tmp_path, "g1", at=(1, 2), steps1=5)
    with pytest.raises(PgkitError) as err:
        setup.plan(tmp_path, "g1", {"steps1": 5})
    assert err.value.path == str(tmp_path)
    assert "already holds a run (stage 1, step 2); pass --resume to continue it, or choose another -o" in str(err.value)


def test_resume_takes_the_checkpoints_options_and_only_resumable_changes(tmp_path):
    saved = _checkpoint(tmp_path, "pg2", at=(1, 2), steps1=4, steps2=3, channels=8, lr=1e-3)
    p = setup.plan(tmp_path, None, {"steps2": 9, "log_every": 2}, resume=True)
    assert p.done is None and p.checkpoint["options"] == saved
    assert (p.options.steps1, p.options.steps2, p.options.log_every) == (4, 9, 2)
    assert (p.options.channels, p.options.lr, p.options.preset) == (8, 1e-3, "pg2")
    # an unchanged value of a non-resumable option is fine; a changed one is refused by name
    assert setup.plan(tmp_path, "pg2", {"channels": 8}, resume=True).options.channels == 8
    with pytest.raises(PgkitError, match="cannot change channels from 8 to 16 when resuming"):
        setup.plan(tmp_path, None, {"channels": 16}, resume=True)
    with pytest.raises(PgkitError, match="was trained with --preset pg2, not triplet"):
        setup.plan(tmp_path, "triplet", {}, resume=True)


def test_resume_of_a_run_at_its_last_step_has_nothing_to_do(tmp_path):
    _checkpoint(tmp_path, "pg2", at=(2, 3), steps1=2, steps2=3)
    assert setup.plan(tmp_path, None, {}, resume=True).done == "already trained to stage 2 step 3; nothing to do"
    p = setup.plan(tmp_path, None, {"steps2": 5}, resume=True)  # more steps: continue
    assert p.done is None and p.options.steps2 == 5
    # a Stage-1-only run continued into Stage 2 in place
    _checkpoint(tmp_path, "pg2", at=(1, 2), steps1=2, stage="1")
    assert setup.plan(tmp_path, None, {}, resume=True).done == "already trained to stage 1 step 2; nothing to do"
    assert setup.plan(tmp_path, None, {"stage": "2"}, resume=True).options.stages == (2,)


def test_resume_on_other_data_is_a_note_only_when_allowed(tmp_path):
    run, a, b = tmp_path / "r", tmp_path / "a", tmp_path / "b"
    for d, n in ((a, 1), (b, 2)):
        d.mkdir()
        (d / "index.json").write_text(json.dumps({"n": n}))
    options = {**presets.resolve("g1", steps1=4).to_dict(), **setup.rundir.data_identity(a)}
    checkpoint.save(setup.last_checkpoint(run), {"options": options, "stage": 1, "step": 2, "done": False,
                                                        "nets": {}})
    assert setup.plan(run, None, {}, resume=True, shards=str(a)).notes == ()
    with pytest.raises(PgkitError, match="--resume with other training data"):
        setup.plan(run, None, {}, resume=True, shards=str(b))
    p = setup.plan(run, None, {}, resume=True, shards=str(b), allow_new_data=True)
    assert len(p.notes) == 1 and p.notes[0].startswith("continuing on new data (--allow-new-data): SHARDS was ")


def test_numeric_options_are_checked_before_the_policy(tmp_path):
    with pytest.raises(PgkitError, match="option lr must be"):
        setup.plan(tmp_path, "g1", {"lr": float("nan")})
    options = _checkpoint(tmp_path, "g1")
    checkpoint.save(setup.last_checkpoint(tmp_path), {"options": {**options, "batch_size": 0},
                                                      "stage": 1, "step": 1, "done": False, "nets": {}})
    with pytest.raises(PgkitError, match="option batch_size must be") as err:
        setup.plan(tmp_path, "g1", {}, resume=True)
    assert err.value.path == str(setup.last_checkpoint(tmp_path))


def test_options_from_checkpoint_and_comparable():
    saved = json.loads(json.dumps(presets.resolve("wgan-gp-triplet").to_dict()))  # as read from disk
    assert isinstance(saved["betas2"], list)
    opts = setup.options_from_checkpoint(saved, {"steps2": 1}, None, "RUN")
    assert opts.betas2 == (0.0, 0.9) and opts.steps2 == 1
    assert opts == presets.resolve("wgan-gp-triplet", steps2=1)
    c = setup.comparable({**saved, "device": "cuda", "log_every": 3, "image_size": [64, 64]})
    assert "device" not in c and "log_every" not in c and "image_size" not in c
    assert c["betas2"] == [0.0, 0.9] and c == setup.comparable(presets.resolve("wgan-gp-triplet").to_dict())


# ---------------------------------------------------------------- device, data, the record

def test_device_and_data_choices():
    assert setup.pick_device("cpu") == torch.device("cpu")
    if not torch.cuda.is_available():
        with pytest.raises(PgkitError, match="--device cuda:1: CUDA is not available here"):
            setup.pick_device("cuda:1")
    ds = ToyPairs(4, size=16)
    assert setup.choose_data_path("auto", "shards/") == "raw"
    assert setup.choose_data_path("float", "shards/") == "float"
    assert setup.choose_data_path("raw", ds) == "float"  # a Dataset is used as it is
    assert setup.open_split(ds, "train") is ds and setup.open_split(ds, "test") is None
    assert setup.image_size_of(ds) == (16, 16)
    del ds.image_size
    assert setup.image_size_of(ds) == (16, 16)  # from the first item
    assert setup.pose_of(ds) == setup.geometry.DEFAULT_POSE


def test_run_record_says_what_the_data_is_and_where_it_ran(tmp_path):
    (tmp_path / "index.json").write_text("{}")
    o = presets.resolve("g1", channels=8)
    pose = {"kind": "gauss", "radius": 3, "sigma": 5}
    r = setup.run_record(o, (64, 48), pose, str(tmp_path), DistInfo(), torch.device("cpu"), "raw")
    assert {k: r[k] for k in ("image_size", "pose_kind", "pose_radius", "pose_sigma", "shards",
                              "world_size", "device_used", "data_path_used", "shards_resolved")} == {
        "image_size": [64, 48], "pose_kind": "gauss", "pose_radius": 3, "pose_sigma": 5,
        "shards": str(tmp_path), "world_size": 1, "device_used": "cpu", "data_path_used": "raw",
        "shards_resolved": str(tmp_path.resolve())}
    assert len(r["shards_index_sha256"]) == 64 and r["channels"] == 8 and r["preset"] == "g1"
    r = setup.run_record(o, (32, 32), pose, ToyPairs(4), DistInfo(), torch.device("cpu"), "float")
    assert r["shards"] == "ToyPairs" and "shards_resolved" not in r


@pytest.mark.parametrize("name", ["options.json", "stats.jsonl"])
def test_a_fresh_run_refuses_to_replace_files_fit_did_not_write(tmp_path, name):
    (tmp_path / name).write_text('{"mine": 1}\n')
    with pytest.raises(PgkitError, match="not written by `pgtrain fit`") as err:
        setup.write_options(tmp_path, {"preset": "g1", "image_size": [32, 32]}, fresh=True)
    assert err.value.path == str(tmp_path / name)
    assert (tmp_path / name).read_text() == '{"mine": 1}\n'
    # continuing a checkpointed run rewrites options.json without asking
    setup.write_options(tmp_path, {"preset": "g1", "image_size": [32, 32]}, fresh=False)
    assert json.loads((tmp_path / "options.json").read_text()) == {"preset": "g1", "image_size": [32, 32]}


def test_a_killed_fits_own_options_json_may_be_replaced(tmp_path):
    run = tmp_path / "a" / "b"
    setup.write_options(run, {"preset": "g1", "image_size": [32, 32]}, fresh=True)
    setup.write_options(run, {"preset": "pg2", "image_size": [32, 32]}, fresh=True)
    assert json.loads((run / "options.json").read_text())["preset"] == "pg2"


# ---------------------------------------------------------------- where the run starts

def test_a_new_run_starts_at_its_first_stage_seeded(tmp_path):
    o = presets.resolve("pg2", **{**TINY, "seed": 7})
    at = setup.start(Trainer(o, (32, 32), torch.device("cpu")), None, o, tmp_path, DistInfo())
    assert at == setup.Start(1, 0, 0, {"epoch": 0, "batch": 0})
    assert torch.initial_seed() == 7
    o2 = presets.resolve("pg2", stage="2", **TINY)
    with pytest.raises(PgkitError, match="Stage 2 needs a trained G1") as err:
        setup.start(Trainer(o2, (32, 32), torch.device("cpu")), None, o2, tmp_path, DistInfo())
    assert err.value.path == str(tmp_path / "checkpoints" / "stage1.pt")


def test_stage2_alone_takes_g1_and_its_step_count(tmp_path):
    fit(ToyPairs(8), tmp_path / "s1", "g1", steps1=3, **TINY)
    src = tmp_path / "s1" / "checkpoints" / "stage1.pt"
    o = presets.resolve("pg2", stage="2", init_from=str(src), **TINY)
    tr = Trainer(o, (32, 32), torch.device("cpu"))
    assert setup.start(tr, None, o, tmp_path / "s2", DistInfo()) == setup.Start(2, 0, 3, {"epoch": 0, "batch": 0})
    g1 = checkpoint.load(src)["nets"]["g1"]
    assert all(torch.equal(v, g1[k]) for k, v in tr.g1.state_dict().items())
    with pytest.raises(PgkitError, match="G1 was trained at image size \\[32, 32\\], the data is \\[64, 64\\]"):
        setup.load_stage1(Trainer(o, (64, 64), torch.device("cpu")), src)
    o16 = presets.resolve("pg2", stage="2", **{**TINY, "channels": 16})
    with pytest.raises(PgkitError, match="G1 has channels=8, this run asks for 16"):
        setup.load_stage1(Trainer(o16, (32, 32), torch.device("cpu")), src)


def test_a_resumed_run_starts_where_its_checkpoint_stopped(tmp_path):
    kw = dict(TINY, steps1=3, steps2=4, ckpt_every=2)
    with pytest.raises(Interrupt):
        fit(ToyPairs(16), tmp_path, "pg2", callback=interrupt_at(2, 3), **kw)
    ck = checkpoint.load(setup.last_checkpoint(tmp_path))
    o = presets.resolve("pg2", **kw)
    tr = Trainer(o, (32, 32), torch.device("cpu"))
    torch.manual_seed(123)
    at = setup.start(tr, ck, o, tmp_path, DistInfo())
    assert at == setup.Start(2, 2, 3, {"epoch": 1, "batch": 1})  # 3 + 2 batches of 4 per epoch
    assert torch.equal(torch.get_rng_state(), ck["rng"]["torch"])
    for k, m in tr.modules().items():
        assert all(torch.equal(v, ck["nets"][k][n]) for n, v in m.state_dict().items())
    for k, opt in tr.opt.items():
        state = opt.state_dict()["state"]
        assert len(state) == len(ck["optims"][k]["state"]) > 0, k
        assert all(torch.equal(state[i]["exp_avg"], ck["optims"][k]["state"][i]["exp_avg"]) for i in state)
    with pytest.raises(PgkitError, match="does not match"):  # a checkpoint of another width
        setup.check_checkpoint_shapes(ck, presets.resolve("pg2", **{**kw, "channels": 16}), (32, 32), "ck.pt")
    setup.check_checkpoint_shapes(ck, o, (32, 32), "ck.pt")


def test_an_interrupted_and_resumed_run_equals_the_uninterrupted_one_tensor_for_tensor(tmp_path):
    """Not just the losses: the final checkpoint's networks, optimiser states (G1's too,
    untouched in Stage 2) and data position. Not the torch RNG state: every DataLoader
    iterator draws its base seed from it, and a resumed run starts one iterator more (no
    training step reads it; the worker seeds it makes only matter to random augmentation)."""
    kw = dict(TINY, steps1=3, steps2=3, ckpt_every=2)
    fit(ToyPairs(16), tmp_path / "a", "pg2", **kw)
    for stop in ((1, 3), (2, 1)):
        run = tmp_path / f"b{stop}"
        with pytest.raises(Interrupt):
            fit(ToyPairs(16), run, "pg2", callback=interrupt_at(*stop), **kw)
        fit(ToyPairs(16), run, "pg2", resume=True, **kw)
        a, b = (checkpoint.load(r / "checkpoints" / "last.pt") for r in (tmp_path / "a", run))
        assert (a["stage"], a["step"], a["data"], a["done"]) == (b["stage"], b["step"], b["data"], b["done"])
        for k in a["nets"]:
            assert all(torch.equal(v, b["nets"][k][n]) for n, v in a["nets"][k].items()), k
        for k in a["optims"]:
            sa, sb = a["optims"][k]["state"], b["optims"][k]["state"]
            assert sa.keys() == sb.keys() and len(sa) > 0, k
            assert all(torch.equal(sa[i][n], sb[i][n]) for i in sa for n in sa[i]), k
