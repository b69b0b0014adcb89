"""Configuration: presets, overrides, validation, JSON round trip."""
import pytest

from amslib.core.config import AdaptConfig, ConfigError, RunConfig, parse_set_args, preset, with_overrides


def test_paper_preset_has_spec_defaults():
    c = preset("paper")
    a = c.adapt
    assert (a.update_interval_s, a.horizon_s, a.iterations, a.batch_size, a.lr) == (10, 250, 200, 10, 1e-3)
    assert (a.sample_rate_fps, a.fraction, a.strategy, a.reset_to_pretrained) == (1.0, 0.1, "gradient_guided", True)
    assert (c.height, c.width, c.eval.window_s, c.eval.warmup_s, a.one_time_s) == (256, 512, 10, 250, 60)


def test_overrides_route_to_subconfigs_and_parse_types():
    c = with_overrides(preset("laptop"), parse_set_args(["fraction=0.05", "max_seconds=30",
                                                         "downlink_kbps=200", "reset_to_pretrained=false"]))
    assert c.adapt.fraction == 0.05 and c.max_seconds == 30.0
    assert c.link.downlink_kbps == 200.0 and c.adapt.reset_to_pretrained is False


@pytest.mark.parametrize("items, match", [
    (["update_interval_s=-1"], "update_interval_s must be > 0"),
    (["fraction=0"], r"fraction must be in \(0, 1\]"),
    (["fraction=1.5"], r"fraction must be in \(0, 1\]"),
    (["strategy=magic"], "strategy must be one of"),
    (["scheme=teleport"], "scheme must be one of"),
    (["no_such_knob=1"], "unknown parameter 'no_such_knob'"),
    (["iterations=many"], "expects a int"),
])
def test_bad_values_raise_config_error(items, match):
    with pytest.raises(ConfigError, match=match):
        with_overrides(preset("laptop"), parse_set_args(items))


def test_set_arg_without_equals():
    with pytest.raises(ConfigError, match="key=value"):
        parse_set_args(["fraction"])


def test_unknown_preset():
    with pytest.raises(ConfigError, match="unknown preset"):
        preset("huge")


def test_json_round_trip():
    c = with_overrides(preset("laptop"), {"fraction": 0.2, "latency_s": 0.5})
    assert RunConfig.from_dict(c.to_dict()) == c
    assert isinstance(RunConfig.from_dict(c.to_dict()).adapt, AdaptConfig)


@pytest.mark.parametrize("items, match", [
    (["atr=true"], "atr=true needs asr=true"),
    (["update_encoder=zip"], "update_encoder must be one of"),
    (["uplink_codec=av1"], "uplink_codec must be one of"),
    (["uplink_kbps=100", "uplink_trace=up.csv"], "give uplink_kbps or uplink_trace, not both"),
    (["jit_threshold=0"], r"jit_threshold must be in \(0, 1\]"),
    (["jit_min_stride=16", "jit_max_stride=8"], "jit_min_stride <= jit_max_stride"),
    (["asr_min_fps=0.5", "asr_max_fps=0.2"], "asr_min_fps <= asr_max_fps"),
    # the edge knobs (their checks once sat after a `return` and never ran)
    (["bn_frames=0"], "bn_frames must be >= 1, got 0"),
    (["bn_momentum=5"], r"bn_momentum must be in \[0, 1\), got 5"),
    (["tent_lr=-1"], r"tent_lr must be in \(0, 1\), got -1"),
])
def test_new_parameters_are_validated(items, match):
    with pytest.raises(ConfigError, match=match):
        with_overrides(preset("laptop"), parse_set_args(items))


def test_every_strategy_scheme_and_baseline_parameter_is_settable():
    from amslib.core.config import SCHEMES, STRATEGIES
    assert set(STRATEGIES) >= {"full", "gradient_guided", "first_layers", "last_layers", "first_and_last", "random"}
    assert set(SCHEMES) >= {"none", "one_time", "ams", "jit", "remote_tracking"}
    c = with_overrides(preset("laptop"), parse_set_args(
        ["scheme=jit", "strategy=random", "jit_threshold=0.7", "tracking_stride=4", "asr=true", "atr=true",
         "update_encoder=sparse_q8", "uplink_codec=h264", "h264_kbps=150", "downlink_trace=down.csv"]))
    assert (c.scheme, c.adapt.strategy, c.baseline.jit_threshold, c.baseline.tracking_stride) == ("jit", "random", 0.7, 4)
    assert c.adapt.asr and c.adapt.atr and c.link.update_encoder == "sparse_q8"
    assert (c.link.uplink_codec, c.link.h264_kbps, c.link.downlink_trace) == ("h264", 150.0, "down.csv")
    assert RunConfig.from_dict(c.to_dict()) == c


def test_the_edge_knobs_refuse_bad_values_in_one_line():
    for item in ("bn_frames=0", "bn_momentum=5", "tent_lr=-1"):
        with pytest.raises(ConfigError) as err:
            with_overrides(preset("laptop"), parse_set_args([item]))
        assert "\n" not in str(err.value) and item.split("=")[0] in str(err.value)
