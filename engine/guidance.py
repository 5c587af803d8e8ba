"""Fooocus guidance maths: sharpness, adaptive CFG, ADM sizes/scheduling, denoise truncation, switch step.

Fooocus counterparts (2.5.5): ``modules/patch.py`` (``patched_sampling_function``, ``compute_cfg``,
``sdxl_encode_adm_patched``, ``timed_adm``, ``patched_unet_forward``), ``modules/default_pipeline.py``
(``calculate_sigmas_all``, ``calculate_sigmas``) and ``modules/async_worker.py`` (``apply_overrides``).
See spec ``fooocus-pipeline.md`` §1.8, §5, §7.

Everything here is pure: the ComfyUI nodes compute the discrete timestep ``t`` (``model_sampling.timestep``),
pass ComfyUI's scheduler as a callable, and call these functions.
"""
from __future__ import annotations

import logging
import math
import numbers
from collections.abc import Callable
from typing import NamedTuple

import torch

from .anisotropic import adaptive_anisotropic_filter

__all__ = [
    "MAX_TIMESTEP",
    "DISCARD_PENULTIMATE_SIGMA_SAMPLERS",
    "progress_from_timestep",
    "sharpness_alpha",
    "sharpen_positive_eps",
    "fooocus_cfg",
    "fooocus_guided_eps",
    "round_to_64",
    "adm_sizes",
    "use_scaled_adm",
    "SigmaPlan",
    "truncated_sigma_count",
    "truncate_sigmas",
    "switch_step",
]

logger = logging.getLogger(__name__)

#: Largest discrete timestep of the SDXL schedule; ``progress = 1 - t / 999``.
MAX_TIMESTEP: float = 999.0
#: Samplers for which Fooocus computes one extra step and drops the penultimate sigma.
DISCARD_PENULTIMATE_SIGMA_SAMPLERS: tuple[str, ...] = ("dpm_2", "dpm_2_ancestral")

Number = int | float


def _finite(value: object, name: str) -> float:
    """A finite Python float from a real number or a 1-element tensor."""
    if isinstance(value, torch.Tensor) and value.numel() == 1 and not value.dtype == torch.bool:
        value = value.reshape(()).item()
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ValueError(f"{name} must be a real number, got {value!r}")
    v = float(value)
    if not math.isfinite(v):
        raise ValueError(f"{name} must be finite, got {value!r}")
    return v


