"""Drawing one frame of the synthetic street: the camera's view of a frame, the canvas of
colour-palette indices and labels, and painting onto it.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from amslib.data.synthetic.looks import _TEX

# ----------------------------------------------------------------------------------------
# Rendering one frame
# ----------------------------------------------------------------------------------------

@dataclass(frozen=True, eq=False)
class _View:
    """Camera and conditions of one frame. Pixel quantities are in pixels, lengths in metres."""

    index: int
    t: float
    cam_z: float
    cam_x: float
    horizon: float          # row of the horizon at the centre column
    vanish: float           # column of the vanishing point (camera yaw)
    roll: float             # horizon slope, rows per column
    lanes: float
    road_half: float        # centre line to kerb
    lanes_half: float       # centre line to the outer lane line
    sidewalk: float
    wall_x: float           # centre line to the facades
    lead_car: float
    skyline: float
    light_rgb: np.ndarray   # (3,) float32 multiplier of albedos
    sky_top: np.ndarray     # (3,) float32
    sky_horizon: np.ndarray
    lamps: float
    wet: float
    fog_m: float
    noise: float


_LAMP_RGB = np.float32([1.25, 0.95, 0.6])      # sodium street lamps
_WINDOW_LIT_RGB = np.float32([255, 205, 130])


@dataclass(eq=False)
class _Canvas:
    """The frame being painted: (H, W) uint8 label ids and (3, H, W) float32 colour planes.

    Colour is kept as planes because numpy multiplies a (3, H, W) array by an (H, W) one
    about four times faster than an (H, W, 3) one by (H, W, 1).
    """

    label: np.ndarray
    rgb: np.ndarray
    rects: list = field(default_factory=list)   # pending blocks: `_rect_specs`, `_flush_rects`


def _flush_rects(cv: _Canvas) -> None:
    """Paint the pending rectangles (in place), later ones over earlier ones.

    Far sprites are a few pixels each and numerous; painting them in one vectorised pass is
    about ten times faster than one numpy call per rectangle. Anything that paints directly
    calls this first, so the far-to-near order is kept.
    """
    if len(cv.rects) <= 4:                                # few: plain slicing is cheaper
        for r0, r1, c0, c1, label, *rgb in cv.rects:
            r0, r1, c0, c1 = int(r0), int(r1), int(c0), int(c1)
            if label != 255:
                cv.label[r0:r1, c0:c1] = label
            cv.rgb[:, r0:r1, c0:c1] = np.float32(rgb)[:, None, None]
        cv.rects.clear()
        return
    spec = np.array(cv.rects, np.float64)                 # (n, 8): r0 r1 c0 c1 label r g b
    cv.rects.clear()
    r0, r1, c0, c1 = spec[:, :4].T.astype(np.int64)
    width, counts = c1 - c0, (r1 - r0) * (c1 - c0)
    rid = np.repeat(np.arange(len(spec)), counts)
    j = np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts)
    flat = (r0[rid] + j // width[rid]) * cv.label.shape[1] + c0[rid] + j % width[rid]
    for labelled in (True, False):                         # shapes first, then their lights
        sel = (spec[rid, 4] != 255) == labelled
        f, r = flat[sel][::-1], rid[sel][::-1]
        _, first = np.unique(f, return_index=True)         # the last rectangle painted wins
        if labelled:
            cv.label.reshape(-1)[f[first]] = spec[r[first], 4]
        cv.rgb.reshape(3, -1)[:, f[first]] = spec[r[first], 5:8].T


def _shade(rgb: np.ndarray, light: np.ndarray, fog_w: float, fog_rgb: np.ndarray) -> np.ndarray:
    """Lit and hazed colour of an albedo (..., 3)."""
    return (rgb * light) * (1.0 - fog_w) + fog_rgb * fog_w


def _paint(cv: _Canvas, sl: tuple[slice, slice], mask: np.ndarray, label: int,
           palette: np.ndarray, part: np.ndarray, shade: np.ndarray | None = None) -> None:
    """Paint `label` and colour `palette[:, part]` (times `shade`) in `cv[sl]` where `mask`.

    palette: (3, P) float32 lit colours; part: (h, w) integer index; shade: (h, w) float32.
    """
    _flush_rects(cv)
    np.copyto(cv.label[sl], np.uint8(label), where=mask)      # masked copies: no compaction
    colour = np.take(palette, part, axis=1)                                  # (3, h, w)
    if shade is not None:
        colour *= shade
    np.copyto(cv.rgb[:, sl[0], sl[1]], colour, where=mask)


def _mip(px_per_m: np.ndarray) -> np.ndarray:
    """Texels per metre giving about 2 pixels per texel, in powers of two (1..32).

    Near surfaces then show fine grain instead of big blocks, far ones do not shimmer, and
    within one power of two the texture stays fixed to the world as the camera moves.
    """
    level = _clamp(np.rint(np.log2(np.maximum(px_per_m, 1e-3) * 0.5)), 0, 5)
    return np.exp2(level).astype(np.float32)


def _lookup(tex: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Texture values at texel coordinates (a, b), wrapped: float32 of the broadcast shape.

    A flat `np.take` is about three times faster than 2-d fancy indexing.
    """
    flat = ((a.astype(np.int32) & (_TEX - 1)) << 8) | (b.astype(np.int32) & (_TEX - 1))
    return np.take(tex.reshape(-1), flat)


def _clamp(a: np.ndarray, lo, hi) -> np.ndarray:
    """np.clip without its per-call overhead (which dominates on the small arrays here)."""
    return np.minimum(np.maximum(a, lo), hi)


def _frac(x: np.ndarray, period: float) -> np.ndarray:
    """x modulo `period`, divided by it: float32 in [0, 1). (np.mod on floats is ~20x slower.)"""
    q = x * np.float32(1 / period)
    return q - np.floor(q)
