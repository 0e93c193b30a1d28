"""pgtrain.loop: the training recipe, resume, NaN handling, the run directory and the CLI."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from torch.utils.data import Dataset

from pgtrain import checkpoint, losses
from pgtrain.loop import BatchStream, Trainer, fit
from pgtrain.presets import resolve
from pgtrain.stats import read_stats


class ToyPairs(Dataset):
    """PairDataset-shaped items: a coloured box moves to where the target pose says.

    I_A: a box of colour c at place A; I_B: the same box at place B; P_B: 18 channels, the
    first four hold disks at B's corners; M_B: B's box. Deterministic in the index.
    """

    def __init__(self, n: int = 32, size: int = 32, seed: int = 0):
        self.n, self.size, self.seed = n, size, seed
        self.image_size = (size, size)
        self.poison = False  # when set, every item carries a NaN (to test the NaN stop)

    def __len__(self):
        return self.n

    def _box(self, rng):
        s = self.size
        h, w = rng.integers(s // 4, s // 2, size=2)
        y, x = rng.integers(0, s - h), rng.integers(0, s - w)
        return int(y), int(x), int(h), int(w)

    def __getitem__(self, i):
        rng = np.random.default_rng(self.seed * 100_003 + i)
        s = self.size
        colour = rng.uniform(-1, 1, size=3).astype(np.float32)
        cond = np.full((3, s, s), -1, np.float32)
        targ = np.full((3, s, s), -1, np.float32)
        (ya, xa, ha, wa), (yb, xb, hb, wb) = self._box(rng), self._box(rng)
        cond[:, ya:ya + ha, xa:xa + wa] = colour[:, None, None]
        targ[:, yb:yb + hb, xb:xb + wb] = colour[:, None, None]
        pose = np.full((18, s, s), -1, np.float32)
        yy, xx = np.mgrid[:s, :s]
        for j, (py, px) in enumerate([(yb, xb), (yb, xb + wb), (yb + hb, xb), (yb + hb, xb + wb)]):
            pose[j][(yy - py) ** 2 + (xx - px) ** 2 <= 4] = 1
        mask = np.zeros((1, s, s), np.float32)
        mask[:, yb:yb + hb, xb:xb + wb] = 1
        if self.poison:
            cond[0, 0, 0] = np.nan
        return {"condition": torch.from_numpy(cond), "target": torch.from_numpy(targ),
                "pose": torch.from_numpy(pose), "mask": torch.from_numpy(mask),
                "from": f"a{i}.jpg", "to": f"b{i}.jpg", "flip": bool(i % 2)}


TINY = dict(channels=8, batch_size=4, log_every=1, sample_every=1000, ckpt_every=1000, device="cpu")


pytestmark = pytest.mark.usefixtures("one_thread")


def make_trainer(preset, **kw):
    o = resolve(preset, **{**TINY, **kw})
    return Trainer(o, (32, 32), torch.device("cpu"))


def batch_of(ds, idx):
    from torch.utils.data import default_collate

    return default_collate([ds[i] for i in idx])


def snapshot(m):
    return {n: p.detach().clone() for n, p in m.named_parameters()}


def cancelling(d, wasserstein: bool) -> set[str]:
    """Parameters of the released D whose gradient is zero by construction: a conv bias
    right before batch norm (the batch mean removes it) and, under the Wasserstein loss,
    the head bias (mean(fake) - mean(real) cancels it). They are in PG²'s D all the same."""
    names = {f"body.{i}.bias" for i, m in enumerate(d.body[:-1])
             if isinstance(d.body[i + 1], torch.nn.BatchNorm2d)}
    return names | ({"head.bias"} if wasserstein else set())


def assert_all_grads_nonzero(m, what, zero: set[str] = frozenset()):
    assert all(p.grad is not None for p in m.parameters()), f"{what}: a parameter has no gradient"
    missing = [n for n, p in m.named_parameters() if n not in zero and not p.grad.abs().sum() > 0]
    assert not missing, f"{what}: no gradient for {missing}"
    scale = max(float(p.grad.abs().max()) for p in m.parameters())
    tiny = {n: float(p.grad.abs().max()) for n, p in m.named_parameters() if n in zero}
    assert all(v <= 1e-4 * scale for v in tiny.values()), f"{what}: expected ~0 gradients {tiny}"


def assert_unchanged(m, before, what):
    changed = [n for n, p in m.named_parameters() if not torch.equal(p, before[n])]
    assert not changed, f"{what} changed: {changed}"


def test_stage1_step_trains_every_g1_parameter():
    tr = make_trainer("g1")
    before = snapshot(tr.g1)
    out = tr.stage1_step(batch_of(ToyPairs(8), range(4)))
    assert_all_grads_nonzero(tr.g1, "G1")
    changed = [n for n, p in tr.g1.named_parameters() if not torch.equal(p, before[n])]
    assert len(changed) == len(before)
    assert out["l1"] > 0


