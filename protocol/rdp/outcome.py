"""Text lines rendered into uncompressed 16-bit bitmaps, with a tiny built-in 5x7 font.

Contract: `render_lines(lines, left=, top=)` returns the `BitmapRect`s (share.py) that paint
the lines, white on dark blue, each character a 5x7 glyph drawn at scale 2 in a 12x18 cell;
the block is cut into horizontal bands of at most `BAND_BYTES` so each fits one MCS Send
Data (whose PER length stops at 16383) and one TS_BITMAP_DATA. Lower-case letters are
drawn as capitals; a character the font lacks is drawn as '?'. Lines are cut to
`MAX_COLUMNS` characters. Pure computation.

The font is this project's own: each glyph is seven rows of five columns, '#' = ink.
"""

from __future__ import annotations

import struct

from .share import BitmapRect

_GLYPHS = """
A .###. #...# #...# ##### #...# #...# #...#
B ####. #...# #...# ####. #...# #...# ####.
C .###. #...# #.... #.... #.... #...# .###.
D ####. #...# #...# #...# #...# #...# ####.
E ##### #.... #.... ####. #.... #.... #####
F ##### #.... #.... ####. #.... #.... #....
G .###. #...# #.... #.### #...# #...# .####
H #...# #...# #...# ##### #...# #...# #...#
I .###. ..#.. ..#.. ..#.. ..#.. ..#.. .###.
J ..### ...#. ...#. ...#. ...#. #..#. .##..
K #...# #..#. #.#.. ##... #.#.. #..#. #...#
L #.... #.... #.... #.... #.... #.... #####
M #...# ##.## #.#.# #.#.# #...# #...# #...#
N #...# ##..# #.#.# #..## #...# #...# #...#
O .###. #...# #...# #...# #...# #...# .###.
P ####. #...# #...# ####. #.... #.... #....
Q .###. #...# #...# #...# #.#.# #..#. .##.#
R ####. #...# #...# ####. #.#.. #..#. #...#
S .#### #.... #.... .###. ....# ....# ####.
T ##### ..#.. ..#.. ..#.. ..#.. ..#.. ..#..
U #...# #...# #...# #...# #...# #...# .###.
V #...# #...# #...# #...# #...# .#.#. ..#..
W #...# #...# #...# #.#.# #.#.# #.#.# .#.#.
X #...# #...# .#.#. ..#.. .#.#. #...# #...#
Y #...# #...# .#.#. ..#.. ..#.. ..#.. ..#..
Z ##### ....# ...#. ..#.. .#... #.... #####
0 .###. #...# #..## #.#.# ##..# #...# .###.
1 ..#.. .##.. ..#.. ..#.. ..#.. ..#.. .###.
2 .###. #...# ....# ...#. ..#.. .#... #####
3 ####. ....# ....# .###. ....# ....# ####.
4 ...#. ..##. .#.#. #..#. ##### ...#. ...#.
5 ##### #.... ####. ....# ....# #...# .###.
6 .###. #.... #.... ####. #...# #...# .###.
7 ##### ....# ...#. ..#.. .#... .#... .#...
8 .###. #...# #...# .###. #...# #...# .###.
9 .###. #...# #...# .#### ....# ....# .###.
: ..... ..#.. ..#.. ..... ..#.. ..#.. .....
. ..... ..... ..... ..... ..... .##.. .##..
, ..... ..... ..... ..... .##.. ..#.. .#...
- ..... ..... ..... ##### ..... ..... .....
_ ..... ..... ..... ..... ..... ..... #####
/ ....# ...#. ...#. ..#.. .#... .#... #....
( ...#. ..#.. .#... .#... .#... ..#.. ...#.
) .#... ..#.. ...#. ...#. ...#. ..#.. .#...
= ..... ..... ##### ..... ##### ..... .....
' ..#.. ..#.. ..... ..... ..... ..... .....
# .#.#. .#.#. ##### .#.#. ##### .#.#. .#.#.
+ ..... ..#.. ..#.. ##### ..#.. ..#.. .....
% ##..# ##.#. ...#. ..#.. .#... .#.## #..##
? .###. #...# ....# ...#. ..#.. ..... ..#..
! ..#.. ..#.. ..#.. ..#.. ..#.. ..... ..#..
@ .###. #...# #.### #.#.# #.### #.... .###.
"""


def _parse_font() -> dict[str, tuple[str, ...]]:
    font: dict[str, tuple[str, ...]] = {" ": (".....",) * 7}
    for line in _GLYPHS.strip().splitlines():
        char, *rows = line.split(" ")
        if len(rows) != 7 or any(len(r) != 5 for r in rows):
            raise ValueError(f"bad glyph row: {line}")
        font[char] = tuple(rows)
    return font


FONT = _parse_font()
SCALE = 2
CELL_W = 6 * SCALE  # 5 columns plus one of spacing
CELL_H = 9 * SCALE  # 7 rows plus two of spacing
MARGIN = 8
MAX_COLUMNS = 80
BAND_BYTES = 15_872  # one band per Send Data, whose PER length stops at 16383 (T.125)
INK = 0xFFFF  # RGB565 white
PAPER = (0x08 << 11) | (0x10 << 5) | 0x12  # RGB565 dark blue
TITLE_INK = (0x1F << 11) | (0x38 << 5) | 0x00  # RGB565 amber


def glyph(char: str) -> tuple[str, ...]:
    return FONT.get(char.upper(), FONT["?"])


def render_lines(lines: list[str], *, left: int = 16, top: int = 16) -> list[BitmapRect]:
    """The rectangles that paint `lines` (the first one in amber as a title)."""
    lines = [line[:MAX_COLUMNS] for line in lines] or [""]
    columns = max(len(line) for line in lines)
    width = columns * CELL_W + 2 * MARGIN
    width += -width % 2  # 16-bit rows of an even width need no padding (4-byte rows)
    height = len(lines) * CELL_H + 2 * MARGIN
    image = [[PAPER] * width for _ in range(height)]
    for n, line in enumerate(lines):
        ink = TITLE_INK if n == 0 else INK
        y0 = MARGIN + n * CELL_H
        for c, char in enumerate(line):
            x0 = MARGIN + c * CELL_W
            for gy, row in enumerate(glyph(char)):
                for gx, bit in enumerate(row):
                    if bit != "#":
                        continue
                    for dy in range(SCALE):
                        pixels = image[y0 + gy * SCALE + dy]
                        for dx in range(SCALE):
                            pixels[x0 + gx * SCALE + dx] = ink
    rects = []
    band_rows = max(1, BAND_BYTES // (2 * width))
    for band_top in range(0, height, band_rows):
        band = image[band_top : band_top + band_rows]
        pack = struct.Struct(f"<{width}H").pack
        data = b"".join(pack(*row) for row in reversed(band))  # bottom-up (§2.2.9.1.1.3.1.2.2)
        rects.append(
            BitmapRect(
                left=left,
                top=top + band_top,
                width=width,
                height=len(band),
                bits_per_pixel=16,
                pixels=data,
            )
        )
    return rects
