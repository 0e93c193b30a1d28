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


# ---------------------------------------------------------------- PATN's split lists

LIST_SPLITS = ("train", "test")
UNMAPPED_COLUMNS = ["list", "line", "name", "reason"]


def read_name_list(path: str | os.PathLike) -> list[tuple[int, str]]:
    """(line number, name) of each non-empty line of a PATN list (`train.lst`, `test.lst`)."""
    try:
        text = Path(path).read_text(encoding="utf-8-sig", errors="replace")
    except FileNotFoundError:
        raise PgkitError(path, "no such file (expected PATN's train.lst / test.lst: one image name a line)") from None
    except OSError as exc:
        raise PgkitError(path, f"cannot read ({exc.strerror})") from None
    return [(n, line.strip()) for n, line in enumerate(text.splitlines(), start=1) if line.strip()]


def flattened_index(images) -> dict[str, list[str]]:
    """PATN-flattened name -> the image paths (relative to ROOT) that flatten to it."""
    index: dict[str, list[str]] = {}
    for image in images:
        try:
            index.setdefault(flatten_name(image), []).append(image)
        except ValueError:
            continue  # not <gender>/<category>/<id>/<file>: no list name can refer to it
    return index


def image_tree(root: str | os.PathLike) -> list[str]:
    """Every image file below ROOT/img as a path relative to ROOT (`img/...`), sorted."""
    root = Path(root)
    exts = {".jpg", ".jpeg", ".png", ".webp"}
    return sorted(p.relative_to(root).as_posix() for p in (root / "img").rglob("*")
                  if p.suffix.lower() in exts and p.is_file())


def map_split_lists(lists: dict[str, str | os.PathLike], known, root: str | os.PathLike | None = None,
                    ) -> tuple[dict[str, str], list[dict], dict]:
    """Map the names of PATN's lists onto images: ({image: split}, unmapped rows, counts).

    `lists`: {"train": path, "test": path}. A name is PATN-flattened
    (`fashionWOMENSkirtsid0000062904_3back.jpg` <- `img/WOMEN/Skirts/id_00000629/04_3_back.jpg`)
    or a path relative to ROOT (`img/...`). It is looked up among `known` images (the
    partition's), then in the tree below ROOT/img. Every name that maps to no image, to
    several, or repeats a line is returned as an unmapped row (`list, line, name, reason`);
    none is dropped silently. An image in both lists raises PgkitError naming both lines.
    """
    known = list(known)
    index = flattened_index(known)
    raw = set(known)
    tree: list[str] | None = None
    split_of: dict[str, str] = {}
    where: dict[str, tuple[str, int, str]] = {}
    unmapped: list[dict] = []
    counts: dict = {}
    for split in LIST_SPLITS:
        path = lists[split]
        rows = read_name_list(path)
        c = {"file": os.fspath(path), "names": len(rows), "mapped": 0, "unmapped": 0, "duplicates": 0}
        for line, name in rows:
            hits = [name] if name in raw else index.get(name, [])
            if not hits and root is not None:
                if tree is None:  # only when a name is not in the partition: walking img/ costs
                    tree = image_tree(root)
                    raw |= set(tree)
                    index = flattened_index(sorted(raw))
                hits = [name] if name in raw else index.get(name, [])
            reason = None
            if not hits:
                reason = ("no image below ROOT/img flattens to this name (PATN's rule: "
                          "img/<GENDER>/<Category>/id_XXXXXXXX/<outfit>_<n>_<view>.jpg -> "
                          "fashion<GENDER><Category>idXXXXXXXX<outfit>_<n><view>.jpg)")
            elif len(hits) > 1:
                reason = f"ambiguous: {len(hits)} images flatten to it ({', '.join(hits[:3])})"
            else:
                image = hits[0]
                if image in where:
                    s0, line0, list0 = where[image]
                    if s0 != split:
                        raise PgkitError(path, f"line {line}: {image} ({name}) is in both lists: line "
                                               f"{line0} of {list0} puts it on the {s0} side; an image "
                                               "must be on one side of the split")
                    reason = f"duplicate: repeats line {line0} ({image})"
                    c["duplicates"] += 1
                else:
                    where[image] = (split, line, os.fspath(path))
                    split_of[image] = split
                    c["mapped"] += 1
            if reason and not reason.startswith("duplicate"):
                c["unmapped"] += 1
            if reason:
                unmapped.append({"list": os.fspath(path), "line": line, "name": name, "reason": reason})
        counts[split] = c
    return split_of, unmapped, counts


# PATN's published benchmark (Pose-Transfer fashion_data): what complete inputs give
PATN_LIST_IMAGES = {"train": 48674, "test": 4038}
PATN_PAIRS = {"train": 101966, "test": 8570}


def list_report(lists: dict, kept: dict) -> str:
    """One line on how the split lists came out: listed images kept per split, unmapped and
    duplicate names, and whether the lists are PATN's complete benchmark split."""
    parts = [f"{kept.get(s, 0):,} of {lists[s]['mapped']:,} {s}" for s in LIST_SPLITS]
    bad = sum(lists[s]["unmapped"] for s in LIST_SPLITS)
    dup = sum(lists[s]["duplicates"] for s in LIST_SPLITS)
    line = (f"split lists: {' and '.join(parts)} listed images kept; {bad} name(s) map to no image, "
            f"{dup} duplicate line(s)" + (f" -> {lists.get('unmapped_csv')}" if bad or dup else ""))
    if all(lists[s]["names"] == PATN_LIST_IMAGES[s] for s in LIST_SPLITS):
        complete = not bad and not dup and all(kept.get(s, 0) == PATN_LIST_IMAGES[s] for s in LIST_SPLITS)
        line += ("; PATN's benchmark split, complete (48,674 / 4,038)" if complete else
                 "; PATN's lists (48,674 / 4,038 names) but not every listed image was kept: see "
                 "rejects.csv and the unmapped names")
    return line


def pairs_report(split: str, imported: int, used: int) -> str | None:
    """A note when a pairs CSV has PATN's published size: complete, or how many pairs it lost."""
    if imported != PATN_PAIRS.get(split):
        return None
    if used == imported:
        return f"PATN's {imported:,} {split} pairs, all used"
    return f"PATN's {imported:,} {split} pairs, {imported - used:,} not used (see the reasons above)"
