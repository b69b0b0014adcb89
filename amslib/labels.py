"""Label sets (class names, ids, colours) shared by teachers, students and metrics.

Ids are the *train ids* the DeepLab model zoo uses: Cityscapes' 19 evaluation classes and
PASCAL VOC's 21 classes (0 = background). Label images are (H, W) uint8 arrays of these ids;
255 marks "no label" and is ignored everywhere.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

IGNORE_ID = 255


@dataclass(frozen=True)
class LabelSet:
    """A named list of classes; a class's id is its position in `names`."""

    name: str
    names: tuple[str, ...]
    colors: tuple[tuple[int, int, int], ...]

    @property
    def num_classes(self) -> int:
        return len(self.names)

    def ids(self, names: list[str] | tuple[str, ...]) -> tuple[int, ...]:
        """Class ids of `names`; raises ValueError naming any unknown class."""
        unknown = [n for n in names if n not in self.names]
        if unknown:
            raise ValueError(
                f"unknown class name(s) {unknown} for label set '{self.name}'; "
                f"valid names are: {', '.join(self.names)}"
            )
        return tuple(self.names.index(n) for n in names)

    def palette(self) -> np.ndarray:
        """(256, 3) uint8 colour table; ids without a class (and 255) are black."""
        table = np.zeros((256, 3), np.uint8)
        table[: self.num_classes] = np.asarray(self.colors, np.uint8)
        return table

    def colorize(self, label: np.ndarray) -> np.ndarray:
        """(..., H, W) uint8 ids -> (..., H, W, 3) uint8 RGB."""
        return self.palette()[label]


CITYSCAPES19 = LabelSet(
    name="cityscapes19",
    names=(
        "road", "sidewalk", "building", "wall", "fence", "pole", "traffic light",
        "traffic sign", "vegetation", "terrain", "sky", "person", "rider", "car", "truck",
        "bus", "train", "motorcycle", "bicycle",
    ),
    colors=(
        (128, 64, 128), (244, 35, 232), (70, 70, 70), (102, 102, 156), (190, 153, 153),
        (153, 153, 153), (250, 170, 30), (220, 220, 0), (107, 142, 35), (152, 251, 152),
        (70, 130, 180), (220, 20, 60), (255, 0, 0), (0, 0, 142), (0, 0, 70), (0, 60, 100),
        (0, 80, 100), (0, 0, 230), (119, 11, 32),
    ),
)

VOC21 = LabelSet(
    name="voc21",
    names=(
        "background", "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat",
        "chair", "cow", "diningtable", "dog", "horse", "motorbike", "person", "pottedplant",
        "sheep", "sofa", "train", "tvmonitor",
    ),
    colors=tuple(
        # The standard PASCAL VOC colour map (bit-interleaved class index).
        tuple(
            sum(((i >> (3 * k + c)) & 1) << (7 - k) for k in range(8)) for c in range(3)
        )
        for i in range(21)
    ),
)

LABEL_SETS: dict[str, LabelSet] = {s.name: s for s in (CITYSCAPES19, VOC21)}


def get_label_set(name: str) -> LabelSet:
    """The label set called `name` ('cityscapes19' or 'voc21')."""
    try:
        return LABEL_SETS[name]
    except KeyError:
        raise ValueError(
            f"unknown label set '{name}'; choose one of: {', '.join(LABEL_SETS)}"
        ) from None
