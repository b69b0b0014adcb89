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

The parts: `looks` (neighbourhoods, timeline, light), `world` (generated once from the seed),
`canvas` (drawing primitives), `scene` (what drawing reads of the world and the street),
`background` (sky, skyline, road, facades), `sprites` (trees, cars, people) and `street`
(`SyntheticStreet`, one frame from its parts). Their imports run one way, in that order.
"""
from amslib.data.synthetic.looks import CLASSES, LIGHTING, LOOKS, TIMELINE, StreetConfig
from amslib.data.synthetic.street import SyntheticStreet, source_samples

__all__ = ["CLASSES", "LIGHTING", "LOOKS", "TIMELINE", "StreetConfig", "SyntheticStreet", "source_samples"]