@pytest.mark.parametrize("preset", ["pg2", "triplet", "wgan-triplet", "pg2-official", "triplet-pose",
                                    "wgan-gp-triplet"])
def test_d_step_and_g_step_update_exactly_their_networks(preset):
    tr = make_trainer(preset)
    b = tr.to_device(batch_of(ToyPairs(8), range(4)))
    g1_out = tr.g1_output(b)
    g1_before, g2_before = snapshot(tr.g1), snapshot(tr.g2)
    tr.d_step(b, g1_out)
    assert_all_grads_nonzero(tr.d, f"{preset} D", cancelling(tr.d, tr.o.adversarial == "wasserstein"))
    assert_unchanged(tr.g2, g2_before, "G2 in the D step")
    assert all(p.grad is None for p in tr.g2.parameters())

    d_before = snapshot(tr.d)
    d_grads = {n: p.grad.clone() for n, p in tr.d.named_parameters()}
    tr.g_step(b, g1_out)
    assert_all_grads_nonzero(tr.g2, f"{preset} G2")
    assert_unchanged(tr.d, d_before, "D in the G step")
    assert all(torch.equal(p.grad, d_grads[n]) for n, p in tr.d.named_parameters())
    assert_unchanged(tr.g1, g1_before, "G1 in Stage 2")
    assert all(p.requires_grad for p in tr.d.parameters())  # D is trainable again


@pytest.mark.parametrize("preset", ["pg2", "triplet", "wgan-triplet", "pg2-official", "triplet-pose"])
def test_adversarial_gradient_reaches_every_g2_parameter(preset):
    # with the L1 term off, G2's whole gradient comes through D (the seed's code detached it)
    tr = make_trainer(preset, l1_weight=0.0)
    b = tr.to_device(batch_of(ToyPairs(8), range(4)))
    out = tr.g_step(b, tr.g1_output(b))
    assert out["g"] == pytest.approx(float(out["g_adv"]))
    assert_all_grads_nonzero(tr.g2, f"{preset} G2 (adversarial only)")


def test_wgan_critic_takes_ten_clipped_steps_per_generator_step():
    tr = make_trainer("wgan-triplet")
    assert isinstance(tr.opt["d"], torch.optim.RMSprop) and isinstance(tr.opt["g2"], torch.optim.RMSprop)
    assert isinstance(tr.opt["g1"], torch.optim.Adam)  # seed: RMSProp for WGAN's Stage 2 only
    counts = {"d": 0, "g2": 0}
    worst = []
    for name in counts:
        tr.opt[name].register_step_post_hook(lambda opt, a, k, name=name: counts.__setitem__(name, counts[name] + 1))

    def check_clip(_module, _inputs):  # every use of the critic sees clipped weights
        worst.append(max(p.abs().max().item() for p in tr.d.parameters()))

    tr.d.register_forward_pre_hook(check_clip)
    ds = ToyPairs(64)
    starts = iter(range(0, 64, 3))
    for _ in range(2):
        tr.stage2_step(lambda: batch_of(ds, range(next(starts), 64)[:4]))
    assert counts == {"d": 20, "g2": 2}
    assert worst and max(worst) <= 0.01 + 1e-12
    assert max(p.abs().max().item() for p in tr.d.parameters()) <= 0.01 + 1e-12
    # the clip is binding: without it RMSProp would move weights past 0.01
    assert max(worst) > 0.0099


def test_batch_stream_order_is_a_function_of_seed_and_epoch():
    from pgtrain.dist import DistInfo

    ds = ToyPairs(10)
    a = BatchStream(ds, 4, seed=3, info=DistInfo())
    seen = [next(a)["from"] for _ in range(5)]  # 2 batches per epoch, drop_last
    b = BatchStream(ds, 4, seed=3, info=DistInfo(), epoch=1, batch=1)
    assert next(b)["from"] == seen[3]
    assert sorted(seen[0] + seen[1]) != sorted(seen[2] + seen[3]) or seen[0] != seen[2]
    assert len(set(seen[0] + seen[1])) == 8


def _losses(run):
    return [{k: v for k, v in r.items() if k != "samples_per_s"} for r in read_stats(run)]


class Interrupt(Exception):
    pass


def interrupt_at(stage: int, step: int):
    """A fit callback that stops the run right after (stage, step), as a kill would."""
    def stop(s, t, _):
        if (s, t) == (stage, step):
            raise Interrupt
    return stop


