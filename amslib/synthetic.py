"""The built-in video ``synthetic:street``: a seeded street drive with exact per-pixel labels.

A camera drives down a straight street through five neighbourhoods while the day turns to
night and it starts to rain. Every frame comes with its exact Cityscapes train-id label, so
the labels are a perfect ("oracle") teacher. The video is built to *drift*: a student
pretrained on the first segment's look (`source_samples`) suffers later on, while a student
fine-tuned on the last minutes of frames can recover — the situation AMS (Khani et al.,
ICCV 2021, Sec. 1 and 3) is designed for.

How it is drawn (all numpy, no per-pixel Python loops): the world is generated once from the
seed — facade blocks along both sides of the street, trees, parked cars, pedestrians and
traffic lanes — and a pinhole camera moves through it. The road is a plane and the facades
are two vertical planes, so every column meets each facade at one depth and every row meets
the road at one depth; labels and colours follow from comparisons on those depths. Trees,
cars and people are small sprites painted far-to-near inside their bounding boxes.

`render(i)` depends only on (config, i): the world is fixed at construction, everything that
changes over time is a closed-form function of t = i / fps (or a table built once).

Public names: `StreetConfig`, `SyntheticStreet` (render, frames, labels, condition, SEGMENTS),
`source_samples`, `CLASSES`, and the data that define the drift: `LOOKS` (neighbourhoods),
`TIMELINE` (their order), `LIGHTING` (light and weather keys).

Timeline of the default 480 s video (segment starts scale with `duration_s`):
    0 s residential, day (the source domain)      120 s downtown, afternoon -> dusk
  210 s park, autumn, dusk -> night               300 s highway, night, street lamps
  390 s old town, night, rain (from ~400 s), towards dawn at the end
"""
from __future__ import annotations

import math
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from amslib.labels import CITYSCAPES19

CLASSES: tuple[str, ...] = ("road", "sidewalk", "building", "vegetation", "sky", "person", "car")
ROAD, SIDEWALK, BUILDING, VEGETATION, SKY, PERSON, CAR = CITYSCAPES19.ids(CLASSES)

RGB = tuple[int, int, int]

_LANE_M = 3.3          # lane width
_CAM_H_M = 1.5         # camera height above the road (a dashboard camera)
_FOCAL = 0.64          # focal length as a fraction of the frame width (about 76 deg field of view)
_Z_FAR_M = 400.0       # facades further than this are left to the distant skyline
_BLEND = 0.035         # segment cross-fade as a fraction of the video (about 17 s of 480 s)
_TRAFFIC_SPAN_M = (-30.0, 220.0)   # moving cars live in this window around the camera
_TEX = 256             # side of the tileable texture (a power of two: indices wrap with & 255)


@dataclass(frozen=True)
class StreetConfig:
    """What video to generate; frames are `height` x 2*`height`, like the paper's 256 x 512."""

    seed: int = 0
    duration_s: float = 480.0
    fps: float = 10.0
    height: int = 128

    def __post_init__(self) -> None:
        if not isinstance(self.height, (int, np.integer)) or self.height < 32 or self.height % 2:
            raise ValueError(
                f"height must be an even integer >= 32 (frames are height x 2*height), "
                f"got {self.height!r}; try height=128 or height=256"
            )
        if not self.fps > 0:
            raise ValueError(f"fps must be > 0, got {self.fps!r}; try fps=10.0")
        if not self.duration_s > 0:
            raise ValueError(
                f"duration_s must be > 0, got {self.duration_s!r}; try duration_s=480.0")
        if not isinstance(self.seed, (int, np.integer)) or self.seed < 0:
            raise ValueError(f"seed must be a non-negative integer, got {self.seed!r}")


# ----------------------------------------------------------------------------------------
# Data: what each neighbourhood looks like, the order they come in, and the light over time.
# ----------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Look:
    """Everything that makes one neighbourhood look like itself. Colours are RGB albedos."""

    name: str
    lanes: int                 # lanes per direction; the camera drives in the left one
    parking: bool              # a parking strip along each kerb
    sidewalk_m: float
    verge_m: float             # between sidewalk and facades: front gardens, lawn, shoulder
    verge_is_lawn: bool        # lawn (vegetation) or paving (sidewalk)
    speed_mps: float
    horizon: float             # horizon row as a fraction of the height (camera pitch)
    shake: float               # camera shake, fraction of the height
    pan: float                 # slow camera yaw amplitude, radians
    blocks: tuple[float, float, float, float]   # P(building), P(tree line), P(gap), P(cross street)
    block_m: tuple[float, float]
    height_m: tuple[float, float]               # building eaves
    tree_m: tuple[float, float]                 # tree-line tops
    floor_m: float
    window: tuple[float, float]  # window share of a bay's width, of a floor's height
    glass: float               # share of buildings that are glass towers
    roof_m: float              # roof band above the eaves (0: flat roofs)
    facades: tuple[RGB, ...]
    roof: RGB
    road: RGB
    road_grain: float          # texture contrast of the road surface (cobbles > asphalt)
    sidewalk: RGB
    verge: RGB
    marking: RGB
    foliage: tuple[RGB, ...]
    cars: tuple[RGB, ...]
    clothes: tuple[RGB, ...]
    trees_per_100m: float
    parked: float              # share of kerb slots holding a parked car
    people_per_100m: float
    traffic: float             # share of lane slots holding a moving car
    lead_car: float            # 1: a car drives ahead in the camera's lane
    lit_windows: float         # share of windows lit at night
    skyline: float             # distant backdrop: 1 city, 0 forest


