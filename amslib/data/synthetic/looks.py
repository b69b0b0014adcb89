"""What each neighbourhood looks like, the order they come in, and the light over time;
the street's constants and small numeric helpers (part of the synthetic street).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from amslib.core.labels import CITYSCAPES19

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