def test_resume_reproduces_the_uninterrupted_run_exactly(tmp_path):
    kw = dict(TINY, steps1=4, steps2=5, ckpt_every=3)
    ds = ToyPairs(24)
    fit(ds, tmp_path / "a", "pg2", **kw)
    with pytest.raises(Interrupt):
        fit(ds, tmp_path / "b", "pg2", callback=interrupt_at(2, 4), **kw)
    ck = checkpoint.load(tmp_path / "b" / "checkpoints" / "last.pt")
    assert (ck["stage"], ck["step"], ck["done"]) == (2, 3, False)
    assert len(read_stats(tmp_path / "b")) == 4 + 4  # the lines of step 2/4 are written, then dropped
    fit(ds, tmp_path / "b", "pg2", resume=True, **kw)
    a, b = _losses(tmp_path / "a"), _losses(tmp_path / "b")
    assert [(r["stage"], r["step"]) for r in b] == [(1, i) for i in range(1, 5)] + [(2, i) for i in range(1, 6)]
    assert a == b
    ga = checkpoint.load_generators(tmp_path / "a")
    gb = checkpoint.load_generators(tmp_path / "b")
    for x, y in zip(list(ga.g2.parameters()), list(gb.g2.parameters()), strict=True):
        assert torch.equal(x, y)


def test_nan_loss_stops_with_a_message_and_keeps_the_checkpoint(tmp_path):
    from pgprep.errors import PgkitError

    ds = ToyPairs(16)

    def poison(stage, step, _):
        if step == 6:
            ds.poison = True

    with pytest.raises(PgkitError) as err:
        fit(ds, tmp_path / "r", "g1", steps1=20, callback=poison, **{**TINY, "ckpt_every": 5})
    msg = str(err.value)
    assert "step 7" in msg and "nan" in msg and "\n" not in msg and "step 5" in msg
    ck = checkpoint.load(tmp_path / "r" / "checkpoints" / "last.pt")
    assert ck["step"] == 5
    assert all(torch.isfinite(v).all() for v in ck["nets"]["g1"].values())


def test_run_directory_contents_and_generators(tmp_path):
    ds = ToyPairs(16)
    out = fit(ds, tmp_path / "r", "triplet", steps1=3, steps2=2, **{**TINY, "sample_every": 2})
    run = tmp_path / "r"
    opts = json.loads((run / "options.json").read_text())
    assert opts["image_size"] == [32, 32] and opts["preset"] == "triplet" and opts["pose_kind"] == "disk"
    assert opts["l1_weight"] == 50.0 and opts["lr"] == 5e-5
    names = sorted(p.name for p in (run / "samples").iterdir())
    assert names == ["step-0000002.png", "step-0000003.png", "step-0000005.png"]  # every 2 + stage ends
    from pgprep.geometry import read_rgb

    grid = read_rgb(run / "samples" / "step-0000005.png")
    assert grid.shape[1] >= 5 * 32 and grid.shape[0] >= 4 * 32
    assert (run / "checkpoints" / "stage1.pt").exists()
    assert out["stage"] == 2 and out["step"] == 2
    gens = checkpoint.load_generators(run)
    assert not gens.g1.training and gens.g2 is not None and gens.options["channels"] == 8
    s1 = checkpoint.load_generators(run, which="stage1")
    assert s1.g2 is None
    # G1 is frozen in Stage 2: the last checkpoint's G1 equals the Stage-1 one
    for x, y in zip(gens.g1.parameters(), s1.g1.parameters(), strict=True):
        assert torch.equal(x, y)
    # a rerun with the same options does nothing; a different one needs --resume
    again = fit(ds, run, "triplet", steps1=3, steps2=2, **{**TINY, "sample_every": 2})
    assert again["step"] == 2
    from pgprep.errors import PgkitError

    with pytest.raises(PgkitError, match="--resume"):
        fit(ds, run, "triplet", steps1=3, steps2=4, **{**TINY, "sample_every": 2})
    # --resume with more Stage-2 steps continues from step 2
    more = fit(ds, run, resume=True, steps2=4, **{**TINY, "sample_every": 2})
    assert (more["stage"], more["step"]) == (2, 4)
    with pytest.raises(PgkitError, match="channels"):
        fit(ds, run, resume=True, channels=16)


def test_stage2_alone_starts_from_a_stage1_checkpoint(tmp_path):
    ds = ToyPairs(16)
    fit(ds, tmp_path / "s1", "pg2", stage="1", steps1=3, **TINY)
    assert checkpoint.load_generators(tmp_path / "s1").g2 is None
    src = tmp_path / "s1" / "checkpoints" / "stage1.pt"
    out = fit(ds, tmp_path / "s2", "pg2", stage="2", steps2=2, init_from=str(src), **TINY)
    assert (out["stage"], out["step"], out["global_step"]) == (2, 2, 5)
    a, b = checkpoint.load_generators(tmp_path / "s1"), checkpoint.load_generators(tmp_path / "s2")
    for x, y in zip(a.g1.parameters(), b.g1.parameters(), strict=True):
        assert torch.equal(x, y)
    from pgprep.errors import PgkitError

    with pytest.raises(PgkitError, match="init-from"):
        fit(ds, tmp_path / "s3", "pg2", stage="2", steps2=2, **TINY)
    with pytest.raises(PgkitError, match="channels"):
        fit(ds, tmp_path / "s4", "pg2", stage="2", steps2=2, init_from=str(src), **{**TINY, "channels": 16})
    # the same run directory: Stage 1 first, then --resume --stage 2
    fit(ds, tmp_path / "s1", resume=True, stage="2", steps2=2, **TINY)
    assert checkpoint.load_generators(tmp_path / "s1").g2 is not None


