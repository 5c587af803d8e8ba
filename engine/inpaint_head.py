"""Fooocus InpaintHead: a 5→320-channel 3×3 convolution added after the UNet's input block 0.

File format (``fooocus_inpaint_head.pth``, 52,602 bytes): a ``torch.save`` pickle of
``{"head": tensor (320, 5, 3, 3)}``, no bias. A safetensors file with one tensor named ``head``
is accepted as well.

Forward (Fooocus ``modules/inpaint_worker.py InpaintHead.forward``): pad the input by one pixel on
every side with *replicate* padding, then ``conv2d`` (stride 1, no padding). The input is
``cat([latent_mask, latent_raw * 0.13025], dim=1)``: channel 0 is the latent mask, channels 1-4
the SDXL-scaled masked latent.
"""
from __future__ import annotations

import os
from typing import Mapping

import torch
import torch.nn.functional as F

from .safe_pickle import UnsafeOrCorruptModelFile, load_model_file

__all__ = [
    "InvalidInpaintHead",
    "HEAD_IN_CHANNELS",
    "SDXL_LATENT_SCALE",
    "load_inpaint_head",
    "validate_head",
    "head_feature",
    "check_head_width",
    "save_inpaint_head",
    "make_random_head",
]

HEAD_IN_CHANNELS = 5
#: SDXL ``latent_format.scale_factor`` (``process_latent_in``).
SDXL_LATENT_SCALE = 0.13025


class InvalidInpaintHead(UnsafeOrCorruptModelFile):
    """The file loaded safely but does not hold a Fooocus inpaint head."""


def validate_head(weight, src: str = "inpaint head") -> torch.Tensor:
    """Check an inpaint-head weight and return it as a float32 CPU tensor.

    Args:
        weight: tensor of shape ``(C, 5, 3, 3)`` (``C`` = 320 for SDXL), any float dtype.
        src: name used in error messages.

    Returns:
        float32 tensor ``(C, 5, 3, 3)`` (Fooocus copies the file into a float32 ``nn.Parameter``).

    Raises:
        InvalidInpaintHead (``ValueError``): not a tensor, not floating point, wrong rank, in-channels
        other than 5, kernel other than 3×3, or non-finite values.

    Fooocus counterpart: ``modules/inpaint_worker.py InpaintHead.__init__`` + ``load_state_dict``.
    """
    if not isinstance(weight, torch.Tensor):
        raise InvalidInpaintHead(f"{src}: 'head' must be a tensor, got {type(weight).__name__}")
    if not weight.dtype.is_floating_point:
        raise InvalidInpaintHead(f"{src}: 'head' must be a float tensor, got dtype {weight.dtype}")
    if weight.dim() != 4:
        raise InvalidInpaintHead(
            f"{src}: 'head' must have rank 4 (out_channels, 5, 3, 3), got shape {tuple(weight.shape)}"
        )
    if weight.shape[1] != HEAD_IN_CHANNELS:
        raise InvalidInpaintHead(
            f"{src}: 'head' must take 5 input channels (mask + 4 latent channels), got shape {tuple(weight.shape)}"
        )
    if tuple(weight.shape[2:]) != (3, 3):
        raise InvalidInpaintHead(f"{src}: 'head' must have a 3x3 kernel, got shape {tuple(weight.shape)}")
    w = weight.detach().to(device="cpu", dtype=torch.float32)
    if not bool(torch.isfinite(w).all()):
        raise InvalidInpaintHead(f"{src}: 'head' contains non-finite values")
    return w


def load_inpaint_head(path: str | os.PathLike) -> torch.Tensor:
    """Load ``fooocus_inpaint_head.pth`` (or a safetensors re-save) safely.

    Args:
        path: torch pickle of ``{"head": tensor}`` or safetensors with a tensor ``head``; the
            format is sniffed from the content, and pickles are loaded with ``weights_only=True``.

    Returns:
        float32 CPU tensor ``(C, 5, 3, 3)``, ``C`` = 320 for the Fooocus file.

    Raises:
        ModelFileMissing / UnsafeModelFile / CorruptModelFile (see :mod:`.safe_pickle`), or
        InvalidInpaintHead: no ``"head"`` key, wrong rank / in-channels / kernel. All ``ValueError``.

    Fooocus counterpart: ``modules/inpaint_worker.py`` (``InpaintHead`` + ``torch.load`` of
    ``fooocus_inpaint_head.pth`` in ``InpaintWorker.patch``).
    """
    src = os.fspath(path)
    obj, _meta, _fmt = load_model_file(path, what="inpaint head", expected="a dict {'head': tensor (320, 5, 3, 3)}")
    if not isinstance(obj, Mapping):
        raise InvalidInpaintHead(f"{src}: expected a dict {{'head': tensor (320, 5, 3, 3)}}, got {type(obj).__name__}")
    if "head" not in obj:
        keys = sorted(map(str, obj.keys()))[:8]
        raise InvalidInpaintHead(f"{src}: no 'head' entry; expected {{'head': tensor (320, 5, 3, 3)}}, found keys {keys}")
    return validate_head(obj["head"], src)


