"""FluxImages fixtures: small PNG, JPEG and WebP files and the pixels Pillow decodes from them.

Every file is a few hundred bytes to a few KiB (all of them well under 500 KB), made from one non-symmetric test
picture (a colour gradient with a marker in the top-left corner, 27x18 so that no side is a multiple of the 8/16 JPEG
block and every rotation or flip is visible). For each file `NAME.EXT` the script writes `NAME.rgba`: the pixels
Pillow returns, RGBA 8-bit, row-major top to bottom, after `ImageOps.exif_transpose` (JPEG) and `.convert("RGBA")`.
`cases.json` lists each case: file, format, width, height, hasAlpha and the tolerance the Swift test allows.

Where Pillow is not the reference, the case says so:
- 16-bit PNGs: Pillow keeps the high byte of each 16-bit sample (RGB;16B) and cannot convert "I;16" to RGBA without
  clipping, so the expected pixels are written here as round(v * 255 / 65535), which is what libpng's simplified API
  returns (png_set_scale_16-style rounding); both are listed in the comment of the case.
- Resizing: `resize_WxH.rgba` is Pillow's `Image.resize((W, H), Image.LANCZOS)` of `resize_source.png` (RGBA;
  Pillow resizes RGBA premultiplied, in 8-bit fixed point with an 8-bit intermediate between the two passes).
- Masks: `mask_luma.rgba` holds Pillow's `convert("L")` (ITU-R 601-2 luma, 8-bit) of `mask_source.png` composited
  over black, replicated into R, G, B and A = 255.

Deterministic; run with the pinned Pillow (tools/reference/requirements.txt):
    python3 -m venv /tmp/venv-img && /tmp/venv-img/bin/pip install pillow==13.0.0
    /tmp/venv-img/bin/python tools/reference/make_image_fixtures.py
"""
import io
import json
import pathlib
import random
import struct
import zlib

from PIL import Image, ImageOps

ROOT = pathlib.Path(__file__).resolve().parents[2]
OUT = ROOT / "Tests" / "Fixtures" / "images"
W, H = 27, 18
cases = []


def picture(alpha=False):
    """The test picture: smooth gradients (JPEG-friendly), a bright marker at the top-left, alpha a ramp."""
    im = Image.new("RGBA", (W, H))
    for y in range(H):
        for x in range(W):
            r = int(255 * x / (W - 1))
            g = int(255 * y / (H - 1))
            b = 128 + int(100 * ((x + 2 * y) % 9) / 8) - 50
            a = 255 if not alpha else int(255 * ((x + y) % 12) / 11)
            if x < 6 and y < 4:
                r, g, b = 250, 250, 20
            im.putpixel((x, y), (r, g, b, a))
    return im if alpha else im.convert("RGB")


def record(name, data, expected, fmt, has_alpha, tolerance=0, note=""):
    (OUT / name).write_bytes(data)
    stem = name.rsplit(".", 1)[0]
    expected = expected.convert("RGBA")
    (OUT / f"{stem}.rgba").write_bytes(expected.tobytes())
    cases.append(dict(file=name, expected=f"{stem}.rgba", format=fmt, width=expected.width, height=expected.height,
                      hasAlpha=has_alpha, tolerance=tolerance, note=note))


def saved(im, fmt, **options):
    buffer = io.BytesIO()
    im.save(buffer, fmt, **options)
    return buffer.getvalue()


def pillow_decoded(data):
    im = Image.open(io.BytesIO(data))
    im.load()
    return ImageOps.exif_transpose(im)


def png16(width, height, colour_type, samples):
    """A 16-bit PNG written by hand (Pillow writes no 16-bit RGB): IHDR, one IDAT, IEND; filter 0 on every row."""
    def chunk(kind, body):
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
    channels = {0: 1, 2: 3, 6: 4}[colour_type]
    raw = b"".join(b"\x00" + struct.pack(f">{width * channels}H", *samples[y * width * channels:(y + 1) * width * channels])
                   for y in range(height))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 16, colour_type, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(raw, 9)) + chunk(b"IEND", b""))