def test_pg2_official_order_and_stage1_loss():
    tr = make_trainer("pg2-official", batch_size=1)
    assert tr.opt["g1"].defaults["lr"] == 2e-5 and tr.opt["g1"].defaults["betas"] == (0.5, 0.999)
    order = []
    for name in ("g2", "d"):
        tr.opt[name].register_step_post_hook(lambda opt, a, k, name=name: order.append(name))
    batches = iter([batch_of(ToyPairs(8), [i]) for i in range(2)])
    tr.stage2_step(lambda: next(batches))
    assert order == ["g2", "d"]  # trainer.py train(): g_optim2, then d_optim, each on its own batch
    b = tr.to_device(batch_of(ToyPairs(8), [0]))
    tr2 = make_trainer("pg2-official", batch_size=1)
    with torch.no_grad():
        y = tr2.g1(b["condition"], b["pose"])
    assert float(tr2.stage1_step(batch_of(ToyPairs(8), [0]))["l1"]) == pytest.approx(
        float((y - b["target"]).abs().mean()), rel=1e-5)  # plain L1: trainer256.py g_loss1


@pytest.mark.parametrize("preset", ["pg2", "triplet", "pg2-official"])
def test_losses_of_the_recipe_match_the_formulas(preset):
    tr = make_trainer(preset)
    b = tr.to_device(batch_of(ToyPairs(8), range(4)))
    g1_out = tr.g1_output(b)
    i_a, i_b = b["condition"], b["target"]
    with torch.no_grad():
        fake = tr.g2(g1_out, i_a)
        if preset == "pg2":  # one D pass over the real pairs (I_A, I_B) and fake pairs (I_A, G2)
            d_fake = tr.d(torch.cat([torch.cat([i_a, i_b], 1), torch.cat([i_a, fake], 1)]))[4:]
        else:  # one pass over [I_B, G2, I_A] (trainer256.py); official G2 loss over [G2, I_A]
            scores = tr.d(torch.cat([i_b, fake, i_a]))
            d_fake = scores[4:8] if preset == "triplet" else scores[4:]
        ref_l1 = ((fake - i_b).abs() * (1 + b["mask"])).mean()
        ref_adv = torch.nn.functional.softplus(-d_fake).mean()  # -log sigmoid
    out = tr.g_step(b, g1_out)
    assert float(out["l1"]) == pytest.approx(float(ref_l1), rel=1e-5)
    assert float(out["g_adv"]) == pytest.approx(float(ref_adv), rel=1e-4)
    assert float(out["g"]) == pytest.approx(float(ref_adv + 50 * ref_l1), rel=1e-5)
    assert losses.pose_mask_l1(b["target"], b["target"], b["mask"]) == 0


def test_cli_help_and_usage_errors(tmp_path):
    from click.testing import CliRunner

    from pgtrain.cli import main

    r = CliRunner().invoke(main, ["fit", "--help"])
    assert r.exit_code == 0 and "--preset" in r.output and "pgtrain fit" in r.output
    r = CliRunner().invoke(main, ["fit", str(tmp_path / "missing"), "-o", str(tmp_path / "r")])
    assert r.exit_code == 2
    r = CliRunner().invoke(main, ["fit", str(tmp_path), "-o", str(tmp_path / "r"), "--preset", "nope"])
    assert r.exit_code == 2
    r = CliRunner().invoke(main, ["fit", str(tmp_path), "-o", str(tmp_path / "r")])
    assert r.exit_code == 1 and r.output.strip().startswith("error:") and len(r.output.strip().splitlines()) == 1


def _held_out_losses(g1, ds, n):
    from torch.utils.data import default_collate

    b = default_collate([ds[i] for i in range(n)])
    with torch.no_grad():
        y = g1(b["condition"], b["pose"])
    return (losses.pose_mask_l1(y, b["target"], b["mask"]).item(),
            losses.masked_l1(y, b["target"], b["mask"]).item())


@pytest.mark.slow
def test_tiny_run_on_synthetic_people_lowers_masked_l1_on_test_pairs(shards_dir, tmp_path):
    from pgtrain.data import PairDataset
    from pgtrain.nets import build

    test = PairDataset(shards_dir, "test")
    n = min(64, len(test))
    fit(shards_dir, tmp_path / "r", "g1", tiny=True, steps1=150, lr=1e-3, device="cpu",
        sample_every=1000)
    g = checkpoint.load_generators(tmp_path / "r")
    torch.manual_seed(g.options["seed"])  # G1's initial weights, as the trainer built them
    pm0, body0 = _held_out_losses(build("g1", g.options).eval(), test, n)
    pm1, body1 = _held_out_losses(g.g1, test, n)
    print(f"held-out pose-mask L1 {pm0:.3f} -> {pm1:.3f}, body-only L1 {body0:.3f} -> {body1:.3f}")
    # the seed's masked L1 ||(G1 - I_B)(1 + M_B)||_1; the body-only part improves much more
    # slowly (0.383 -> 0.374 here: colours move to the new pose only after a few hundred steps)
    assert pm1 < 0.6 * pm0
    records = read_stats(tmp_path / "r")
    # the first record is step 10, after the steep start (1.08 -> ~0.20 with PG²'s Glorot init);
    # from there to step 150 the training loss still falls by about a quarter (0.202 -> 0.146)
    assert records[-1]["step"] == 150 and records[-1]["l1"] < 0.85 * records[0]["l1"]


