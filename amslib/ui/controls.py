"""The live panel's policy controls: which config fields it shows (those a run can change
between updates, and those fixed at Start), the widgets for them, how their values make a
`RunConfig`, and how a callback's error reaches the notebook user.

`PolicyControls` is the part of `widgets.LiveApp` that reads and moves these controls
(`set_policy`, a widget moved, ATR taking ASR along); the state it reads (`controls`, `fleet`,
`config`, `_syncing`) lives on the app (STYLE.md, principle 8).
"""
from __future__ import annotations

import traceback
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import ipywidgets as widgets

from amslib.core.config import SCHEMES, STRATEGIES, ConfigError, RunConfig

# Policy fields the server can change between updates (`Simulation.set_policy`).
LIVE_FIELDS = ("strategy", "fraction", "update_interval_s", "horizon_s", "iterations", "lr",
               "sample_rate_fps", "asr", "atr")
# Fields fixed for a whole run (the scheme, the link, the fleet's size): read at Start, locked while running.
START_FIELDS = ("scheme", "downlink_kbps", "latency_s", "devices")
MAX_DEVICES = 8  # the devices slider's top: a fleet the panel can still step through by hand
NO_REFERENCE = ""  # the reference dropdown's "(no reference)"


def control_values(config: RunConfig) -> dict[str, Any]:
    """The policy panel's values for `config` (an unlimited downlink, None, shows as 0;
    `devices` is ServerConfig.devices, the edge devices sharing the server)."""
    values: dict[str, Any] = {name: getattr(config.adapt, name) for name in LIVE_FIELDS}
    values.update(scheme=config.scheme, downlink_kbps=config.link.downlink_kbps or 0.0,
                  latency_s=config.link.latency_s, devices=config.server.devices)
    return values


def config_with_controls(config: RunConfig, values: dict[str, Any]) -> RunConfig:
    """A copy of `config` with the panel's `values` (downlink_kbps 0 means unlimited: None).
    Raises ConfigError for an unknown name or an invalid value. (Not `with_overrides`: that
    parses strings, and reads the scheme 'none' as None.)"""
    unknown = sorted(set(values) - set(LIVE_FIELDS) - set(START_FIELDS))
    if unknown:
        raise ConfigError(f"unknown policy value(s) {', '.join(unknown)}; the panel has: "
                          + ", ".join((*START_FIELDS, *LIVE_FIELDS)))
    link = {k: values[k] for k in ("downlink_kbps", "latency_s") if k in values}
    if "downlink_kbps" in link and not link["downlink_kbps"]:
        link["downlink_kbps"] = None
    return replace(config, scheme=values.get("scheme", config.scheme),
                   adapt=replace(config.adapt, **{k: v for k, v in values.items() if k in LIVE_FIELDS}),
                   link=replace(config.link, **link),
                   server=replace(config.server, devices=values.get("devices", config.server.devices)))


def make_controls(config: RunConfig) -> dict[str, widgets.ValueWidget]:
    """One widget per policy field, named as the config field, set to `config`'s values.
    Bounds follow AdaptConfig/LinkConfig's checks, so the panel cannot make an invalid run."""
    v = control_values(config)
    common = dict(style={"description_width": "150px"}, layout=widgets.Layout(width="340px"))

    def text(kind, name, **kw):
        return kind(value=v[name], description=name, **common, **kw)

    return {
        "scheme": widgets.Dropdown(options=SCHEMES.names, value=v["scheme"], description="scheme", **common),
        "strategy": widgets.Dropdown(options=STRATEGIES.names, value=v["strategy"], description="strategy",
                                     **common),
        "fraction": widgets.FloatSlider(value=v["fraction"], min=0.01, max=1.0, step=0.01,
                                        readout_format=".2f", continuous_update=False,
                                        description="fraction", **common),
        "iterations": text(widgets.BoundedIntText, "iterations", min=1, max=100_000),
        "lr": text(widgets.BoundedFloatText, "lr", min=1e-6, max=0.5, step=1e-4),
        "update_interval_s": text(widgets.BoundedFloatText, "update_interval_s", min=0.1,
                                  max=3600.0, step=1.0),
        "horizon_s": text(widgets.BoundedFloatText, "horizon_s", min=1.0, max=36_000.0, step=10.0),
        "sample_rate_fps": text(widgets.BoundedFloatText, "sample_rate_fps", min=0.01, max=60.0,
                                step=0.1),
        "asr": widgets.Checkbox(value=v["asr"], description="asr (adaptive sampling rate)",
                                indent=False, **common),
        "atr": widgets.Checkbox(value=v["atr"], description="atr (adaptive training rate)",
                                indent=False, **common),
        "downlink_kbps": text(widgets.BoundedFloatText, "downlink_kbps", min=0.0, max=1e6, step=50.0,
                              description_tooltip="0 = unlimited"),
        "latency_s": text(widgets.BoundedFloatText, "latency_s", min=0.0, max=60.0, step=0.05),
        "devices": widgets.IntSlider(value=v["devices"], min=1, max=max(MAX_DEVICES, v["devices"]),
                                     continuous_update=False, description="devices",
                                     description_tooltip="edge devices sharing the server (a fleet run)", **common),
    }


