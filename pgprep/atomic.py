"""Atomic outputs and stage stamps.

Every output is written under a temporary name in the same directory and renamed into place
when complete, so a killed stage never leaves a file that looks complete. A stage records a
fingerprint of its inputs and options in `WORK/.pgkit/<stage>.json` after its outputs are in
place; a rerun with the same fingerprint and all outputs present does nothing.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import struct
import tempfile
import zlib
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

from pgprep.errors import PgkitError

STAMP_DIR = ".pgkit"


def _read_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


_UMASK = _read_umask()


# atomic_path's temporary names: mkstemp(prefix=f".{name}.", suffix=".tmp") adds 8 random [a-z0-9_]
_TEMP_NAME = re.compile(r"^\.(?P<name>.+)\.[a-z0-9_]{8}\.tmp$")


def temp_target(filename: str) -> str | None:
    """The final name an `atomic_path` temporary file was for, or None if `filename` is not one.
    Cleanup code deletes a temp file only when this names an output it writes itself."""
    m = _TEMP_NAME.match(filename)
    return m.group("name") if m else None


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside `path`; rename it onto `path` only if the block succeeds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp = Path(tmp)
    os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp makes 0600; outputs get the usual permissions
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def write_bytes_atomic(path: str | os.PathLike, data: bytes) -> None:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def write_text_atomic(path: str | os.PathLike, text: str) -> None:
    write_bytes_atomic(path, text.encode("utf-8"))


def write_json_atomic(path: str | os.PathLike, obj) -> None:
    write_text_atomic(path, json.dumps(obj, indent=2, sort_keys=False) + "\n")


def write_csv_atomic(path: str | os.PathLike, frame) -> None:
    """Write a pandas DataFrame as CSV (no index), atomically."""
    with atomic_path(path) as tmp:
        frame.to_csv(tmp, index=False)


def canonical_path(path: str | os.PathLike, _dirs: dict | None = None) -> str:
    """The absolute, symlink-resolved spelling of `path`, so `work`, `./work/` and
    `/abs/work` fingerprint alike. `_dirs` caches resolved folders (one realpath per folder,
    not per file: 49k images in 8k folders cost ~0.2 s)."""
    p = os.fspath(path)
    head, tail = os.path.split(p)
    if tail in ("", ".", ".."):
        return os.path.realpath(p)
    if _dirs is None:
        return os.path.join(os.path.realpath(head or "."), tail)
    real = _dirs.get(head)
    if real is None:
        real = _dirs[head] = os.path.realpath(head or ".")
    return os.path.join(real, tail)


def fingerprint(files: Iterable[str | os.PathLike] = (), options: dict | None = None) -> str:
    """Hash of the files' names, sizes and mtimes plus the options: cheap change detection.
    Names are canonical (`canonical_path`): how a path was spelled changes nothing."""
    h = hashlib.sha256()
    dirs: dict = {}
    for f in sorted({canonical_path(f, dirs) for f in files}):
        try:
            st = os.stat(f)
            h.update(f"{f}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
        except FileNotFoundError:
            h.update(f"{f}\0missing\n".encode())
        except OSError as exc:  # a symlink loop, a denied folder: the stage rejects that file itself
            h.update(f"{f}\0error {exc.errno}\n".encode())
    h.update(json.dumps(options or {}, sort_keys=True, default=str).encode())
    return h.hexdigest()


def file_sha256(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def _stamp_file(work: Path, stage: str) -> Path:
    return Path(work) / STAMP_DIR / f"{stage}.json"


def is_up_to_date(work: str | os.PathLike, stage: str, fp: str,
                  outputs: Iterable[str | os.PathLike]) -> bool:
    """True if `stage` last finished with fingerprint `fp` and all its outputs still exist."""
    stamp = _stamp_file(Path(work), stage)
    try:
        rec = json.loads(stamp.read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return False
    return rec.get("fingerprint") == fp and all(Path(o).exists() for o in outputs)


def mark_done(work: str | os.PathLike, stage: str, fp: str, **info) -> None:
    write_json_atomic(_stamp_file(Path(work), stage), {"stage": stage, "fingerprint": fp, **info})


def clear_stamp(work: str | os.PathLike, stage: str) -> None:
    with contextlib.suppress(FileNotFoundError):
        _stamp_file(Path(work), stage).unlink()


# ---------------------------------------------------------------- user-named outputs
#
# One rule for every file a user names with -o (preview, generate, eval, table ...): pgkit
# replaces an existing file only when it carries pgkit's mark (it wrote it before); any other
# file needs --force; a directory or a symbolic link is never replaced, nor a file inside one
# of the command's input folders. The mark lives in the file: a PNG tEXt record
# `Software=pgkit ...`, a JPEG comment `pgkit ...`, a WebP XMP packet naming pgkit as the
# creator tool, or a top-level JSON key `"written_by": "pgkit ..."`.

MARK_PREFIX = b"pgkit"
PNG_MARK_KEY = b"Software"
JSON_MARK_KEY = "written_by"
_MARK_HEAD = 1 << 16  # bytes read to find an image's mark (it is written first)
_MAX_MARKED_JSON = 64 << 20
_PNG_SIG = b"\x89PNG\r\n\x1a\n"


def png_text_chunk(key: bytes, text: bytes) -> bytes:
    """A PNG tEXt chunk `key` NUL `text` (length, type, data, CRC)."""
    data = key + b"\0" + text
    return struct.pack(">I", len(data)) + b"tEXt" + data + struct.pack(">I", zlib.crc32(b"tEXt" + data) & 0xFFFFFFFF)


def add_png_text(png: bytes, key: bytes, text: bytes) -> bytes:
    """The PNG with a tEXt chunk inserted right after IHDR (signature 8 + IHDR chunk 25
    bytes): the one place pgkit writes PNG text (its mark, the masks' record)."""
    return png[:33] + png_text_chunk(key, text) + png[33:]


def png_texts(head: bytes) -> Iterator[tuple[bytes, bytes]]:
    """(key, text) of each tEXt chunk before the image data of PNG bytes (or their first
    part: a chunk cut by the end of `head` yields what is there)."""
    i = 8
    while i + 8 <= len(head):
        n, kind = struct.unpack(">I4s", head[i:i + 8])
        if kind in (b"IDAT", b"IEND"):
            return
        if kind == b"tEXt":
            key, _, text = head[i + 8:i + 8 + n].partition(b"\0")
            yield key, text
        i += 12 + n


def mark_image(data: bytes, what: str = "pgkit") -> bytes:
    """Encoded PNG, JPEG or WebP bytes with pgkit's mark added (`what`, e.g. "pgkit generate",
    must start with "pgkit"); the pixels are untouched. Other bytes are returned unchanged."""
    text = what.encode()
    if not text.startswith(MARK_PREFIX):
        raise ValueError(f"a mark starts with 'pgkit', got {what!r}")
    if data[:8] == _PNG_SIG:  # a tEXt chunk right after IHDR (signature 8 + IHDR 25 bytes)
        return add_png_text(data, PNG_MARK_KEY, text)
    if data[:2] == b"\xff\xd8":  # a comment segment (COM) right after the start-of-image marker
        return data[:2] + b"\xff\xfe" + struct.pack(">H", len(text) + 2) + text + data[2:]
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP" and data[12:16] in (b"VP8 ", b"VP8L"):
        return _webp_with_xmp(data, text)
    return data


def _webp_with_xmp(data: bytes, text: bytes) -> bytes:
    """A simple (one-chunk) WebP rewritten as the extended format with an XMP chunk."""
    from pgprep.shards import stored_image_size  # header parser shared with the shard reader

    h, w = stored_image_size(data)
    image = data[12:]
    alpha = data[12:16] == b"VP8L" and len(data) > 24 and bool(data[24] & 0x10)  # VP8L alpha hint
    vp8x = bytes([0x04 | (0x10 if alpha else 0)]) + b"\0\0\0" + (w - 1).to_bytes(3, "little") \
        + (h - 1).to_bytes(3, "little")
    xmp = (b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
           b'<rdf:Description xmlns:xmp="http://ns.adobe.com/xap/1.0/" xmp:CreatorTool="' + text
           + b'"/></rdf:RDF></x:xmpmeta>')
    chunks = b"VP8X" + struct.pack("<I", 10) + vp8x + image + b"XMP " + struct.pack("<I", len(xmp)) + xmp \
        + (b"\0" if len(xmp) % 2 else b"")
    return b"RIFF" + struct.pack("<I", 4 + len(chunks)) + b"WEBP" + chunks


def _has_image_mark(head: bytes) -> bool:
    if head[:8] == _PNG_SIG:
        return any(key == PNG_MARK_KEY and text.startswith(MARK_PREFIX) for key, text in png_texts(head))
    if head[:2] == b"\xff\xd8":
        i = 2
        while i + 4 <= len(head) and head[i] == 0xFF and head[i + 1] not in (0xD9, 0xDA):
            n = struct.unpack(">H", head[i + 2:i + 4])[0]
            if head[i + 1] == 0xFE and head[i + 4:i + 2 + n].startswith(MARK_PREFIX):
                return True
            i += 2 + n
        return False
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        i = 12
        while i + 8 <= len(head):
            kind, n = head[i:i + 4], struct.unpack("<I", head[i + 4:i + 8])[0]
            if kind == b"XMP " and b'CreatorTool="' + MARK_PREFIX in head[i + 8:i + 8 + n]:
                return True
            i += 8 + n + (n & 1)
        return False
    return False


def has_pgkit_mark(path: str | os.PathLike) -> bool:
    """True if `path` is a regular file carrying pgkit's mark (see above): an image whose first
    64 KiB hold it, or a JSON object with `written_by` starting with "pgkit"."""
    path = Path(path)
    try:
        if not path.is_file() or path.is_symlink():
            return False
        with open(path, "rb") as f:
            head = f.read(_MARK_HEAD)
            if _has_image_mark(head):
                return True
            if head.lstrip()[:1] != b"{" or os.fstat(f.fileno()).st_size > _MAX_MARKED_JSON:
                return False
            doc = json.loads((head + f.read()).decode("utf-8"))
    except (OSError, ValueError, RecursionError):
        return False
    return isinstance(doc, dict) and str(doc.get(JSON_MARK_KEY, "")).startswith(MARK_PREFIX.decode())


def json_mark(what: str = "pgkit") -> dict:
    """The key to put in a JSON output so a later run may replace it: {"written_by": what}."""
    return {JSON_MARK_KEY: what}


def check_user_output(path: str | os.PathLike, force: bool = False, *,
                      marker: Callable[[Path], bool] = has_pgkit_mark,
                      inputs: Iterable[str | os.PathLike] = (), option: str = "-o") -> None:
    """Refuse (PgkitError naming `path`) to replace what a user-named output would overwrite:
    a directory or symbolic link always; a file inside one of `inputs` (the command's input
    folders) always, also with `force`; any other existing file unless `marker(path)` says
    pgkit wrote it (default: `has_pgkit_mark`) or `force`. Call it for every output path
    before anything is written."""
    path = Path(path)
    if path.is_symlink() or path.is_dir():
        raise PgkitError(path, f"is a {'symbolic link' if path.is_symlink() else 'directory'}; "
                               f"{option} never replaces one: choose a new file name")
    if not path.exists():
        return
    if not path.is_file():
        raise PgkitError(path, f"is not a regular file; {option} never replaces one: choose a new file name")
    target = path.resolve()
    for folder in inputs:
        folder = Path(folder).resolve()
        if target.is_relative_to(folder):
            raise PgkitError(path, f"exists and is an input under {folder}; refusing to overwrite it, "
                                   f"also with --force: choose another {option}")
    if marker(path) or force:
        return
    raise PgkitError(path, "exists and was not written by pgkit; refusing to overwrite it "
                           f"(choose another {option}, or pass --force to replace it)")
