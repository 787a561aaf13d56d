#!/usr/bin/env python3
"""png_stats.py FILE.png 0xAARRGGBB - what a screenshot shows, in numbers.

Prints one line: "WIDTH HEIGHT DISTINCT_COLOURS BACKGROUND_PIXELS OTHER_PIXELS":
BACKGROUND_PIXELS counts the pixels of exactly the given colour (its RGB; alpha is ignored),
OTHER_PIXELS those that differ from the most common colour (e.g. text on a black screen). Reads the 8-bit
RGB and RGBA PNGs that weston-screenshooter (cairo) writes, with the standard library only
(zlib), so the tests need no imaging package. Exits 1 with a reason for anything else.
"""
import struct
import sys
import zlib
from collections import Counter


def fail(why):
    print(f"png_stats.py: {why}", file=sys.stderr)
    sys.exit(1)


def read_png(path):
    with open(path, "rb") as f:
        data = f.read()
    if data[:8] != b"\x89PNG\r\n\x1a\n":
        fail(f"{path} is not a PNG")
    pos, idat, header = 8, [], None
    while pos + 8 <= len(data):
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + length]
        pos += 12 + length
        if kind == b"IHDR":
            header = struct.unpack(">IIBBBBB", body)
        elif kind == b"IDAT":
            idat.append(body)
        elif kind == b"IEND":
            break
    if header is None:
        fail(f"{path} has no IHDR")
    width, height, depth, colour, _, _, interlace = header
    if depth != 8 or colour not in (2, 6) or interlace:
        fail(f"{path}: only 8-bit RGB/RGBA without interlace (got depth {depth}, "
             f"colour type {colour}, interlace {interlace})")
    bpp = 3 if colour == 2 else 4
    raw = zlib.decompress(b"".join(idat))
    stride = width * bpp
    if len(raw) != height * (stride + 1):
        fail(f"{path}: image data is {len(raw)} bytes, expected {height * (stride + 1)}")
    rows, prev = [], bytearray(stride)
    for y in range(height):
        ftype = raw[y * (stride + 1)]
        line = bytearray(raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
        for i in range(stride):
            a = line[i - bpp] if i >= bpp else 0
            b = prev[i]
            c = prev[i - bpp] if i >= bpp else 0
            if ftype == 1:
                line[i] = (line[i] + a) & 0xFF
            elif ftype == 2:
                line[i] = (line[i] + b) & 0xFF
            elif ftype == 3:
                line[i] = (line[i] + (a + b) // 2) & 0xFF
            elif ftype == 4:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                line[i] = (line[i] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 0xFF
            elif ftype != 0:
                fail(f"{path}: unknown filter {ftype} in row {y}")
        rows.append(bytes(line))
        prev = line
    return width, height, bpp, rows


def main():
    if len(sys.argv) != 3:
        fail("usage: png_stats.py FILE.png 0xAARRGGBB")
    background = int(sys.argv[2], 16) & 0xFFFFFF
    bg = bytes([(background >> 16) & 0xFF, (background >> 8) & 0xFF, background & 0xFF])
    width, height, bpp, rows = read_png(sys.argv[1])
    colours = Counter()
    for line in rows:
        colours.update(line[x:x + 3] for x in range(0, width * bpp, bpp))
    dominant = colours.most_common(1)[0][1] if colours else 0
    print(width, height, len(colours), colours[bg], width * height - dominant)


main()
