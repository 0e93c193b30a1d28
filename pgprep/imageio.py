"""The one image-reading policy of every stage that reads photos.

filter (header check and `--check decode`), pose, masks, pack, preview, ingest and
`pgtrain generate` all read images through this module, so they agree on what an image is:

- formats: JPEG, PNG and WebP, recognised by content (not by the file name); anything else
  is refused with one reason, "not a JPEG, PNG or WebP image".
- size: read from the header with Pillow (no pixels decoded) and reported *after* EXIF
  orientation: a phone photo stored 4032x3024 with "rotate 90" is 3024 wide and 4032 high
  for every stage, which is also what decoding gives. Orientation is always applied.
- pixel limit: an image whose header claims more than `MAX_PIXELS` pixels (50 million:
  an 8000x6000 photo fits) is refused from the header, before any decode, naming the file.
  A 1.6 KB JPEG can claim 65500x65500 (4.3 billion pixels); decoding it would take gigabytes.
  `PGKIT_MAX_PIXELS` in the environment changes the limit.
- bytes: every file is read by `read_bounded`: a device (`/dev/zero`), FIFO or folder, and a
  file over `MAX_BYTES` (256 MiB, `PGKIT_MAX_IMAGE_BYTES`) are refused from a stat, before a
  byte is read (a 6 GB sparse .jpg costs nothing). Masks are read the same way.
- trailing bytes: a JPEG is complete when its end-of-image marker follows the image data;
  bytes after it (phones append motion-photo videos, depth maps, vendor trailers) are ignored.
  A JPEG without that marker, a PNG without IEND, a WebP shorter than its RIFF size is
  "truncated".
- decoding: OpenCV's decoder after the Pillow header check. It gives bit-identical pixels to
  the shard reader (which decodes the same bytes with OpenCV), applies EXIF orientation the
  same way as `PIL.ImageOps.exif_transpose` (tests check all eight orientations), and is
  about 1.5x faster than Pillow's. The decoded size is checked against the header's, and a
  JPEG whose entropy-coded data ends or breaks early (libjpeg's "premature end of data
  segment", which it papers over with grey) is "corrupt JPEG data" (`_decode_jpeg`).
- transparency: PNG/WebP alpha (or a transparent palette colour) is composited over white,
  the colour pgkit pads with; `ImageInfo.alpha` says the image has it.
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import stat
import struct
import sys
import tempfile
import threading
import warnings
from dataclasses import dataclass
from typing import TYPE_CHECKING

import cv2
import numpy as np

from pgprep.errors import PgkitError

if TYPE_CHECKING:  # Pillow is imported where it is used: training (shards decode with OpenCV) runs without it
    from PIL import Image


def _pillow():
    try:
        from PIL import Image, UnidentifiedImageError
    except ImportError:
        raise PgkitError(None, "reading image headers needs Pillow: pip install pillow") from None
    return Image, UnidentifiedImageError

FORMATS = ("JPEG", "PNG", "WEBP")
EXTENSIONS = (".jpg", ".jpeg", ".png", ".webp")  # what `pose` and `ingest` look for in a folder
MAX_PIXELS = 50_000_000
MAX_BYTES = 256 * 2**20  # one image or mask file; a 50 MP PNG is at most ~150 MB
ORIENTATION_TAG = 0x0112
NOT_AN_IMAGE = "not a JPEG, PNG or WebP image"


def max_pixels() -> int:
    """The pixel limit in force: `PGKIT_MAX_PIXELS` if set, else `MAX_PIXELS`."""
    env = os.environ.get("PGKIT_MAX_PIXELS")
    try:
        return int(env) if env else MAX_PIXELS
    except ValueError:
        return MAX_PIXELS


@dataclass(frozen=True)
class ImageInfo:
    """What the header says. `width`, `height`: upright (EXIF orientation applied);
    `stored_width`, `stored_height`: as the pixels are stored; `orientation`: EXIF 1..8."""

    width: int
    height: int
    format: str
    orientation: int = 1
    stored_width: int = 0
    stored_height: int = 0
    alpha: bool = False  # an alpha channel or a transparent colour (composited over white)

    @property
    def size(self) -> tuple[int, int]:
        """(width, height), upright."""
        return self.width, self.height


def _signature(data: bytes) -> str | None:
    """The format the first bytes announce, whether or not the rest is readable."""
    if data[:3] == b"\xff\xd8\xff":
        return "JPEG"
    if data[:8] == b"\x89PNG\r\n\x1a\n":
        return "PNG"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "WebP"
    return None


def _orientation(im: Image.Image) -> int:
    raw = im.info.get("exif")
    if not raw:
        return 1
    Image, _ = _pillow()  # noqa: N806
    exif = Image.Exif()
    try:
        exif.load(raw)  # parses the EXIF block only; Image.getexif() may decode a PNG to find it
        value = int(exif.get(ORIENTATION_TAG, 1))
    except Exception:  # noqa: BLE001 - a broken EXIF block means "no orientation", not a bad image
        return 1
    return value if 1 <= value <= 8 else 1


def _complete(data: bytes, im: Image.Image) -> str | None:
    """None if the file holds all its image data, else what is missing."""
    if im.format == "JPEG":
        # Pillow stops reading at the first start-of-scan; the entropy-coded data after it
        # cannot contain FF D9 except as the end-of-image marker (0xFF is byte-stuffed).
        # Anything after that marker is a trailer and is ignored.
        start = im.fp.tell() if im.fp is not None else 0
        if data.find(b"\xff\xd9", start) < 0:
            return "truncated JPEG (no end-of-image marker after the image data)"
    elif im.format == "PNG":
        if data.rfind(b"IEND") < 0:
            return "truncated PNG (no IEND chunk)"
    elif im.format == "WEBP":
        riff = int.from_bytes(data[4:8], "little")
        if len(data) < riff + 8:
            return f"truncated WebP ({len(data)} bytes, the RIFF header says {riff + 8})"
    return None


def probe(data: bytes, path: str | os.PathLike | None = None, *, limit: int | None = None) -> ImageInfo:
    """Header-only check of an image's bytes -> ImageInfo; PgkitError naming `path` if the file
    is empty, not a JPEG/PNG/WebP, truncated, or claims more than the pixel limit."""
    if not data:
        raise PgkitError(path, "empty image file")
    limit = max_pixels() if limit is None else int(limit)
    Image, UnidentifiedImageError = _pillow()  # noqa: N806
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            im = Image.open(io.BytesIO(data), formats=FORMATS)
    except Image.DecompressionBombError as exc:
        # Pillow's own bomb check (about 179 MP) fired before ours could; its message has the count.
        m = re.search(r"\((\d+) pixels\)", str(exc))
        claim = f"{int(m.group(1)):,} pixels" if m else "too many pixels"
        raise PgkitError(path, f"image too large: the header claims {claim}, over the limit of "
                               f"{limit:,} (PGKIT_MAX_PIXELS)") from None
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError, EOFError, struct.error):
        kind = _signature(data)
        raise PgkitError(path, f"truncated or corrupt {kind} header" if kind else NOT_AN_IMAGE) from None
    w, h = im.size
    if w <= 0 or h <= 0:
        raise PgkitError(path, f"{NOT_AN_IMAGE} (header size {h}x{w}, HxW)")
    if w * h > limit:
        raise PgkitError(path, f"image too large: the header says {h}x{w} (HxW) = {w * h:,} pixels, "
                               f"over the limit of {limit:,} (PGKIT_MAX_PIXELS)")
    problem = _complete(data, im)
    if problem:
        raise PgkitError(path, problem)
    orientation = _orientation(im)
    uw, uh = (h, w) if orientation >= 5 else (w, h)  # 5..8 swap the axes
    alpha = im.mode in ("RGBA", "LA", "PA", "RGBa", "La") or "transparency" in im.info
    return ImageInfo(uw, uh, im.format, orientation, w, h, alpha)


def max_bytes() -> int:
    """The byte limit of one image or mask file: `PGKIT_MAX_IMAGE_BYTES` if set, else `MAX_BYTES`."""
    env = os.environ.get("PGKIT_MAX_IMAGE_BYTES")
    try:
        return int(env) if env else MAX_BYTES
    except ValueError:
        return MAX_BYTES


def _file_kind(mode: int) -> str:
    for test, kind in ((stat.S_ISDIR, "a directory"), (stat.S_ISCHR, "a character device"),
                       (stat.S_ISBLK, "a block device"), (stat.S_ISFIFO, "a named pipe (FIFO)"),
                       (stat.S_ISSOCK, "a socket")):
        if test(mode):
            return kind
    return "not a regular file"


def read_bounded(path: str | os.PathLike, limit: int, what: str = "file", env: str | None = None) -> bytes:
    """The bytes of the regular file `path` (symlinks followed), refusing with PgkitError
    naming it, before anything is allocated: a directory, device (`/dev/zero`), FIFO or socket,
    and a file over `limit` bytes (a 6 GB sparse file costs one stat). A file that grows while
    it is read is cut at `limit` + 1 bytes and refused too. `env` names the variable that
    changes the limit, for the message. The one bounded reader of pgprep: images, masks."""
    hint = f" ({env})" if env else ""
    try:
        st = os.stat(path)
        if not stat.S_ISREG(st.st_mode):
            raise PgkitError(path, f"cannot read {what}: {_file_kind(st.st_mode)}, not a regular file")
        if st.st_size > limit:
            raise PgkitError(path, f"{what} file is {st.st_size:,} bytes, over the limit of {limit:,}{hint}")
        # O_NONBLOCK: a FIFO swapped in after the stat must not block the open
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0))
        with open(fd, "rb", buffering=0) as f:
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode):
                raise PgkitError(path, f"cannot read {what}: {_file_kind(st.st_mode)}, not a regular file")
            parts, size, want = [], 0, min(st.st_size, limit) + 1  # one byte more than the stat: growth shows
            while size <= limit:
                block = f.read(want)
                if not block:
                    break
                parts.append(block)
                size += len(block)
                want = min(1 << 24, limit + 1 - size)  # a short read, or the file grew since the stat
    except OSError as exc:
        raise PgkitError(path, f"cannot read {what} ({exc.strerror or exc})") from None
    if size > limit:
        raise PgkitError(path, f"{what} file grew past the limit of {limit:,} bytes while it was read{hint}")
    return parts[0] if len(parts) == 1 else b"".join(parts)


def read_bytes(path: str | os.PathLike, what: str = "image") -> bytes:
    """An image (or mask) file's bytes under the byte limit (`read_bounded`, `max_bytes`)."""
    return read_bounded(path, max_bytes(), what, "PGKIT_MAX_IMAGE_BYTES")