_CARS: tuple[RGB, ...] = (
    (185, 30, 30), (225, 225, 230), (35, 35, 40), (35, 65, 145), (150, 150, 155),
    (200, 170, 60), (90, 110, 95), (120, 25, 35),
)
_CLOTHES: tuple[RGB, ...] = (
    (40, 45, 70), (180, 40, 40), (230, 230, 225), (60, 60, 60), (50, 100, 160),
    (200, 150, 60), (90, 60, 40), (30, 110, 80), (160, 80, 150),
)

LOOKS: dict[str, Look] = {look.name: look for look in (
    Look(
        name="residential", lanes=1, parking=True, sidewalk_m=2.5, verge_m=2.5,
        verge_is_lawn=True, speed_mps=8.0, horizon=0.42, shake=0.004, pan=0.05,
        blocks=(0.72, 0.14, 0.06, 0.08), block_m=(9.0, 16.0), height_m=(6.5, 11.0),
        tree_m=(7.0, 11.0), floor_m=3.0, window=(0.42, 0.5), glass=0.0, roof_m=2.2,
        facades=((150, 75, 60), (172, 98, 72), (205, 185, 152), (188, 162, 130),
                 (128, 68, 54), (216, 202, 176)),
        roof=(92, 52, 46), road=(96, 96, 102), road_grain=0.10, sidewalk=(168, 162, 156),
        verge=(82, 128, 56), marking=(235, 235, 228),
        foliage=((62, 112, 40), (76, 126, 46), (50, 96, 44)), cars=_CARS, clothes=_CLOTHES,
        trees_per_100m=9.0, parked=0.5, people_per_100m=12.0, traffic=0.45, lead_car=1.0,
        lit_windows=0.45, skyline=0.3,
    ),
    Look(
        name="downtown", lanes=2, parking=True, sidewalk_m=5.0, verge_m=0.0,
        verge_is_lawn=False, speed_mps=5.0, horizon=0.45, shake=0.003, pan=0.08,
        blocks=(0.86, 0.0, 0.02, 0.12), block_m=(14.0, 30.0), height_m=(22.0, 70.0),
        tree_m=(8.0, 10.0), floor_m=3.6, window=(0.7, 0.62), glass=0.5, roof_m=0.0,
        facades=((176, 176, 170), (118, 128, 142), (202, 196, 184), (94, 104, 120),
                 (150, 140, 128)),
        roof=(80, 80, 86), road=(70, 72, 79), road_grain=0.08, sidewalk=(142, 142, 148),
        verge=(142, 142, 148), marking=(232, 232, 226), foliage=((42, 92, 42),),
        cars=_CARS, clothes=_CLOTHES, trees_per_100m=3.0, parked=0.6, people_per_100m=40.0,
        traffic=0.75, lead_car=1.0, lit_windows=0.55, skyline=1.0,
    ),
    Look(
        name="park", lanes=1, parking=False, sidewalk_m=2.2, verge_m=7.0,
        verge_is_lawn=True, speed_mps=5.0, horizon=0.40, shake=0.003, pan=0.12,
        blocks=(0.04, 0.8, 0.16, 0.0), block_m=(10.0, 30.0), height_m=(8.0, 12.0),
        tree_m=(8.0, 14.0), floor_m=3.0, window=(0.4, 0.5), glass=0.0, roof_m=0.0,
        facades=((190, 180, 160),), roof=(90, 80, 70), road=(112, 106, 100), road_grain=0.10,
        sidewalk=(192, 170, 128), verge=(98, 120, 50), marking=(230, 225, 210),
        foliage=((192, 112, 30), (172, 70, 32), (204, 162, 42), (122, 112, 42)),
        cars=_CARS, clothes=_CLOTHES, trees_per_100m=10.0, parked=0.0, people_per_100m=22.0,
        traffic=0.15, lead_car=0.0, lit_windows=0.3, skyline=0.5,
    ),
    Look(
        name="highway", lanes=3, parking=False, sidewalk_m=1.2, verge_m=9.0,
        verge_is_lawn=True, speed_mps=19.0, horizon=0.46, shake=0.002, pan=0.03,
        blocks=(0.15, 0.55, 0.3, 0.0), block_m=(20.0, 60.0), height_m=(6.0, 14.0),
        tree_m=(7.0, 13.0), floor_m=4.0, window=(0.3, 0.35), glass=0.0, roof_m=0.0,
        facades=((150, 150, 140), (120, 126, 132), (172, 160, 140)),
        roof=(90, 90, 90), road=(124, 124, 120), road_grain=0.06, sidewalk=(150, 150, 146),
        verge=(96, 110, 56), marking=(240, 240, 235), foliage=((46, 82, 40), (62, 92, 46)),
        cars=_CARS, clothes=_CLOTHES, trees_per_100m=0.0, parked=0.0, people_per_100m=0.6,
        traffic=0.55, lead_car=1.0, lit_windows=0.2, skyline=0.8,
    ),
    Look(
        name="old town", lanes=1, parking=True, sidewalk_m=2.8, verge_m=0.0,
        verge_is_lawn=False, speed_mps=6.0, horizon=0.43, shake=0.008, pan=0.06,
        blocks=(0.85, 0.03, 0.04, 0.08), block_m=(7.0, 12.0), height_m=(10.0, 16.0),
        tree_m=(7.0, 10.0), floor_m=3.2, window=(0.4, 0.55), glass=0.0, roof_m=2.5,
        facades=((226, 216, 190), (120, 172, 166), (212, 172, 92), (202, 122, 100),
                 (172, 186, 202), (236, 236, 226)),
        roof=(72, 62, 62), road=(104, 94, 88), road_grain=0.28, sidewalk=(152, 142, 132),
        verge=(152, 142, 132), marking=(225, 225, 215), foliage=((40, 82, 40),),
        cars=_CARS, clothes=_CLOTHES, trees_per_100m=2.0, parked=0.55, people_per_100m=20.0,
        traffic=0.3, lead_car=1.0, lit_windows=0.6, skyline=0.6,
    ),
)}