def head_feature(
    head_weight: torch.Tensor,
    latent_mask: torch.Tensor,
    latent_raw: torch.Tensor,
    scale: float = SDXL_LATENT_SCALE,
) -> torch.Tensor:
    """Compute the inpaint feature added to ``h`` after UNet input block 0.

    ``feed = cat([latent_mask, latent_raw * scale], 1)``; the head weight is moved to
    ``feed``'s device and dtype; ``feature = conv2d(pad(feed, 1, "replicate"), head_weight)``.

    Args:
        head_weight: ``(C, 5, 3, 3)`` float tensor.
        latent_mask: ``[B or 1, 1, h, w]`` latent mask in {0, 1} (any float dtype/device; it is cast to
            ``latent_raw``'s dtype/device).
        latent_raw: ``[B, 4, h, w]`` raw (unscaled) VAE latent of the masked image; it sets the
            device and dtype of the computation.
        scale: latent scale factor (SDXL ``process_latent_in``: 0.13025).

    Returns:
        ``[B, C, h, w]`` tensor in ``latent_raw``'s dtype and device.

    Raises:
        ValueError: wrong ranks, channel counts, or mismatched spatial size / batch.

    Fooocus counterpart: ``modules/inpaint_worker.py InpaintHead.forward`` and
    ``InpaintWorker.patch`` (``feed = torch.cat([latent_mask, process_latent_in(latent)], dim=1)``).
    """
    if not isinstance(head_weight, torch.Tensor) or head_weight.dim() != 4 or head_weight.shape[1] != HEAD_IN_CHANNELS:
        shp = tuple(head_weight.shape) if isinstance(head_weight, torch.Tensor) else type(head_weight).__name__
        raise ValueError(f"head_weight: expected a tensor (C, 5, 3, 3), got {shp}")
    if not isinstance(latent_raw, torch.Tensor) or latent_raw.dim() != 4 or latent_raw.shape[1] != 4:
        shp = tuple(latent_raw.shape) if isinstance(latent_raw, torch.Tensor) else type(latent_raw).__name__
        raise ValueError(f"latent_raw: expected a tensor [B, 4, h, w], got {shp}")
    if not latent_raw.dtype.is_floating_point:
        raise ValueError(f"latent_raw: expected a float tensor, got dtype {latent_raw.dtype}")
    if not isinstance(latent_mask, torch.Tensor) or latent_mask.dim() != 4 or latent_mask.shape[1] != 1:
        shp = tuple(latent_mask.shape) if isinstance(latent_mask, torch.Tensor) else type(latent_mask).__name__
        raise ValueError(f"latent_mask: expected a tensor [B, 1, h, w], got {shp}")
    if tuple(latent_mask.shape[2:]) != tuple(latent_raw.shape[2:]):
        raise ValueError(
            f"latent_mask: spatial size {tuple(latent_mask.shape[2:])} differs from latent_raw's {tuple(latent_raw.shape[2:])}"
        )
    b = latent_raw.shape[0]
    if latent_mask.shape[0] not in (1, b):
        raise ValueError(f"latent_mask: batch {latent_mask.shape[0]} must be 1 or latent_raw's batch {b}")
    mask = latent_mask.to(device=latent_raw.device, dtype=latent_raw.dtype)
    if mask.shape[0] != b:
        mask = mask.expand(b, -1, -1, -1)
    feed = torch.cat([mask, latent_raw * scale], dim=1)
    w = head_weight.to(device=feed.device, dtype=feed.dtype)
    return F.conv2d(F.pad(feed, (1, 1, 1, 1), mode="replicate"), w, None, 1, 0)


def check_head_width(head_weight: torch.Tensor, model_channels: int) -> None:
    """Check that the head's output width equals the UNet's ``input_blocks[0]`` width.

    Args:
        head_weight: ``(C, 5, 3, 3)`` tensor.
        model_channels: output channels of the model's input block 0 (``conv_in``), 320 for SDXL.

    Raises:
        ValueError: ``C != model_channels`` (e.g. 384 for the SDXL refiner), with a message naming
            both numbers.

    Fooocus counterpart: none (Fooocus only ever applies the head to an SDXL base).
    """
    if not isinstance(head_weight, torch.Tensor) or head_weight.dim() != 4:
        raise ValueError("head_weight: expected a tensor (C, 5, 3, 3)")
    c = int(head_weight.shape[0])
    if c != int(model_channels):
        raise ValueError(
            f"inpaint head file is for a model with {c} channels, but this model's input block 0 has "
            f"{int(model_channels)}; the Fooocus inpaint head only fits SDXL base UNets (320 channels)"
        )


def save_inpaint_head(path: str | os.PathLike, weight: torch.Tensor) -> None:
    """Write a head file: ``torch.save({"head": weight})`` (Fooocus's format), or a safetensors
    file with the single tensor ``head`` when ``path`` ends in ``.safetensors``.

    Args:
        path: destination.
        weight: ``(C, 5, 3, 3)`` float tensor (saved in its own dtype).

    Raises:
        ValueError (InvalidInpaintHead): bad ``weight``.

    Fooocus counterpart: none (Fooocus only reads the file).
    """
    validate_head(weight, "weight")
    t = weight.detach().cpu().contiguous()
    p = os.fspath(path)
    if p.lower().endswith(".safetensors"):
        from safetensors.torch import save_file

        save_file({"head": t}, p, metadata={"format": "fooocus-inpaint-head"})
    else:
        torch.save({"head": t}, p)


def make_random_head(channels: int = 320, seed: int = 0) -> torch.Tensor:
    """Deterministic random head weight ``(channels, 5, 3, 3)`` float32 (std 0.05), for tests.

    Fooocus counterpart: none.
    """
    if int(channels) < 1:
        raise ValueError(f"channels: expected a positive int, got {channels!r}")
    g = torch.Generator().manual_seed(int(seed))
    return torch.randn((int(channels), HEAD_IN_CHANNELS, 3, 3), generator=g, dtype=torch.float32) * 0.05
