"""Fooocus performance presets and the resolution of the effective sampling settings.

Fooocus (2.5.5): ``modules/flags.py:131-191`` (``Performance``, ``PerformanceLoRA``, steps tables),
``modules/async_worker.py`` ``handler`` (1093-1098: the restricted-preset overrides), ``apply_image_input``
(900-905: synthetic refiner at 0.8), ``apply_overrides`` (629: steps and switch) and
``patch_samplers`` (773: lcm/tcd -> sgm_uniform + ModelSamplingDiscrete).
Spec: ``fooocus-pipeline.md`` §0, §1.1, §4, §5, §7.
"""
from __future__ import annotations

import logging
import math
import numbers
from dataclasses import dataclass

from .guidance import switch_step

__all__ = [
    "DEFAULT_PERFORMANCE",
    "DEFAULT_SAMPLER",
    "DEFAULT_SCHEDULER",
    "DEFAULT_CFG",
    "DEFAULT_SHARPNESS",
    "DEFAULT_ADAPTIVE_CFG",
    "DEFAULT_ADM_POSITIVE",
    "DEFAULT_ADM_NEGATIVE",
    "DEFAULT_ADM_END",
    "DEFAULT_CONTROLNET_SOFTNESS",
    "DEFAULT_REFINER_SWITCH",
    "SYNTHETIC_REFINER_SWITCH",
    "PerformanceLora",
    "ForcedSampling",
    "PerformancePreset",
    "PERFORMANCE_PRESETS",
    "PERFORMANCE_NAMES",
    "get_performance",
    "SamplingSettings",
    "resolve_sampling_settings",
]

logger = logging.getLogger(__name__)

#: Fooocus's configured default performance (fal's default is "Extreme Speed").
DEFAULT_PERFORMANCE: str = "Speed"
#: Default sampler / scheduler (``presets/default.json``).
DEFAULT_SAMPLER: str = "dpmpp_2m_sde_gpu"
DEFAULT_SCHEDULER: str = "karras"
#: Default guidance scale (``presets/default.json`` CFG 4.0; fal default 4; config's static fallback is 7.0).
DEFAULT_CFG: float = 4.0
#: ``modules/patch.py:32-38`` PatchSettings defaults (the UI defaults are the same).
DEFAULT_SHARPNESS: float = 2.0
DEFAULT_ADAPTIVE_CFG: float = 7.0
DEFAULT_ADM_POSITIVE: float = 1.5
DEFAULT_ADM_NEGATIVE: float = 0.8
DEFAULT_ADM_END: float = 0.3
DEFAULT_CONTROLNET_SOFTNESS: float = 0.25
#: fal's default refiner_switch (Fooocus's ``presets/default.json`` has 0.5).
DEFAULT_REFINER_SWITCH: float = 0.8
#: ``refiner_switch`` forced when an inpaint engine is used without a refiner (synthetic refiner).
SYNTHETIC_REFINER_SWITCH: float = 0.8

# patch_samplers: scheduler name -> (final scheduler, model-sampling patch)
_PATCHED_SCHEDULERS: dict[str, tuple[str, str]] = {
    "lcm": ("sgm_uniform", "lcm"),
    "tcd": ("sgm_uniform", "tcd"),
    "edm_playground_v2.5": ("karras", "edm_playground_v2.5"),
}


@dataclass(frozen=True)
class PerformanceLora:
    """A LoRA that a performance preset adds to the base (and refiner) model.

    Fooocus: ``modules/flags.py`` ``PerformanceLoRA`` / ``Performance.lora_filename``.
    """

    filename: str
    weight: float


@dataclass(frozen=True)
class ForcedSampling:
    """Values a restricted preset forces over the request (``async_worker.py:1093-1098``).

    The refiner is forced to None and ``refiner_switch`` to ``refiner_switch`` (1.0).
    """

    sampler: str
    scheduler: str
    cfg: float
    sharpness: float
    adaptive_cfg: float
    adm_positive: float
    adm_negative: float
    adm_end: float
    refiner_switch: float = 1.0


@dataclass(frozen=True)
class PerformancePreset:
    """One Fooocus performance preset.

    ``steps``: sampling steps (inpaint uses these; ``steps_uov`` is the upscale/vary table, unused here);
    ``lora``: the performance LoRA or None; ``forced``: the forced settings of a restricted preset or None
    (Speed / Quality take everything from the request); ``model_sampling``: the ModelSamplingDiscrete patch
    the preset leads to ('lcm' for Extreme Speed) or None. Fooocus: ``modules/flags.py:131-191``.
    """

    name: str
    steps: int
    steps_uov: int
    lora: PerformanceLora | None = None
    forced: ForcedSampling | None = None
    model_sampling: str | None = None

    @property
    def restricted(self) -> bool:
        """True for the LoRA presets that override sampler, cfg, sharpness, ADM and refiner."""
        return self.forced is not None


