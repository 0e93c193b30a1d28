"""The DeepFashion In-shop raw tree: partition file, item ids, PATN name flattening.

    ROOT/img/<MEN|WOMEN>/<Category>/id_XXXXXXXX/<outfit>_<n>_<view>.jpg
    ROOT/Eval/list_eval_partition.txt   count / header / `image_name item_id evaluation_status`
"""

from __future__ import annotations

import os
import re
from pathlib import Path, PurePosixPath

import pandas as pd

from pgprep.atomic import write_text_atomic
from pgprep.errors import PgkitError

PARTITION = "Eval/list_eval_partition.txt"
PARTITION_HEADER = "image_name item_id evaluation_status"
STATUSES = ("train", "query", "gallery")
VIEWS = ("front", "side", "back", "full", "additional", "flat")
_ITEM_RE = re.compile(r"id_(\d{8})")


def split_of(status: str) -> str:
    """train -> train; query and gallery form the test side."""
    return "train" if status == "train" else "test"


def item_id_of(name: str) -> str:
    """The identity of an image: `id_XXXXXXXX` from a raw path or a PATN-flattened name."""
    m = _ITEM_RE.search(name)
    if m:
        return f"id_{m.group(1)}"
    m = re.search(r"id(\d{8})", name)  # flattened: ...Tees_Tanksid0000783805_7additional.jpg
    if m:
        return f"id_{m.group(1)}"
    raise ValueError(f"no item id (id_XXXXXXXX) in image name {name!r}")


def flatten_name(image: str) -> str:
    """PATN's flattened file name: img/WOMEN/Tees_Tanks/id_00007838/05_7_additional.jpg ->
    fashionWOMENTees_Tanksid0000783805_7additional.jpg."""
    parts = PurePosixPath(image).parts
    if parts and parts[0] in ("img", "img_highres"):
        parts = parts[1:]
    if len(parts) != 4:
        raise ValueError(f"expected <gender>/<category>/<id>/<file>, got {image!r}")
    gender, category, ident, fname = parts
    stem, ext = os.path.splitext(fname)
    head, _, view = stem.rpartition("_")
    return f"fashion{gender}{category}{ident.replace('_', '')}{head}{view}{ext}"


def check_relative(name: str, where: str | os.PathLike | None = None) -> str:
    """Refuse absolute names and names with '..' (an index must not point outside ROOT).

    The one name check of pgkit: at ingest (filter) and again wherever a name is read back
    (images.csv and pairs CSVs in masks and pack, index.json and shard names in verify and
    PairDataset), so an edited file can never make a stage read or write outside its folder.
    """
    if not isinstance(name, str) or not name.strip() or "\0" in name:
        raise PgkitError(where, f"refused image name {name!r}: empty or not a string")
    p = PurePosixPath(name.replace("\\", "/"))
    if p.is_absolute() or ".." in p.parts or re.match(r"^[A-Za-z]:", name):
        raise PgkitError(where, f"refused image name {name!r}: absolute or contains '..'")
    return str(p)


def read_partition(root: str | os.PathLike) -> pd.DataFrame:
    """Columns image, item_id, status, split; names checked to be relative and inside ROOT.

    Raises PgkitError (naming the file) if ROOT is not a DeepFashion-style tree.
    """
    root = Path(root)
    path = root / PARTITION
    if not root.is_dir():
        raise PgkitError(root, "not a directory; expected a DeepFashion In-shop tree with img/ and " + PARTITION)
    if not path.is_file():
        raise PgkitError(path, "missing: a DeepFashion In-shop ROOT has img/... and " + PARTITION
                         + " (line 1 count, line 2 header, then `image_name item_id evaluation_status`)")
    lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    if len(lines) < 2 or lines[1].split() != PARTITION_HEADER.split():
        raise PgkitError(path, f"line 2 must be the header '{PARTITION_HEADER}'")
    rows, bad = [], []
    for lineno, line in enumerate(lines[2:], start=3):
        f = line.split()
        if not f:
            continue
        if len(f) != 3 or f[2] not in STATUSES:
            bad.append(lineno)
            continue
        rows.append((f[0], f[1], f[2], lineno))
    if not rows:
        raise PgkitError(path, "no image rows found")
    frame = pd.DataFrame(rows, columns=["image", "item_id", "status", "line"])
    frame["split"] = frame["status"].map(split_of)
    frame.attrs["bad_lines"] = bad
    return frame


def write_partition(root: str | os.PathLike, frame: pd.DataFrame) -> None:
    """Write `Eval/list_eval_partition.txt` from columns image, item_id, status."""
    body = "\n".join(f"{r.image} {r.item_id} {r.status}" for r in frame.itertuples())
    write_text_atomic(Path(root) / PARTITION, f"{len(frame)}\n{PARTITION_HEADER}\n{body}\n")
