"""The lists of named parts: schemes, parameter-selection strategies, update encoders and
teacher kinds. Each registry is the only list of its kind: config validation, the CLI's
choices, the widgets' dropdowns and the sweeps read it, and the code that runs a name looks
it up here. A new scheme is one new module and one line below.

An entry maps a name to where it lives, "module:attribute", and is imported on first use
(as d2l's DATA_HUB maps names to files): so this base layer names the parts without
importing the layers above it, and `import amslib.core.config` stays light.
"""
from __future__ import annotations

import importlib
from collections.abc import Iterator
from typing import Any


class Registry:
    """An ordered set of names of one `kind`, each mapped to a "module:attribute" target."""

    def __init__(self, kind: str, entries: dict[str, str]) -> None:
        self.kind = kind
        self._entries = dict(entries)
        self._loaded: dict[str, Any] = {}

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(self._entries)

    def __iter__(self) -> Iterator[str]:
        return iter(self._entries)

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __repr__(self) -> str:
        return f"Registry({self.kind!r}, {', '.join(self._entries)})"

    def check(self, name: str) -> str:
        """`name` if registered; else a ValueError that lists the choices."""
        if name not in self._entries:
            raise ValueError(f"{self.kind} must be one of {', '.join(self._entries)}, got '{name}'")
        return name

    def load(self, name: str) -> Any:
        """The object registered as `name`, imported on first use."""
        if name not in self._loaded:
            module, _, attribute = self._entries[self.check(name)].partition(":")
            self._loaded[name] = getattr(importlib.import_module(module), attribute)
        return self._loaded[name]


# What the edge samples, when the server updates and what it sends (amslib/sim/schemes/).
# `jit` and `remote_tracking` are the paper's baselines (SPEC.md, "Baselines").
SCHEMES = Registry("scheme", {
    "none": "amslib.sim.schemes.base:Scheme",
    "one_time": "amslib.sim.schemes.ams:OneTimeScheme",
    "ams": "amslib.sim.schemes.ams:AmsScheme",
    "jit": "amslib.sim.schemes.keyframe:JitScheme",
    "remote_tracking": "amslib.sim.schemes.keyframe:RemoteTrackingScheme",
    # ours: adaptation on the edge alone (0 Kbps), SPEC.md "Beyond the paper"
    "bn_adapt": "amslib.sim.schemes.edge:BnAdaptScheme",
    "tent": "amslib.sim.schemes.edge:TentScheme",
    # ours: labels sent down, training on the edge (Shoggoth, DAC 2023)
    "edge_train": "amslib.sim.schemes.edge:EdgeTrainScheme",
})

# Parameter-selection strategies (SPEC.md, "Mechanisms"; amslib/sim/selection.py). All but
# `full` send the same number of scalars, round(fraction * P), so they compare at equal
# `fraction`; `gradient_magnitude` is ours.
STRATEGIES = Registry("strategy", {
    "gradient_guided": "amslib.sim.selection:GRADIENT_GUIDED",
    "full": "amslib.sim.selection:FULL",
    "first_layers": "amslib.sim.selection:FIRST_LAYERS",
    "last_layers": "amslib.sim.selection:LAST_LAYERS",
    "first_and_last": "amslib.sim.selection:FIRST_AND_LAST",
    "random": "amslib.sim.selection:RANDOM",
    "gradient_magnitude": "amslib.sim.selection:GRADIENT_MAGNITUDE",
})

# How a model update is written for the downlink (amslib/sim/codec.py): the original's
# bitmask + float16 + gzip, and two of ours (delta-coded indices + LZMA; optionally 8-bit values).
ENCODERS = Registry("update_encoder", {
    "original": "amslib.sim.codec:ORIGINAL",
    "sparse_f16": "amslib.sim.codec:SPARSE_F16",
    "sparse_q8": "amslib.sim.codec:SPARSE_Q8",
})

# Teacher kinds of a `--teacher KIND:TARGET?options` spec (amslib/models/zoo.py): each entry
# names the options its kind takes and builds a teacher from the parsed spec.
TEACHERS = Registry("teacher kind", {
    "oracle": "amslib.models.zoo:ORACLE",
    "deeplab": "amslib.models.zoo:DEEPLAB",
    "tflite": "amslib.models.zoo:TFLITE",
    "tfjs": "amslib.models.zoo:TFJS",
    "rvm": "amslib.models.zoo:RVM",
    "keras": "amslib.models.zoo:KERAS",
    "labels": "amslib.models.zoo:LABELS",
})
