"""The world of the synthetic street, generated once from the seed: facade blocks, trees,
parked cars, people, traffic, the skyline and textures.
"""
from __future__ import annotations

import numpy as np

from amslib.data.synthetic.looks import (
    _BLEND,
    _BLOCK_CROSS,
    _BLOCK_GAP,
    _BLOCK_TREES,
    _G,
    _GEO_FIELDS,
    _TEX,
    _TRAFFIC_SPAN_M,
    _Z_FAR_M,
    LOOKS,
    RGB,
    Light,
    Look,
    StreetConfig,
    _fractal_noise,
    _hash01,
    _Keys,
    _light_keys,
    _segment_keys,
)
from amslib.data.synthetic.scene import _World
from amslib.data.synthetic.sprites import _car_side_stamp, _car_stamp, _crown_stamps, _person_stamps

# ----------------------------------------------------------------------------------------
# The world: generated once from the seed.
# ----------------------------------------------------------------------------------------

def _look_index(seg_z: np.ndarray, z: np.ndarray | float) -> np.ndarray:
    """Index of the segment each world depth `z` belongs to."""
    return np.clip(np.searchsorted(seg_z, z, side="right") - 1, 0, len(seg_z) - 1)


def _camera_track(geo: _Keys, n: int, fps: float, phase: float) -> np.ndarray:
    """(n,) float64 camera z per frame: the integral of the segment's speed, with stop-and-go."""
    t = np.arange(n) / fps
    speed = geo.at_many(t)[:, _G["speed_mps"]] * (1.0 + 0.25 * np.sin(2 * np.pi * t / 29.0 + phase))
    return np.concatenate([[0.0], np.cumsum(speed[:-1] / fps)])


def _make_block(rng: np.random.Generator, look: Look, z: float, block_id: int) -> dict:
    """One facade block starting at `z`: a house, a tower, a tree line, a gap or a cross street."""
    kind = int(rng.choice(4, p=np.asarray(look.blocks) / sum(look.blocks)))
    length = {_BLOCK_GAP: rng.uniform(4, 9), _BLOCK_CROSS: rng.uniform(11, 15)}.get(
        kind, rng.uniform(*look.block_m))
    glass = rng.random() < look.glass
    tall = rng.uniform(*(look.tree_m if kind == _BLOCK_TREES else look.height_m))
    facade = np.asarray(look.facades[rng.integers(len(look.facades))], np.float32)
    return dict(
        start=z, length=length, kind=kind, height=tall,
        roof=look.roof_m * (rng.random() < 0.85) if not glass else 0.0,
        gable=float(rng.random() < 0.4),
        floor=look.floor_m, ground=look.floor_m * rng.uniform(1.1, 1.4),
        bay=rng.uniform(1.4, 2.0) if glass else rng.uniform(2.2, 3.2),
        win_w=0.86 if glass else look.window[0] * rng.uniform(0.85, 1.15),
        win_h=0.8 if glass else look.window[1],
        facade=facade * rng.uniform(0.9, 1.1),
        roof_rgb=np.asarray(look.roof, np.float32) * rng.uniform(0.85, 1.15),
        window_rgb=np.float32([150, 185, 215]) if glass else np.float32([62, 74, 92]),
        foliage=np.asarray(look.foliage[rng.integers(len(look.foliage))], np.float32),
        lit=look.lit_windows, glass=float(glass), id=block_id,
    )


def _make_blocks(rng: np.random.Generator, looks: list[Look], seg_z: np.ndarray,
                 z_lo: float, z_hi: float, first_id: int) -> list[dict]:
    """Facade blocks covering [z_lo, z_hi) along one side of the street."""
    blocks, z = [], z_lo
    while z < z_hi:
        look = looks[int(_look_index(seg_z, z))]
        blocks.append(_make_block(rng, look, z, first_id + len(blocks)))
        z += blocks[-1]["length"]
    return blocks


def _stack(rows: list[dict]) -> dict[str, np.ndarray]:
    """List of dicts -> dict of stacked arrays (floats as float32, except depths)."""
    out = {}
    for key in rows[0]:
        col = np.asarray([r[key] for r in rows])
        out[key] = col if key == "start" else col.astype(np.float32)
    return out