def read_info(path: str | os.PathLike, *, limit: int | None = None) -> ImageInfo:
    """`probe` of a file."""
    return probe(read_bytes(path), path, limit=limit)


def decode(data: bytes, path: str | os.PathLike | None = None, *, limit: int | None = None,
           info: ImageInfo | None = None) -> np.ndarray:
    """Image bytes -> uint8 RGB (H, W, 3), upright; PgkitError naming `path` if unusable."""
    info = info or probe(data, path, limit=limit)
    if info.format == "JPEG":
        bgr, warning = _decode_jpeg(data)
        if warning:
            raise PgkitError(path, f"corrupt JPEG data: {warning} (the image data stops or breaks "
                                   "before the last pixel; the decoder would fill the rest with grey)")
    else:
        bgr = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    if bgr is None:
        raise PgkitError(path, f"{info.format} image could not be decoded (corrupt image data)")
    if bgr.shape[:2] != (info.height, info.width):
        raise PgkitError(path, f"decoded image is {bgr.shape[0]}x{bgr.shape[1]} (HxW), the header "
                               f"says {info.height}x{info.width}")
    rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
    return _over_white(rgb, data, info, path) if info.alpha else rgb


# libjpeg's warnings that mean the pixels are not all in the file: it fills the rest with grey
# and goes on (a header patched to 7000x7000 over 400x400 data; a cut file whose trailer
# happens to hold FF D9). Other warnings (an unknown JFIF revision, extraneous bytes before a
# marker) leave the pixels intact and pass through to stderr.
_CORRUPT_JPEG = re.compile(rb"Corrupt JPEG data: (premature end of data segment|bad Huffman code|"
                           rb"bad arithmetic code|found marker 0x[0-9a-f]+ instead of RST\d)"
                           rb"|Premature end of JPEG file", re.IGNORECASE)
