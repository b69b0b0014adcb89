"""Frames drawn as pictures: the frame, the teacher's label, the student's prediction and the
error mask side by side, with the class legend. The frame explorer and the live panel both
show these; everything here is a pure function of arrays (STYLE.md, principle 4).
"""
from __future__ import annotations

import io
import math

import numpy as np
from PIL import Image, ImageDraw

from amslib.core.labels import IGNORE_ID, LabelSet

ERROR_RGB = (255, 0, 0)


def error_mask(label: np.ndarray, prediction: np.ndarray) -> np.ndarray:
    """(H, W) bool: pixels whose prediction differs from the label (unlabelled pixels,
    id 255, are never errors). label, prediction: (H, W) uint8 class ids."""
    if label.shape != prediction.shape:
        raise ValueError(f"label {label.shape} and prediction {prediction.shape} must have the same shape")
    return (prediction != label) & (label != IGNORE_ID)


def error_overlay(frame: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """(H, W, 3) uint8: the frame darkened to 40 % with the `mask` (H, W) pixels in red."""
    out = (frame.astype(np.float32) * 0.4).astype(np.uint8)
    out[mask] = ERROR_RGB
    return out


def _legend(label_set: LabelSet, classes: tuple[str, ...], width: int) -> Image.Image:
    """Swatch + name per class, wrapped to rows of `width` pixels."""
    cell, row_h = 110, 18
    per_row = max(1, width // cell)
    rows = math.ceil(len(classes) / per_row) if classes else 0
    image = Image.new("RGB", (width, 4 + rows * row_h), "white")
    draw = ImageDraw.Draw(image)
    for k, name in enumerate(classes):
        x, y = 4 + (k % per_row) * cell, 2 + (k // per_row) * row_h
        draw.rectangle([x, y + 2, x + 12, y + 14], fill=label_set.colors[label_set.names.index(name)],
                       outline="black")
        draw.text((x + 17, y + 3), name, fill="black")
    return image


def render_panel(frame: np.ndarray, label: np.ndarray, prediction: np.ndarray, *, label_set: LabelSet,
                 classes: tuple[str, ...], title: str = "", min_height: int = 160,
                 errors: bool = True, captions: tuple[str, str] = ("teacher label", "student prediction"),
                 errors_caption: str = "errors") -> Image.Image:
    """One frame's panel: frame, teacher label, student prediction and (if `errors`) the
    error mask side by side (scaled up to `min_height` rows), a title line and the class
    legend below. frame (H, W, 3) uint8; label, prediction (H, W) uint8 ids of `label_set`.
    `captions` name the two label tiles (e.g. two teachers compared)."""
    tiles = [("frame", frame), (captions[0], label_set.colorize(label)),
             (captions[1], label_set.colorize(prediction))]
    if errors:
        mask = error_mask(label, prediction)
        tiles.append((f"{errors_caption}: {100 * mask.mean():.1f}% of pixels", error_overlay(frame, mask)))
    h, w = label.shape
    scale = max(1, math.ceil(min_height / h))
    th, tw, pad, top = h * scale, w * scale, 6, 34
    width = max(len(tiles) * (tw + pad), 4 * 110)  # room for the legend's swatches
    legend = _legend(label_set, classes, width)
    canvas = Image.new("RGB", (width, top + th + legend.height), "white")
    draw = ImageDraw.Draw(canvas)
    draw.text((4, 2), title, fill="black")
    for j, (caption, image) in enumerate(tiles):
        x = j * (tw + pad)
        draw.text((x + 2, 18), caption, fill="black")
        canvas.paste(Image.fromarray(image).resize((tw, th), Image.NEAREST), (x, top))
    canvas.paste(legend, (0, top + th))
    return canvas


def stack(pictures: list[Image.Image], *, gap: int = 8) -> Image.Image:
    """`pictures` one above the other on white, `gap` pixels apart, left-aligned."""
    if not pictures:
        raise ValueError("no pictures to stack: give at least one")
    width = max(p.width for p in pictures)
    canvas = Image.new("RGB", (width, sum(p.height for p in pictures) + gap * (len(pictures) - 1)), "white")
    y = 0
    for picture in pictures:
        canvas.paste(picture, (0, y))
        y += picture.height + gap
    return canvas


def png(image: Image.Image) -> bytes:
    """PNG bytes of a PIL image (for ipywidgets.Image)."""
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def agreement_strip(video, reference, other, agreement, *, names: tuple[str, str]) -> Image.Image:
    """The frames where two teachers disagree most (`agreement.worst`, from
    `analysis.agreement.teacher_agreement`): each frame, both teachers' labels (captioned with
    `names`) and where they differ, one panel per frame, stacked."""
    panels = []
    for i in (int(k) for k in agreement.worst):
        frame = video.frames(i, i + 1)[0]
        panels.append(render_panel(frame, reference.labels(video, i, i + 1)[0], other.labels(video, i, i + 1)[0],
                                   label_set=video.label_set, classes=tuple(video.classes), captions=names,
                                   errors_caption="they differ",
                                   title=f"frame {i} ({i / video.fps:.1f} s): {100 * agreement.disagreement[i]:.1f}% "
                                         "of pixels differ"))
    return stack(panels)
