"""AMS Workbench: Adaptive Model Streaming (Khani et al., ICCV 2021) as an interactive library.

`import amslib as ams` gives the vocabulary a notebook needs; each name is imported from its
layer on first use (PEP 562), so `import amslib` itself loads nothing heavy:

    config = ams.with_overrides(ams.preset("laptop"), {"max_seconds": 120})
    results = ams.compare_schemes(config, ("none", "ams"))
    ams.comparison_table(results); ams.timeline_figure(results)
    ams.list_runs("runs"); ams.load_run("runs/demo/ams")   # runs saved earlier

The layers, bottom to top (docs/layout.md): `amslib.core` (config, label sets, metrics,
files, registries) -> `amslib.data` (manifest, downloads, videos) -> `amslib.models`
(student, teachers) -> `amslib.sim` (clock, link, codec, training, schemes) ->
`amslib.analysis` (runs, results, experiments, claims, plots) -> `amslib.ui` (widgets) ->
`amslib.cli`. A module imports only from its own layer and the ones below.
"""
from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

# name -> the module that defines it ("" after the module: the name is the module itself)
_EXPORTS: dict[str, str] = {
    # configuration and the registries
    **dict.fromkeys(("RunConfig", "AdaptConfig", "LinkConfig", "EvalConfig", "BaselineConfig", "EdgeConfig", "ServerConfig",
                     "ConfigError",
                     "preset", "with_overrides", "PRESETS"), "amslib.core.config"),
    **dict.fromkeys(("SCHEMES", "STRATEGIES", "ENCODERS", "TEACHERS"), "amslib.core.registry"),
    **dict.fromkeys(("LabelSet", "CITYSCAPES19", "VOC21", "get_label_set"), "amslib.core.labels"),
    "metrics": "amslib.core.metrics:",
    **dict.fromkeys(("videos_dir", "labels_dir", "data_root"), "amslib.core.files"),
    "progress_bar": "amslib.core.progress",
    # videos and data
    **dict.fromkeys(("open_video", "open_video_for", "SyntheticVideo", "FileVideo", "CachedVideo", "VideoError",
                     "sample_indices"), "amslib.data.video"),
    "example_clip": "amslib.data.examples",
    **dict.fromkeys(("drift_sequence", "DRIFT_CLIPS"), "amslib.data.drift"),
    "load_manifest": "amslib.data.manifest",
    **dict.fromkeys(("fetch", "request_for"), "amslib.data.download"),
    # students and teachers
    **dict.fromkeys(("StudentSpec", "build_student", "load_student", "save_student"), "amslib.models.student"),
    "pretrain_on_videos": "amslib.models.pretrain",
    "adopt_student_file": "amslib.models.student",
    **dict.fromkeys(("Teacher", "OracleTeacher", "LabelFolderTeacher", "CachedTeacher", "read_labelled"),
                    "amslib.models.teachers"),
    "parse_teacher": "amslib.models.zoo",
    # the simulation
    **dict.fromkeys(("Simulation", "Students"), "amslib.sim.engine"),
    # runs, results, experiments, figures
    **dict.fromkeys(("simulate", "run_simulation", "compare_schemes", "prediction_recorder", "time_estimate"),
                    "amslib.analysis.runs"),
    **dict.fromkeys(("RunResult", "load_result", "save_result", "comparison_table", "per_class_table",
                     "SUMMARY_COLUMNS", "conditions", "conditions_table", "conditions_text"), "amslib.analysis.results"),
    **dict.fromkeys(("load_run", "list_runs", "find_runs", "DamagedRun"), "amslib.analysis.saved_runs"),
    **dict.fromkeys(("EXPERIMENTS", "run_experiment"), "amslib.analysis.experiments"),
    **dict.fromkeys(("run_fleet", "save_fleet", "FleetResult"), "amslib.analysis.fleet"),
    **dict.fromkeys(("class_frequencies", "manifest_status", "open_with_teacher", "scene_change_timeline",
                     "scene_changes", "video_facts"), "amslib.analysis.dataset_checks"),
    **dict.fromkeys(("timeline_figure", "comparison_strip", "pareto_figure", "bars_figure", "class_timeline_figure",
                     "class_frequency_figure", "scene_change_figure", "capacity_figure", "server_timeline_figure"),
                    "amslib.analysis.plots"),
    "teacher_agreement": "amslib.analysis.agreement",
    **dict.fromkeys(("scene_table", "recovery_table"), "amslib.analysis.scenes"),
    "RUN_OVERRIDES": "amslib.analysis.real_clips",
    # widgets and teaching
    **dict.fromkeys(("LiveApp", "class_drilldown"), "amslib.ui.widgets"),
    **dict.fromkeys(("ledger_table", "summary_table"), "amslib.ui.readouts"),
    **dict.fromkeys(("FrameExplorer", "record_run"), "amslib.ui.explorer"),
    "agreement_strip": "amslib.ui.pictures",
    "RunPicker": "amslib.ui.run_picker",
    "walkthrough": "amslib.ui.walkthrough:",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    try:
        target = _EXPORTS[name]
    except KeyError:
        raise AttributeError(f"module 'amslib' has no attribute '{name}'") from None
    module_name, is_module = target.rstrip(":"), target.endswith(":")
    module = importlib.import_module(module_name)
    value = module if is_module else getattr(module, name)
    globals()[name] = value  # later lookups skip __getattr__
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))