# -- errors in callbacks -------------------------------------------------------------------
def guarded(callback: Callable, on_error: Callable[[BaseException], None]) -> Callable:
    """`callback`, with any exception handed to `on_error`: ipywidgets would only send a
    callback's exception to the kernel log, where a notebook user never sees it."""
    def wrapped(*args: Any) -> None:
        try:
            callback(*args)
        except Exception as err:  # noqa: BLE001 - shown to the user, not swallowed
            on_error(err)
    return wrapped


def error_text(err: BaseException, *, brief: tuple[type[BaseException], ...] = (ConfigError,)) -> str:
    """How an error reads in a log Output: a `brief` one as 'Type: message', any other as its
    traceback."""
    if isinstance(err, brief):
        return f"{type(err).__name__}: {err}\n"
    return "".join(traceback.format_exception(type(err), err, err.__traceback__))



class PolicyControls:
    """The policy part of `widgets.LiveApp`: the panel's values, `set_policy`, and what a
    moved control does (queue a live field for the next update; validate a fixed one)."""

    def values(self) -> dict[str, Any]:
        """The panel's current values, by config field name."""
        return {name: control.value for name, control in self.controls.items()}

    def set_policy(self, **changes: Any) -> None:
        """Change policy values as if their widgets were moved. While a run is going, they
        apply at its next update (its `policy_changes` column records them); otherwise at the
        next Start. Raises ConfigError for an unknown name, an invalid value, a value outside
        the panel's range, or a scheme/link change while running."""
        if "downlink_kbps" in changes and changes["downlink_kbps"] is None:
            changes["downlink_kbps"] = 0.0  # the panel shows unlimited as 0
        self._check_panel(changes)
        if self.running:
            self.fleet.set_policy(**changes)  # validated now, applied by each device at its next update
        else:
            config_with_controls(self.config, {**self.values(), **changes})  # validates
        self._syncing = True
        try:
            for name, value in changes.items():
                self.controls[name].value = value
        finally:
            self._syncing = False

    def _check_panel(self, changes: dict[str, Any]) -> None:
        unknown = sorted(set(changes) - set(self.controls))
        if unknown:
            raise ConfigError(f"unknown policy value(s) {', '.join(unknown)}; the panel has: "
                              + ", ".join(self.controls))
        fixed = sorted(set(changes) - set(LIVE_FIELDS))
        if self.running and fixed:
            raise ConfigError(f"{', '.join(fixed)} cannot change during a run; stop it, change "
                              "the value, and press Start again")
        for name, value in changes.items():
            control = self.controls[name]
            low, high = getattr(control, "min", None), getattr(control, "max", None)
            if low is not None and not low <= value <= high:
                raise ConfigError(f"{name}={value} is outside the panel's range [{low}, {high}]")

    def _on_control(self, name: str, value: Any) -> None:
        """A widget moved: queue live fields for the next update; else just validate."""
        if self._syncing:
            return
        if isinstance(value, float):
            value = round(value, 6)  # a slider's 0.07000000000000001 reads 0.07 in the ledger
        changes = self._with_dependants(name, value)
        try:
            if self.running and name in LIVE_FIELDS:
                self.fleet.set_policy(**changes)  # validated now (with what is pending), applied at each next update
            else:
                config_with_controls(self.config, {**self.values(), **changes})  # shows a bad value at once
        except Exception:
            self._show_controls(self._in_force(), names=(name,))  # a refused change resets its control
            raise
        self._show_controls(changes)
        if self.running:
            self._draw_status()

    def _in_force(self) -> dict[str, Any]:
        """The policy values in force for the next update: the run's, with its pending
        changes (the panel's own values when no run is going)."""
        if not self.running:
            return self.values()
        adapt = {k: getattr(self.sim.adapt, k) for k in LIVE_FIELDS}
        return {**self.values(), **adapt, **self.sim.pending_changes()}

    def _with_dependants(self, name: str, value: Any) -> dict[str, Any]:
        """`{name: value}` and what it takes along: ATR needs ASR, so unticking ASR unticks
        ATR, and ticking ATR ticks ASR (either order of clicks ends in a valid policy)."""
        changes = {name: value}
        current = self._in_force()
        if name == "asr" and value is False and current.get("atr"):
            changes["atr"] = False
        if name == "atr" and value is True and not current.get("asr"):
            changes["asr"] = True
        return changes

    def _show_controls(self, values: dict[str, Any], *, names: tuple[str, ...] | None = None) -> None:
        """Move controls to `values` without their observers firing."""
        self._syncing = True
        try:
            for key in names or tuple(values):
                if key in self.controls and key in values and self.controls[key].value != values[key]:
                    self.controls[key].value = values[key]
        finally:
            self._syncing = False

    def pending(self) -> dict[str, Any]:
        """Policy changes asked for and not yet applied by an update (of the device drawn)."""
        return {} if self.sim is None else self.sim.pending_changes()
