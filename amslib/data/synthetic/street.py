"""`SyntheticStreet`: one frame of the street from (config, i), and `source_samples`, the
source domain the shipped students were pretrained on.
"""
from __future__ import annotations

import math
from collections import OrderedDict

import numpy as np

from amslib.data.synthetic.background import _background
from amslib.data.synthetic.canvas import _Canvas, _clamp, _flush_rects, _View
from amslib.data.synthetic.looks import (
    _CAM_H_M,
    _FOCAL,
    _G,
    _LANE_M,
    LIGHTING,
    ROAD,
    SOURCE_LIGHTING,
    SOURCE_TIMELINE,
    TIMELINE,
    Light,
    StreetConfig,
    _check_timeline,
    _hash01,
)
from amslib.data.synthetic.sprites import (
    _CAR_LEN_M,
    _Batch,
    _car_blocks,
    _draw_car,
    _draw_person,
    _draw_tree,
    _person_blocks,
    _rect_specs,
    _sprite_jobs,
    _tree_blocks,
)
from amslib.data.synthetic.world import _build_world, _look_index


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