_capture = threading.Lock()
_capture_file: tuple[int, int] | None = None  # (pid, fd): a forked child makes its own


def _decode_jpeg(data: bytes) -> tuple[np.ndarray | None, str | None]:
    """cv2.imdecode of a JPEG and the first warning of libjpeg that means missing image data.

    OpenCV leaves libjpeg's warnings to libjpeg, which prints them on file descriptor 2 and
    decodes on; Pillow drops them. So descriptor 2 points at a temporary file for the call;
    anything else written there meanwhile is passed on to the real stderr afterwards."""
    global _capture_file
    with _capture:
        if _capture_file is None or _capture_file[0] != os.getpid():
            with tempfile.TemporaryFile(buffering=0) as f:  # unlinked: gone with the process
                _capture_file = (os.getpid(), os.dup(f.fileno()))
        fd = _capture_file[1]
        with contextlib.suppress(Exception):
            sys.stderr.flush()  # Python's own buffered text goes out first, not into the capture
        saved = os.dup(2)
        os.dup2(fd, 2)
        try:
            bgr = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
        finally:
            os.dup2(saved, 2)
            os.close(saved)
        written = os.lseek(fd, 0, os.SEEK_CUR)
        text = b""
        if written:
            os.lseek(fd, 0, os.SEEK_SET)
            text = os.read(fd, min(written, 1 << 16))
            os.ftruncate(fd, 0)
            os.lseek(fd, 0, os.SEEK_SET)
    found = _CORRUPT_JPEG.search(text)
    rest = _CORRUPT_JPEG.sub(b"", text).strip()
    if rest:
        with contextlib.suppress(OSError):
            os.write(2, rest + b"\n")
    return bgr, (found.group(1) or found.group(0)).decode("ascii", "replace").lower() if found else None


