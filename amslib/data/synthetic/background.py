"""The synthetic street's background: sky, distant skyline, road plane, facade planes.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from amslib.data.synthetic.canvas import _LAMP_RGB, _WINDOW_LIT_RGB, _Canvas, _clamp, _frac, _lookup, _mip, _shade, _View
from amslib.data.synthetic.looks import (
    _BLOCK_BUILDING,
    _BLOCK_TREES,
    _CAM_H_M,
    _LANE_M,
    _MAT_LABEL,
    _Z_FAR_M,
    BUILDING,
    SIDEWALK,
    SKY,
    VEGETATION,
    _hash01,
)
from amslib.data.synthetic.scene import _Street, _World


# ----------------------------------------------------------------------------------------
# Background: sky, distant skyline, road plane, facade planes.
#
# For speed each surface yields, per pixel, an index into a small per-frame palette of lit
# colours plus a scalar shade (texture); one gather at the end makes the (H, W, 3) colour.
# That keeps nearly all per-pixel work on (H, W) scalars instead of (H, W, 3) colours.
# ----------------------------------------------------------------------------------------

@dataclass(frozen=True, eq=False)
class _Layer:
    """One background surface: where it is seen, label, palette index, shade and depth."""

    mask: np.ndarray       # (h, W) bool
    label: np.ndarray      # (h, W) or (1, W) uint8
    pidx: np.ndarray       # (h, W) int32 index into `palette`
    shade: np.ndarray      # (h, W) float32 texture multiplier
    depth: np.ndarray      # (h, W) or (1, W) float32 metres, for haze
    palette: np.ndarray    # (P, 3) float32 lit colours
    glow: np.ndarray | None = None      # (h, W) float32 street-lamp light at night (ground)
    albedo: np.ndarray | None = None    # (P, 3) float32 unlit colours, for `glow`


def _background(st: _Street, v: _View) -> _Canvas:
    """Label and lit colour of everything but the sprites."""
    h, w, f = st.height, st.width, st._focal
    yh = np.float32(v.horizon) + (st._cols - np.float32(w / 2)) * np.float32(v.roll)   # (1, W)
    slope = (st._cols - np.float32(v.vanish)) * np.float32(1 / f)          # (1, W) ray x per metre
    dy = st._rows - yh                                                       # (H, W) below horizon
    r0 = min(max(math.floor(yh.min()), 0), h)                             # road rows start here
    ground = _ground_layer(st, v, dy[r0:], slope)
    wall = _facade_layer(st, v, dy, slope)
    sky_pal, far_rgb, far_label, distant = _sky_layer(st, v, slope, dy)
    g0 = h + 1
    f0 = g0 + len(ground.palette)
    palette = np.concatenate([sky_pal, far_rgb[None], ground.palette, wall.palette]).T
    idx = np.where(distant, np.int32(h), np.arange(h, dtype=np.int32)[:, None])
    label = np.where(distant, far_label, np.uint8(SKY))
    shade = np.ones((h, w), np.float32)
    depth = np.zeros((h, w), np.float32)
    _overlay(ground, g0, idx[r0:], label[r0:], shade[r0:], depth[r0:])
    n = len(wall.mask)                                   # facades end above the lowest foot
    _overlay(wall, f0, idx[:n], label[:n], shade[:n], depth[:n])
    fog = 1.0 - np.exp(depth * np.float32(-1.0 / v.fog_m))
    rgb = np.take(np.ascontiguousarray(palette), idx, axis=1)              # (3, H, W)
    rgb *= shade * (1.0 - fog)
    rgb += fog * (v.sky_horizon * 0.9)[:, None, None]
    if ground.glow is not None:
        _add_glow(ground, rgb[:, r0:], idx[r0:] - g0, label[r0:], shade[r0:] * (1.0 - fog[r0:]))
    _clouds(st, v, rgb, label, yh, slope)
    return _Canvas(label, rgb)


def _overlay(layer: _Layer, offset: int, idx: np.ndarray, label: np.ndarray,
             shade: np.ndarray, depth: np.ndarray) -> None:
    """Write `layer` where it is seen into the frame arrays (views, updated in place)."""
    m = layer.mask
    np.copyto(idx, layer.pidx + np.int32(offset), where=m)
    np.copyto(label, np.broadcast_to(layer.label, m.shape), where=m)
    np.copyto(shade, layer.shade, where=m)
    np.copyto(depth, np.broadcast_to(layer.depth, m.shape), where=m)


def _add_glow(ground: _Layer, rgb: np.ndarray, gidx: np.ndarray, label: np.ndarray,
              weight: np.ndarray) -> None:
    """Add the night lamp pools and headlight beam to road and sidewalk pixels (in place)."""
    on = ground.mask & (label <= SIDEWALK)          # not where a facade hides the ground
    albedo = np.take(np.ascontiguousarray(ground.albedo.T * _LAMP_RGB[:, None]),
                     _clamp(gidx, 0, len(ground.albedo) - 1), axis=1)
    rgb += albedo * (ground.glow * weight * on)


def _sky_layer(st: _Street, v: _View, slope: np.ndarray,
               dy: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.uint8, np.ndarray]:
    """Sky palette (H, 3), the distant skyline's colour (3,), label and (H, W) mask.

    The skyline mask ignores the facades: they are painted over it.
    """
    up = _clamp((np.float32(v.horizon) - st._rows[:, 0]) * np.float32(1.8 / st.height), 0, 1)
    sky = v.sky_horizon + np.sqrt(up)[:, None] * (v.sky_top - v.sky_horizon)
    sl = st._world.skyline
    n = sl.shape[1]                                       # azimuths -1.2..1.2 rad
    ai = _clamp(((np.arctan(slope) + 1.2) * ((n - 1) / 2.4)).astype(np.int32), 0, n - 1)
    elev = np.float32(v.skyline) * sl[0, ai] + np.float32(1 - v.skyline) * sl[1, ai]       # (1, W)
    distant = (dy > -st._focal * elev) & (dy <= 0.25)
    city = v.skyline >= 0.5
    tone = np.float32([112, 118, 132]) if city else np.float32([58, 82, 58])
    far = _shade(tone, v.light_rgb, 0.55, v.sky_horizon)
    return sky.astype(np.float32), far, np.uint8(BUILDING if city else VEGETATION), distant


def _clouds(st: _Street, v: _View, rgb: np.ndarray, label: np.ndarray, yh: np.ndarray,
            slope: np.ndarray) -> None:
    """Brighten the daytime sky with soft clouds anchored to the view direction (in place)."""
    rows = min(max(math.ceil(yh.max()), 0), st.height)
    amount = np.float32(0.5 * (1.0 - v.lamps))
    if rows == 0 or amount <= 0.01:
        return
    up = _clamp((yh - st._rows[:rows]) * np.float32(1.8 / st.height), 0, 1)
    cloud = _lookup(st._world.tex, up * 90.0 + 40.0, slope * 90.0 + 500.0)
    c = np.maximum(cloud - 0.3, 0) * up * amount * (label[:rows] == SKY)
    rgb[:, :rows] += c * ((v.sky_horizon * 1.05)[:, None, None] - rgb[:, :rows])


def _ground_layer(st: _Street, v: _View, dy: np.ndarray, slope: np.ndarray) -> _Layer:
    """The road plane seen in rows `dy` (h, W): road, markings, kerbs, sidewalks, lawns."""
    w = st._world
    depth = np.float32(st._focal * _CAM_H_M) / np.maximum(dy, np.float32(0.25))
    x = np.float32(v.cam_x) + slope * depth
    zw = np.float32(v.cam_z) + depth
    zi = _clamp((zw - np.float32(w.z0)).astype(np.int32), 0, len(w.ground_flags) - 1)
    mat = _ground_materials(v, x, zw, np.take(w.ground_flags, zi))
    row_z = zi[:, st.width // 2]                     # colours vary slowly: one lookup per row
    pidx = np.arange(len(dy), dtype=np.int32)[:, None] * 6 + mat
    s = _mip(st._focal / depth[:, st.width // 2])[:, None]
    tex = 0.75 * _lookup(w.tex, zw * s, x * s) + 0.5 * _lookup(w.tex, zw * 0.4, x * 0.4 + 97.0)
    shade = 1.0 + np.take(w.ground_grain[row_z].reshape(-1), pidx) * tex
    albedo = w.ground_rgb[row_z].reshape(-1, 3)
    return _Layer(dy > 0.25, np.take(_MAT_LABEL, mat), pidx, shade, depth, albedo * v.light_rgb,
                  glow=_ground_glow(v, x, zw, depth), albedo=albedo)


def _material_table() -> np.ndarray:
    """(32,) uint8 ground material for key = zone + 4 lawn + 8 cross street + 16 marking.

    zone: 0 road, 1 kerb, 2 sidewalk, 3 beyond (lawn or paving, by the lawn bit).
    """
    table = np.zeros(32, np.uint8)
    for key in range(32):
        zone, lawn, cross, mark = key & 3, key >> 2 & 1, key >> 3 & 1, key >> 4 & 1
        under = 0 if cross else (0, 3, 2, 4 if lawn else 5)[zone]      # cross street: road
        table[key] = 1 if mark and zone == 0 else under                 # paint only on the road
    return table


_MATERIALS = _material_table()


def _ground_materials(v: _View, x: np.ndarray, zw: np.ndarray, flags: np.ndarray) -> np.ndarray:
    """(h, W) uint8 ground material (index into `_MAT_LABEL`) from lateral x and depth zw.

    Bands across the street are counted with comparisons and looked up in `_MATERIALS`,
    which is much faster than a chain of np.where.
    """
    ax = np.abs(x)
    key = (ax >= v.road_half).view(np.uint8) + (ax >= v.road_half + 0.2).view(np.uint8)
    key += (ax >= v.road_half + v.sidewalk).view(np.uint8)
    key += (flags >> 1) & 4                                                   # lawn bit (8 -> 4)
    side_bit = (x > 0).view(np.uint8) + np.uint8(1)                          # 1 left, 2 right
    key += ((flags & side_bit) != 0).view(np.uint8) << 3
    key += _markings(v, x, ax, zw, flags).view(np.uint8) << 4
    return np.take(_MATERIALS, key)


def _markings(v: _View, x: np.ndarray, ax: np.ndarray, zw: np.ndarray,
              flags: np.ndarray) -> np.ndarray:
    """(h, W) bool: lane lines (dashed between lanes, solid at the edges) and zebra crossings."""
    lanes = max(1, round(v.lanes))
    k = np.rint(ax * np.float32(1 / _LANE_M))
    on_line = np.abs(ax - k * np.float32(_LANE_M)) < 0.08
    dashed = _frac(zw, 9.0) < 0.45
    if lanes > 1:                                  # a solid centre line on wide roads
        dashed |= k == 0
    lines = on_line & (dashed | (k == lanes)) & (k <= lanes)
    zebra = ((flags & 4) != 0) & (_frac(x, 1.2) < 0.5)
    return lines | zebra


def _ground_glow(v: _View, x: np.ndarray, zw: np.ndarray, depth: np.ndarray) -> np.ndarray | None:
    """(h, W) float32 light on the road at night: lamp pools and the camera car's headlights."""
    if v.lamps <= 0.01:
        return None
    # Lamps every 25 m on both kerbs, staggered.
    pz = (_frac(zw + (x > 0) * np.float32(12.5), 25.0) - 0.5) * np.float32(25.0)
    px = np.abs(x) - np.float32(v.road_half - 0.3)
    dx = (x - np.float32(v.cam_x)) * np.float32(1 / 2.2)
    pool = np.exp((pz * pz + px * px) * np.float32(-1 / 32))
    beam = np.exp(-dx * dx - depth * np.float32(1 / 22))
    return (pool + 1.3 * beam) * np.float32(v.lamps)


