"""pgprep.imageio: the one image-reading policy (EXIF orientation, trailers, WebP, pixel limit)."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image, ImageOps

from pgprep import geometry, imageio
from pgprep.errors import PgkitError
from pgprep.filter import check_image


def pattern(h=40, w=24):
    """An image whose every orientation is distinguishable: a gradient plus a marked corner."""
    y, x = np.mgrid[0:h, 0:w]
    img = np.stack([y * 255 // h, x * 255 // w, np.full_like(y, 90)], -1).astype(np.uint8)
    img[:6, :4] = (255, 255, 255)
    return img


def encode(rgb, fmt="JPEG", orientation=None, **kw):
    ex = Image.Exif()
    if orientation:
        ex[imageio.ORIENTATION_TAG] = orientation
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, fmt, exif=ex.tobytes(), **kw)
    return buf.getvalue()


def huge_header_jpeg(h=65500, w=65500) -> bytes:
    """A tiny valid JPEG whose SOF0 header claims h x w (the 1.6 KB bomb of issue 12 item 4)."""
    data = bytearray(encode(np.zeros((8, 8, 3), np.uint8)))
    i = data.find(b"\xff\xc0")
    data[i + 5:i + 9] = h.to_bytes(2, "big") + w.to_bytes(2, "big")
    return bytes(data)


@pytest.mark.parametrize("orientation", range(1, 9))
def test_every_exif_orientation_decodes_upright_like_pillow(orientation):
    data = encode(pattern(), "PNG", orientation)  # lossless: pixels must match exactly
    want = np.asarray(ImageOps.exif_transpose(Image.open(io.BytesIO(data))).convert("RGB"))
    info = imageio.probe(data)
    assert info.orientation == orientation and (info.stored_width, info.stored_height) == (24, 40)
    assert (info.height, info.width) == want.shape[:2] == ((24, 40) if orientation >= 5 else (40, 24))
    np.testing.assert_array_equal(imageio.decode(data), want)


def test_exif_rotated_jpeg_header_size_equals_decoded_size(tmp_path):
    p = tmp_path / "phone.jpg"
    p.write_bytes(encode(pattern(40, 24), "JPEG", orientation=6))  # stored 24 wide, shown 40 wide
    # before: the header check said 24x40 (W x H) while decoding gave 40x24 -> "out-of-frame"
    assert check_image(p) == check_image(p, decode=True) == (40, 24)
    assert geometry.read_rgb(p).shape == (24, 40, 3)


def test_bytes_after_the_end_marker_are_a_trailer_not_truncation(tmp_path):
    good = encode(pattern())
    p = tmp_path / "trailer.jpg"
    p.write_bytes(good + b"\x00" * 300 + b"MotionPhoto_Data" + bytes(range(256)) * 4)
    assert check_image(p) == check_image(p, decode=True) == (24, 40)
    np.testing.assert_array_equal(geometry.read_rgb(p), imageio.decode(good))
    cut = tmp_path / "cut.jpg"
    cut.write_bytes(good[: len(good) - 40])
    with pytest.raises(PgkitError, match="cut.jpg: truncated JPEG"):
        check_image(cut)
    with pytest.raises(PgkitError, match="truncated JPEG"):
        check_image(cut, decode=True)
    (tmp_path / "head.jpg").write_bytes(good[:30])
    with pytest.raises(PgkitError, match="truncated or corrupt JPEG header"):
        check_image(tmp_path / "head.jpg")


def test_an_exif_thumbnail_end_marker_does_not_hide_truncation():
    thumb = encode(np.zeros((8, 8, 3), np.uint8))  # ends in FF D9, inside the APP1 segment
    data = encode(pattern(), "JPEG", orientation=1)
    i = data.find(b"\xff\xdb")
    app = b"\xff\xe2" + (len(thumb) + 2).to_bytes(2, "big") + thumb
    with_thumb = data[:i] + app + data[i:]
    assert imageio.probe(with_thumb).size == (24, 40)
    with pytest.raises(PgkitError, match="truncated JPEG"):
        imageio.probe(with_thumb[:-50])


def test_webp_and_png_are_read_everywhere(tmp_path):
    for fmt, ext in (("WEBP", ".webp"), ("PNG", ".png")):
        p = tmp_path / f"a{ext}"
        p.write_bytes(encode(pattern(), fmt, orientation=8, **({"lossless": True} if fmt == "WEBP" else {})))
        assert check_image(p) == check_image(p, decode=True) == (40, 24)
        assert geometry.read_rgb(p).shape == (24, 40, 3)
    assert ".webp" in imageio.EXTENSIONS
    bad = tmp_path / "a.gif"
    Image.fromarray(pattern()).save(bad, "GIF")
    with pytest.raises(PgkitError, match="not a JPEG, PNG or WebP image"):
        check_image(bad)
    webp = (tmp_path / "a.webp").read_bytes()
    with pytest.raises(PgkitError, match="truncated"):
        imageio.probe(webp[:-10])


def test_absurd_header_dimensions_are_refused_before_decoding(tmp_path):
    p = tmp_path / "bomb.jpg"
    p.write_bytes(huge_header_jpeg())
    assert p.stat().st_size < 2000
    for decode in (False, True):
        with pytest.raises(PgkitError, match=r"bomb.jpg: image too large: the header claims 4,290,250,000 pixels"):
            check_image(p, decode=decode)
    with pytest.raises(PgkitError, match="bomb.jpg: image too large"):
        geometry.read_rgb(p)
    # below Pillow's own bomb limit, above ours: the message gives the size in HxW
    p.write_bytes(huge_header_jpeg(9000, 6000))
    with pytest.raises(PgkitError, match=r"header says 9000x6000 \(HxW\) = 54,000,000 pixels, over the limit "
                                         r"of 50,000,000"):
        check_image(p)


def test_pixel_limit_is_documented_and_overridable(monkeypatch):
    assert imageio.MAX_PIXELS == 50_000_000
    data = encode(pattern())
    monkeypatch.setenv("PGKIT_MAX_PIXELS", "500")
    with pytest.raises(PgkitError, match="960 pixels, over the limit of 500"):
        imageio.probe(data)
    monkeypatch.setenv("PGKIT_MAX_PIXELS", "960")
    assert imageio.probe(data).size == (24, 40)


def test_decoded_pixels_match_the_shard_reader():
    """Pack stores the file's bytes; the shard reader decodes them with OpenCV: same pixels."""
    import cv2

    data = encode(pattern(64, 48), "JPEG", orientation=3, quality=80)
    via_reader = cv2.cvtColor(cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
    np.testing.assert_array_equal(imageio.decode(data), via_reader)


# ------------------------------------------------------------------ issue 18: bounded reads, corrupt JPEGs, alpha

def sof_patched_jpeg(size=7000) -> bytes:
    """A 400x400 JPEG whose SOF0 header was patched to claim size x size (49 MP: under the
    pixel limit): libjpeg runs out of data after the first rows and fills the rest with grey."""
    rng = np.random.default_rng(0)
    data = bytearray(encode(rng.integers(0, 256, (400, 400, 3), dtype=np.uint8), quality=90))
    i = data.find(b"\xff\xc0")
    data[i + 5:i + 9] = size.to_bytes(2, "big") * 2
    return bytes(data)


def test_every_read_is_bounded_and_special_files_are_refused_naming_them(tmp_path, monkeypatch):
    """Issue 18 item 6. Before: a 6 GB sparse .jpg was read whole (MemoryError, no file named)
    and a /dev/zero symlink grew without end (3.4 GB in pack). After: refused from a stat."""
    import os

    sparse = tmp_path / "sparse.jpg"
    with open(sparse, "wb") as f:
        f.truncate(6 * 2**30)  # 6 GiB of holes: costs no disk, a whole read costs 6 GiB
    zero = tmp_path / "zero.jpg"
    zero.symlink_to("/dev/zero")
    fifo = tmp_path / "fifo.jpg"
    os.mkfifo(fifo)  # opening it for reading would block forever
    folder = tmp_path / "folder.jpg"
    folder.mkdir()
    expect = {sparse: r"sparse.jpg: image file is 6,442,450,944 bytes, over the limit of 268,435,456 "
                      r"\(PGKIT_MAX_IMAGE_BYTES\)",
              zero: r"zero.jpg: cannot read image: a character device, not a regular file",
              fifo: r"fifo.jpg: cannot read image: a named pipe \(FIFO\), not a regular file",
              folder: r"folder.jpg: cannot read image: a directory, not a regular file"}
    for path, message in expect.items():
        for read in (imageio.read_bytes, imageio.read_rgb, imageio.read_info, geometry.read_rgb,
                     check_image, lambda p: check_image(p, decode=True)):
            with pytest.raises(PgkitError, match=message):
                read(path)
    with pytest.raises(PgkitError, match=r"zero.jpg: cannot read mask: a character device"):
        geometry.read_mask(zero)
    good = tmp_path / "good.jpg"
    good.write_bytes(encode(pattern()))
    assert imageio.read_bytes(good) == good.read_bytes()
    monkeypatch.setenv("PGKIT_MAX_IMAGE_BYTES", str(good.stat().st_size - 1))
    with pytest.raises(PgkitError, match="good.jpg: image file is .* bytes, over the limit"):
        check_image(good)
    assert imageio.read_bounded(good, good.stat().st_size) == good.read_bytes()


def test_corrupt_jpeg_data_is_refused_not_decoded_to_grey(tmp_path):
    """Issue 18 item 18. Before: both files decoded (a 7000x7000 grey image; a half-grey one)
    and were packed. After: `corrupt JPEG data: premature end of data segment`."""
    sof = tmp_path / "sof.jpg"
    sof.write_bytes(sof_patched_jpeg())
    good = encode(np.random.default_rng(1).integers(0, 256, (64, 48, 3), dtype=np.uint8), quality=90)
    cut = tmp_path / "cut.jpg"
    cut.write_bytes(good[: len(good) // 2] + b"vendor trailer \xff\xd9 more trailer")
    assert check_image(sof) == (7000, 7000) and check_image(cut) == (48, 64)  # headers look fine
    for path in (sof, cut):
        for read in (geometry.read_rgb, lambda p: check_image(p, decode=True)):
            with pytest.raises(PgkitError, match=rf"{path.name}: corrupt JPEG data: premature end of data segment"):
                read(path)
    np.testing.assert_array_equal(imageio.decode(good), imageio.decode(good))  # intact ones still decode
    assert imageio.decode(good + b"\x00trailer\xff\xd9").shape == (64, 48, 3)


def test_other_stderr_output_passes_through_the_jpeg_warning_capture(capfd):
    import os

    os.write(2, b"before\n")
    imageio.decode(encode(pattern()))
    os.write(2, b"after\n")
    assert capfd.readouterr().err == "before\nafter\n"


@pytest.mark.parametrize("fmt", ["PNG", "WEBP"])
def test_transparent_images_are_composited_over_white(fmt):
    """Issue 18 item 19. Before: transparent pixels came out black (the colour under them),
    while pgkit pads with white. After: alpha composited over white."""
    rgba = np.zeros((8, 6, 4), np.uint8)
    rgba[..., :3] = (200, 40, 10)  # colour everywhere; alpha: 0 on top, 255 at the bottom, half between
    rgba[:3, :, 3], rgba[3:5, :, 3], rgba[5:, :, 3] = 0, 128, 255
    data = encode(rgba, fmt, **({"lossless": True} if fmt == "WEBP" else {}))
    out = imageio.decode(data)
    np.testing.assert_array_equal(out[:3], np.full((3, 6, 3), 255, np.uint8))
    np.testing.assert_array_equal(out[5:], np.broadcast_to((200, 40, 10), (3, 6, 3)))
    np.testing.assert_array_equal(out[3], np.broadcast_to((227, 147, 132), (6, 3)))  # (c*a + 255*(255-a)) / 255
    # with an EXIF rotation the alpha turns with the pixels
    rotated = imageio.decode(encode(rgba, "PNG", orientation=6))
    np.testing.assert_array_equal(rotated, np.rot90(out, -1))
    # a palette image with a transparent colour too
    pal = Image.fromarray((np.arange(8)[:, None] >= 3).repeat(6, 1).astype(np.uint8), "P")
    pal.putpalette([0, 0, 0, 200, 40, 10])  # index 0 (top 3 rows) black and transparent
    buf = io.BytesIO()
    pal.save(buf, "PNG", transparency=0)
    np.testing.assert_array_equal(imageio.decode(buf.getvalue()), np.where(out == (255, 255, 255), 255,
                                                                           np.uint8([200, 40, 10])))
    assert imageio.probe(data).alpha and not imageio.probe(encode(pattern())).alpha
