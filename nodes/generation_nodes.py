"""Fooocus's generation settings as nodes: guidance (sharpness, adaptive CFG, ADM scaling), the
performance presets, and the 5-slot LoRA stack.

Intended chain (what Fooocus does for one request)::

    Load Checkpoint -> Fooocus LoRA Stack -> Fooocus Performance -> Fooocus Sampler / KSampler
                                              (steps, cfg, sampler_name, scheduler -> the sampler's widgets)

Fooocus Performance's MODEL already carries Fooocus Guidance with the effective settings (the forced
ones of the LoRA presets, or its own sharpness/ADM inputs for Speed/Quality), so the guidance settings
live in one place. Fooocus Guidance on its own is for graphs without the Performance node.
"""
from __future__ import annotations

import logging
import os
from collections import OrderedDict

import comfy.lora
import comfy.lora_convert
import comfy.samplers
import comfy.sd
import comfy.utils
import folder_paths
from comfy_api.latest import io

from ..engine import performance as perf
from ..engine.model_manifest import missing_model_message
from ..engine.lora_match import MAX_UNMATCHED_KEYS, is_model_mismatch, unmatched_lora_keys
from .guidance_hooks import GuidanceSettings, apply_fooocus_guidance
from .schema_util import advanced

log = logging.getLogger(__name__)

CATEGORY = "inpaint/fooocus/sampling"
LORA_SLOTS = 5
NONE = "None"
DEFAULT_USER_LORA = "sd_xl_offset_example-lora_1.0.safetensors"
DEFAULT_USER_LORA_WEIGHT = 0.1
PERFORMANCE_LORA_INPUTS = {  # input name -> preset that uses it
    "lcm_lora": "Extreme Speed",
    "lightning_lora": "Lightning",
    "hyper_sd_lora": "Hyper-SD",
}
_LORA_CACHE: OrderedDict = OrderedDict()
_LORA_CACHE_SIZE = 4


class ComboOptions(list):
    """The type of a COMBO *output* (its option list) that links to both kinds of combo input.

    ComfyUI 0.3.75 validates a link with ``received_type != input_type``: V1 nodes (KSampler) declare a
    combo input by its option list, V3 nodes (Fooocus Sampler) by the string ``"COMBO"``. A plain list
    output only matches the first. This list compares "equal" to ``"COMBO"`` / ``"*"`` and to any option
    list that contains all of its options (every value this output can carry is valid there).
    """

    def __ne__(self, other) -> bool:
        if isinstance(other, str):
            return other not in ("COMBO", "*")
        if isinstance(other, (list, tuple)):
            return not set(self).issubset(other)
        return True

    def __eq__(self, other) -> bool:
        return not self.__ne__(other)

    __hash__ = None


SAMPLER_OPTIONS = ComboOptions(comfy.samplers.KSampler.SAMPLERS)
SCHEDULER_OPTIONS = ComboOptions(comfy.samplers.KSampler.SCHEDULERS)


# -- LoRA loading (ComfyUI's own loader functions) ---------------------------------------------------
def lora_files() -> list[str]:
    """File names in ComfyUI's ``loras`` folder(s)."""
    try:
        return list(folder_paths.get_filename_list("loras"))
    except KeyError:
        return []


def _lora_folders() -> str:
    try:
        return ", ".join(folder_paths.get_folder_paths("loras"))
    except KeyError:
        return "models/loras"


def load_lora_file(name: str, what: str) -> dict:
    """The LoRA state dict of ``name`` in the ``loras`` folder (safe load, small LRU cache)."""
    path = folder_paths.get_full_path("loras", name) if name else None
    if path is None:
        raise ValueError(f"{what}: LoRA " + missing_model_message(name or "", [_lora_folders()]))
    st = os.stat(path)
    key = (path, st.st_mtime_ns, st.st_size)
    if key in _LORA_CACHE:
        _LORA_CACHE.move_to_end(key)
        return _LORA_CACHE[key]
    sd = comfy.utils.load_torch_file(path, safe_load=True)
    _LORA_CACHE[key] = sd
    while len(_LORA_CACHE) > _LORA_CACHE_SIZE:
        _LORA_CACHE.popitem(last=False)
    return sd