_TRANSPOSE = {2: "FLIP_LEFT_RIGHT", 3: "ROTATE_180", 4: "FLIP_TOP_BOTTOM", 5: "TRANSPOSE",
              6: "ROTATE_270", 7: "TRANSVERSE", 8: "ROTATE_90"}  # as PIL.ImageOps.exif_transpose


def _over_white(rgb: np.ndarray, data: bytes, info: ImageInfo, path) -> np.ndarray:
    """`rgb` composited over white by the image's alpha (or transparent colour): what shows
    through a transparent PNG or WebP is the white that pads every image, not the black the
    colour decode leaves there. Alpha is read with Pillow and turned upright like the pixels."""
    Image, _ = _pillow()  # noqa: N806
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with Image.open(io.BytesIO(data), formats=FORMATS) as im:
                alpha = im.convert("RGBA").getchannel("A")
        if info.orientation in _TRANSPOSE:
            alpha = alpha.transpose(getattr(Image.Transpose, _TRANSPOSE[info.orientation]))
        a = np.asarray(alpha, np.uint16)
    except Exception as exc:  # noqa: BLE001 - Pillow raises many kinds for broken data
        raise PgkitError(path, f"{info.format} image's transparency could not be decoded ({exc})") from None
    if a.shape != rgb.shape[:2]:
        raise PgkitError(path, f"{info.format} image's alpha is {a.shape[0]}x{a.shape[1]} (HxW), its "
                               f"pixels {rgb.shape[0]}x{rgb.shape[1]}")
    a = a[..., None]
    return ((rgb.astype(np.uint16) * a + 255 * (255 - a) + 127) // 255).astype(np.uint8)


def read_rgb(path: str | os.PathLike, *, limit: int | None = None) -> np.ndarray:
    """Decode an image file to upright uint8 RGB (H, W, 3)."""
    return decode(read_bytes(path), path, limit=limit)


def describe(info: ImageInfo) -> str:
    """'HxW FORMAT' plus the orientation when it is not the identity."""
    text = f"{info.height}x{info.width} {info.format}"
    return text + (f" (EXIF orientation {info.orientation})" if info.orientation != 1 else "")
