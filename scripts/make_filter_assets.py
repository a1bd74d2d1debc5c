#!/usr/bin/env python3
"""Writes the stream-filter catalogue's built-in assets (assets/filters/):
colour looks as 3D LUT images, and the studio backdrop. Pure Python (zlib),
so anyone can run it again: `python3 scripts/make_filter_assets.py`.

A LUT image is N*N pixels wide and N high (N = 32): the pixel at
(x = b*N + r, y = g) holds the look's output for the input colour
(r, g, b) / (N - 1). The studio uploads it as a 3D texture (WebGL2) and
samples it with trilinear filtering.
"""
import math
import os
import struct
import zlib

N = 32
OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "assets", "filters")


def png(path, width, height, rows):
    raw = b"".join(b"\x00" + bytes(r) for r in rows)

    def chunk(kind, data):
        c = struct.pack(">I", len(data)) + kind + data
        return c + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    data = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
    data += chunk(b"IDAT", zlib.compress(raw, 9)) + chunk(b"IEND", b"")
    with open(path, "wb") as f:
        f.write(data)


def clamp(v):
    return min(1.0, max(0.0, v))


def luma(r, g, b):
    return 0.299 * r + 0.587 * g + 0.114 * b


def s_curve(v, k):
    # Contrast around mid-grey, k > 1 steeper.
    return clamp(0.5 + (v - 0.5) * k)


def mix(a, b, t):
    return a + (b - a) * t


LOOKS = {
    # Warm: more red, less blue.
    "warm": lambda r, g, b: (r * 1.10 + 0.04, g * 1.02 + 0.01, b * 0.82),
    # Cool: less red, more blue.
    "cool": lambda r, g, b: (r * 0.84, g * 1.00 + 0.01, b * 1.10 + 0.05),
    # Mono: the colour's luma, slightly more contrast.
    "mono": lambda r, g, b: (s_curve(luma(r, g, b), 1.1),) * 3,
    # Vintage: sepia mixed in, faded blacks, soft whites.
    "vintage": lambda r, g, b: tuple(
        0.08 + 0.84 * mix(c, s, 0.65)
        for c, s in zip((r, g, b), (0.393 * r + 0.769 * g + 0.189 * b, 0.349 * r + 0.686 * g + 0.168 * b, 0.272 * r + 0.534 * g + 0.131 * b))
    ),
    # Cinematic: teal shadows, warm highlights, a little contrast.
    "cinematic": lambda r, g, b: (
        s_curve(r + 0.10 * (luma(r, g, b) - 0.45), 1.15),
        s_curve(g + 0.02, 1.1),
        s_curve(b - 0.12 * (luma(r, g, b) - 0.45) + 0.02, 1.1),
    ),
    # Teal and orange, stronger.
    "teal_orange": lambda r, g, b: (
        s_curve(r + 0.22 * (luma(r, g, b) - 0.4), 1.2),
        s_curve(g + 0.03, 1.1),
        s_curve(b - 0.25 * (luma(r, g, b) - 0.4), 1.15),
    ),
    # Noir: high-contrast black and white.
    "noir": lambda r, g, b: (s_curve(luma(r, g, b), 1.6),) * 3,
}


def lut(name, f):
    rows = []
    for gi in range(N):
        row = []
        for bi in range(N):
            for ri in range(N):
                out = f(ri / (N - 1), gi / (N - 1), bi / (N - 1))
                row += [round(clamp(c) * 255) for c in out]
        rows.append(row)
    png(os.path.join(OUT, f"lut_{name}.png"), N * N, N, rows)


def backdrop():
    # A studio backdrop: a soft blue-violet gradient with a light spot.
    w, h = 640, 360
    rows = []
    for y in range(h):
        row = []
        for x in range(w):
            d = math.hypot((x - w * 0.35) / w, (y - h * 0.3) / h)
            spot = max(0.0, 1.0 - d * 1.6)
            row += [round(clamp(0.18 + 0.25 * spot + 0.1 * x / w) * 255), round(clamp(0.16 + 0.22 * spot) * 255), round(clamp(0.32 + 0.3 * spot) * 255)]
        rows.append(row)
    png(os.path.join(OUT, "backdrop_studio.png"), w, h, rows)


if __name__ == "__main__":
    os.makedirs(OUT, exist_ok=True)
    for name, f in LOOKS.items():
        lut(name, f)
    backdrop()
