"""ComfyUI glue for Fooocus image prompts (spec §8): ControlNets with softness, IP-Adapter attention.

Everything is attached to ``ModelPatcher`` clones or to copies of conditioning lists; nothing global.

- :func:`apply_controlnet`: ComfyUI's ``ControlNetApplyAdvanced`` logic (strength = weight, start 0,
  end = stop_at, positive AND negative, chained after any previous ControlNet).
- :func:`add_image_prompt_wrapper`: one ``APPLY_MODEL`` wrapper per clone that (a) multiplies ControlNet
  residual ``i`` of ``n`` (input-block outputs then the middle block; n = 10 on SDXL) by
  ``1 - softness*(1 - i/(n-1))`` (Fooocus ``patch.py`` ControlNet softness) and (b) puts Fooocus's
  ``progress = 1 - t/999`` (t from the model's own ``model_sampling``) into ``transformer_options``.
- :func:`add_ip_adapters`: ``set_model_attn2_replace`` on every cross-attention block; the block's own
  text K/V are concatenated with each active image prompt's ``k_ip``/``v_ip`` (scaled by
  :func:`engine.ip_adapter.scale_ip_kv`) along the tokens, in one softmax. Each replace function carries
  :data:`IP_PATCH_MARK` so the refiner switch can drop exactly these.

Fooocus: modules/async_worker.py ``apply_control_nets``; modules/patch.py (softness);
extras/ip_adapter.py ``patch_model``.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field

import torch

from comfy.ldm.modules.attention import optimized_attention
from comfy.patcher_extension import WrappersMP

from ..engine import ip_adapter as ipa
from ..engine.safe_pickle import load_model_file
from .patching import IP_PATCH_MARK  # one marker, shared with the refiner switch

log = logging.getLogger(__name__)

WRAPPER_KEY = "fooocus_image_prompt"
PROGRESS_KEY = "fooocus_progress"
DEFAULT_SOFTNESS = 0.25


# -- ControlNets --------------------------------------------------------------------------------------
def apply_controlnet(positive, negative, control_net, hint: torch.Tensor, strength: float, stop_at: float,
                     vae=None):
    """ComfyUI ``ControlNetApplyAdvanced`` (start 0, end ``stop_at``) on both conditionings.

    Args:
        positive, negative: ComfyUI CONDITIONING lists.
        control_net: a ``comfy.controlnet.ControlBase`` (ControlNet or control-LoRA).
        hint: IMAGE ``[B, H, W, 3]`` float in [0, 1] (the preprocessed hint at the generation size).
        strength: the image prompt weight; 0 returns the inputs unchanged.
        stop_at: end percent in [0, 1].
    Returns:
        ``(positive, negative)`` new lists (dicts copied).
    """
    if strength == 0:
        return positive, negative
    control_hint = hint.movedim(-1, 1)
    cnets: dict = {}
    out = []
    for conditioning in (positive, negative):
        c = []
        for t in conditioning:
            d = t[1].copy()
            prev = d.get("control", None)
            if prev in cnets:
                c_net = cnets[prev]
            else:
                c_net = control_net.copy().set_cond_hint(control_hint, strength, (0.0, float(stop_at)), vae=vae)
                c_net.set_previous_controlnet(prev)
                cnets[prev] = c_net
            d["control"] = c_net
            d["control_apply_to_uncond"] = False
            c.append([t[0], d])
        out.append(c)
    return out[0], out[1]


CONTROLNET_ATTACHMENT = "fooocus_controlnet_prompts"


@dataclass(frozen=True)
class ControlNetPrompt:
    """One applied PyraCanny/CPDS prompt: the ControlNet, its hint IMAGE, weight and stop_at."""

    control_net: object
    hint: torch.Tensor
    weight: float
    stop_at: float
    vae: object = None


def remember_controlnet(model, prompt: ControlNetPrompt) -> None:
    """Record ``prompt`` on the model clone ``model`` (appended to earlier ones), see :func:`reapply_controlnets`."""
    model.set_attachments(CONTROLNET_ATTACHMENT, tuple(model.attachments.get(CONTROLNET_ATTACHMENT, ())) + (prompt,))


def reapply_controlnets(model, positive, negative):
    """Apply the ControlNet prompts recorded on ``model`` to fresh conditionings (in recording order).

    For samplers that build their conditioning themselves (Fooocus Sampler's per-image ``prompt``):
    the ControlNet nodes already returned controlled conds, but a per-image re-encode loses them.
    """
    for p in model.attachments.get(CONTROLNET_ATTACHMENT, ()):
        positive, negative = apply_controlnet(positive, negative, p.control_net, p.hint, p.weight, p.stop_at, p.vae)
    return positive, negative


def softness_factors(n: int, softness: float) -> list[float]:
    """Fooocus ControlNet softness: factor ``1 - softness*(1 - i/(n-1))`` for residual ``i`` of ``n``."""
    if n <= 1:
        return [1.0] * n
    return [1.0 - softness * (1.0 - i / (n - 1)) for i in range(n)]


def soften_control(control: dict | None, softness: float) -> dict | None:
    """A new control dict with the ControlNet residuals scaled by :func:`softness_factors`.

    ComfyUI's ControlNet returns ``output`` (one residual per UNet input block, shallowest first) and
    ``middle``; Fooocus numbers them ``0..n-1`` in that order.  Other keys (T2I ``input``) pass through.
    Tensors are not modified in place (ControlNets may share them).
    """
    if not control or softness == 0:
        return control
    outs = list(control.get("output", []))
    mids = list(control.get("middle", []))
    f = softness_factors(len(outs) + len(mids), softness)
    new = dict(control)
    new["output"] = [None if x is None else x * f[i] for i, x in enumerate(outs)]
    new["middle"] = [None if x is None else x * f[len(outs) + j] for j, x in enumerate(mids)]
    return new


def add_image_prompt_wrapper(model, softness: float = DEFAULT_SOFTNESS):
    """A clone of ``model`` with the softness / progress ``APPLY_MODEL`` wrapper (replaces an earlier one)."""
    if not 0.0 <= float(softness) <= 1.0:
        raise ValueError(f"softness must be in [0, 1], got {softness!r}")
    softness = float(softness)
    m = model.clone()

    def apply_model(executor, x, t, c_concat=None, c_crossattn=None, control=None, transformer_options={},
                    **kwargs):  # noqa: B006 - ComfyUI's signature
        base = executor.class_obj
        step_t = base.model_sampling.timestep(t).float()
        opts = dict(transformer_options)
        opts[PROGRESS_KEY] = float(1.0 - step_t.reshape(-1)[0].item() / 999.0)
        return executor(x, t, c_concat, c_crossattn, soften_control(control, softness), opts, **kwargs)

    m.remove_wrappers_with_key(WrappersMP.APPLY_MODEL, WRAPPER_KEY)
    m.add_wrapper_with_key(WrappersMP.APPLY_MODEL, WRAPPER_KEY, apply_model)
    return m


# -- IP-Adapter ---------------------------------------------------------------------------------------
@dataclass
class IPAdapter:
    """A loaded IP-Adapter plus (Resampler + flat K/V list) and Fooocus's negative tokens."""

    image_proj: dict
    kv_weights: list
    negative: torch.Tensor
    name: str = ""
    shape: ipa.ResamplerShape | None = field(default=None)

    def __repr__(self) -> str:
        return f"IPAdapter({self.name!r}, {len(self.kv_weights) // 2} cross-attention layers)"


def load_ip_adapter(path: str, negative_path: str, name: str = "") -> IPAdapter:
    """Load ``ip-adapter-plus*_sdxl_vit-h.bin`` (safe unpickling) and ``fooocus_ip_negative.safetensors``.

    Also accepts a safetensors re-save with ``image_proj.*`` / ``ip_adapter.*`` prefixed keys.
    """
    obj, _, _ = load_model_file(path, what="IP-Adapter", expected="a dict with image_proj and ip_adapter")
    if isinstance(obj, dict) and "image_proj" not in obj:
        flat = obj
        obj = {"image_proj": {}, "ip_adapter": {}}
        for k, v in flat.items():
            top, _, rest = k.partition(".")
            if top in obj:
                obj[top][rest] = v
    if not isinstance(obj, dict) or not obj.get("image_proj") or not obj.get("ip_adapter"):
        raise ValueError(f"IP-Adapter {path!r}: expected 'image_proj' and 'ip_adapter' weights")
    proj = {k: v.float() for k, v in obj["image_proj"].items()}
    shape = ipa.resampler_shape(proj)
    kv = [w.float() for w in ipa.ordered_kv_weights(obj["ip_adapter"])]
    neg_sd, _, _ = load_model_file(negative_path, what="fooocus_ip_negative", expected="a dict with 'data'")
    neg = ipa.negative_tokens(neg_sd)
    if neg.shape[2] != kv[0].shape[1]:
        raise ValueError(f"fooocus_ip_negative has width {neg.shape[2]} but the IP-Adapter K/V layers take "
                         f"{kv[0].shape[1]}")
    return IPAdapter(proj, kv, neg, name=name, shape=shape)


def cross_attention_keys(model) -> list[tuple[str, int, int]]:
    """The ``(block_name, id, index)`` of every cross-attention transformer block, in Fooocus's order.

    The IP-Adapter's layers follow diffusers' ``attn_processors`` order: down (input) blocks, up
    (output) blocks, then the middle block; each by block id then transformer index.
    """
    unet = model.model.diffusion_model
    keys: list[tuple[str, int, int]] = []
    groups = [("input", list(unet.input_blocks)), ("output", list(unet.output_blocks)),
              ("middle", [unet.middle_block])]
    for name, blocks in groups:
        for bid, block in enumerate(blocks):
            for layer in block:
                tbs = getattr(layer, "transformer_blocks", None)
                if tbs is None:
                    continue
                for idx, tb in enumerate(tbs):
                    if getattr(tb, "attn2", None) is not None:
                        keys.append((name, bid, idx))
    return keys


@dataclass
class EncodedImagePrompt:
    """Per cross-attention block ``(k, v)`` for the image (cond) and the negative (uncond), plus settings."""

    cond: list
    uncond: list
    stop_at: float
    weight: float
    _on_device: dict = field(default_factory=dict, repr=False)

    def layer(self, j: int, like: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(k_cond, v_cond, k_uncond, v_uncond)`` of block ``j`` on ``like``'s device/dtype (cached)."""
        key = (j, like.device, like.dtype)
        got = self._on_device.get(key)
        if got is None:
            (kc, vc), (ku, vu) = self.cond[j], self.uncond[j]
            got = self._on_device[key] = tuple(t.to(like) for t in (kc, vc, ku, vu))
        return got


def encode_ip(ip: IPAdapter, clip_vision_output, stop_at: float, weight: float) -> EncodedImagePrompt:
    """Resampler on CLIP-ViT-H ``penultimate_hidden_states`` and the K/V projections of image and negative.

    Fooocus: extras/ip_adapter.py ``preprocess``.
    """
    hidden = clip_vision_output["penultimate_hidden_states"]
    with torch.no_grad():
        tokens = ipa.resampler_forward(ip.image_proj, hidden.float().cpu())
        cond = ipa.project_kv(ip.kv_weights, tokens[:1])
        uncond = ipa.project_kv(ip.kv_weights, ip.negative)
    return EncodedImagePrompt(cond, uncond, float(stop_at), float(weight))


def add_ip_adapters(model, prompts: list[EncodedImagePrompt]):
    """A clone of ``model`` whose cross-attention also attends to each image prompt's tokens.

    Image prompts already attached by an earlier call are kept (all act in the same softmax).
    The model must carry the :func:`add_image_prompt_wrapper` (for ``progress``); it is added with
    the default softness when missing.
    """
    if not prompts:
        return model
    has_wrapper = bool(model.wrappers.get(WrappersMP.APPLY_MODEL, {}).get(WRAPPER_KEY))
    m = model.clone() if has_wrapper else add_image_prompt_wrapper(model)
    keys = cross_attention_keys(m)
    existing = m.model_options.get("transformer_options", {}).get("patches_replace", {}).get("attn2", {})
    first = existing.get(keys[0]) if keys else None
    if first is not None and getattr(first, IP_PATCH_MARK, False):
        prompts = list(getattr(first, "prompts", [])) + list(prompts)  # chained nodes add up, as in Fooocus
    n_layers = len(prompts[0].cond)
    if n_layers != len(keys):
        raise ValueError(f"the IP-Adapter has {n_layers} cross-attention layers but the model has {len(keys)} "
                         "(an IP-Adapter for another model?)")
    for j, key in enumerate(keys):
        m.set_model_attn2_replace(_make_replace(prompts, j), key[0], key[1], key[2])
    return m


def _make_replace(prompts: list[EncodedImagePrompt], j: int):
    def attn2_replace(q, k, v, extra_options):
        progress = extra_options.get(PROGRESS_KEY, 0.0)
        cond_or_uncond = extra_options.get("cond_or_uncond", [0])
        b = q.shape[0]
        ks, vs = [k], [v]
        for p in prompts:
            if not progress < p.stop_at:
                continue
            kc, vc, ku, vu = p.layer(j, q)
            k_ip = ipa.rows_for_chunks(kc, ku, cond_or_uncond, b)
            v_ip = ipa.rows_for_chunks(vc, vu, cond_or_uncond, b)
            if k_ip.shape[2] != k.shape[2]:
                raise ValueError(f"IP-Adapter layer {j}: K width {k_ip.shape[2]} does not match the model's "
                                 f"{k.shape[2]}")
            k_ip, v_ip = ipa.scale_ip_kv(k_ip, v_ip, p.weight)
            ks.append(k_ip)
            vs.append(v_ip)
        kk = torch.cat(ks, dim=1) if len(ks) > 1 else k
        vv = torch.cat(vs, dim=1) if len(vs) > 1 else v
        return optimized_attention(q, kk, vv, extra_options["n_heads"],
                                   attn_precision=extra_options.get("attn_precision"))

    setattr(attn2_replace, IP_PATCH_MARK, True)
    attn2_replace.prompts = tuple(prompts)
    return attn2_replace


def strip_ip_patches(model_options: dict) -> dict:
    """Remove this pack's IP attn2 replaces from a (cloned) ``model_options`` in place; returns it."""
    repl = model_options.get("transformer_options", {}).get("patches_replace", {})
    attn2 = repl.get("attn2")
    if attn2:
        repl["attn2"] = {k: f for k, f in attn2.items() if not getattr(f, IP_PATCH_MARK, False)}
    return model_options

