"""Shared tiny fixtures: one synthetic set, its WORK directory and its shards, built once.

Each fixture calls the stage's library function (docs/internal-api.md), so a failure here
names the stage that broke. Tests that modify data must copy it first.
"""

from __future__ import annotations

import os

import pytest

os.environ.setdefault("PGKIT_NO_PROGRESS", "1")

SYNTH_ITEMS = 24
SYNTH_SIZE = 64


@pytest.fixture
def one_thread():
    """Tiny nets on a shared 2-core box: one torch thread avoids OpenMP oversubscription stalls."""
    import torch

    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="session")
def synth_root(tmp_path_factory):
    from pgprep.synth import synthesize

    root = tmp_path_factory.mktemp("synth") / "root"
    synthesize(root, items=SYNTH_ITEMS, seed=0, size=SYNTH_SIZE, jobs=1)
    return root


@pytest.fixture(scope="session")
def work_dir(synth_root, tmp_path_factory):
    from pgprep.filter import run_filter
    from pgprep.masks import run_masks
    from pgprep.pairs import run_pairs

    work = tmp_path_factory.mktemp("work") / "work"
    run_filter(synth_root, synth_root / "pose" / "openpose", work)
    run_pairs(work, seed=0)
    run_masks(work, jobs=1, scale=True)
    return work


@pytest.fixture(scope="session")
def shards_dir(work_dir, tmp_path_factory):
    from pgprep.pack import run_pack

    shards = tmp_path_factory.mktemp("shards") / "shards"
    run_pack(work_dir, shards, layout="compact", jobs=1)
    return shards


@pytest.fixture(autouse=True, scope="session")
def _no_network_no_user_cache(tmp_path_factory):
    """No test downloads weights or touches the user's cache: PGKIT_OFFLINE=1 and a private
    PGKIT_CACHE (tests of the fetching code unset them and serve files from 127.0.0.1)."""
    import os

    old = {k: os.environ.get(k) for k in ("PGKIT_OFFLINE", "PGKIT_CACHE")}
    os.environ["PGKIT_OFFLINE"] = "1"
    os.environ["PGKIT_CACHE"] = str(tmp_path_factory.mktemp("pgkit-cache"))
    yield
    for k, v in old.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v