# (start as a fraction of the video, neighbourhood); at 480 s: 0, 120, 210, 300, 390 s.
TIMELINE: tuple[tuple[float, str], ...] = (
    (0.0, "residential"), (0.25, "downtown"), (0.4375, "park"), (0.625, "highway"),
    (0.8125, "old town"),
)


@dataclass(frozen=True)
class Light:
    """Lighting and weather at one key time; linearly interpolated in between."""

    light: float               # 1 = full daylight
    tint: tuple[float, float, float]
    sky_top: RGB
    sky_horizon: RGB
    lamps: float               # street lamps, lit windows and car lights, 0..1
    wet: float                 # wet road with reflections and rain, 0..1
    fog_m: float               # distance at which 63% of a surface's colour is lost to haze
    noise: float               # sensor noise, grey levels (darker scenes are noisier)


_DAY = Light(1.0, (1.0, 1.0, 1.0), (70, 130, 205), (188, 212, 236), 0.0, 0.0, 700.0, 2.0)
# (time as a fraction of the video, light); at 480 s the keys are at 0, 125, 175, 220, 265,
# 300, 385, 405, 440, 480 s: day, afternoon, dusk, night, rain starts, towards dawn.
LIGHTING: tuple[tuple[float, Light], ...] = (
    (0.0, _DAY),
    (0.26, _DAY),
    (0.365, Light(0.85, (1.05, 0.94, 0.80), (80, 120, 190), (232, 200, 168), 0.0, 0.0, 600.0, 2.5)),
    (0.458, Light(0.55, (1.10, 0.74, 0.52), (58, 58, 118), (250, 140, 80), 0.3, 0.0, 500.0, 3.5)),
    (0.552, Light(0.30, (0.78, 0.72, 0.98), (26, 30, 70), (118, 80, 108), 0.8, 0.0, 450.0, 5.0)),
    (0.625, Light(0.13, (0.62, 0.72, 1.00), (4, 6, 16), (20, 24, 46), 1.0, 0.0, 400.0, 6.0)),
    (0.802, Light(0.13, (0.62, 0.72, 1.00), (4, 6, 16), (20, 24, 46), 1.0, 0.0, 400.0, 6.0)),
    (0.844, Light(0.12, (0.62, 0.72, 1.00), (8, 10, 20), (30, 32, 48), 1.0, 1.0, 160.0, 6.5)),
    (0.917, Light(0.15, (0.65, 0.72, 1.00), (10, 12, 26), (40, 40, 58), 1.0, 1.0, 160.0, 6.0)),
    (1.0, Light(0.42, (0.90, 0.84, 1.00), (62, 76, 120), (200, 152, 150), 0.4, 0.8, 220.0, 4.0)),
)

# Numeric look fields that are cross-faded between segments (per frame, by time).
_GEO_FIELDS = ("lanes", "parking", "sidewalk_m", "verge_m", "speed_mps", "horizon", "shake",
               "pan", "traffic", "lead_car", "skyline")
_G = {name: i for i, name in enumerate(_GEO_FIELDS)}
# Ground materials: road, marking, sidewalk, kerb, lawn, paving, and their labels.
_MAT_LABEL = np.array([ROAD, ROAD, SIDEWALK, SIDEWALK, VEGETATION, SIDEWALK], np.uint8)
_BLOCK_BUILDING, _BLOCK_TREES, _BLOCK_GAP, _BLOCK_CROSS = 0, 1, 2, 3


# ----------------------------------------------------------------------------------------
# Small numeric helpers
# ----------------------------------------------------------------------------------------

def _hash01(*keys) -> np.ndarray:
    """Deterministic hash of integer arrays (broadcast together) -> float32 in [0, 1).

    Integer ufuncs on arrays wrap silently, which is what a hash wants; scalars are lifted to
    1-d arrays first because numpy warns on scalar overflow.
    """
    h = np.full((1,), 0x811C9DC5, np.uint32)
    for key in keys:
        k = np.atleast_1d(np.asarray(key)).astype(np.int64).astype(np.uint32)
        h = (h ^ k) * np.uint32(0x01000193)
        h = h ^ (h >> np.uint32(13))
        h = h * np.uint32(0x5BD1E995)
        h = h ^ (h >> np.uint32(15))
    return (h >> np.uint32(8)).astype(np.float32) * np.float32(1.0 / (1 << 24))


def _fractal_noise(rng: np.random.Generator, size: int, *, beta: float) -> np.ndarray:
    """(size, size) float32 tileable 1/f^beta noise, zero mean and unit standard deviation."""
    white = rng.standard_normal((size, size))
    fy = np.fft.fftfreq(size)[:, None]
    fx = np.fft.fftfreq(size)[None, :]
    radius = np.sqrt(fx * fx + fy * fy)
    radius[0, 0] = 1.0
    noise = np.fft.ifft2(np.fft.fft2(white) / radius ** (beta / 2)).real
    noise -= noise.mean()
    return (noise / noise.std()).astype(np.float32)