def apply_lora(model, clip, name: str, weight: float, what: str):
    """``(model, clip)`` with LoRA ``name`` at ``weight`` on both (ComfyUI ``load_lora_for_models``).

    Fooocus's rule: a LoRA with more than 12 keys that match neither the UNet nor the text encoder is a
    LoRA for another model and is skipped with a warning (the inputs come back unchanged). Weight 0 is
    a no-op (the file is not read).
    """
    if weight == 0:
        return model, clip
    lora = comfy.lora_convert.convert_lora(load_lora_file(name, what))
    key_map: dict = {}
    comfy.lora.model_lora_keys_unet(model.model, key_map)
    comfy.lora.model_lora_keys_clip(clip.cond_stage_model, key_map)
    unmatched = unmatched_lora_keys(lora.keys(), key_map)
    if is_model_mismatch(len(unmatched)):
        log.warning("%s: LoRA %s skipped: %d of its %d keys match neither the model nor its text encoder "
                    "(more than %d: a LoRA for another model type; first unmatched: %s)",
                    what, name, len(unmatched), len(lora), MAX_UNMATCHED_KEYS, unmatched[0])
        return model, clip
    if unmatched:
        log.info("%s: LoRA %s loaded with %d unmatched keys: %s", what, name, len(unmatched), unmatched)
    new_model, new_clip = comfy.sd.load_lora_for_models(model, clip, lora, weight, weight)
    log.info("%s: applied LoRA %s at %g", what, name, weight)
    return new_model, new_clip


def _lora_combo(name: str, default: str, tooltip: str, with_none: bool):
    files = lora_files()
    options = sorted(set(files) | ({default} if default != NONE else set()))
    if with_none:
        options = [NONE] + [o for o in options if o != NONE]
    return io.Combo.Input(name, options=options, default=default, tooltip=tooltip)


# -- shared widgets --------------------------------------------------------------------------------
def _guidance_inputs(adv_all: bool) -> list:
    sharp = io.Float.Input("sharpness", default=perf.DEFAULT_SHARPNESS, min=0.0, max=30.0, step=0.01,
                           tooltip="Fooocus 'Image Sharpness' (0..30, default 2): blends a little of an edge-preserving "
                                   "filter of the positive prediction in, more towards the end of sampling "
                                   "(weight 0.001 x sharpness x progress). 0 = off.")
    rest = [
        io.Float.Input("adaptive_cfg", default=perf.DEFAULT_ADAPTIVE_CFG, min=1.0, max=30.0, step=0.01,
                       tooltip="Fooocus 'CFG Mimicking from TSNR' (default 7): when cfg is above this, early steps use "
                               "this lower CFG and move to the real cfg as sampling progresses."),
        io.Float.Input("adm_positive", default=perf.DEFAULT_ADM_POSITIVE, min=0.1, max=3.0, step=0.001,
                       tooltip="Fooocus 'Positive ADM Guidance Scaler' (1.5): the positive prompt's SDXL size "
                               "conditioning (width/height) is multiplied by this early in sampling."),
        io.Float.Input("adm_negative", default=perf.DEFAULT_ADM_NEGATIVE, min=0.1, max=3.0, step=0.001,
                       tooltip="Fooocus 'Negative ADM Guidance Scaler' (0.8): the same for the negative prompt."),
        io.Float.Input("adm_end", default=perf.DEFAULT_ADM_END, min=0.0, max=1.0, step=0.001,
                       tooltip="Fooocus 'ADM Guidance End At Step' (0.3): the scaled size conditioning is used while "
                               "the timestep is above 999 x (1 - adm_end), i.e. the first ~30% of the noise range; "
                               "0 = never."),
    ]
    return [advanced(sharp) if adv_all else sharp] + [advanced(r) for r in rest]


def _settings(sharpness, adaptive_cfg, adm_positive, adm_negative, adm_end, source) -> GuidanceSettings:
    return GuidanceSettings(float(sharpness), float(adaptive_cfg), float(adm_positive), float(adm_negative),
                            float(adm_end), source)


# -- nodes -----------------------------------------------------------------------------------------
class FooocusGuidance(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="FooocusInpaint_Guidance",
            display_name="Fooocus Guidance",
            category=CATEGORY,
            description=(
                "Fooocus's guidance tweaks on a copy of the model, for any sampler (Fooocus Sampler, KSampler...): "
                "image sharpness (an edge-preserving filter on the positive prediction), adaptive CFG (CFG mimicking "
                "when cfg > adaptive_cfg) and ADM guidance (scaled SDXL size conditioning early in sampling, for the "
                "UNet and ControlNets). At cfg 1 only the positive prediction is used, as in Fooocus. "
                "Not needed after Fooocus Performance, whose model already has it (a second one replaces it)."
            ),
            inputs=[io.Model.Input("model", tooltip="The SDXL model (after LoRAs).")] + _guidance_inputs(False),
            outputs=[io.Model.Output(display_name="model",
                                     tooltip="A patched copy of the model; the input model is unchanged.")],
        )

    @classmethod
    def execute(cls, model, sharpness=perf.DEFAULT_SHARPNESS, adaptive_cfg=perf.DEFAULT_ADAPTIVE_CFG,
                adm_positive=perf.DEFAULT_ADM_POSITIVE, adm_negative=perf.DEFAULT_ADM_NEGATIVE,
                adm_end=perf.DEFAULT_ADM_END) -> io.NodeOutput:
        settings = _settings(sharpness, adaptive_cfg, adm_positive, adm_negative, adm_end, "Fooocus Guidance")
        return io.NodeOutput(apply_fooocus_guidance(model, settings))


