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


# --------------------------------------------------------------------------- id mappings

# COCO's 80 thing classes with their official category ids (1-90, with gaps). LVS ships
# Mask R-CNN labels in COCO ids (SPEC.md); which numbering its files use is not recorded, so
# both are offered: `coco` (official ids) and `coco80` (contiguous 1-80 in this order, as
# Detectron-style models number them). 0 is background in both.
COCO_CLASSES: tuple[tuple[int, str], ...] = (
    (1, "person"), (2, "bicycle"), (3, "car"), (4, "motorcycle"), (5, "airplane"), (6, "bus"),
    (7, "train"), (8, "truck"), (9, "boat"), (10, "traffic light"), (11, "fire hydrant"),
    (13, "stop sign"), (14, "parking meter"), (15, "bench"), (16, "bird"), (17, "cat"), (18, "dog"),
    (19, "horse"), (20, "sheep"), (21, "cow"), (22, "elephant"), (23, "bear"), (24, "zebra"),
    (25, "giraffe"), (27, "backpack"), (28, "umbrella"), (31, "handbag"), (32, "tie"),
    (33, "suitcase"), (34, "frisbee"), (35, "skis"), (36, "snowboard"), (37, "sports ball"),
    (38, "kite"), (39, "baseball bat"), (40, "baseball glove"), (41, "skateboard"),
    (42, "surfboard"), (43, "tennis racket"), (44, "bottle"), (46, "wine glass"), (47, "cup"),
    (48, "fork"), (49, "knife"), (50, "spoon"), (51, "bowl"), (52, "banana"), (53, "apple"),
    (54, "sandwich"), (55, "orange"), (56, "broccoli"), (57, "carrot"), (58, "hot dog"),
    (59, "pizza"), (60, "donut"), (61, "cake"), (62, "chair"), (63, "couch"), (64, "potted plant"),
    (65, "bed"), (67, "dining table"), (70, "toilet"), (72, "tv"), (73, "laptop"), (74, "mouse"),
    (75, "remote"), (76, "keyboard"), (77, "cell phone"), (78, "microwave"), (79, "oven"),
    (80, "toaster"), (81, "sink"), (82, "refrigerator"), (84, "book"), (85, "clock"), (86, "vase"),
    (87, "scissors"), (88, "teddy bear"), (89, "hair drier"), (90, "toothbrush"),
)
# The 20 VOC classes are all COCO classes; every other COCO class is VOC background.
COCO_TO_VOC: dict[str, str] = {
    "person": "person", "bicycle": "bicycle", "car": "car", "motorcycle": "motorbike",
    "airplane": "aeroplane", "bus": "bus", "train": "train", "boat": "boat", "bird": "bird",
    "cat": "cat", "dog": "dog", "horse": "horse", "sheep": "sheep", "cow": "cow",
    "bottle": "bottle", "chair": "chair", "couch": "sofa", "potted plant": "pottedplant",
    "dining table": "diningtable", "tv": "tvmonitor",
}


def coco_to_voc_table(*, contiguous: bool = False) -> np.ndarray:
    """(256,) uint8 lookup table: COCO label ids -> VOC21 ids (`table[label]` maps a label
    image). Official ids by default, contiguous 1-80 with `contiguous`; 0 (background) and
    COCO classes outside VOC map to VOC background; 255 stays 255 (no label)."""
    table = np.zeros(256, np.uint8)
    table[IGNORE_ID] = IGNORE_ID
    for index, (official, name) in enumerate(COCO_CLASSES, start=1):
        if name in COCO_TO_VOC:
            table[index if contiguous else official] = VOC21.names.index(COCO_TO_VOC[name])
    return table


ID_MAPS = {"coco": lambda: coco_to_voc_table(), "coco80": lambda: coco_to_voc_table(contiguous=True)}


def get_id_map(name: str) -> np.ndarray:
    """The (256,) uint8 table called `name` ('coco' or 'coco80': COCO ids -> VOC ids)."""
    try:
        return ID_MAPS[name]()
    except KeyError:
        raise ValueError(f"unknown id map '{name}'; choose one of: {', '.join(ID_MAPS)}") from None