def _positive_int(value: object, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise ValueError(f"{name} must be an int >= 1, got {value!r}")
    return int(value)


def _progress_value(progress: float | torch.Tensor) -> float | torch.Tensor:
    """A float, or a tensor broadcastable against ``[B, C, H, W]`` (0-d, 1 element, or ``[B]``)."""
    if isinstance(progress, torch.Tensor):
        if progress.numel() == 1:
            return float(progress.reshape(()).item())
        if progress.ndim == 1:
            return progress.reshape(-1, 1, 1, 1)
        raise ValueError(
            f"progress must be a float, a 1-element tensor or a [B] tensor, got {tuple(progress.shape)}"
        )
    return _finite(progress, "progress")


def progress_from_timestep(t: float | torch.Tensor) -> float | torch.Tensor:
    """Fooocus's diffusion progress ``1 - t / 999`` (0 at pure noise, 1 at t = 0).

    ``t``: the discrete timestep of the current model call, a number in [0, 999] (returns a Python float),
    or a tensor (returns a tensor of the same shape and dtype, computed in that dtype).
    Fooocus: ``modules/patch.py`` ``patched_unet_forward`` (``global_diffusion_progress``).
    """
    if isinstance(t, torch.Tensor):
        if not t.is_floating_point():
            t = t.to(torch.float32)
        return 1.0 - t / MAX_TIMESTEP
    v = _finite(t, "t")
    if not 0.0 <= v <= MAX_TIMESTEP:
        raise ValueError(f"t must be in [0, 999], got {t!r}")
    return 1.0 - v / MAX_TIMESTEP


def sharpness_alpha(sharpness: float, progress: float) -> float:
    """``alpha = 0.001 * sharpness * progress``, the weight of the filtered eps.

    Fooocus: ``modules/patch.py`` ``patched_sampling_function`` (sharpness 2 gives at most 0.002).
    """
    return 0.001 * _finite(sharpness, "sharpness") * _finite(progress, "progress")


def _check_same(a: torch.Tensor, b: torch.Tensor, na: str, nb: str) -> None:
    for t, n in ((a, na), (b, nb)):
        if not isinstance(t, torch.Tensor) or not t.is_floating_point():
            raise ValueError(f"{n} must be a floating-point torch.Tensor, got {type(t).__name__}")
    if a.shape != b.shape:
        raise ValueError(f"{nb} must have the shape of {na} {tuple(a.shape)}, got {tuple(b.shape)}")


def sharpen_positive_eps(
    eps_pos: torch.Tensor, x0_pos: torch.Tensor, sharpness: float, progress: float
) -> torch.Tensor:
    """Blend the positive eps with its anisotropic-filtered version: ``alpha*filter(eps) + (1-alpha)*eps``.

    ``eps_pos``: float ``[B, 4, H, W]`` (``x - x0_pos``); ``x0_pos``: the positive x0 prediction, same shape
    (the filter's guide, standardised per sample); ``sharpness`` >= 0 (UI 0..30, default 2.0);
    ``progress`` in [0, 1] from :func:`progress_from_timestep`. ``alpha = 0.001*sharpness*progress``; when
    ``alpha == 0`` the filter is skipped and ``eps_pos`` itself is returned. Same shape/dtype as ``eps_pos``.
    Fooocus: ``modules/patch.py:226-253`` ``patched_sampling_function``
    (``adaptive_anisotropic_filter(x=positive_eps, g=positive_x0)``).
    """
    _check_same(eps_pos, x0_pos, "eps_pos", "x0_pos")
    alpha = sharpness_alpha(sharpness, progress)
    if alpha == 0.0:
        return eps_pos
    degraded = adaptive_anisotropic_filter(eps_pos, x0_pos)
    return degraded * alpha + eps_pos * (1.0 - alpha)


def fooocus_cfg(
    eps_pos_w: torch.Tensor,
    eps_neg: torch.Tensor,
    cfg: float,
    adaptive_cfg: float,
    progress: float | torch.Tensor,
) -> torch.Tensor:
    """Fooocus CFG with "CFG mimicking from TSNR" (adaptive CFG).

    ``real = eps_neg + cfg*(eps_pos_w - eps_neg)``. If ``cfg > adaptive_cfg``:
    ``mimic = eps_neg + adaptive_cfg*(eps_pos_w - eps_neg)`` and the result is
    ``real*progress + mimic*(1-progress)``; otherwise ``real``.
    ``eps_pos_w``: the (sharpened) positive eps, float ``[B, C, H, W]``; ``eps_neg``: the negative eps, same
    shape; ``progress``: float in [0, 1], or a ``[B]`` tensor. Returns eps (the caller's x0 is ``x - eps``).
    Fooocus: ``modules/patch.py:212-223`` ``compute_cfg``.
    """
    _check_same(eps_pos_w, eps_neg, "eps_pos_w", "eps_neg")
    cfg_v = _finite(cfg, "cfg")
    m = _finite(adaptive_cfg, "adaptive_cfg")
    prog = _progress_value(progress)
    real = eps_neg + cfg_v * (eps_pos_w - eps_neg)
    if cfg_v > m:
        mimicked = eps_neg + m * (eps_pos_w - eps_neg)
        return real * prog + mimicked * (1.0 - prog)
    return real


def fooocus_guided_eps(
    eps_pos: torch.Tensor,
    eps_neg: torch.Tensor,
    x0_pos: torch.Tensor,
    *,
    cfg: float,
    sharpness: float,
    adaptive_cfg: float,
    progress: float,
) -> torch.Tensor:
    """The whole guidance step of Fooocus's sampling function, on eps.

    ``cfg`` close to 1 (``math.isclose``, the test ComfyUI uses to skip the negative): returns ``eps_pos``
    unchanged (no sharpness, no mimicking; ``eps_neg`` is ignored and may be garbage). Otherwise
    :func:`sharpen_positive_eps` then :func:`fooocus_cfg`. All tensors float ``[B, C, H, W]``, same shape;
    returns eps of that shape. Fooocus: ``modules/patch.py:226-253`` ``patched_sampling_function``.
    """
    cfg_v = _finite(cfg, "cfg")
    if math.isclose(cfg_v, 1.0):
        if not isinstance(eps_pos, torch.Tensor):
            raise ValueError(f"eps_pos must be a torch.Tensor, got {type(eps_pos).__name__}")
        return eps_pos
    eps_w = sharpen_positive_eps(eps_pos, x0_pos, sharpness, progress)
    return fooocus_cfg(eps_w, eps_neg, cfg_v, adaptive_cfg, progress)


def round_to_64(x: Number) -> int:
    """``int(round(x / 64)) * 64`` with Python's round (ties to even: 32 -> 0, 96 -> 128, 160 -> 128).

    Fooocus: ``modules/patch.py`` ``round_to_64`` (target sizes of the SDXL ADM).
    """
    v = _finite(x, "x")
    return int(round(v / 64.0)) * 64


def adm_sizes(width: int, height: int, scale: float) -> tuple[int, int, int, int]:
    """ADM size conditioning ``(width', height', target_width, target_height)`` of one prompt.

    ``width``/``height``: the pixel size, i.e. latent size x 8 (ints >= 1); ``scale``: the ADM scaler
    (1.5 for the positive, 0.8 for the negative, 1.0 for the unscaled copy).
    Returns ``(int(width*scale), int(height*scale), round_to_64(width), round_to_64(height))``. The
    embedding order inside the ADM is ``[h', w', 0, 0, target_h, target_w]`` (ComfyUI ``SDXL.encode_adm``).
    Fooocus: ``modules/patch.py:265-294`` ``sdxl_encode_adm_patched``.
    """
    w = _positive_int(width, "width")
    h = _positive_int(height, "height")
    s = _finite(scale, "scale")
    if s <= 0:
        raise ValueError(f"scale must be > 0, got {scale!r}")
    return int(w * s), int(h * s), round_to_64(w), round_to_64(h)


def use_scaled_adm(t: float | torch.Tensor, adm_scaler_end: float) -> bool:
    """Whether the scaled ADM vector is used at discrete timestep ``t``: ``t > 999 * (1 - adm_scaler_end)``.

    ``t``: number or 1-element tensor in [0, 999]; ``adm_scaler_end`` in [0, 1] (default 0.3: scaled while
    t > 699.3; 0.0, as in the LCM/Lightning/Hyper-SD presets: never). Fooocus: ``modules/patch.py:330-336``
    ``timed_adm``.
    """
    if isinstance(t, torch.Tensor):
        if t.numel() < 1:
            raise ValueError("t must not be empty")
        t = float(t.reshape(-1)[0].item())
    tv = _finite(t, "t")
    end = _finite(adm_scaler_end, "adm_scaler_end")
    if not 0.0 <= end <= 1.0:
        raise ValueError(f"adm_scaler_end must be in [0, 1], got {adm_scaler_end!r}")
    return tv > MAX_TIMESTEP * (1.0 - end)


class SigmaPlan(NamedTuple):
    """How Fooocus builds the sigma list for ``steps`` and ``denoise``.

    - ``new_steps``: ``steps`` when not truncated, else ``int(steps / denoise)``;
    - ``schedule_steps``: the step count passed to the scheduler (``new_steps + 1`` for dpm_2 samplers);
    - ``drop_penultimate``: drop the second-to-last sigma of the schedule (dpm_2 / dpm_2_ancestral);
    - ``truncated``: keep only the last ``keep`` sigmas;
    - ``keep``: ``steps + 1``, the length of the final sigma list.
    """

    new_steps: int
    schedule_steps: int
    drop_penultimate: bool
    truncated: bool
    keep: int


def truncated_sigma_count(steps: int, denoise: float | None, sampler_name: str) -> SigmaPlan:
    """Step counts of Fooocus's denoise handling (see :class:`SigmaPlan`).

    ``denoise`` None or > 0.9999: the full schedule of ``steps``; otherwise (``0 < denoise <= 0.9999``)
    ``new_steps = int(steps / denoise)`` (Python float division) and the last ``steps + 1`` sigmas are kept.
    ``sampler_name`` in ``dpm_2``/``dpm_2_ancestral``: one extra step, penultimate sigma dropped.
    Fooocus: ``modules/default_pipeline.py:307`` ``calculate_sigmas`` / ``calculate_sigmas_all``.
    """
    n = _positive_int(steps, "steps")
    if not isinstance(sampler_name, str):
        raise ValueError(f"sampler_name must be a str, got {sampler_name!r}")
    if denoise is None:
        truncated = False
    else:
        d = _finite(denoise, "denoise")
        if not 0.0 < d <= 1.0:
            raise ValueError(f"denoise must be in (0, 1], got {denoise!r}")
        truncated = not d > 0.9999
    new_steps = int(n / float(denoise)) if truncated else n
    drop = sampler_name in DISCARD_PENULTIMATE_SIGMA_SAMPLERS
    return SigmaPlan(
        new_steps=new_steps,
        schedule_steps=new_steps + 1 if drop else new_steps,
        drop_penultimate=drop,
        truncated=truncated,
        keep=n + 1,
    )


def truncate_sigmas(
    full_sigmas_fn: Callable[[int], torch.Tensor],
    steps: int,
    denoise: float | None,
    sampler: str,
) -> torch.Tensor:
    """The sigma list Fooocus samples with, for ``steps`` and ``denoise``.

    ``full_sigmas_fn(n)`` must return the scheduler's 1-D tensor of ``n + 1`` sigmas (descending, ending in
    0), e.g. ``lambda n: comfy.samplers.calculate_sigmas(model_sampling, scheduler, n)``. Returns a 1-D
    tensor of ``steps + 1`` sigmas (same dtype/device as the schedule): the full schedule, with the
    penultimate sigma dropped for dpm_2 samplers, then (``denoise <= 0.9999``) its last ``steps + 1``.
    Fooocus: ``modules/default_pipeline.py:307`` ``calculate_sigmas``.
    """
    if not callable(full_sigmas_fn):
        raise ValueError(f"full_sigmas_fn must be callable, got {type(full_sigmas_fn).__name__}")
    plan = truncated_sigma_count(steps, denoise, sampler)
    sigmas = full_sigmas_fn(plan.schedule_steps)
    if not isinstance(sigmas, torch.Tensor):
        sigmas = torch.as_tensor(sigmas)
    if sigmas.ndim != 1 or sigmas.shape[0] != plan.schedule_steps + 1:
        raise ValueError(
            f"full_sigmas_fn({plan.schedule_steps}) must return a 1-D tensor of {plan.schedule_steps + 1} "
            f"sigmas, got shape {tuple(sigmas.shape)}"
        )
    if plan.drop_penultimate:
        sigmas = torch.cat([sigmas[:-2], sigmas[-1:]])
    if plan.truncated:
        sigmas = sigmas[-plan.keep :]
    return sigmas


def switch_step(steps: int, refiner_switch: float) -> int:
    """Refiner switch index ``int(round(steps * refiner_switch))`` (Python round, ties to even).

    ``steps`` int >= 1; ``refiner_switch`` in [0, 1]. E.g. 8*0.8 -> 6, 4*0.8 -> 3, 30*0.8 -> 24, 60*0.8 -> 48.
    Fooocus: ``modules/async_worker.py:629`` ``apply_overrides``.
    """
    n = _positive_int(steps, "steps")
    r = _finite(refiner_switch, "refiner_switch")
    if not 0.0 <= r <= 1.0:
        raise ValueError(f"refiner_switch must be in [0, 1], got {refiner_switch!r}")
    return int(round(n * r))