class FooocusPerformance(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        lora_inputs = [
            advanced(_lora_combo(inp, get_lora.filename, f"The LoRA file of the '{preset}' preset, in models/loras "
                                 f"(Fooocus: {get_lora.filename}, weight {get_lora.weight:g}).", with_none=False))
            for inp, preset in PERFORMANCE_LORA_INPUTS.items()
            for get_lora in [perf.get_performance(preset).lora]
        ]
        return io.Schema(
            node_id="FooocusInpaint_Performance",
            display_name="Fooocus Performance",
            category=CATEGORY,
            description=(
                "Fooocus's Performance setting. Speed (30 steps) and Quality (60) use your cfg, sampler and "
                "scheduler. Extreme Speed (LCM, 8 steps), Lightning and Hyper-SD (4 steps) add their LoRA to model "
                "and CLIP and force cfg 1, sharpness 0, adaptive cfg 1 and no ADM scaling (Extreme Speed also switches "
                "the model to LCM sampling). Connect steps, cfg, sampler_name and scheduler to the sampler. "
                "The MODEL output already includes Fooocus Guidance with the effective settings (no extra Guidance "
                "node needed). Put LoRA Stack before this node, as Fooocus applies user LoRAs first."
            ),
            inputs=[
                io.Model.Input("model", tooltip="The SDXL model (after the LoRA stack)."),
                io.Clip.Input("clip", tooltip="The CLIP of the checkpoint (performance LoRAs patch it too)."),
                io.Combo.Input("performance", options=list(perf.PERFORMANCE_NAMES), default=perf.DEFAULT_PERFORMANCE,
                               tooltip="Fooocus preset: Quality 60 steps, Speed 30, Extreme Speed 8 (LCM LoRA), "
                                       "Lightning 4, Hyper-SD 4. The LoRA presets override cfg, sampler, scheduler, "
                                       "sharpness and ADM."),
                io.Float.Input("cfg", default=perf.DEFAULT_CFG, min=1.0, max=30.0, step=0.1, round=0.01,
                               tooltip="Guidance scale for Speed/Quality (Fooocus default 4). The LoRA presets use 1."),
                io.Combo.Input("sampler_name", options=comfy.samplers.KSampler.SAMPLERS, default=perf.DEFAULT_SAMPLER,
                               tooltip="Sampler for Speed/Quality (Fooocus default dpmpp_2m_sde_gpu)."),
                io.Combo.Input("scheduler", options=comfy.samplers.KSampler.SCHEDULERS, default=perf.DEFAULT_SCHEDULER,
                               tooltip="Scheduler for Speed/Quality (Fooocus default karras)."),
                *_guidance_inputs(True),
                advanced(io.Int.Input("steps_override", default=0, min=0, max=200,
                                      tooltip="Fooocus 'Forced Overwrite of Sampling Step': 0 = the preset's steps.")),
                *lora_inputs,
            ],
            outputs=[
                io.Model.Output(display_name="model",
                                tooltip="The model with the preset's LoRA / LCM sampling and Fooocus Guidance."),
                io.Clip.Output(display_name="clip", tooltip="The CLIP with the preset's LoRA."),
                io.Int.Output(display_name="steps", tooltip="The preset's steps (connect to the sampler's steps)."),
                io.Float.Output(display_name="cfg", tooltip="The effective cfg (1 for the LoRA presets)."),
                io.Combo.Output(display_name="sampler_name", options=SAMPLER_OPTIONS,
                                tooltip="The effective sampler (lcm, euler, dpmpp_sde_gpu for the LoRA presets)."),
                io.Combo.Output(display_name="scheduler", options=SCHEDULER_OPTIONS,
                                tooltip="The effective scheduler (sgm_uniform for Extreme Speed and Lightning)."),
            ],
        )

    @classmethod
    def execute(cls, model, clip, performance=perf.DEFAULT_PERFORMANCE, cfg=perf.DEFAULT_CFG,
                sampler_name=perf.DEFAULT_SAMPLER, scheduler=perf.DEFAULT_SCHEDULER,
                sharpness=perf.DEFAULT_SHARPNESS, adaptive_cfg=perf.DEFAULT_ADAPTIVE_CFG,
                adm_positive=perf.DEFAULT_ADM_POSITIVE, adm_negative=perf.DEFAULT_ADM_NEGATIVE,
                adm_end=perf.DEFAULT_ADM_END, steps_override=0, **lora_names) -> io.NodeOutput:
        s = perf.resolve_sampling_settings(
            performance, cfg=cfg, sharpness=sharpness, sampler=sampler_name, scheduler=scheduler,
            adaptive_cfg=adaptive_cfg, adm_pos=adm_positive, adm_neg=adm_negative, adm_end=adm_end,
            steps_override=int(steps_override) or None)
        preset = perf.get_performance(performance)
        for lora in s.loras:
            inp = next(k for k, p in PERFORMANCE_LORA_INPUTS.items() if p == preset.name)
            name = lora_names.get(inp) or lora.filename
            model, clip = apply_lora(model, clip, name, lora.weight, f"Fooocus Performance ({preset.name})")
        if s.model_sampling is not None:
            model = _patch_model_sampling(model, s.model_sampling)
        source = f"Fooocus Performance ({preset.name})"
        model = apply_fooocus_guidance(model, _settings(s.sharpness, s.adaptive_cfg, s.adm_positive, s.adm_negative,
                                                        s.adm_end, source))
        log.info("%s: steps %d, cfg %g, %s / %s", source, s.steps, s.cfg, s.sampler, s.final_scheduler)
        return io.NodeOutput(model, clip, s.steps, s.cfg, s.sampler, s.final_scheduler)


def _patch_model_sampling(model, kind: str):
    """ComfyUI's ModelSamplingDiscrete node logic (an object patch on a clone): 'lcm' = the distilled
    50-step table with LCM's denoise (Fooocus ``patch_samplers``)."""
    from comfy_extras.nodes_model_advanced import ModelSamplingDiscrete

    if kind != "lcm":
        raise ValueError(f"model_sampling: only 'lcm' is supported here, got {kind!r}")
    return ModelSamplingDiscrete().patch(model, "lcm", False)[0]


class FooocusLoraStack(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        inputs = [
            io.Model.Input("model", tooltip="The SDXL model from the checkpoint."),
            io.Clip.Input("clip", tooltip="The CLIP from the checkpoint (LoRAs patch it with the same weight)."),
        ]
        files = lora_files()
        for i in range(1, LORA_SLOTS + 1):
            default = DEFAULT_USER_LORA if i == 1 and DEFAULT_USER_LORA in files else NONE
            weight = DEFAULT_USER_LORA_WEIGHT if default != NONE else 1.0
            inputs.append(_lora_combo(f"lora_{i}", default, f"LoRA {i} from models/loras, or None (skipped). "
                                      "Fooocus's default is the SDXL offset LoRA at 0.1.", with_none=True))
            inputs.append(io.Float.Input(f"weight_{i}", default=weight, min=-2.0, max=2.0, step=0.01,
                                         tooltip=f"Weight of LoRA {i} on model and CLIP (Fooocus range -2..2; "
                                                 "0 = off)."))
        return io.Schema(
            node_id="FooocusInpaint_LoraStack",
            display_name="Fooocus LoRA Stack",
            category=CATEGORY,
            description=(
                "Fooocus's five LoRA slots: applies each chosen LoRA to the model and the CLIP, in order. As in "
                "Fooocus, a LoRA that does not fit the model (more than 12 keys without a match) is skipped with a "
                "warning in the log instead of failing."
            ),
            inputs=inputs,
            outputs=[
                io.Model.Output(display_name="model", tooltip="The model with the LoRAs (a copy)."),
                io.Clip.Output(display_name="clip", tooltip="The CLIP with the LoRAs (a copy)."),
            ],
        )

    @classmethod
    def execute(cls, model, clip, **slots) -> io.NodeOutput:
        for i in range(1, LORA_SLOTS + 1):
            name = slots.get(f"lora_{i}", NONE)
            weight = float(slots.get(f"weight_{i}", 1.0))
            if not name or name == NONE:
                continue
            model, clip = apply_lora(model, clip, name, weight, f"Fooocus LoRA Stack (slot {i})")
        return io.NodeOutput(model, clip)


MENU_ORDER = 25
NODES = [FooocusLoraStack, FooocusPerformance, FooocusGuidance]
