"""The synthetic street's sprites (trees, cars, people): each paints onto the canvas
inside its screen box; shapes are in metres.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import numpy as np

from amslib.data.synthetic.canvas import _LAMP_RGB, _Canvas, _clamp, _flush_rects, _lookup, _paint, _View
from amslib.data.synthetic.looks import _CAM_H_M, _TEX, CAR, PERSON, VEGETATION
from amslib.data.synthetic.scene import _Street


# ----------------------------------------------------------------------------------------
# Sprites. Each paints onto the canvas inside its screen box (in place); shapes are in metres.
# ----------------------------------------------------------------------------------------

@dataclass(frozen=True, eq=False)
class _Batch:
    """Sprites of one kind in view, with how to draw them shaped and as blocks."""

    draw: Callable[..., None]          # paints one sprite's shape (near sprites)
    blocks: Callable[..., tuple]       # (blocks per sprite, which get `draw`), see _tree_blocks
    z: np.ndarray                      # (n,) depth ahead of the camera, metres
    x: np.ndarray                      # (n,) lateral position, metres
    parts: np.ndarray                  # (n, P, 3) float32 albedo of each part
    params: dict[str, np.ndarray]      # (n,) keyword arrays for `draw` and `blocks`


def _sprite_jobs(st: _Street, v: _View, batch: _Batch) -> list[tuple]:
    """(depth, queued blocks, drawer or None, drawer keywords) for each sprite of `batch`.

    Lighting and haze of all parts, and the blocks of the small sprites, are computed for the
    whole batch at once; only the near sprites cost a Python call each.
    """
    if len(batch.z) == 0:
        return []
    fog = (1.0 - np.exp(-batch.z / v.fog_m))[:, None, None]
    light = v.light_rgb + np.float32(v.lamps * 0.3) * _LAMP_RGB     # lamps light the street
    lit = ((batch.parts * light) * (1.0 - fog) + fog * (v.sky_horizon * 0.9)).astype(np.float32)
    blocks, shaped = batch.blocks(st, v, batch, lit)
    # Stamps index parts from 1 (0 is transparent): palettes (n, 3, P + 1), ready for _paint.
    palettes = np.concatenate([np.zeros_like(lit[:, :1]), lit], axis=1)
    palettes = np.ascontiguousarray(palettes.transpose(0, 2, 1))
    params = {key: val.tolist() for key, val in batch.params.items()}
    jobs = []
    for i, (z, x, shape) in enumerate(zip(batch.z.tolist(), batch.x.tolist(), shaped.tolist())):
        if shape:
            kwargs = dict(x=x, parts=palettes[i], **{key: val[i] for key, val in params.items()})
            jobs.append((z, blocks[i], batch.draw, kwargs))
        else:
            jobs.append((z, blocks[i], None, None))
    return jobs


def _rect_specs(st: _Street, v: _View, x: np.ndarray, z: np.ndarray, half_w: np.ndarray,
                y0: np.ndarray, y1: np.ndarray, label: np.ndarray,
                rgb: np.ndarray) -> list[list | None]:
    """Screen rectangles of upright rectangles (metres, at least one pixel), for `cv.rects`.

    Far sprites are drawn as a few such blocks, where shapes would not show. All arguments
    are (n,) arrays (rgb (n, 3) lit colours); label 255 paints colour only (lights); a NaN
    extent means no rectangle. One list [r0, r1, c0, c1, label, r, g, b] per rectangle, None
    when off screen or NaN.
    """
    k = st._focal / z
    u = v.vanish + k * (x - v.cam_x)
    base = v.horizon + (u - st.width / 2) * v.roll + k * _CAM_H_M
    spec = np.empty((len(z), 8))
    spec[:, 0] = np.floor(base - y1 * k + 0.5)
    spec[:, 1] = np.maximum(spec[:, 0] + 1, np.floor(base - y0 * k + 0.5))
    spec[:, 2] = np.floor(u - half_w * k + 0.5)
    spec[:, 3] = np.maximum(spec[:, 2] + 1, np.floor(u + half_w * k + 0.5))
    spec[:, :4] = _clamp(spec[:, :4], 0, np.array([st.height, st.height, st.width, st.width]))
    spec[:, 4], spec[:, 5:] = label, rgb
    ok = (spec[:, 0] < spec[:, 1]) & (spec[:, 2] < spec[:, 3])
    out: list[list | None] = [None] * len(z)
    for j, row in zip(np.flatnonzero(ok).tolist(), spec[ok].tolist()):
        out[j] = row
    return out


def _blocks_of(st: _Street, v: _View, b: _Batch, shapes: list[tuple]) -> list[list]:
    """Each sprite's blocks: `shapes` are (dx, half_w, y0, y1, label, rgb) with (n,) arrays
    or scalars (rgb (n, 3)); one `_rect_specs` call does them all."""
    n = len(b.z)
    cols = [np.concatenate([np.broadcast_to(np.asarray(sh[i], np.float64), (n,)) for sh in shapes])
            for i in range(5)]
    rgb = np.concatenate([shape[5] for shape in shapes])
    specs = _rect_specs(st, v, np.tile(b.x, len(shapes)) + cols[0], np.tile(b.z, len(shapes)),
                        *cols[1:], rgb)
    return [[q for q in specs[i::n] if q] for i in range(n)]


# Sprites smaller than this on screen (pixels: crown width, car or person height) are drawn
# as a few blocks, where shapes would not show; it is ~10x cheaper and most sprites are far.
_BLOCKS_BELOW_PX = {"tree": 8, "car": 8, "person": 11}
_CAR_DETAIL_PX = 10                       # cars this tall get their side and a shadow


def _tree_blocks(st: _Street, v: _View, b: _Batch,
                 lit: np.ndarray) -> tuple[list, np.ndarray]:
    """Trunks as blocks for every tree; small crowns as blocks too (see _BLOCKS_BELOW_PX)."""
    radius, trunk = b.params["radius"], b.params["trunk"]
    small = 2 * radius * st._focal / b.z < _BLOCKS_BELOW_PX["tree"]
    crown_top = np.where(small, trunk + 1.8 * radius, np.nan)      # NaN: no block (stamped)
    blocks = _blocks_of(st, v, b, [
        (0.0, 0.13, 0.0, trunk + 0.95 * radius, VEGETATION, lit[:, 1]),
        (0.0, 0.85 * radius, trunk + 0.2 * radius, crown_top, VEGETATION, lit[:, 0] * 0.9)])
    return blocks, ~small


def _car_blocks(st: _Street, v: _View, b: _Batch,
                lit: np.ndarray) -> tuple[list, np.ndarray]:
    """Small cars as blocks: body, cabin, and two glowing lamps at night."""
    small = 1.42 * st._focal / b.z < _BLOCKS_BELOW_PX["car"]
    glow = np.where(b.params["facing"][:, None] > 0, np.float32([255, 40, 25]),
                    np.float32([255, 250, 232]))
    lamp_rgb = lit[:, 4] + glow * b.params["lights"][:, None]
    lamp_top = np.where(b.params["lights"] > 0.01, 0.82, np.nan)     # lamps lit at night only
    top = np.where(small, 1.42, np.nan)                  # NaN: no block (near cars are stamped)
    blocks = _blocks_of(st, v, b, [
        (0.0, 0.9, 0.25, np.minimum(top, 0.95), CAR, lit[:, 0]),
        (0.0, 0.7, 0.95, top, CAR, lit[:, 1]),
        (-0.7, 0.12, 0.7, np.where(small, lamp_top, np.nan), 255, lamp_rgb),
        (0.7, 0.12, 0.7, np.where(small, lamp_top, np.nan), 255, lamp_rgb)])
    return blocks, ~small


def _person_blocks(st: _Street, v: _View, b: _Batch,
                   lit: np.ndarray) -> tuple[list, np.ndarray]:
    """Small people as three blocks: trousers, shirt, head."""
    size = b.params["size"]
    small = size * st._focal / b.z < _BLOCKS_BELOW_PX["person"]
    cut = np.where(small, size, np.nan)               # NaN: no block (near people are stamped)
    blocks = _blocks_of(st, v, b, [
        (0.0, 0.1 * size, 0.0, 0.47 * cut, PERSON, lit[:, 0]),
        (0.0, 0.12 * size, 0.47 * size, 0.8 * cut, PERSON, lit[:, 1]),
        (0.0, 0.06 * size, 0.8 * size, 0.95 * cut, PERSON, lit[:, 2])])
    return blocks, ~small


def _stamp(st: _Street, cv: _Canvas, v: _View, stamp: _Stamp, *, x: float, z: float,
           unit: float, lift: float, label: int, parts: np.ndarray) -> tuple | None:
    """Paint `stamp` scaled by `unit` metres and raised `lift` metres, at lateral x, depth z.

    Sampling the precomputed shape costs a few numpy calls however detailed it is. parts:
    (3, P + 1) float32 palette of the stamp's parts (column 0 unused: transparent). Returns
    the screen box (see `SyntheticStreet._box`) or None when off screen.
    """
    half = max(-stamp.x0, stamp.x1) * unit
    got = st._box(v, x, z, half, stamp.y1 * unit + lift, bottom_m=stamp.y0 * unit + lift)
    if got is None:
        return None
    sl, xs, ys = got
    ci = stamp.cols(xs * np.float32(1 / unit))
    ri = stamp.rows((ys - np.float32(lift)) * np.float32(1 / unit))
    part = stamp.part[ri, ci]
    shade = None if stamp.shade is None else stamp.shade[ri, ci]
    _paint(cv, sl, part != 0, label, parts, part, shade)
    return got


def _draw_tree(st: _Street, cv: _Canvas, v: _View, *, z: float, parts: np.ndarray,
               x: float, radius: float, trunk: float, seed: int) -> None:
    """A street tree's crown (one of the world's crown stamps); its trunk is a block.

    parts: (3, 3) float32 palette: transparent, foliage, bark (lit colours as columns).
    """
    crowns = st._world.stamps["trees"]
    _stamp(st, cv, v, crowns[seed % len(crowns)], x=x, z=z, unit=radius, lift=trunk + 0.95 * radius,
           label=VEGETATION, parts=parts)


def _draw_person(st: _Street, cv: _Canvas, v: _View, *, z: float, parts: np.ndarray,
                 x: float, size: float, phase: float) -> None:
    """A walking pedestrian: the stamp of its step `phase`, scaled to its height `size`.

    parts: (3, 5) float32 palette: transparent, trousers, shirt and arms, face and neck, hair.
    """
    poses = st._world.stamps["people"]
    pose = int(phase / (2 * np.pi) * len(poses)) % len(poses)
    _stamp(st, cv, v, poses[pose], x=x, z=z, unit=size, lift=0.0, label=PERSON, parts=parts)


_CAR_LEN_M = 4.3
_SIDE_DIM = np.float32([[1, 0.85, 1, 1, 1, 1]])          # a car's side paint is a little darker


def _draw_car(st: _Street, cv: _Canvas, v: _View, *, z: float, parts: np.ndarray,
              x: float, facing: float, lights: float) -> None:
    """A car `z` m ahead: its side (if seen) then its rear (facing +1) or front (facing -1).

    parts: (3, 6) float32 palette: transparent, paint, glass, tyres and bumper, plate, lamps. Cars
    under `_CAR_DETAIL_PX` tall skip the side and shadow (small ones are blocks).
    """
    if 1.42 * st._focal / z >= _CAR_DETAIL_PX:
        _draw_car_side(st, cv, v, z, x, parts * _SIDE_DIM)
        got = st._box(v, x, z, 1.05, 0.3, bottom_m=-0.25)      # a soft shadow on the road
        if got is not None:
            _flush_rects(cv)
            under = cv.rgb[:, got[0][0], got[0][1]]
            under[:, (np.abs(got[1]) < 1.05) & (cv.label[got[0]] != CAR)] *= 0.55
    got = _stamp(st, cv, v, st._world.stamps["car"], x=x, z=z, unit=1.0, lift=0.0, label=CAR,
                 parts=parts)
    if got is not None and lights > 0.01:
        _car_lights(cv, got[0], got[1], got[2], facing, lights, 1.0 - math.exp(-z / v.fog_m))


# -- stamps: sprite shapes drawn once per world ------------------------------------------

@dataclass(frozen=True, eq=False)
class _Stamp:
    """A sprite's shape drawn once on a grid and sampled per frame (nearest texel).

    part: (R, C) uint8, 0 transparent, else 1 + index into the sprite's parts. shade: (R, C)
    float32 brightness, or None for flat colours. The grid spans x0..x1 left to right and
    y1..y0 top to bottom, in the sprite's unit (metres, or its crown radius, or its height).
    """

    part: np.ndarray
    shade: np.ndarray | None
    x0: float
    x1: float
    y0: float
    y1: float

    def cols(self, x: np.ndarray) -> np.ndarray:
        """int32 grid column of each x; outside the grid, a transparent border column."""
        n = self.part.shape[1] - 2                                  # without the border
        c = (x - np.float32(self.x0)) * np.float32(n / (self.x1 - self.x0)) + 1
        return _clamp(c, 0, n + 1).astype(np.int32)

    def rows(self, y: np.ndarray) -> np.ndarray:
        """int32 grid row of each y; outside the grid, a transparent border row."""
        n = self.part.shape[0] - 2
        r = (np.float32(self.y1) - y) * np.float32(n / (self.y1 - self.y0)) + 1
        return _clamp(r, 0, n + 1).astype(np.int32)


def _framed(part: np.ndarray, shade: np.ndarray | None, *extent: float) -> _Stamp:
    """A `_Stamp` of `part` (R, C) and `shade`, with a transparent one-texel border added."""
    part = np.pad(part.astype(np.uint8), 1)
    shade = None if shade is None else np.pad(shade.astype(np.float32), 1, constant_values=1)
    return _Stamp(part, shade, *extent)


def _grid(rows: int, cols: int, x0: float, x1: float, y0: float,
          y1: float) -> tuple[np.ndarray, np.ndarray]:
    """Texel centres: xs (1, cols) left to right, ys (rows, 1) top to bottom."""
    xs = x0 + (np.arange(cols) + 0.5)[None, :] * ((x1 - x0) / cols)
    ys = y1 - (np.arange(rows) + 0.5)[:, None] * ((y1 - y0) / rows)
    return xs.astype(np.float32), ys.astype(np.float32)


def _crown_stamps(rng: np.random.Generator, tex: np.ndarray, n: int = 8) -> list[_Stamp]:
    """Tree crowns in units of their radius, centred on the crown: lumpy blobs, lit from above."""
    xs, ys = _grid(192, 192, -1.3, 1.3, -1.05, 1.25)
    stamps = []
    for _ in range(n):
        oy, ox = rng.integers(0, _TEX, 2)
        lump = 1.0 + 0.22 * _lookup(tex, ys * 5 + oy, xs * 5 + ox)
        leaf = _lookup(tex, ys * 24 + ox, xs * 24 + oy)
        crown = xs * xs + ys * ys < lump
        for side in (-1, 1):
            cx, cy = side * rng.uniform(0.45, 0.65), -rng.uniform(0.2, 0.35)
            r2 = rng.uniform(0.4, 0.6)
            crown |= (xs - cx) ** 2 + 1.5 * (ys - cy) ** 2 < r2 * lump
        shade = np.clip(0.8 + 0.2 * leaf + 0.25 * ys, 0.4, 1.3).astype(np.float32)
        stamps.append(_framed(crown, shade, -1.3, 1.3, -1.05, 1.25))
    return stamps


def _person_stamps(n: int = 8) -> list[_Stamp]:
    """A walk cycle of `n` poses in units of the person's height, seen from front or back.

    Parts: 1 trousers, 2 shirt and arms, 3 face and neck, 4 hair.
    """
    px, py0 = _grid(96, 36, -0.3, 0.3, 0.0, 1.02)
    stamps = []
    for pose in range(n):
        swing = math.sin(2 * np.pi * pose / n)
        py = py0 - 0.01 * abs(math.cos(2 * np.pi * pose / n))                     # a slight bob
        legs = (np.abs(np.abs(px) - 0.05) < 0.038) & (py < 0.48)
        legs &= py > np.where(px < 0, 0.04 * max(swing, 0), 0.04 * max(-swing, 0))
        torso = (np.abs(px) < 0.1 + 0.05 * (py - 0.46) / 0.34) & (py >= 0.46) & (py < 0.8)
        arms = (np.abs(np.abs(px) - 0.16) < 0.028) & (py < 0.79)
        torso |= arms & (py > 0.5 + 0.04 * swing * np.sign(px))             # swinging
        head = (px / 0.058) ** 2 + ((py - 0.885) / 0.068) ** 2 < 1
        head |= (np.abs(px) < 0.03) & (py >= 0.78) & (py < 0.84)
        part = np.where(head, np.where(py > 0.905, 4, 3), np.where(torso, 2, np.where(legs, 1, 0)))
        stamps.append(_framed(part, None, -0.3, 0.3, 0.0, 1.02))
    return stamps


def _car_stamp() -> _Stamp:
    """A car seen from behind or in front, in metres. Parts: 1 paint, 2 glass, 3 tyres and
    bumper, 4 number plate, 5 lamps (tail or head lights, by the car's colours)."""
    xs, ys = _grid(64, 80, -0.95, 0.95, 0.0, 1.45)
    ax = np.abs(xs)
    shell = (ax < 0.9) & (ys > 0.28) & (ys < 0.95) & ~((ax > 0.8) & (ys > 0.87))
    cabin = (ax < 0.78 - (ys - 0.95) * 0.45) & (ys >= 0.95) & (ys < 1.42)
    wheels = (ax > 0.52) & (ax < 0.86) & (ys >= 0) & (ys <= 0.3)
    part = np.where(shell | cabin, 1, 0)
    part = np.where((ax < 0.68 - (ys - 0.95) * 0.45) & (ys > 1.0) & (ys < 1.36), 2, part)
    part = np.where(wheels | (shell & (ys < 0.4)), 3, part)
    part = np.where((ax < 0.22) & (ys > 0.44) & (ys < 0.56), 4, part)
    part = np.where((ax > 0.56) & (ax < 0.84) & (ys > 0.68) & (ys < 0.84), 5, part)
    shade = np.broadcast_to(1.0 + 0.12 * (ys - 0.6), part.shape)             # sky-lit top
    return _framed(part, shade, -0.95, 0.95, 0.0, 1.45)


def _car_side_stamp() -> _Stamp:
    """A car's side: x runs along the car from its near end (metres), y up. Parts as
    `_car_stamp`: 1 paint, 2 glass, 3 tyres."""
    a, y = _grid(48, 112, 0.0, _CAR_LEN_M, 0.0, 1.45)
    shell = (y > 0.3) & (y < 0.95) & (a >= 0)                               # (48, 112)
    cabin = (y >= 0.95) & (y < 1.42) & (a >= 0)
    cabin &= (a > 0.9 + (y - 0.95) * 0.9) & (a < 3.4 - (y - 0.95) * 1.1)     # sloping screens
    hub = (y - 0.33) ** 2
    wheel = ((a - 0.85) ** 2 + hub < 0.1) | ((a - 3.45) ** 2 + hub < 0.1)
    part = np.where(shell | cabin, 1, 0)
    part = np.where(cabin & (y > 1.02) & (y < 1.36), 2, part)
    part = np.where(wheel, 3, part)
    return _framed(part, None, 0.0, _CAR_LEN_M, 0.0, 1.45)


def _car_lights(cv: _Canvas, sl: tuple, xs: np.ndarray, ys: np.ndarray, facing: float,
                lights: float, fog_w: float) -> None:
    """Glowing tail lights (red) or headlights (white) with a halo that spills over (in place)."""
    d2 = (np.abs(xs) - 0.7) ** 2 + (ys - 0.76) ** 2
    glare = 0.5 if facing > 0 else 1.0
    glow = np.exp(d2 * np.float32(-1 / (2 * (0.12 + 0.2 * glare) ** 2)))
    glow *= np.float32(lights * (1 - 0.5 * fog_w))
    colour = np.float32([255, 40, 25]) if facing > 0 else np.float32([255, 250, 232])
    _flush_rects(cv)
    cv.rgb[:, sl[0], sl[1]] += glow * (colour * glare)[:, None, None]


def _draw_car_side(st: _Street, cv: _Canvas, v: _View, z: float, x: float,
                   parts: np.ndarray) -> None:
    """The side of a car in the plane x -+ 0.9 m that faces the camera, `z`..`z`+4.3 m deep.

    `parts` (3, 6) is the palette of `_draw_car`'s numbered parts.
    """
    if abs(x - v.cam_x) < 0.95:
        return                                     # straight ahead: the side is not seen
    dx = x - math.copysign(0.9, x - v.cam_x) - v.cam_x
    f = st._focal
    u_near, u_far = v.vanish + f * dx / z, v.vanish + f * dx / (z + _CAR_LEN_M)
    k = f / z
    base = v.horizon + (u_near - st.width / 2) * v.roll + k * _CAM_H_M
    c0, c1 = max(int(min(u_near, u_far)), 0), min(int(max(u_near, u_far)) + 2, st.width)
    r0, r1 = max(int(base - 1.45 * k), 0), min(int(base) + 2, st.height)
    if c0 >= c1 or r0 >= r1:
        return
    cols = st._cols[:, c0:c1] - np.float32(v.vanish)
    zc = np.where(cols * dx > 0, np.float32(f * dx) / np.where(cols == 0, 1, cols), -1.0)
    yh = v.horizon + (st._cols[:, c0:c1] - st.width / 2) * v.roll
    y = np.float32(_CAM_H_M) - (st._rows[r0:r1] - yh) * (zc * np.float32(1 / f))   # (h, w)
    stamp = st._world.stamps["car_side"]
    part = stamp.part[stamp.rows(y), stamp.cols(zc - np.float32(z))]   # along the car, metres
    _paint(cv, (slice(r0, r1), slice(c0, c1)), part != 0, CAR, parts, part)