@dataclass(frozen=True, eq=False)
class _Keys:
    """Piecewise-linear tracks: `values[j]` holds at `times[j]`; (P,) times, (P, Q) values."""

    times: np.ndarray
    values: np.ndarray

    def at(self, t: float) -> np.ndarray:
        """(Q,) float64 values at time `t` (held constant outside the keys)."""
        j = int(np.searchsorted(self.times, t, side="right"))
        if j <= 0:
            return self.values[0]
        if j >= len(self.times):
            return self.values[-1]
        t0, t1 = self.times[j - 1], self.times[j]
        w = (t - t0) / (t1 - t0) if t1 > t0 else 1.0
        return self.values[j - 1] + w * (self.values[j] - self.values[j - 1])

    def at_many(self, t: np.ndarray) -> np.ndarray:
        """(N, Q) float64 values at (N,) times."""
        return np.stack([np.interp(t, self.times, col) for col in self.values.T], axis=1)


def _segment_keys(starts: np.ndarray, values: np.ndarray, blend: float) -> _Keys:
    """Constant `values[k]` from `starts[k]`, cross-faded over `blend` around each boundary."""
    times, rows = [starts[0]], [0]
    for k in range(1, len(starts)):
        half = min(blend, 0.5 * (starts[k] - starts[k - 1])) / 2
        times += [starts[k] - half, starts[k] + half]
        rows += [k - 1, k]
    return _Keys(np.asarray(times, np.float64), np.asarray(values, np.float64)[rows])


def _light_keys(lighting: tuple[tuple[float, Light], ...], duration_s: float) -> _Keys:
    """`lighting` as 14 columns: light, tint(3), top(3), horizon(3), lamps, wet, fog, noise."""
    times = np.array([frac * duration_s for frac, _ in lighting], np.float64)
    rows = [[key.light, *key.tint, *key.sky_top, *key.sky_horizon, key.lamps, key.wet,
             key.fog_m, key.noise] for _, key in lighting]
    return _Keys(times, np.asarray(rows, np.float64))


# ----------------------------------------------------------------------------------------
# The world: generated once from the seed.
# ----------------------------------------------------------------------------------------

@dataclass(frozen=True, eq=False)
class _World:
    """Everything fixed for the whole video. Object arrays are sorted by world depth z (m)."""

    looks: list[Look]
    seg_starts_s: np.ndarray      # (K,) segment start times
    seg_z: np.ndarray             # (K,) world z where each segment starts
    geo: _Keys                    # cross-faded numeric look fields over time
    light: _Keys
    cam_z: np.ndarray             # (N,) camera z per frame
    phases: np.ndarray            # (12,) phases of the camera's slow motions and shake
    blocks: dict[str, np.ndarray] # facade blocks of both sides, left side first
    n_left: int
    z0: float                     # world z of row 0 of the per-metre tables
    ground_rgb: np.ndarray        # (Z, 6, 3) float32 colour of each ground material per metre
    ground_grain: np.ndarray      # (Z, 6) float32 texture contrast per material per metre
    ground_flags: np.ndarray      # (Z,) uint8 bits: 1 cross L, 2 cross R, 4 zebra, 8 lawn verge
    bump: np.ndarray              # (Z,) float32 tree-line top wobble, metres
    trees: dict[str, np.ndarray]
    parked: dict[str, np.ndarray]
    people: dict[str, np.ndarray]
    traffic: dict[str, np.ndarray]
    traffic_rel: np.ndarray       # (N, C) float32 depth of each moving car ahead of the camera
    traffic_on: np.ndarray        # (N, C) bool whether it is on the road
    skyline: np.ndarray           # (2, A) float32 elevation (rad) of distant city / forest
    tex: np.ndarray               # (256, 256) float32 tileable texture
    stamps: dict                  # sprite shapes: "trees", "people" (lists), "car", "car_side"


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