def _ground_tables(looks: list[Look], seg_z: np.ndarray, blocks: dict, n_left: int,
                   z0: float, n_z: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-metre ground colours (Z, 6, 3), grain (Z, 6) and flags (Z,), cross-faded over 30 m."""
    z = z0 + np.arange(n_z) + 0.5
    per_look = np.array([[lk.road, lk.marking, lk.sidewalk,
                          np.minimum(255, np.add(lk.sidewalk, 25)), lk.verge, lk.sidewalk]
                         for lk in looks], np.float32)             # (K, 6, 3)
    grain = np.array([[lk.road_grain, 0.05, 0.10, 0.05, 0.30, 0.10] for lk in looks], np.float32)
    keys = _segment_keys(seg_z, per_look.reshape(len(looks), -1), 30.0)
    rgb = keys.at_many(z).reshape(n_z, 6, 3).astype(np.float32)
    grains = _segment_keys(seg_z, grain, 30.0).at_many(z).astype(np.float32)
    lawn = np.array([lk.verge_is_lawn for lk in looks])[_look_index(seg_z, z)]
    flags = np.where(lawn, 8, 0).astype(np.uint8)
    for side, bit in ((slice(0, n_left), 1), (slice(n_left, None), 2)):
        cross = blocks["kind"][side] == _BLOCK_CROSS
        for start, length in zip(blocks["start"][side][cross], blocks["length"][side][cross]):
            i0, i1 = int(start - z0), int(start + length - z0)
            flags[max(i0, 0):max(i1, 0)] |= bit
            flags[max(i0 - 4, 0):max(i0 - 1, 0)] |= 4      # zebra crossing before the junction
    return rgb, grains, flags


def _per_segment(rng: np.random.Generator, looks: list[Look], seg_z: np.ndarray,
                 z_end: float, per_100m: str) -> tuple[np.ndarray, np.ndarray]:
    """Random depths of objects (density `per_100m` of each look) and the look index of each."""
    bounds = np.append(seg_z, z_end)
    zs, ks = [], []
    for k, look in enumerate(looks):
        lo, hi = bounds[k], bounds[k + 1]
        n = rng.poisson(getattr(look, per_100m) * max(hi - lo, 0.0) / 100.0)
        zs.append(rng.uniform(lo, hi, n))
        ks.append(np.full(n, k))
    return np.concatenate(zs), np.concatenate(ks).astype(np.int64)


def _pick(rng: np.random.Generator, options: list[tuple[RGB, ...]],
          which: np.ndarray) -> np.ndarray:
    """(n, 3) float32: for each object a random colour from its look's `options[which[i]]`."""
    out = np.empty((len(which), 3), np.float32)
    for i, k in enumerate(which):
        out[i] = options[k][rng.integers(len(options[k]))]
    return out


def _make_trees(rng: np.random.Generator, looks: list[Look], seg_z: np.ndarray,
                z_end: float) -> dict[str, np.ndarray]:
    """Street trees: on the lawn where there is one, else at the kerb."""
    z, k = _per_segment(rng, looks, seg_z, z_end, "trees_per_100m")
    n = len(z)
    lawn = np.array([lk.verge_is_lawn and lk.verge_m > 2 for lk in looks])[k]
    order = np.argsort(z)
    return {key: val[order] for key, val in dict(
        z=z, side=rng.choice([-1.0, 1.0], n).astype(np.float32),
        zone=lawn.astype(np.float32),                       # 0 kerb, 1 lawn
        frac=np.where(lawn, rng.uniform(0.2, 0.8, n), 0.2).astype(np.float32),
        radius=rng.uniform(1.6, 2.8, n).astype(np.float32),
        trunk=rng.uniform(1.8, 3.0, n).astype(np.float32),
        parts=_with_parts(_pick(rng, [lk.foliage for lk in looks], k), _BARK),
    ).items()}


def _make_parked(rng: np.random.Generator, looks: list[Look], seg_z: np.ndarray,
                 z_end: float) -> dict[str, np.ndarray]:
    """Parked cars in 6.5 m kerb slots on both sides, where the look has parking."""
    slots = np.arange(seg_z[0], z_end, 6.5)
    slots = np.concatenate([slots, slots])
    side = np.repeat([-1.0, 1.0], len(slots) // 2)
    k = _look_index(seg_z, slots)
    share = np.array([lk.parked if lk.parking else 0.0 for lk in looks])[k]
    keep = rng.random(len(slots)) < share
    z = slots[keep] + rng.uniform(-0.5, 0.5, keep.sum())
    order = np.argsort(z)
    side = side[keep][order]
    return dict(z=z[order], side=side,
                parts=_car_parts(_pick(rng, [lk.cars for lk in looks], k[keep])[order], side))


def _make_people(rng: np.random.Generator, looks: list[Look], seg_z: np.ndarray,
                 z_end: float, cam_z: np.ndarray, fps: float) -> dict[str, np.ndarray]:
    """Pedestrians walking along the sidewalks (or the park's lawn).

    Each walks from where it stands when the camera passes (`t_pass`), so it is near its
    spawn point whenever it is in view, whatever the length of the video.
    """
    z, k = _per_segment(rng, looks, seg_z, z_end, "people_per_100m")
    n = len(z)
    lawn = np.array([lk.verge_is_lawn and lk.verge_m > 2 for lk in looks])[k]
    lawn &= rng.random(n) < 0.4                            # some stroll on the lawn
    skins = ((235, 200, 170), (200, 150, 110), (140, 95, 65), (95, 65, 45))
    return dict(
        z=z, t_pass=np.interp(z, cam_z, np.arange(len(cam_z)) / fps),
        speed=rng.choice([-1.0, 1.0], n) * rng.uniform(0.9, 1.6, n),
        side=rng.choice([-1.0, 1.0], n), zone=lawn.astype(np.float64),
        frac=rng.uniform(0.2, 0.8, n), size=rng.uniform(1.55, 1.9, n), phase=rng.uniform(0, 6.3, n),
        parts=np.stack([_pick(rng, [lk.clothes for lk in looks], k) * np.float32(0.6),   # trousers
                        _pick(rng, [lk.clothes for lk in looks], k),                      # shirt
                        np.asarray(skins, np.float32)[rng.integers(len(skins), size=n)],
                        np.broadcast_to(np.float32([38, 30, 26]), (n, 3))], axis=1),     # hair
    )


def _make_traffic(rng: np.random.Generator, looks: list[Look]) -> dict[str, np.ndarray]:
    """Moving cars: 4 slots in each of 5 lanes (2 beside the camera's, 3 oncoming).

    All cars of a lane share its speed so they never drive through each other.
    """
    lanes = np.array([1, 1, 1, 1, 2, 2, 2, 2, 0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2])
    oncoming = np.repeat([0.0, 0.0, 1.0, 1.0, 1.0], 4)
    span = _TRAFFIC_SPAN_M[1] - _TRAFFIC_SPAN_M[0]
    z0 = np.tile(np.arange(4) * span / 4, 5) + rng.uniform(0, span / 4 - 8, 20)
    # Beside the camera: speed relative to it (m/s; one lane slower, one faster). Oncoming:
    # speed as a multiple of the camera's.
    dv = np.repeat([rng.uniform(-3.5, -1.0), rng.uniform(1.0, 3.5), *rng.uniform(0.8, 1.2, 3)], 4)
    rgb = _pick(rng, [lk.cars for lk in looks], rng.integers(len(looks), size=21))
    return dict(lane=lanes.astype(np.float32), oncoming=oncoming, z0=z0, dv=dv,
                parts=_car_parts(rgb[:20], np.where(oncoming > 0, -1.0, 1.0)),
                lead_parts=_car_parts(rgb[20:], np.ones(1))[0])


_BARK = (72, 58, 46)


def _with_parts(rgb: np.ndarray, *more: RGB) -> np.ndarray:
    """(n, 1 + len(more), 3) float32: each object's own colour followed by shared ones."""
    shared = np.broadcast_to(np.asarray(more, np.float32), (len(rgb), len(more), 3))
    return np.concatenate([rgb[:, None, :], shared], axis=1).astype(np.float32)


def _car_parts(rgb: np.ndarray, facing: np.ndarray) -> np.ndarray:
    """(n, 5, 3) float32 albedo of a car's parts: paint, glass, tyres, plate, lamps.

    Lamps are red tail lights on cars seen from behind (facing +1), white headlights else.
    """
    parts = _with_parts(rgb, (38, 46, 56), (26, 26, 28), (222, 222, 215), (175, 25, 22))
    parts[np.asarray(facing) < 0, 4] = (215, 215, 205)
    return parts


def _traffic_tables(traffic: dict, cam_z: np.ndarray, fps: float, geo: _Keys,
                    seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(N, C) depth of each moving car ahead of the camera and whether it is on the road.

    A car wraps around the window `_TRAFFIC_SPAN_M` (behind the camera or beyond the far
    facades, out of sight); whether it is on the road is decided once per lap, with the
    traffic density of the moment the lap started, so cars never pop in or out in view.
    """
    t = (np.arange(len(cam_z)) / fps)[:, None]
    lo, hi = _TRAFFIC_SPAN_M
    same = traffic["z0"] + traffic["dv"] * t                            # rel. to the camera
    opposite = traffic["z0"] - cam_z[:, None] * (1 + traffic["dv"]) - 3.0 * t
    u = np.where(traffic["oncoming"] > 0, opposite, same)
    lap = np.floor((u - lo) / (hi - lo)).astype(np.int64)
    frame = np.arange(len(cam_z))[:, None]
    new_lap = np.vstack([np.ones((1, lap.shape[1]), bool), lap[1:] != lap[:-1]])
    lap_start = np.maximum.accumulate(np.where(new_lap, frame, 0), axis=0)
    density = geo.at_many(t[:, 0])[:, _G["traffic"]]
    on = _hash01(seed, np.arange(lap.shape[1])[None, :], lap) < density[lap_start]
    return (lo + np.mod(u - lo, hi - lo)).astype(np.float32), on


def _skyline(rng: np.random.Generator, n: int = 2048) -> np.ndarray:
    """(2, n) float32 elevation in radians of a distant city (blocky) and forest (bumpy)."""
    widths = rng.integers(8, 40, n)
    heights = rng.uniform(0.01, 0.07, n) * (rng.random(n) < 0.85)
    city = np.repeat(heights, widths)[:n]
    smooth = np.convolve(rng.standard_normal(n + 30), np.ones(30) / 5.5, "valid")[:n]
    forest = 0.022 + 0.008 * smooth
    return np.stack([city, np.clip(forest, 0.006, None)]).astype(np.float32)


def _build_world(config: StreetConfig, timeline: tuple[tuple[float, str], ...],
                 lighting: tuple[tuple[float, Light], ...]) -> _World:
    """Generate the whole world from the seed (deterministic; ~0.1 s for the default video)."""
    rng = np.random.default_rng([config.seed, 0x57EE7])
    looks = [LOOKS[name] for _, name in timeline]
    starts = np.array([frac for frac, _ in timeline]) * config.duration_s
    geo_rows = [[float(getattr(lk, f)) for f in _GEO_FIELDS] for lk in looks]
    geo = _segment_keys(starts, np.asarray(geo_rows), _BLEND * config.duration_s)
    n = max(1, round(config.duration_s * config.fps))
    phases = rng.uniform(0, 2 * np.pi, 12)
    cam_z = _camera_track(geo, n, config.fps, phases[0])
    seg_z = np.interp(starts, np.arange(n) / config.fps, cam_z)
    seg_z[0] = -100.0                       # the first look also covers what is behind the start
    z_lo, z_hi = -100.0, cam_z[-1] + _Z_FAR_M + 100.0
    left = _make_blocks(rng, looks, seg_z, z_lo, z_hi, 0)
    blocks = _stack(left + _make_blocks(rng, looks, seg_z, z_lo, z_hi, len(left)))
    n_z = int(z_hi - z_lo) + 1
    ground_rgb, ground_grain, flags = _ground_tables(looks, seg_z, blocks, len(left), z_lo, n_z)
    traffic = _make_traffic(rng, looks)
    rel, on = _traffic_tables(traffic, cam_z, config.fps, geo, config.seed)
    return _World(
        looks=looks, seg_starts_s=starts, seg_z=seg_z, geo=geo,
        light=_light_keys(lighting, config.duration_s), cam_z=cam_z, phases=phases,
        blocks=blocks, n_left=len(left), z0=z_lo, ground_rgb=ground_rgb,
        ground_grain=ground_grain, ground_flags=flags, bump=_bumps(rng, n_z),
        trees=_make_trees(rng, looks, seg_z, z_hi), parked=_make_parked(rng, looks, seg_z, z_hi),
        people=_make_people(rng, looks, seg_z, z_hi, cam_z, config.fps),
        traffic=traffic, traffic_rel=rel, traffic_on=on, skyline=_skyline(rng),
        **_textures(rng),
    )


def _bumps(rng: np.random.Generator, n: int) -> np.ndarray:
    """(n,) float32 smooth wobble (metres, per metre of street) of the tree lines' tops."""
    smooth = np.convolve(rng.standard_normal(n + 8), np.ones(8) / 8, "valid")[:n]
    return (2.0 * smooth).astype(np.float32)


def _textures(rng: np.random.Generator) -> dict:
    """The world's tileable texture and the sprite shapes drawn from it."""
    tex = _fractal_noise(rng, _TEX, beta=1.6)
    stamps = dict(trees=_crown_stamps(rng, tex), people=_person_stamps(), car=_car_stamp(),
                  car_side=_car_side_stamp())
    return dict(tex=tex, stamps=stamps)