def main():
    OUT.mkdir(parents=True, exist_ok=True)
    for old in OUT.iterdir():
        old.unlink()
    rgb, rgba = picture(), picture(alpha=True)

    # PNG: every colour type Pillow writes; exact.
    record("png_rgb.png", saved(rgb, "PNG"), rgb, "png", False)
    record("png_rgba.png", saved(rgba, "PNG"), rgba, "png", True)
    grey = rgb.convert("L")
    record("png_grey.png", saved(grey, "PNG"), grey, "png", False)
    grey_alpha = rgba.convert("LA")
    record("png_grey_alpha.png", saved(grey_alpha, "PNG"), grey_alpha, "png", True)
    palette = rgb.quantize(16)
    record("png_palette.png", saved(palette, "PNG"), palette, "png", False)
    # tRNS: palette entry 3 fully transparent.
    data = saved(palette, "PNG", transparency=3)
    record("png_palette_trns.png", data, pillow_decoded(data), "png", True)
    # Adam7 interlacing: Pillow writes none, so the interlaced case is libpng's business and the fuzz seeds cover
    # the non-interlaced path. 16-bit RGB and grey, written by hand with random low bytes; expected round(v * 255 / 65535).
    rng = random.Random(12)
    samples = [min(65535, (c * 257) + rng.randrange(-128, 128) if 0 < c < 255 else c * 257)
               for c in rgb.tobytes()]
    expected = Image.frombytes("RGB", (W, H), bytes((v * 255 + 32767) // 65535 for v in samples))
    record("png_rgb16.png", png16(W, H, 2, samples), expected, "png", False,
           note="expected round(v*255/65535); Pillow's own decode keeps v>>8")
    samples = [min(65535, (c * 257) + rng.randrange(-128, 128) if 0 < c < 255 else c * 257)
               for c in rgba.tobytes()]
    expected = Image.frombytes("RGBA", (W, H), bytes((v * 255 + 32767) // 65535 for v in samples))
    record("png_rgba16.png", png16(W, H, 6, samples), expected, "png", True,
           note="expected round(v*255/65535), colour kept where alpha is 0")
    samples = [min(65535, c * 257 + rng.randrange(0, 200)) for c in grey.tobytes()]
    expected = Image.frombytes("L", (W, H), bytes((v * 255 + 32767) // 65535 for v in samples))
    record("png_grey16.png", png16(W, H, 0, samples), expected, "png", False,
           note="expected round(v*255/65535); Pillow reads I;16")

    # JPEG: baseline 4:2:0, progressive, greyscale, and the eight EXIF orientations of the same picture: the file
    # stores the picture transformed by the inverse of the orientation, so every upright result equals `rgb`.
    record("jpeg_baseline.jpg", saved(rgb, "JPEG", quality=90), pillow_decoded(saved(rgb, "JPEG", quality=90)),
           "jpeg", False, tolerance=1)
    data = saved(rgb, "JPEG", quality=85, progressive=True, subsampling=2)
    record("jpeg_progressive.jpg", data, pillow_decoded(data), "jpeg", False, tolerance=1)
    data = saved(grey, "JPEG", quality=90)
    record("jpeg_grey.jpg", data, pillow_decoded(data), "jpeg", False, tolerance=1)
    inverse = {1: None, 2: Image.Transpose.FLIP_LEFT_RIGHT, 3: Image.Transpose.ROTATE_180,
               4: Image.Transpose.FLIP_TOP_BOTTOM, 5: Image.Transpose.TRANSPOSE, 6: Image.Transpose.ROTATE_90,
               7: Image.Transpose.TRANSVERSE, 8: Image.Transpose.ROTATE_270}
    for orientation, transpose in inverse.items():
        stored = rgb if transpose is None else rgb.transpose(transpose)
        exif = Image.Exif()
        exif[0x0112] = orientation
        # Alternate byte orders: Pillow writes little-endian TIFF; big-endian is made by hand below.
        data = saved(stored, "JPEG", quality=95, subsampling=0, exif=exif.tobytes())
        if orientation % 2 == 0:
            data = big_endian_exif(data, orientation)
        decoded = pillow_decoded(data)
        assert decoded.size == rgb.size, (orientation, decoded.size)
        record(f"jpeg_orientation_{orientation}.jpg", data, decoded, "jpeg", False, tolerance=1)

    # WebP: lossy (libwebp versions may differ by a step in the last bit) and lossless with alpha (exact).
    data = saved(rgb, "WEBP", quality=80)
    record("webp_lossy.webp", data, pillow_decoded(data), "webp", False, tolerance=2)
    data = saved(rgba, "WEBP", lossless=True, exact=True)
    record("webp_lossless_alpha.webp", data, pillow_decoded(data), "webp", True)

    # Resizing: Pillow's LANCZOS on an RGBA source, down, up and mixed.
    source = rgba.resize((40, 30), Image.Resampling.NEAREST)
    (OUT / "resize_source.png").write_bytes(saved(source, "PNG"))
    source_rgb = rgb.resize((40, 30), Image.Resampling.BICUBIC)
    (OUT / "resize_source_rgb.png").write_bytes(saved(source_rgb, "PNG"))
    for name, im in (("resize", source), ("resize_rgb", source_rgb)):
        for size in ((17, 13), (64, 48), (40, 12), (7, 50), (99, 31)):
            out = im.resize(size, Image.Resampling.LANCZOS).convert("RGBA")
            (OUT / f"{name}_{size[0]}x{size[1]}.rgba").write_bytes(out.tobytes())

    # Masks: luma of the RGBA picture composited over black, as Pillow's convert("L").
    (OUT / "mask_source.png").write_bytes(saved(rgba, "PNG"))
    black = Image.new("RGBA", rgba.size, (0, 0, 0, 255))
    luma = Image.alpha_composite(black, rgba).convert("L")
    (OUT / "mask_luma.rgba").write_bytes(luma.convert("RGBA").tobytes())

    (OUT / "cases.json").write_text(json.dumps(cases, indent=1) + "\n")
    total = sum(p.stat().st_size for p in OUT.iterdir())
    print(f"{len(cases)} cases, {total} bytes in {OUT}")


def big_endian_exif(data, orientation):
    """Replaces the APP1 Exif segment with a hand-written big-endian ("MM") one holding only Orientation."""
    tiff = b"MM\x00\x2a" + struct.pack(">I", 8) + struct.pack(">H", 1) \
        + struct.pack(">HHIHH", 0x0112, 3, 1, orientation, 0) + struct.pack(">I", 0)
    segment = b"Exif\x00\x00" + tiff
    start = data.index(b"\xff\xe1")
    length = struct.unpack(">H", data[start + 2:start + 4])[0]
    return data[:start] + b"\xff\xe1" + struct.pack(">H", len(segment) + 2) + segment + data[start + 2 + length:]


if __name__ == "__main__":
    main()