class SyntheticStreet:
    """The seeded street drive: `render(i)` gives frame i and its exact label.

    >>> video = SyntheticStreet(StreetConfig(seed=0, height=128))
    >>> frame, label = video.render(0)        # (128, 256, 3) uint8, (128, 256) uint8 train ids

    `SEGMENTS` lists (start_s, name) of the neighbourhoods; `condition(t_s)` describes the
    light and weather at any time, for plotting the drift. The timeline is given as fractions
    of the video, so a shorter video goes through the same drift faster. `timeline` and
    `lighting` (keyword-only) replace the default drift: see `TIMELINE` and `LIGHTING`.
    """

    def __init__(self, config: StreetConfig = StreetConfig(), *,
                 timeline: tuple[tuple[float, str], ...] = TIMELINE,
                 lighting: tuple[tuple[float, Light], ...] = LIGHTING) -> None:
        _check_timeline(timeline, lighting)
        self.config = config
        self.fps = float(config.fps)
        self.height = int(config.height)
        self.width = 2 * self.height
        self.num_frames = max(1, round(config.duration_s * config.fps))
        self._world = _build_world(config, timeline, lighting)
        self.SEGMENTS = [(float(s), name)
                         for s, (_, name) in zip(self._world.seg_starts_s, timeline)]
        self._focal = _FOCAL * self.width
        self._rows = (np.arange(self.height, dtype=np.float32) + 0.5)[:, None]
        self._cols = (np.arange(self.width, dtype=np.float32) + 0.5)[None, :]
        self._effects = _effect_fields(config.seed, self.height, self.width)
        # Recent frames, because callers read a chunk's frames and then its labels (the
        # oracle teacher): without it every frame would be drawn twice. Bounded to ~32 MiB.
        self._recent: OrderedDict[int, tuple[np.ndarray, np.ndarray]] = OrderedDict()
        self._recent_max = max(8, (32 << 20) // (4 * self.height * self.width))

    # -- public API ----------------------------------------------------------------------

    def render(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        """Frame `index`: ((H, W, 3) uint8 RGB frame, (H, W) uint8 Cityscapes train ids).

        Returns fresh arrays; the caller may modify them.
        """
        index = self._check_index(index)
        hit = self._recent.get(index)
        if hit is None:
            hit = self._draw(index)
            self._recent[index] = hit
            if len(self._recent) > self._recent_max:
                self._recent.popitem(last=False)
        else:
            self._recent.move_to_end(index)
        return hit[0].copy(), hit[1].copy()

    def frames(self, start: int, stop: int) -> np.ndarray:
        """(N, H, W, 3) uint8 frames start..stop-1."""
        rows = self._check_range(start, stop)
        out = np.empty((len(rows), self.height, self.width, 3), np.uint8)
        for j, i in enumerate(rows):
            out[j] = self.render(i)[0]
        return out

    def labels(self, start: int, stop: int) -> np.ndarray:
        """(N, H, W) uint8 train-id labels of frames start..stop-1."""
        rows = self._check_range(start, stop)
        out = np.empty((len(rows), self.height, self.width), np.uint8)
        for j, i in enumerate(rows):
            out[j] = self.render(i)[1]
        return out

    def condition(self, t_s: float) -> dict:
        """Conditions at time `t_s`: segment name, light 0..1, lamps, wet, fog, speed, ..."""
        w = self._world
        g, lk = w.geo.at(t_s), w.light.at(t_s)
        k = int(_look_index(w.seg_starts_s, t_s))
        return {
            "t_s": float(t_s), "segment": w.looks[k].name, "light": float(lk[0]),
            "tint": tuple(float(x) for x in lk[1:4]), "lamps": float(lk[10]),
            "wet": float(lk[11]), "fog_m": float(lk[12]), "speed_mps": float(g[_G["speed_mps"]]),
            "lanes": float(g[_G["lanes"]]), "traffic": float(g[_G["traffic"]]),
            "horizon": float(g[_G["horizon"]]),
        }

    def _draw(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        """Draw frame `index` from scratch: (H, W, 3) uint8 frame, (H, W) uint8 label."""
        view = self._view(index)
        cv = _background(self, view)
        self._sprites(cv, view)
        return self._finish(cv, view, index), cv.label

    # -- checks ----------------------------------------------------------------------------

    def _check_index(self, index: int) -> int:
        """`index` as an int, or IndexError saying which frames exist."""
        if not isinstance(index, (int, np.integer)) or not 0 <= index < self.num_frames:
            raise IndexError(
                f"frame index {index!r} is out of range: this video has {self.num_frames} frames "
                f"(0..{self.num_frames - 1}, {self.config.duration_s:g} s at {self.fps:g} fps)"
            )
        return int(index)

    def _check_range(self, start: int, stop: int) -> range:
        """range(start, stop), or IndexError unless 0 <= start <= stop <= num_frames."""
        if not 0 <= start <= stop <= self.num_frames:
            raise IndexError(
                f"frame range {start}..{stop} is out of range: need 0 <= start <= stop <= "
                f"{self.num_frames} (the number of frames)"
            )
        return range(start, stop)

    # -- per-frame camera and conditions ---------------------------------------------------

    def _view(self, index: int) -> _View:
        """Camera pose and conditions of frame `index` (closed-form in t, plus the z track)."""
        w, t = self._world, index / self.fps
        g, lk, ph = w.geo.at(t), w.light.at(t), w.phases
        two_pi = 2 * np.pi
        # Shake: two fast sines (aliased at 10 fps, which reads as jitter); hills: a slow one.
        def wave(period_s: float, k: int) -> float:
            """A sine of period `period_s` with the world's phase number k."""
            return math.sin(two_pi * t / period_s + ph[k])

        shake = g[_G["shake"]] * (wave(1 / 1.9, 1) + 0.6 * wave(1 / 3.3, 2))
        horizon = g[_G["horizon"]] + 0.02 * wave(31, 3) + shake
        yaw = g[_G["pan"]] * (wave(47, 4) + 0.3 * wave(11, 5))
        lanes_half = g[_G["lanes"]] * _LANE_M
        road_half = lanes_half + 0.4 + 1.7 * g[_G["parking"]]   # + kerb strip + parking
        return _View(
            index=index, t=t, cam_z=float(w.cam_z[index]),
            cam_x=_LANE_M / 2 + 0.3 * wave(23, 6) + 0.1 * wave(7.3, 7),     # sway in the lane
            horizon=horizon * self.height, vanish=self.width / 2 + self._focal * math.tan(yaw),
            roll=0.008 * wave(13, 8) + shake * wave(1 / 2.3, 9),
            lanes=g[_G["lanes"]], road_half=road_half, lanes_half=lanes_half,
            sidewalk=g[_G["sidewalk_m"]], wall_x=road_half + g[_G["sidewalk_m"]] + g[_G["verge_m"]],
            lead_car=g[_G["lead_car"]], skyline=g[_G["skyline"]],
            light_rgb=(lk[0] * lk[1:4]).astype(np.float32), sky_top=lk[4:7].astype(np.float32),
            sky_horizon=lk[7:10].astype(np.float32), lamps=float(lk[10]), wet=float(lk[11]),
            fog_m=float(lk[12]), noise=float(lk[13]),
        )

    # -- sprites: trees, cars, people, painted far to near -----------------------------------

    def _sprites(self, cv: _Canvas, v: _View) -> None:
        """Paint every sprite in view onto `cv`, the furthest first (in place)."""
        jobs = self._lamp_jobs(v)
        for batch in (self._tree_batch(v), self._car_batch(v), self._people_batch(v)):
            jobs += _sprite_jobs(self, v, batch)
        jobs.sort(key=lambda job: -job[0])
        for z, rects, draw, kwargs in jobs:
            cv.rects.extend(rects)
            if draw is not None:
                draw(self, cv, v, z=z, **kwargs)
        _flush_rects(cv)

    def _lamp_jobs(self, v: _View) -> list[tuple]:
        """Street-lamp heads at night: glowing blocks 6.5 m up over each kerb, every 25 m.

        They light the pools of `_ground_glow`; being light, not objects, they keep the label
        of what is behind them (poles and lamps are not among the video's classes).
        """
        if v.lamps <= 0.01:
            return []
        jobs = []
        for side, offset in ((-1.0, 12.5), (1.0, 0.0)):              # staggered, as the pools
            first = math.ceil((v.cam_z + 3.0 - offset) / 25.0) * 25.0 + offset
            z = np.arange(first, v.cam_z + 150.0, 25.0) - v.cam_z
            x = np.full(len(z), side * (v.road_half - 0.8))
            rgb = np.broadcast_to(np.float32([255, 225, 170]) * np.float32(v.lamps), (len(z), 3))
            n = len(z)
            heads = _rect_specs(self, v, x, z, np.full(n, 0.35), np.full(n, 6.3), np.full(n, 6.6),
                                np.full(n, 255), rgb)
            jobs += [(zi, [q], None, None) for zi, q in zip(z.tolist(), heads) if q]
        return jobs

    def _visible(self, v: _View, x: np.ndarray, z: np.ndarray, *, half_m: float,
                 tall_m: float | np.ndarray, deep_m: float = 0.0) -> np.ndarray:
        """Which objects at lateral `x`, depth `z` ahead are on screen and >= 1.5 pixels tall."""
        with np.errstate(divide="ignore", invalid="ignore"):
            k = self._focal / z
            u_near = v.vanish + k * (x - v.cam_x)
            u_far = v.vanish + self._focal * (x - v.cam_x) / (z + deep_m)
        lo, hi = np.minimum(u_near, u_far) - k * half_m, np.maximum(u_near, u_far) + k * half_m
        return (z > 1.0) & (k * tall_m >= 1.5) & (hi >= 0) & (lo < self.width)

    def _in_view_z(self, zs: np.ndarray, v: _View, *, near: float) -> slice:
        """Slice of the sorted world depths `zs` that lie more than `near` m ahead of the camera."""
        return slice(int(np.searchsorted(zs, v.cam_z + near)), len(zs))

    def _tree_batch(self, v: _View) -> _Batch:
        """Street trees in view: on the lawn where there is one, else at the kerb."""
        tr = self._world.trees
        sel = self._in_view_z(tr["z"], v, near=1.0)
        lawn_w = v.wall_x - v.road_half - v.sidewalk
        on_lawn = tr["zone"][sel] * (v.sidewalk + tr["frac"][sel] * lawn_w - 0.8)
        x = tr["side"][sel] * (v.road_half + 0.8 + on_lawn)
        z = tr["z"][sel] - v.cam_z
        keep = self._visible(v, x, z, half_m=3.5, tall_m=2 * tr["radius"][sel])
        return _Batch(_draw_tree, _tree_blocks, z[keep], x[keep], tr["parts"][sel][keep], dict(
            radius=tr["radius"][sel][keep], trunk=tr["trunk"][sel][keep],
            seed=np.arange(sel.start, sel.stop)[keep]))

    def _car_batch(self, v: _View) -> _Batch:
        """Parked cars, moving traffic and the car ahead in the camera's lane."""
        w = self._world
        pk, tf = w.parked, w.traffic
        sel = self._in_view_z(pk["z"], v, near=2.0)
        n_parked = sel.stop - sel.start
        index = v.index
        on = w.traffic_on[index] & ((tf["lane"] + 0.5) * _LANE_M <= v.lanes_half - 0.5)
        # The car ahead keeps 13-31 m; where a look has none it drives off beyond sight.
        lead = 22.0 + 9.0 * math.sin(2 * np.pi * v.t / 37 + w.phases[10])
        lead += 300.0 * (1 - v.lead_car) ** 2
        side = np.concatenate([pk["side"][sel], np.where(tf["oncoming"][on] > 0, -1.0, 1.0), [1.0]])
        x = np.concatenate([side[:n_parked] * (v.road_half - 1.1),
                            side[n_parked:-1] * (tf["lane"][on] + 0.5) * _LANE_M, [_LANE_M / 2]])
        z = np.concatenate([pk["z"][sel] - v.cam_z, w.traffic_rel[index][on], [lead]])
        parts = np.concatenate([pk["parts"][sel], tf["parts"][on], tf["lead_parts"][None]])
        lights = np.concatenate([np.zeros(n_parked), np.full(on.sum() + 1, v.lamps)])  # parked off
        keep = self._visible(v, x, z, half_m=1.6, tall_m=1.42, deep_m=_CAR_LEN_M) & (z > 2.0)
        return _Batch(_draw_car, _car_blocks, z[keep], x[keep], parts[keep],
                      dict(facing=side[keep], lights=lights[keep]))

    def _people_batch(self, v: _View) -> _Batch:
        """Pedestrians in view, walking along the sidewalks and lawns."""
        p = self._world.people
        walked = v.t - p["t_pass"]
        rel = p["z"] + p["speed"] * walked - v.cam_z
        lawn_w = v.wall_x - v.road_half - v.sidewalk
        off = np.where(p["zone"] > 0, v.sidewalk + p["frac"] * lawn_w,
                       0.3 + p["frac"] * (v.sidewalk - 0.6))
        x = p["side"] * (v.road_half + off)
        keep = self._visible(v, x, rel, half_m=0.4, tall_m=p["size"]) & (rel > 1.5)
        phase = p["phase"] + (2 * np.pi / 1.4) * np.abs(p["speed"]) * walked
        return _Batch(_draw_person, _person_blocks, rel[keep], x[keep], p["parts"][keep],
                      dict(size=p["size"][keep], phase=phase[keep]))

    def _box(self, v: _View, x: float, z: float, half_w: float, top_m: float, *,
             bottom_m: float = 0.0) -> tuple[tuple[slice, slice], np.ndarray, np.ndarray] | None:
        """Screen box of an upright object at lateral `x`, depth `z`: (slices, xs, ys).

        The box spans `half_w` m either side and `bottom_m`..`top_m` m above the road. xs (1, w)
        and ys (h, 1) float32 are the pixel centres in metres, from the object's axis and from
        the road. None when nothing of it is on screen.
        """
        k = self._focal / z
        u = v.vanish + k * (x - v.cam_x)
        base = v.horizon + (u - self.width / 2) * v.roll + k * _CAM_H_M
        c0, c1 = max(int(u - half_w * k), 0), min(int(u + half_w * k) + 2, self.width)
        r0, r1 = max(int(base - top_m * k), 0), min(int(base - bottom_m * k) + 2, self.height)
        if c0 >= c1 or r0 >= r1:
            return None
        xs = (self._cols[:, c0:c1] - np.float32(u)) / np.float32(k)
        ys = (np.float32(base) - self._rows[r0:r1]) / np.float32(k)
        return (slice(r0, r1), slice(c0, c1)), xs, ys

    # -- finishing: wet reflections, rain, sensor noise ------------------------------------

    def _finish(self, cv: _Canvas, v: _View, index: int) -> np.ndarray:
        """(H, W, 3) uint8 frame from the painted canvas."""
        fx, h = self._effects, self.height
        rgb = self._reflect(cv, v) if v.wet > 0 else cv.rgb
        oy, ox = (int(x * 32) for x in _hash01(self.config.seed, index, [1, 2]))
        grain = np.float32(v.noise) * fx["noise"][oy:oy + h, ox:ox + self.width]
        if v.wet > 0:                                     # rain streaks fall 1/5 frame per frame
            r0 = (index * h // 5) % h
            grain += np.float32(60 * v.wet) * fx["rain"][r0:r0 + h]
        rgb *= fx["vignette"]
        rgb += grain
        np.clip(rgb, 0, 255, out=rgb)
        out = np.empty((h, self.width, 3), np.uint8)
        for c in range(3):
            out[..., c] = rgb[c]
        return out

    def _reflect(self, cv: _Canvas, v: _View) -> np.ndarray:
        """(3, H, W) colour with the scene mirrored in the wet road (flipped at the horizon)."""
        h = self.height
        mirror = _clamp((2 * v.horizon - self._rows[:, 0]).astype(np.int32), 0, h - 1)
        refl = cv.rgb[:, mirror] + cv.rgb[:, np.maximum(mirror - max(1, h // 40), 0)]
        road = (cv.label == ROAD) & (self._rows > v.horizon + 1)
        a = np.float32(0.55 * v.wet)
        return np.where(road, cv.rgb * (1 - 0.5 * a) + refl * (0.375 * a), cv.rgb)


def _effect_fields(seed: int, height: int, width: int) -> dict[str, np.ndarray]:
    """Per-video fields sliced per frame: sensor noise, rain streaks and the lens vignette."""
    rng = np.random.default_rng([seed, 0xEFFEC7, height])
    drops = (rng.random((2 * height + 16, width)) < 0.002).astype(np.float32)
    streak = max(3, height // 12)            # rain drops smear into vertical streaks
    rain = np.cumsum(drops, axis=0)
    rain = (rain[streak:] - rain[:-streak])[: 2 * height] * rng.uniform(0.4, 1.0, width)
    yy = (np.arange(height, dtype=np.float32)[:, None] + 0.5) / height - 0.5
    xx = (np.arange(width, dtype=np.float32)[None, :] + 0.5) / width - 0.5
    vignette = 1.0 - 0.35 * (xx * xx + yy * yy)
    noise = rng.standard_normal((height + 32, width + 32)).astype(np.float32)
    return dict(noise=noise, rain=np.clip(rain, 0, 1).astype(np.float32),
                vignette=vignette.astype(np.float32))


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


def _background(st: SyntheticStreet, v: _View) -> _Canvas:
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


def _sky_layer(st: SyntheticStreet, v: _View, slope: np.ndarray,
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


def _clouds(st: SyntheticStreet, v: _View, rgb: np.ndarray, label: np.ndarray, yh: np.ndarray,
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


def _ground_layer(st: SyntheticStreet, v: _View, dy: np.ndarray, slope: np.ndarray) -> _Layer:
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


def _facade_layer(st: SyntheticStreet, v: _View, dy: np.ndarray, slope: np.ndarray) -> _Layer:
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


def _facade_texture(st: SyntheticStreet, v: _View, idx: np.ndarray, local: np.ndarray,
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


def _sprite_jobs(st: SyntheticStreet, v: _View, batch: _Batch) -> list[tuple]:
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


def _rect_specs(st: SyntheticStreet, v: _View, x: np.ndarray, z: np.ndarray, half_w: np.ndarray,
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


def _blocks_of(st: SyntheticStreet, v: _View, b: _Batch, shapes: list[tuple]) -> list[list]:
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


def _tree_blocks(st: SyntheticStreet, v: _View, b: _Batch,
                 lit: np.ndarray) -> tuple[list, np.ndarray]:
    """Trunks as blocks for every tree; small crowns as blocks too (see _BLOCKS_BELOW_PX)."""
    radius, trunk = b.params["radius"], b.params["trunk"]
    small = 2 * radius * st._focal / b.z < _BLOCKS_BELOW_PX["tree"]
    crown_top = np.where(small, trunk + 1.8 * radius, np.nan)      # NaN: no block (stamped)
    blocks = _blocks_of(st, v, b, [
        (0.0, 0.13, 0.0, trunk + 0.95 * radius, VEGETATION, lit[:, 1]),
        (0.0, 0.85 * radius, trunk + 0.2 * radius, crown_top, VEGETATION, lit[:, 0] * 0.9)])
    return blocks, ~small


def _car_blocks(st: SyntheticStreet, v: _View, b: _Batch,
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


def _person_blocks(st: SyntheticStreet, v: _View, b: _Batch,
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


def _stamp(st: SyntheticStreet, cv: _Canvas, v: _View, stamp: _Stamp, *, x: float, z: float,
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


def _draw_tree(st: SyntheticStreet, cv: _Canvas, v: _View, *, z: float, parts: np.ndarray,
               x: float, radius: float, trunk: float, seed: int) -> None:
    """A street tree's crown (one of the world's crown stamps); its trunk is a block.

    parts: (3, 3) float32 palette: transparent, foliage, bark (lit colours as columns).
    """
    crowns = st._world.stamps["trees"]
    _stamp(st, cv, v, crowns[seed % len(crowns)], x=x, z=z, unit=radius, lift=trunk + 0.95 * radius,
           label=VEGETATION, parts=parts)


def _draw_person(st: SyntheticStreet, cv: _Canvas, v: _View, *, z: float, parts: np.ndarray,
                 x: float, size: float, phase: float) -> None:
    """A walking pedestrian: the stamp of its step `phase`, scaled to its height `size`.

    parts: (3, 5) float32 palette: transparent, trousers, shirt and arms, face and neck, hair.
    """
    poses = st._world.stamps["people"]
    pose = int(phase / (2 * np.pi) * len(poses)) % len(poses)
    _stamp(st, cv, v, poses[pose], x=x, z=z, unit=size, lift=0.0, label=PERSON, parts=parts)


_CAR_LEN_M = 4.3
_SIDE_DIM = np.float32([[1, 0.85, 1, 1, 1, 1]])          # a car's side paint is a little darker


def _draw_car(st: SyntheticStreet, cv: _Canvas, v: _View, *, z: float, parts: np.ndarray,
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


def _draw_car_side(st: SyntheticStreet, cv: _Canvas, v: _View, z: float, x: float,
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


# ----------------------------------------------------------------------------------------
# Checks and the source domain
# ----------------------------------------------------------------------------------------

def _check_timeline(timeline: tuple[tuple[float, str], ...],
                    lighting: tuple[tuple[float, Light], ...]) -> None:
    """Raise ValueError unless the timeline and lighting keys are usable."""
    starts = [frac for frac, _ in timeline]
    increasing = all(a < b for a, b in zip(starts, starts[1:]))
    if not timeline or starts[0] != 0.0 or not increasing or starts[-1] >= 1:
        raise ValueError(f"timeline starts must begin at 0.0 and increase below 1.0, got {starts}")
    unknown = [name for _, name in timeline if name not in LOOKS]
    if unknown:
        raise ValueError(f"unknown neighbourhood(s) {unknown}; choose from: {', '.join(LOOKS)}")
    times = [frac for frac, _ in lighting]
    if not lighting or times[0] != 0.0 or any(b < a for a, b in zip(times, times[1:])):
        raise ValueError(f"lighting key times must begin at 0.0 and not decrease, got {times}")


SOURCE_TIMELINE: tuple[tuple[float, str], ...] = TIMELINE[:1]
SOURCE_LIGHTING: tuple[tuple[float, Light], ...] = LIGHTING[:1]


def source_samples(n: int, *, height: int = 128, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """`n` random frames and labels from the source domain: the first segment's look by day.

    The layouts come from a world of their own (seeded from `seed`, distinct from any
    `SyntheticStreet(StreetConfig(seed=...))` video), rendered at random times of a 10-minute
    drive through it. Returns ((n, H, W, 3) uint8 frames, (n, H, W) uint8 train ids).
    """
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    world_seed = int(np.random.SeedSequence([seed, 0x50C]).generate_state(1)[0])
    config = StreetConfig(seed=world_seed, duration_s=600.0, fps=10.0, height=height)
    street = SyntheticStreet(config, timeline=SOURCE_TIMELINE, lighting=SOURCE_LIGHTING)
    rng = np.random.default_rng([seed, 0x50C, 1])
    picks = rng.choice(street.num_frames, size=n, replace=n > street.num_frames)
    frames = np.empty((n, street.height, street.width, 3), np.uint8)
    labels = np.empty((n, street.height, street.width), np.uint8)
    for j, i in enumerate(picks):
        frames[j], labels[j] = street.render(int(i))
    return frames, labels