def _facade_layer(st: _Street, v: _View, dy: np.ndarray, slope: np.ndarray) -> _Layer:
    """The two facade planes x = +-wall_x: buildings with windows, tree lines, gaps.

    The layer covers rows 0..len(mask) only: below the lowest facade foot there is nothing
    of it to draw (about a third of the frame, which saves that much time).
    """
    w, b = st._world, st._world.blocks
    right = slope > 0
    dist = np.where(right, v.wall_x - v.cam_x, v.wall_x + v.cam_x)
    depth = np.minimum(dist / np.maximum(np.abs(slope), 1e-4), 1e5).astype(np.float32)  # (1, W)
    along = v.cam_z + depth.astype(np.float64)                                            # world z
    idx = _block_index(w, along[0], right[0])[None, :]
    local = (along - b["start"][idx]).astype(np.float32)
    top = np.where(depth < _Z_FAR_M, _facade_top(w, idx, local, along), np.float32(0))
    foot = 0.5 - dy[0] + np.float32(_CAM_H_M * st._focal) / depth                      # (1, W) rows
    rows = min(max(math.ceil(foot[top > 0].max(initial=-1.0)) + 1, 0), st.height)
    y = np.float32(_CAM_H_M) - dy[:rows] * (depth * np.float32(1 / st._focal))       # (h, W)
    trees = b["kind"][idx] == _BLOCK_TREES
    gaps = trees & (_frac(local + b["id"][idx], 3.1) >= 0.11)      # see between the trunks
    mask = (y >= np.where(gaps, np.float32(2.2), np.float32(0))) & (y < top)
    pidx, shade = _facade_texture(st, v, idx, local, along.astype(np.float32), y, depth, trees)
    return _Layer(mask, np.where(trees, np.uint8(VEGETATION), np.uint8(BUILDING)), pidx, shade,
                  depth, _facade_palette(v, b, idx[0], trees[0]))