def _distilled(sampler: str, scheduler: str) -> ForcedSampling:
    return ForcedSampling(
        sampler=sampler,
        scheduler=scheduler,
        cfg=1.0,
        sharpness=0.0,
        adaptive_cfg=1.0,
        adm_positive=1.0,
        adm_negative=1.0,
        adm_end=0.0,
        refiner_switch=1.0,
    )


#: The five presets, in Fooocus's enum order.
PERFORMANCE_PRESETS: dict[str, PerformancePreset] = {
    p.name: p
    for p in (
        PerformancePreset(name="Quality", steps=60, steps_uov=36),
        PerformancePreset(name="Speed", steps=30, steps_uov=18),
        PerformancePreset(
            name="Extreme Speed",
            steps=8,
            steps_uov=8,
            lora=PerformanceLora("sdxl_lcm_lora.safetensors", 1.0),
            forced=_distilled("lcm", "lcm"),
            model_sampling="lcm",
        ),
        PerformancePreset(
            name="Lightning",
            steps=4,
            steps_uov=4,
            lora=PerformanceLora("sdxl_lightning_4step_lora.safetensors", 1.0),
            forced=_distilled("euler", "sgm_uniform"),
        ),
        PerformancePreset(
            name="Hyper-SD",
            steps=4,
            steps_uov=4,
            lora=PerformanceLora("sdxl_hyper_sd_4step_lora.safetensors", 0.8),
            forced=_distilled("dpmpp_sde_gpu", "karras"),
        ),
    )
}
#: Valid preset names, in Fooocus's order.
PERFORMANCE_NAMES: tuple[str, ...] = tuple(PERFORMANCE_PRESETS)


def get_performance(name: str) -> PerformancePreset:
    """The preset called ``name`` (exact Fooocus spelling, e.g. ``"Extreme Speed"``).

    Raises ``ValueError`` listing the valid names for anything else. Fooocus: ``flags.Performance``.
    """
    if isinstance(name, PerformancePreset):
        return name
    if not isinstance(name, str) or name not in PERFORMANCE_PRESETS:
        raise ValueError(f"performance must be one of {list(PERFORMANCE_NAMES)}, got {name!r}")
    return PERFORMANCE_PRESETS[name]


@dataclass(frozen=True)
class SamplingSettings:
    """The effective sampling settings of one Fooocus request.

    - ``sampler`` / ``scheduler``: after the preset overrides (Extreme Speed: 'lcm' / 'lcm');
    - ``final_scheduler``: the scheduler actually used to build sigmas after ``patch_samplers``
      (lcm / tcd -> 'sgm_uniform', edm_playground_v2.5 -> 'karras', otherwise ``scheduler``);
    - ``model_sampling``: the model-sampling patch to apply ('lcm', 'tcd', 'edm_playground_v2.5') or None;
    - ``refiner``: refiner checkpoint name or None; ``use_synthetic_refiner``: the base model without the
      inpaint patch takes over at ``switch`` (inpaint engine set and no refiner);
    - ``switch``: the step index of the refiner switch, ``int(round(steps * refiner_switch))`` unless
      overridden; ``loras``: the performance LoRA(s) to add to base and refiner, ``()`` for Speed / Quality.
    """

    performance: str
    steps: int
    sampler: str
    scheduler: str
    final_scheduler: str
    model_sampling: str | None
    cfg: float
    sharpness: float
    adaptive_cfg: float
    adm_positive: float
    adm_negative: float
    adm_end: float
    refiner: str | None
    use_synthetic_refiner: bool
    refiner_switch: float
    switch: int
    loras: tuple[PerformanceLora, ...]
    controlnet_softness: float = DEFAULT_CONTROLNET_SOFTNESS


def _real(value: object, name: str, lo: float | None = None, hi: float | None = None) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ValueError(f"{name} must be a real number, got {value!r}")
    v = float(value)
    if not math.isfinite(v):
        raise ValueError(f"{name} must be finite, got {value!r}")
    if (lo is not None and v < lo) or (hi is not None and v > hi):
        raise ValueError(f"{name} must be in [{lo}, {hi}], got {value!r}")
    return v


def _name(value: object, name: str) -> str:
    if not isinstance(value, str) or not value:
        raise ValueError(f"{name} must be a non-empty str, got {value!r}")
    return value


def _optional_name(value: object, name: str) -> str | None:
    """None and Fooocus's 'None' string both mean "not set"."""
    if value is None:
        return None
    if not isinstance(value, str):
        raise ValueError(f"{name} must be a str or None, got {value!r}")
    return None if value in ("", "None") else value


