"""What drawing a frame reads of the street, below the modules that draw it: `_World` (the
world generated once from the seed; `world.py` builds it) and `_Street` (the attributes of a
`SyntheticStreet` that `background` and `sprites` read). With these here, those modules
annotate their arguments without importing `street` or `world`, which import them: the
package's imports run one way (tests/test_layers.py checks there is no circle).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np

from amslib.data.synthetic.canvas import _View
from amslib.data.synthetic.looks import Look, _Keys


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


class _Street(Protocol):
    """What `background` and `sprites` read of a `SyntheticStreet` (street.py)."""

    height: int
    width: int
    _world: _World
    _focal: float               # focal length in pixels
    _rows: np.ndarray           # (H, 1) float32 pixel-row centres
    _cols: np.ndarray           # (1, W) float32 pixel-column centres

    def _box(self, v: _View, x: float, z: float, half_w: float, top_m: float, *,
             bottom_m: float = 0.0) -> tuple[tuple[slice, slice], np.ndarray, np.ndarray] | None: ...