def _block_index(w: _World, along: np.ndarray, right: np.ndarray) -> np.ndarray:
    """(W,) index of the facade block each column sees (left blocks first, then right)."""
    starts, n = w.blocks["start"], w.n_left
    left_i = np.searchsorted(starts[:n], along, side="right") - 1
    right_i = np.searchsorted(starts[n:], along, side="right") - 1 + n
    return np.maximum(np.where(right, right_i, left_i), 0)


def _facade_top(w: _World, idx: np.ndarray, local: np.ndarray, along: np.ndarray) -> np.ndarray:
    """(1, W) float32 height of each column's facade: eaves + roof, or the tree line's crown."""
    b = w.blocks
    kind, eave = b["kind"][idx], b["height"][idx]
    tri = 1.0 - np.abs(2.0 * local / b["length"][idx] - 1.0)       # gable: 0 at ends, 1 mid
    roof = b["roof"][idx] * np.where(b["gable"][idx] > 0, 1.6 * tri, 1.0)
    zi = _clamp((along - w.z0).astype(np.int64), 0, len(w.bump) - 1)
    crown = eave + 1.5 * w.bump[zi] + 0.8 * np.abs(np.sin(local * 0.9))
    top = np.where(kind == _BLOCK_BUILDING, eave + roof, np.where(kind == _BLOCK_TREES, crown, 0.0))
    return top.astype(np.float32)