def resolve_sampling_settings(
    performance: str,
    *,
    cfg: float = DEFAULT_CFG,
    sharpness: float = DEFAULT_SHARPNESS,
    sampler: str = DEFAULT_SAMPLER,
    scheduler: str = DEFAULT_SCHEDULER,
    adaptive_cfg: float = DEFAULT_ADAPTIVE_CFG,
    adm_pos: float = DEFAULT_ADM_POSITIVE,
    adm_neg: float = DEFAULT_ADM_NEGATIVE,
    adm_end: float = DEFAULT_ADM_END,
    refiner: str | None = None,
    refiner_switch: float = DEFAULT_REFINER_SWITCH,
    steps_override: int | None = None,
    inpaint_engine: str | None = None,
    switch_override: int | None = None,
    controlnet_softness: float = DEFAULT_CONTROLNET_SOFTNESS,
) -> SamplingSettings:
    """Effective settings of a request, in Fooocus's order.

    1. Restricted presets (Extreme Speed, Lightning, Hyper-SD) replace sampler, scheduler, cfg, sharpness,
       adaptive_cfg and ADM (1.0 / 1.0 / 0.0), force the refiner to None and ``refiner_switch`` to 1.0
       (``async_worker.py:1093-1098``).
    2. If ``inpaint_engine`` is set (not None / 'None') and there is no refiner: synthetic refiner with
       ``refiner_switch = 0.8`` (``apply_image_input``, 900-905).
    3. ``steps`` = the preset's steps, or ``steps_override`` when it is > 0; ``switch =
       int(round(steps * refiner_switch))``, or ``switch_override`` when it is > 0 (``apply_overrides``).
    4. Scheduler 'lcm' / 'tcd' -> final scheduler 'sgm_uniform' plus that model-sampling patch;
       'edm_playground_v2.5' -> 'karras' plus the EDM patch (``patch_samplers``).
    The request values are validated (finite numbers; ``refiner_switch`` in [0, 1]; ``adm_end`` in [0, 1]).
    ``refiner`` / ``inpaint_engine``: None or 'None' mean none. Unknown ``performance`` -> ValueError
    listing the valid names.
    """
    preset = get_performance(performance)
    cfg_v = _real(cfg, "cfg")
    sharp_v = _real(sharpness, "sharpness", 0.0)
    sampler_v = _name(sampler, "sampler")
    scheduler_v = _name(scheduler, "scheduler")
    acfg_v = _real(adaptive_cfg, "adaptive_cfg")
    pos_v = _real(adm_pos, "adm_pos")
    neg_v = _real(adm_neg, "adm_neg")
    end_v = _real(adm_end, "adm_end", 0.0, 1.0)
    switch_v = _real(refiner_switch, "refiner_switch", 0.0, 1.0)
    soft_v = _real(controlnet_softness, "controlnet_softness")
    refiner_v = _optional_name(refiner, "refiner")
    engine_v = _optional_name(inpaint_engine, "inpaint_engine")
    for value, name in ((steps_override, "steps_override"), (switch_override, "switch_override")):
        if value is not None and (isinstance(value, bool) or not isinstance(value, numbers.Integral)):
            raise ValueError(f"{name} must be an int or None, got {value!r}")

    forced = preset.forced
    if forced is not None:
        sampler_v, scheduler_v = forced.sampler, forced.scheduler
        cfg_v, sharp_v, acfg_v = forced.cfg, forced.sharpness, forced.adaptive_cfg
        pos_v, neg_v, end_v = forced.adm_positive, forced.adm_negative, forced.adm_end
        refiner_v, switch_v = None, forced.refiner_switch

    synthetic = engine_v is not None and refiner_v is None
    if synthetic:
        switch_v = SYNTHETIC_REFINER_SWITCH

    steps = int(steps_override) if steps_override is not None and steps_override > 0 else preset.steps
    switch = switch_step(steps, switch_v)
    if switch_override is not None and switch_override > 0:
        switch = int(switch_override)

    final_scheduler, model_sampling = _PATCHED_SCHEDULERS.get(scheduler_v, (scheduler_v, None))

    settings = SamplingSettings(
        performance=preset.name,
        steps=steps,
        sampler=sampler_v,
        scheduler=scheduler_v,
        final_scheduler=final_scheduler,
        model_sampling=model_sampling,
        cfg=cfg_v,
        sharpness=sharp_v,
        adaptive_cfg=acfg_v,
        adm_positive=pos_v,
        adm_negative=neg_v,
        adm_end=end_v,
        refiner=refiner_v,
        use_synthetic_refiner=synthetic,
        refiner_switch=switch_v,
        switch=switch,
        loras=(preset.lora,) if preset.lora is not None else (),
        controlnet_softness=soft_v,
    )
    logger.debug("resolved sampling settings: %s", settings)
    return settings
