"""Frame explorer: step or play through one run of a scheme, frame by frame.

For each frame: the frame, the teacher's label, the student's prediction as the edge made it
during the run, and the error mask (pixels where prediction != label), with the class legend
and the frame's per-class IoU; buttons jump to the frames where a model update arrived.

The scheme runs once (`record_run`), keeping every k-th frame's prediction as (H, W) uint8
class ids; the explorer then only browses that `Recording`. Pure functions come first
(`update_arrivals`, `error_mask`, `frame_iou`, `render_panel`); `FrameExplorer` wraps them
with ipywidgets and holds all the state (STYLE.md, principle 8).

    recording = record_run(config, every=2)
    app = FrameExplorer(recording)
    display(app.widget)      # or headless: app.next_update(); app.panel()
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import ipywidgets as widgets
import numpy as np
import pandas as pd
from PIL import Image

from amslib.analysis.results import RunResult, collect
from amslib.analysis.runs import prediction_recorder
from amslib.core.clock import TIME_EPS_S
from amslib.core.config import RunConfig
from amslib.core.labels import LabelSet
from amslib.core.metrics import frame_counts, iou
from amslib.data.video import Video
from amslib.models.teachers import Teacher, read_labelled
from amslib.sim.engine import Simulation
from amslib.ui.pictures import ERROR_RGB, error_mask, png, render_panel  # noqa: F401 - ERROR_RGB, error_mask: re-exported
from amslib.ui.controls import error_text, guarded


# -- the recording ------------------------------------------------------------------------------
@dataclass(frozen=True)
class Recording:
    """One run kept for browsing. `indices` (M,) increasing frame indices; `frames`
    (M, H, W, 3) uint8; `labels` and `predictions` (M, H, W) uint8 class ids; `result` the
    run's tables (every frame); `class_ids` the video's important classes (as `classes`)."""

    indices: np.ndarray
    frames: np.ndarray
    labels: np.ndarray
    predictions: np.ndarray
    result: RunResult
    label_set: LabelSet
    class_ids: tuple[int, ...]
    fps: float

    @property
    def classes(self) -> tuple[str, ...]:
        return self.result.classes

    @property
    def step(self) -> int:
        """Frames between two kept frames."""
        return int(self.indices[1] - self.indices[0]) if len(self.indices) > 1 else 1

    def position(self, frame: int) -> int:
        """Position in the recording of the first kept frame >= `frame`. ValueError outside the run."""
        if not self.indices[0] <= frame <= self.indices[-1]:
            raise ValueError(f"frame {frame} is outside the recording (frames {self.indices[0]}.."
                             f"{self.indices[-1]}); pick a frame in that range")
        return int(np.searchsorted(self.indices, frame))

    def arrivals(self) -> pd.DataFrame:
        return update_arrivals(self.result.updates, fps=self.fps, num_frames=len(self.result.frames))


def record_run(config: RunConfig, *, video: Video | None = None, teacher: Teacher | None = None,
               students=None, every: int = 1) -> Recording:
    """Run `config`'s scheme once and keep every `every`-th frame: the frame, its teacher
    label and the student's prediction. Memory: (M, H, W) uint8 per array, M = frames / every
    (plus the frames themselves, 3 bytes a pixel). `video`, `teacher`, `students` as for
    `runs.simulate`."""
    if every < 1:
        raise ValueError(f"every must be >= 1 (keep every k-th frame), got {every}")
    sim = Simulation.create(config, video=video, teacher=teacher, students=students)
    on_event, kept = prediction_recorder(range(0, sim.num_frames, every))
    result = collect(config, sim.video.classes, sim.run(), on_event)
    indices = np.array(sorted(kept), np.int64)  # a file may end before its header said
    if not len(indices):
        raise ValueError(f"the run of {config.video} made no frame; check max_seconds and the video")
    frames, labels = read_labelled(sim.video, sim.teacher, indices)
    predictions = np.stack([kept[i] for i in indices]).astype(np.uint8)
    return Recording(indices, frames, labels, predictions, result, sim.video.label_set,
                     sim.video.class_ids, sim.video.fps)


# -- pure functions -----------------------------------------------------------------------------
def update_arrivals(updates: pd.DataFrame, *, fps: float, num_frames: int) -> pd.DataFrame:
    """The updates that reached the edge during the run: `update`, `t_update_s`,
    `t_arrival_s` and `arrival_frame`, the first frame the updated model ran on (the edge
    applies an update at the first frame whose time is >= its arrival, as the engine does)."""
    columns = ["update", "t_update_s", "t_arrival_s", "arrival_frame"]
    if updates.empty or "t_arrival_s" not in updates:
        return pd.DataFrame(columns=columns).astype({"arrival_frame": np.int64})
    sent = updates[updates["sent"].fillna(False).astype(bool)] if "sent" in updates else updates
    sent = sent[sent["t_arrival_s"].notna()]
    frame = np.ceil(sent["t_arrival_s"].to_numpy(float) * fps - TIME_EPS_S).astype(np.int64)
    out = sent.assign(arrival_frame=frame)[columns]
    return out[out["arrival_frame"] < num_frames].reset_index(drop=True)


def frame_iou(label: np.ndarray, prediction: np.ndarray, *, class_ids: tuple[int, ...],
              classes: tuple[str, ...]) -> pd.DataFrame:
    """Per-class IoU of one frame: index `classes`, columns `iou_pct` (NaN when the class is
    in neither), `tp`, `fp`, `fn` pixels; counted as in metrics.py (label pixels of the
    important classes only)."""
    counts = frame_counts(label[None], prediction[None], class_ids=class_ids)[0]
    table = pd.DataFrame(counts, index=pd.Index(classes, name="class"), columns=["tp", "fp", "fn"])
    table.insert(0, "iou_pct", 100.0 * iou(counts))
    return table


def iou_html(table: pd.DataFrame) -> str:
    """A `frame_iou` table as a small HTML table (IoU in %, '-' where undefined)."""
    shown = table.assign(iou_pct=table["iou_pct"].map(lambda v: "-" if math.isnan(v) else f"{v:.1f}"))
    return shown.to_html(border=0, classes="ams-iou")


# -- the app ------------------------------------------------------------------------------------
class FrameExplorer:
    """Browse a `Recording`: Play + slider over its frames, previous/next update buttons and a
    list of the updates' arrival frames; all state is here. `show(frame)` draws a frame;
    callback errors go to the `log` Output."""

    def __init__(self, recording: Recording, *, interval_ms: int = 200) -> None:
        self.recording = recording
        self.updates = recording.arrivals()
        self.frame: int | None = None  # the frame shown
        self._syncing = False  # True while show() moves the slider
        first, last, step = int(recording.indices[0]), int(recording.indices[-1]), recording.step
        self.play = widgets.Play(min=first, max=last, step=step, interval=interval_ms, description="play")
        self.slider = widgets.IntSlider(min=first, max=last, step=step, description="frame",
                                        layout=widgets.Layout(width="520px"))
        widgets.jslink((self.play, "value"), (self.slider, "value"))
        self.previous_button = widgets.Button(description="previous update", icon="step-backward")
        self.next_button = widgets.Button(description="next update", icon="step-forward")
        self.update_list = widgets.Dropdown(options=self._update_options(), description="jump to",
                                            layout=widgets.Layout(width="420px"))
        self.image = widgets.Image(format="png", layout=widgets.Layout(max_width="100%"))
        self.iou = widgets.HTML()
        self.status = widgets.Label()
        self.log = widgets.Output(layout=widgets.Layout(max_height="200px", overflow="auto"))
        self.widget = widgets.VBox([
            widgets.HBox([self.play, self.slider, self.status]),
            widgets.HBox([self.previous_button, self.next_button, self.update_list]),
            self.image, self.iou, self.log])
        self._wire()
        self.show(first)

    def _update_options(self) -> list[tuple[str, int | None]]:
        rows = self.updates.itertuples()
        return [("(an update's arrival)", None)] + [
            (f"update {int(r.update)}: arrives t = {r.t_arrival_s:.2f} s, frame {r.arrival_frame}",
             int(r.arrival_frame)) for r in rows]

    def _wire(self) -> None:
        self.slider.observe(guarded(lambda change: self._on_slider(change["new"]), self.show_error),
                            names="value")
        self.next_button.on_click(guarded(lambda _: self.next_update(), self.show_error))
        self.previous_button.on_click(guarded(lambda _: self.previous_update(), self.show_error))
        self.update_list.observe(guarded(lambda change: self._on_pick(change["new"]), self.show_error),
                                 names="value")

    def show_error(self, err: BaseException) -> None:
        """Append `err` to the log: a ValueError (ConfigError too) as its message, else its traceback."""
        self.log.append_stderr(error_text(err, brief=(ValueError,)))
        self.status.value = f"error: {type(err).__name__} (details below)"

    # -- browsing ----------------------------------------------------------------------
    def show(self, frame: int) -> None:
        """Draw the kept frame at or after `frame` and move the slider there (ValueError
        outside the recording)."""
        rec = self.recording
        self.frame = int(rec.indices[rec.position(int(frame))])
        self.image.value = png(self.panel())
        self.iou.value = iou_html(self.frame_table())
        self.status.value = self.describe()
        self._syncing = True  # the slider follows; its observer must not draw again
        try:
            self.slider.value = self.frame
        finally:
            self._syncing = False

    def _on_slider(self, frame: int) -> None:
        if not self._syncing:
            self.show(frame)

    def _on_pick(self, frame: int | None) -> None:
        """An update chosen in the list: jump to its arrival, then reset the list (so the
        same update can be chosen again)."""
        if frame is not None:
            self.show(frame)
            self.update_list.value = None

    def next_update(self) -> int | None:
        """Jump to the next frame where an update arrived; None (and a note) if none is left."""
        later = self.updates[self.updates["arrival_frame"] > self.frame]["arrival_frame"]
        return self._jump(later.min() if len(later) else None, "after")

    def previous_update(self) -> int | None:
        """Jump to the previous frame where an update arrived; None (and a note) if none."""
        earlier = self.updates[self.updates["arrival_frame"] < self.frame]["arrival_frame"]
        return self._jump(earlier.max() if len(earlier) else None, "before")

    def _jump(self, frame, where: str) -> int | None:
        if frame is None:
            self.status.value = f"{self.describe()} | no update arrives {where} this frame"
            return None
        self.show(int(frame))
        return self.frame

    # -- what is shown -------------------------------------------------------------------
    def _arrays(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        pos = self.recording.position(self.frame)
        rec = self.recording
        return rec.frames[pos], rec.labels[pos], rec.predictions[pos]

    def frame_table(self) -> pd.DataFrame:
        """Per-class IoU of the shown frame (`frame_iou`)."""
        _, label, prediction = self._arrays()
        return frame_iou(label, prediction, class_ids=self.recording.class_ids, classes=self.recording.classes)

    def panel(self) -> Image.Image:
        """The shown frame's picture (`render_panel`): it stays visible in a saved notebook."""
        frame, label, prediction = self._arrays()
        return render_panel(frame, label, prediction, label_set=self.recording.label_set,
                            classes=self.recording.classes, title=self.describe())

    def describe(self) -> str:
        """One line: frame, time, model version, and the update that arrived at this frame."""
        frames = self.recording.result.frames
        row = frames[frames["frame"] == self.frame]
        version = int(row["model_version"].iloc[0]) if len(row) and "model_version" in row else 0
        text = (f"frame {self.frame}, t = {self.frame / self.recording.fps:.2f} s, "
                f"{self.recording.result.config.scheme} model version {version}")
        arrived = self.updates[self.updates["arrival_frame"] == self.frame]
        return text + "".join(f" (update {int(u)} arrived)" for u in arrived["update"])