def _facade_palette(v: _View, b: dict, idx: np.ndarray, trees: np.ndarray) -> np.ndarray:
    """(4W + 1, 3) float32 lit colours: per column wall, roof/bark, glazing, foliage; lit window."""
    light = v.light_rgb + np.float32(v.lamps * 0.25) * _LAMP_RGB     # lamps light the ground floors
    roof = np.where(trees[:, None], np.float32([72, 58, 46]), b["roof_rgb"][idx])
    glazing = b["window_rgb"][idx] * light + np.float32(0.3) * v.sky_horizon   # mirrors the sky
    return np.concatenate([b["facade"][idx] * light, roof * light, glazing,
                           b["foliage"][idx] * light, _WINDOW_LIT_RGB[None]]).astype(np.float32)


def _facade_texture(st: _Street, v: _View, idx: np.ndarray, local: np.ndarray,
                    along: np.ndarray, y: np.ndarray, depth: np.ndarray,
                    trees: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(h, W) int32 palette index (see `_facade_palette`) and float32 shade of the facades.

    The palette has four per-column sections: 0 wall, 1 roof or bark, 2 glazing, 3 foliage.
    Per-column thresholds do the branching, so each pixel costs a few comparisons.
    """
    b, n, inf = st._world.blocks, st.width, np.float32(np.inf)
    bay = local / b["bay"][idx]
    bx = np.abs(bay - np.floor(bay) - 0.5)                                     # (1, W)
    ground_h, eave = b["ground"][idx], b["height"][idx]
    fl = (y - ground_h) * (1.0 / b["floor"][idx])
    fy = fl - np.floor(fl)                                                     # (h, W)
    in_bay = (bx < b["win_w"][idx] / 2) & ~trees
    glazing = in_bay & (np.abs(fy - 0.55) < b["win_h"][idx] / 2) & (fl >= 0) & (y < eave - 0.4)
    glazing |= (bx < 0.4) & ~trees & (y > 0.4) & (y < ground_h - 0.5)        # shop windows
    roof_from = np.where(trees, -inf, eave)             # trees: 1 (bark) + 2 above the trunks
    leaves_from = np.where(trees, np.float32(2.2), inf)
    section = (y > roof_from).view(np.uint8) + ((glazing | (y >= leaves_from)).view(np.uint8) << 1)
    pidx = section.astype(np.int32) * np.int32(n) + np.arange(n, dtype=np.int32)
    s = _mip(st._focal / depth)
    grain = _lookup(st._world.tex, y * s, along * s)
    contrast = np.where(trees, np.float32(0.28), np.float32(0.07))
    cornice = np.where(trees, np.float32(0), np.float32(0.2))                  # floor lines
    shade = np.where(trees, np.float32(0.85), np.float32(1)) + contrast * grain
    shade -= cornice * (fy < 0.07)
    if v.lamps > 0.01:
        pidx, shade = _lit_windows(b, idx, fl, bay, glazing, v.lamps, pidx, shade, 4 * n)
    return pidx, shade


def _lit_windows(b: dict, idx: np.ndarray, fl: np.ndarray, bay: np.ndarray, glazing: np.ndarray,
                 lamps: float, pidx: np.ndarray, shade: np.ndarray, lit_index: int,
                 ) -> tuple[np.ndarray, np.ndarray]:
    """Palette index and shade with the windows that are lit at night (each decides once)."""
    column = _hash01(b["id"][idx].astype(np.int64), np.floor(bay).astype(np.int64))   # (1, W)
    h = _hash01((column * np.float32(1 << 24)).astype(np.int64), np.floor(fl).astype(np.int32))
    share = np.maximum(b["lit"][idx], 1e-3)
    lit = glazing & (h < share)
    glow = np.float32(lamps) * (0.45 + 0.55 * h / share)
    return np.where(lit, np.int32(lit_index), pidx), np.where(lit, glow, shade)