@pytest.mark.slow
def test_cli_trains_pg2_on_shards_and_resumes(shards_dir, tmp_path):
    from click.testing import CliRunner

    from pgtrain.cli import main

    args = ["fit", str(shards_dir), "-o", str(tmp_path / "r"), "--preset", "pg2", "--tiny",
            "--channels", "8", "--steps1", "4", "--steps2", "2", "--device", "cpu"]
    r = CliRunner().invoke(main, args)
    assert r.exit_code == 0, r.output
    assert json.loads(r.output.splitlines()[0])["stage"] == 2
    r = CliRunner().invoke(main, args)
    assert r.exit_code == 0 and "nothing to do" in r.output
    r = CliRunner().invoke(main, [*args[:4], "--resume", "--steps2", "3"])
    assert r.exit_code == 0, r.output
    assert [(x["stage"], x["step"]) for x in read_stats(tmp_path / "r")][-2:] == [(2, 2), (2, 3)]
    r = CliRunner().invoke(main, [*args[:4], "--resume", "--lr", "1"])
    assert r.exit_code == 1 and "cannot change lr" in r.output


def test_a_stage_with_zero_steps_still_finishes_the_run(tmp_path, capsys):
    ds = ToyPairs(8)
    fit(ds, tmp_path / "r", "pg2", steps1=2, steps2=0, **TINY)
    ck = checkpoint.load(tmp_path / "r" / "checkpoints" / "last.pt")
    assert (ck["stage"], ck["step"], ck["done"]) == (2, 0, True)
    assert checkpoint.load_generators(tmp_path / "r").g2 is None  # an untrained G2 is not offered
    fit(ds, tmp_path / "r", "pg2", steps1=2, steps2=0, **TINY)
    assert "nothing to do" in capsys.readouterr().out


# ------------------------------------------------------------------ run directory integrity (issue 12)

def test_a_second_fit_into_a_running_run_stops_with_a_message(tmp_path):
    from pgprep.errors import PgkitError

    ds = ToyPairs(8)
    seen = []

    def second_fit(stage, step, _):
        if step == 1:
            with pytest.raises(PgkitError) as err:
                fit(ds, tmp_path / "r", "g1", steps1=2, **TINY)
            seen.append(str(err.value))

    fit(ds, tmp_path / "r", "g1", steps1=2, callback=second_fit, **TINY)
    assert len(seen) == 1
    assert seen[0].startswith(f"{tmp_path / 'r'}: another `pgtrain fit` is training into this run")
    assert f"pid {__import__('os').getpid()}" in seen[0]
    ck = checkpoint.load(tmp_path / "r" / "checkpoints" / "last.pt")
    assert (ck["step"], ck["done"]) == (2, True)
    assert [r["step"] for r in read_stats(tmp_path / "r")] == [1, 2]  # no interleaved steps


def test_the_run_lock_dies_with_a_killed_process(tmp_path):
    import subprocess
    import sys

    from pgprep.errors import PgkitError
    from pgtrain.rundir import RunLock

    run = tmp_path / "r"
    child = subprocess.Popen([sys.executable, "-c", f"from pgtrain.rundir import RunLock; "
                              f"RunLock({str(run)!r}); print('locked', flush=True); "
                              "import time; time.sleep(60)"], stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout.readline().strip() == "locked"
        with pytest.raises(PgkitError, match=f"pid {child.pid}"):
            RunLock(run)
    finally:
        child.kill()  # SIGKILL: no cleanup code runs
        child.wait()
    with RunLock(run) as lock:  # the kernel dropped the lock with the process
        assert lock.fd is not None


def test_a_run_that_fails_early_leaves_no_directory(tmp_path):
    from pgprep.errors import PgkitError

    with pytest.raises(PgkitError):
        fit(tmp_path / "no-such-shards", tmp_path / "r", "g1", **TINY)
    assert not (tmp_path / "r").exists()


def test_stale_checkpoint_temp_files_are_removed_only_when_ours(tmp_path, capsys):
    ds = ToyPairs(8)
    run = tmp_path / "r"
    fit(ds, run, "g1", steps1=2, **{**TINY, "ckpt_every": 1})
    ckdir = run / "checkpoints"
    stale = [ckdir / ".last.pt.k3j_x9q2.tmp", ckdir / ".stage1.pt.abcdefgh.tmp", run / ".options.json.0a1b2c3d.tmp"]
    foreign = [ckdir / ".last.pt.short.tmp", ckdir / "notes.tmp", ckdir / ".mine.ckpt.abcdefgh.tmp",
               run / ".eval.json.abcdefgh.tmp", ckdir / "last.pt.abcdefgh.tmp"]
    for p in stale + foreign:
        p.write_bytes(b"\0" * 1000)
    capsys.readouterr()
    fit(ds, run, "g1", steps1=3, resume=True, **TINY)
    out = capsys.readouterr().out
    assert "removed 3 temporary file(s) a killed run left behind" in out
    assert not any(p.exists() for p in stale)
    assert all(p.exists() for p in foreign)


def test_stale_temp_files_are_kept_while_another_fit_holds_the_run(tmp_path):
    from pgprep.errors import PgkitError
    from pgtrain.rundir import RunLock

    run = tmp_path / "r"
    (run / "checkpoints").mkdir(parents=True)
    tmp = run / "checkpoints" / ".last.pt.abcdefgh.tmp"  # being written by the running fit
    tmp.write_bytes(b"x")
    with RunLock(run), pytest.raises(PgkitError, match="another `pgtrain fit`"):
        fit(ToyPairs(8), run, "g1", steps1=2, **TINY)
    assert tmp.exists()


def _fake_shards(monkeypatch, tmp_path, name, index):
    """A shard directory whose index.json is `index`; the loop reads ToyPairs instead."""
    from pgtrain import loop

    d = tmp_path / name
    d.mkdir(exist_ok=True)
    (d / "index.json").write_text(json.dumps(index))
    monkeypatch.setattr(loop, "open_split", lambda shards, split, raw=False: ToyPairs(8) if split == "train" else None)
    return d


def test_resume_on_other_data_is_refused_unless_allowed(tmp_path, monkeypatch, capsys):
    from pgprep.atomic import file_sha256
    from pgprep.errors import PgkitError

    a = _fake_shards(monkeypatch, tmp_path, "a", {"format": "pgkit-shards", "n": 1})
    b = _fake_shards(monkeypatch, tmp_path, "b", {"format": "pgkit-shards", "n": 2})
    run = tmp_path / "r"
    fit(str(a), run, "g1", steps1=2, **TINY)
    opts = json.loads((run / "options.json").read_text())
    assert opts["shards_resolved"] == str(a.resolve())
    assert opts["shards_index_sha256"] == file_sha256(a / "index.json")
    before = (run / "options.json").read_text()
    with pytest.raises(PgkitError) as err:
        fit(str(b), run, "g1", steps1=3, resume=True, **TINY)
    msg = str(err.value)
    assert f"SHARDS was {a.resolve()}, now {b.resolve()}" in msg and "index.json changed" in msg
    assert "--allow-new-data" in msg
    (a / "index.json").write_text(json.dumps({"format": "pgkit-shards", "n": 3}))  # repacked in place
    with pytest.raises(PgkitError, match="index.json changed") as err:
        fit(str(a), run, "g1", steps1=3, resume=True, **TINY)
    assert "SHARDS was" not in str(err.value)
    assert (run / "options.json").read_text() == before  # not rewritten
    assert checkpoint.load(run / "checkpoints" / "last.pt")["step"] == 2
    capsys.readouterr()
    fit(str(b), run, "g1", steps1=3, resume=True, allow_new_data=True, **TINY)
    assert "continuing on new data (--allow-new-data)" in capsys.readouterr().out
    assert json.loads((run / "options.json").read_text())["shards_resolved"] == str(b.resolve())
    assert checkpoint.load(run / "checkpoints" / "last.pt")["step"] == 3


def test_cli_allow_new_data_option(tmp_path, monkeypatch):
    from click.testing import CliRunner

    from pgtrain.cli import main

    a = _fake_shards(monkeypatch, tmp_path, "a", {"n": 1})
    b = _fake_shards(monkeypatch, tmp_path, "b", {"n": 2})
    base = ["fit", "-o", str(tmp_path / "r"), "--preset", "g1", "--channels", "8", "--batch-size", "4",
            "--device", "cpu", "--log-every", "1"]
    assert CliRunner().invoke(main, [*base, str(a), "--steps1", "1"]).exit_code == 0
    r = CliRunner().invoke(main, [*base, str(b), "--steps1", "2", "--resume"])
    assert r.exit_code == 1 and "other training data" in r.output and len(r.output.strip().splitlines()) == 1
    r = CliRunner().invoke(main, [*base, str(b), "--steps1", "2", "--resume", "--allow-new-data"])
    assert r.exit_code == 0, r.output


def test_resume_after_a_torn_stats_line(tmp_path, capsys):
    ds = ToyPairs(8)
    run = tmp_path / "r"
    fit(ds, run, "g1", steps1=2, **TINY)
    with open(run / "stats.jsonl", "a") as f:
        f.write('{"step": 3, "stage": 1, "global_st')  # disk full mid-record
    capsys.readouterr()
    fit(ds, run, "g1", steps1=3, resume=True, **TINY)
    assert "line 3 was torn" in capsys.readouterr().out
    assert [r["step"] for r in read_stats(run)] == [1, 2, 3]


@pytest.mark.parametrize("what", ["checkpoint", "samples"])
def test_full_disk_names_the_file_and_keeps_no_temp(tmp_path, monkeypatch, what):
    import errno

    from pgprep import atomic, draw
    from pgprep.errors import PgkitError

    def full(path):  # the kernel takes some bytes, then the disk is full
        with open(path, "wb") as f:
            f.write(b"partial")
        raise OSError(errno.ENOSPC, "No space left on device")

    if what == "checkpoint":
        monkeypatch.setattr(torch, "save", lambda obj, path, *a, **k: full(path))
        expect = tmp_path / "r" / "checkpoints" / "last.pt"
    else:
        def png(path, data):
            with atomic.atomic_path(path) as tmp:
                full(tmp)

        monkeypatch.setattr(draw, "write_bytes_atomic", png)
        expect = tmp_path / "r" / "samples" / "step-0000001.png"
    with pytest.raises(PgkitError) as err:
        fit(ToyPairs(8), tmp_path / "r", "g1", steps1=2, **{**TINY, "sample_every": 1, "ckpt_every": 1})
    assert str(err.value).startswith(f"{expect}: cannot write: No space left on device; free some space")
    leftovers = [p.name for p in (tmp_path / "r").rglob("*.tmp")]
    assert leftovers == []


def test_checkpoint_load_errors_never_suggest_weights_only_false(tmp_path):
    import argparse

    from pgprep.errors import PgkitError

    path = tmp_path / "evil.pt"
    torch.save({"format": "pgkit-checkpoint", "version": 1, "x": argparse.Namespace(a=1)}, path)
    with pytest.raises(PgkitError) as err:
        checkpoint.load(path)
    msg = str(err.value)
    assert msg.startswith(f"{path}: refused: it holds Python objects other than tensors")
    assert "argparse.Namespace" in msg and "weights_only" not in msg and "False" not in msg
    assert "add_safe_globals" not in msg
    trunc = tmp_path / "trunc.pt"
    trunc.write_bytes(b"PK\x03\x04 not really a zip")
    with pytest.raises(PgkitError, match="truncated or not a torch file") as err:
        checkpoint.load(trunc)
    assert str(err.value).startswith(str(trunc)) and "miniz" not in str(err.value)


@pytest.mark.slow
@pytest.mark.parametrize("preset", ["pg2", "triplet", "wgan-triplet", "pg2-official", "triplet-pose"])
def test_every_stage2_preset_trains_resumes_exactly_and_evaluates(shards_dir, tmp_path, preset):
    from pgtrain.evaluate import evaluate

    kw = dict(tiny=True, channels=4, batch_size=2, steps1=2, steps2=3, ckpt_every=2, log_every=1,
              sample_every=1000, device="cpu", critic_steps=2 if preset == "wgan-triplet" else None)
    kw = {k: v for k, v in kw.items() if v is not None}
    fit(shards_dir, tmp_path / "a", preset, **kw)
    with pytest.raises(Interrupt):
        fit(shards_dir, tmp_path / "b", preset, callback=interrupt_at(2, 3), **kw)
    fit(shards_dir, tmp_path / "b", preset, resume=True, **kw)
    assert _losses(tmp_path / "a") == _losses(tmp_path / "b")
    report = evaluate(tmp_path / "b", shards_dir, limit=8, device="cpu", show_progress=False)
    assert report["preset"] == preset and report["model_row"] == "stage2"
    s2 = report["rows"]["stage2"]
    assert 0 < s2["ssim_pg2"] < 1 and s2["sharpness"] > 0


@pytest.mark.parametrize("name", ["stats.jsonl", "options.json"])
def test_a_new_run_never_replaces_files_fit_did_not_write(tmp_path, name):
    from pgprep.errors import PgkitError

    run = tmp_path / "mine"
    run.mkdir()
    (run / name).write_text('{"my": "notes"}\n')
    with pytest.raises(PgkitError, match="not written by `pgtrain fit`"):
        fit(ToyPairs(8), run, "g1", **dict(TINY, steps1=1))
    assert (run / name).read_text() == '{"my": "notes"}\n'
    # a killed fit's own files are replaced by the new run as before
    fit(ToyPairs(8), tmp_path / "b", "g1", **dict(TINY, steps1=1))
    (tmp_path / "b" / "checkpoints" / "last.pt").unlink()
    fit(ToyPairs(8), tmp_path / "b", "g1", **dict(TINY, steps1=1))
    assert len(read_stats(tmp_path / "b")) == 1


# ---------------------------------------------------------------- issue 18 items 21, 22

@pytest.mark.parametrize("flag, value", [
    ("--lr", "nan"), ("--beta1", "2"), ("--lr2", "-1"), ("--workers", "-1"), ("--seed", "1e23"),
    ("--seed", "1" + "0" * 23), ("--gp", "-1"), ("--lr-d", "0"), ("--diffmap-init", "1e30"),
    ("--lr", "inf"), ("--channels", "0"), ("--clip", "-0.01"), ("--steps1", "-5"),
])
def test_every_numeric_fit_option_is_checked_before_anything_is_written(tmp_path, flag, value):
    """Issue 18 item 21: these failed after options.json was written, or were accepted."""
    from click.testing import CliRunner

    from pgtrain.cli import main

    run = tmp_path / "r"
    r = CliRunner().invoke(main, ["fit", str(tmp_path), "-o", str(run), flag, value])
    assert r.exit_code == 2, r.output
    assert f"Invalid value for '{flag}'" in r.output and "Traceback" not in r.output
    assert not run.exists()


def test_fit_options_from_python_and_checkpoints_are_checked_too(tmp_path):
    from pgprep.errors import PgkitError

    with pytest.raises(PgkitError, match=r"option lr must be a finite number in \(0, 1\], got nan"):
        fit(ToyPairs(8), tmp_path / "r", "g1", **{**TINY, "lr": float("nan")})
    assert not (tmp_path / "r").exists()
    fit(ToyPairs(8), tmp_path / "r", "g1", **{**TINY, "steps1": 1})
    last = tmp_path / "r" / "checkpoints" / "last.pt"
    ck = checkpoint.load(last)
    ck["options"]["beta1"] = 2.0
    torch.save(ck, last)
    with pytest.raises(PgkitError, match=r"option beta1 must be a finite number in \[0, 1\), got 2.0") as err:
        fit(ToyPairs(8), tmp_path / "r", "g1", resume=True, **{**TINY, "steps1": 2})
    assert err.value.path == str(last)


def test_fit_resume_compares_checkpoint_shapes_before_building(tmp_path, monkeypatch):
    """A checkpoint whose options say another width: refused from the meta-device shapes."""
    from pgprep.errors import PgkitError
    from pgtrain import loop

    fit(ToyPairs(8), tmp_path / "r", "g1", **{**TINY, "steps1": 1})
    last = tmp_path / "r" / "checkpoints" / "last.pt"
    ck = checkpoint.load(last)
    ck["options"]["channels"] = 300
    torch.save(ck, last)
    monkeypatch.setattr(loop, "Trainer", None)  # never reached
    with pytest.raises(PgkitError, match=r"its G1 does not match this pgkit's G1 .* its options imply \(300,"):
        fit(ToyPairs(8), tmp_path / "r", "g1", resume=True, **{**TINY, "steps1": 2, "channels": 300})


def test_fit_cleanup_removes_only_its_own_checkpoint_temp_names(tmp_path):
    """Issue 18 item 22: any `.<name>.pt.XXXXXXXX.tmp` in checkpoints/ was deleted, a user's too."""
    from pgtrain.rundir import clean_stale_temps

    ckdir = tmp_path / "checkpoints"
    ckdir.mkdir()
    ours = [ckdir / ".last.pt.k3j_x9q2.tmp", ckdir / ".stage1.pt.abcdefgh.tmp"]
    theirs = [ckdir / ".mine.pt.abcdefgh.tmp", ckdir / ".best.pt.0123abcd.tmp", ckdir / ".last.pt.ABCDEFGH.tmp"]
    for p in ours + theirs:
        p.write_bytes(b"x")
    assert clean_stale_temps(tmp_path) == sorted(ours)
    assert all(p.exists() for p in theirs)


@pytest.mark.parametrize("g_adversarial_on", ["g2", "fakes"])
def test_without_batch_norm_the_g_step_scores_only_the_sets_it_uses(g_adversarial_on):
    """d_norm "none": D's score of each image depends on it alone, so scoring only G2's
    output (or the fake sets) gives the scores of the full [I_B, G2, I_A] pass."""
    tr = make_trainer("wgan-gp-triplet", g_adversarial_on=g_adversarial_on)
    assert tr.o.d_norm == "none"
    b = tr.to_device(batch_of(ToyPairs(8), range(4)))
    fake = tr.g2_output(b, tr.g1_output(b)).detach()
    runs = []
    real_d = tr.d

    def counting(x):
        runs.append(x.shape[0])
        return real_d(x)

    tr.d = counting
    try:
        scored = tr.g_scores(b, fake)
    finally:
        tr.d = real_d
    _, fakes = tr.d_scores(tr.d, b, fake)
    full = fakes[0] if g_adversarial_on == "g2" else torch.cat(fakes)
    assert runs == [4 if g_adversarial_on == "g2" else 8]       # not the 12 of [I_B, G2, I_A]
    assert torch.allclose(scored, full, atol=1e-6)
