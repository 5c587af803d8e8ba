"""Fooocus inpaint "patch" files: a dense 8-bit-quantised weight delta for the SDXL UNet.

File format (``inpaint.fooocus.patch`` = engine v1, ``inpaint_v25.fooocus.patch`` = v2.5,
``inpaint_v26.fooocus.patch`` = v2.6): a ``torch.save`` pickle of a dict
``{unet_key: (w_u8, w_min, w_max)}`` where

- ``unet_key`` is the model's own state-dict name, e.g. ``diffusion_model.input_blocks.0.0.weight``
  (the keys of ComfyUI's ``BaseModel.state_dict()``, which ``ModelPatcher.add_patches`` uses);
- ``w_u8`` is a ``torch.uint8`` tensor with the weight's shape;
- ``w_min`` / ``w_max`` are float tensors (usually 0-d or shape ``[1]``; any shape that broadcasts
  to ``w_u8.shape`` is accepted), or python floats.

Decoding (Fooocus ``modules/patch.py`` ``calculate_weight_patched``, patch type ``'fooocus'``)::

    delta = (float32(w_u8) / 255) * (float32(w_max) - float32(w_min)) + float32(w_min)
    W += strength * delta.to(W.dtype)        # skipped with a warning when shapes differ

Safetensors re-save (this pack's own flat layout, for users who convert the pickles): each entry
``key`` becomes three tensors ``<key>.u8`` (uint8), ``<key>.min`` and ``<key>.max`` (float32;
0-d values are written with shape ``[1]``), with header metadata ``{"format": "fooocus-inpaint-patch", "format_version": "1"}``.
"""
from __future__ import annotations

import logging
import math
import os
import re
from pathlib import Path
from typing import Iterable, Mapping, NamedTuple

import torch

from .safe_pickle import UnsafeOrCorruptModelFile, load_model_file

logger = logging.getLogger(__name__)

__all__ = [
    "PatchEntry",
    "InvalidInpaintPatch",
    "UNET_PREFIX",
    "ENGINE_FILENAMES",
    "SAFETENSORS_FORMAT",
    "load_inpaint_patch",
    "validate_patch",
    "decode_delta",
    "apply_delta_",
    "match_keys",
    "engine_version_from_filename",
    "filename_for_engine_version",
    "save_inpaint_patch",
    "make_random_patch",
    "patch_numel",
]

UNET_PREFIX = "diffusion_model."
#: Fooocus engine version -> file name (Fooocus ``modules/config.py downloading_inpaint_models``).
ENGINE_FILENAMES: dict[str, str] = {
    "v1": "inpaint.fooocus.patch",
    "v2.5": "inpaint_v25.fooocus.patch",
    "v2.6": "inpaint_v26.fooocus.patch",
}
SAFETENSORS_FORMAT = "fooocus-inpaint-patch"
_ST_SUFFIXES = (".u8", ".min", ".max")


class InvalidInpaintPatch(UnsafeOrCorruptModelFile):
    """The file loaded safely but its content is not a Fooocus inpaint patch."""


class PatchEntry(NamedTuple):
    """One patched weight: ``u8`` (uint8, the weight's shape, CPU or mmap), ``w_min`` / ``w_max``
    (float32 tensors broadcastable to ``u8.shape``)."""

    u8: torch.Tensor
    w_min: torch.Tensor
    w_max: torch.Tensor

    @property
    def shape(self) -> torch.Size:
        return self.u8.shape


def _as_f32(x, key: str, which: str, u8_shape: torch.Size, src: str) -> torch.Tensor:
    if isinstance(x, bool) or not isinstance(x, (int, float, torch.Tensor)):
        raise InvalidInpaintPatch(
            f"{src}: entry {key!r}: {which} must be a float tensor or a number, got {type(x).__name__}"
        )
    if isinstance(x, torch.Tensor):
        if not x.dtype.is_floating_point:
            raise InvalidInpaintPatch(f"{src}: entry {key!r}: {which} must be a float tensor, got dtype {x.dtype}")
        t = x.detach().to(device="cpu", dtype=torch.float32)
    else:
        t = torch.tensor(float(x), dtype=torch.float32)
    if not bool(torch.isfinite(t).all()):
        raise InvalidInpaintPatch(f"{src}: entry {key!r}: {which} is not finite ({t.flatten()[:4].tolist()})")
    try:
        b = torch.broadcast_shapes(t.shape, u8_shape)
    except RuntimeError:
        b = None
    if b != u8_shape:
        raise InvalidInpaintPatch(
            f"{src}: entry {key!r}: {which} has shape {tuple(t.shape)}, which does not broadcast to the "
            f"weight shape {tuple(u8_shape)}"
        )
    return t


def validate_patch(obj, src: str = "inpaint patch") -> dict[str, PatchEntry]:
    """Check that ``obj`` is a Fooocus inpaint patch dict and normalise it to :class:`PatchEntry` values.

    Args:
        obj: what ``torch.load`` returned: ``{str: (w_u8, w_min, w_max)}`` (tuple or list).
        src: name used in error messages (normally the file path).

    Returns:
        ``{key: PatchEntry}`` in file order. ``u8`` tensors are kept as they are (uint8, no copy);
        ``w_min`` / ``w_max`` become float32 CPU tensors (Fooocus casts them to float32 before use,
        so this does not change the decoded values).

    Raises:
        InvalidInpaintPatch (a ``ValueError``) naming the first bad key: not a dict, empty, key not
        a string, value not a 3-tuple/list, ``w_u8`` not a uint8 tensor, min/max not finite floats
        or not broadcastable to the weight shape.

    Fooocus counterpart: none (Fooocus trusts the file's content).
    """
    if not isinstance(obj, Mapping):
        raise InvalidInpaintPatch(
            f"{src}: expected a dict {{unet_key: (w_u8, w_min, w_max)}}, got {type(obj).__name__}"
        )
    if len(obj) == 0:
        raise InvalidInpaintPatch(f"{src}: the patch dict is empty; expected {{unet_key: (w_u8, w_min, w_max)}}")
    out: dict[str, PatchEntry] = {}
    for key, val in obj.items():
        if not isinstance(key, str):
            raise InvalidInpaintPatch(f"{src}: key {key!r} is a {type(key).__name__}; expected str keys")
        if not isinstance(val, (tuple, list)) or len(val) != 3:
            desc = f"a {type(val).__name__} of length {len(val)}" if isinstance(val, (tuple, list)) else type(val).__name__
            raise InvalidInpaintPatch(f"{src}: entry {key!r} is {desc}; expected a 3-tuple (w_u8, w_min, w_max)")
        u8, lo, hi = val
        if not isinstance(u8, torch.Tensor) or u8.dtype != torch.uint8:
            got = f"dtype {u8.dtype}" if isinstance(u8, torch.Tensor) else type(u8).__name__
            raise InvalidInpaintPatch(f"{src}: entry {key!r}: w_u8 must be a torch.uint8 tensor, got {got}")
        out[key] = PatchEntry(
            u8, _as_f32(lo, key, "w_min", u8.shape, src), _as_f32(hi, key, "w_max", u8.shape, src)
        )
    return out


def _from_flat_safetensors(tensors: Mapping[str, torch.Tensor], meta: Mapping[str, str] | None, src: str) -> dict:
    if meta is not None and meta.get("format") not in (None, SAFETENSORS_FORMAT):
        raise InvalidInpaintPatch(
            f"{src}: safetensors metadata format is {meta.get('format')!r}; expected {SAFETENSORS_FORMAT!r}"
        )
    groups: dict[str, dict[str, torch.Tensor]] = {}
    for name, t in tensors.items():
        for suf in _ST_SUFFIXES:
            if name.endswith(suf):
                groups.setdefault(name[: -len(suf)], {})[suf] = t
                break
        else:
            raise InvalidInpaintPatch(
                f"{src}: safetensors tensor {name!r} does not end in .u8/.min/.max; expected the flat layout "
                f"'<unet_key>.u8', '<unet_key>.min', '<unet_key>.max'"
            )
    out = {}
    for key, g in groups.items():
        missing = [s for s in _ST_SUFFIXES if s not in g]
        if missing:
            raise InvalidInpaintPatch(f"{src}: entry {key!r} lacks tensor(s) {', '.join(key + s for s in missing)}")
        out[key] = (g[".u8"], g[".min"], g[".max"])
    return out


def load_inpaint_patch(path: str | os.PathLike, *, mmap: bool = False) -> dict[str, PatchEntry]:
    """Load and validate a Fooocus inpaint patch file without running any pickle code.

    Args:
        path: ``*.fooocus.patch`` (torch pickle, zip or legacy) or a safetensors re-save in the flat
            layout described in the module docstring. The format is sniffed from the content.
        mmap: memory-map the uint8 storages (zip pickles only): pages are read from the file as the
            deltas are decoded, so the patch costs no resident memory up front.

    Returns:
        ``{unet_key: PatchEntry(u8 uint8 [weight shape], w_min f32, w_max f32)}`` in file order. The
        uint8 tensors are never converted to float here (about 1 byte per patched parameter).

    Raises:
        ModelFileMissing / UnsafeModelFile / CorruptModelFile (see :mod:`.safe_pickle`) and
        InvalidInpaintPatch; all are ``ValueError`` and name the file.

    Fooocus counterpart: ``modules/core.py load_model`` → ``ldm_patched.modules.utils.load_torch_file``
    for ``base_model_additional_loras`` (``default_pipeline.refresh_everything``), then
    ``modules/lora.py match_lora`` patch type ``'fooocus'``.
    """
    src = os.fspath(path)
    obj, meta, fmt = load_model_file(
        path, what="inpaint patch", expected="a dict {unet_key: (uint8 tensor, min, max)}", mmap=mmap
    )
    if fmt == "safetensors":
        obj = _from_flat_safetensors(obj, meta, src)
    return validate_patch(obj, src)


def decode_delta(
    entry: PatchEntry | tuple, device: torch.device | str | None = None, dtype: torch.dtype = torch.float32
) -> torch.Tensor:
    """Decode one uint8 entry to its float delta, in Fooocus's exact float32 order.

    ``delta = (u8.float() / 255) * (w_max - w_min) + w_min``, every step in float32 on ``device``.

    Args:
        entry: ``PatchEntry`` or raw ``(w_u8, w_min, w_max)`` tuple (min/max tensors or floats).
        device: where to decode (the weight's device); default: the u8 tensor's device.
        dtype: dtype of the returned tensor; the arithmetic is always float32, then cast.

    Returns:
        Tensor with ``u8``'s shape, on ``device``, of ``dtype``. Values lie in
        ``[min(w_min, w_max), max(w_min, w_max)]`` (exactly ``w_min`` when ``w_min == w_max``).

    Fooocus counterpart: ``modules/patch.py calculate_weight_patched`` (``patch_type == 'fooocus'``).
    """
    u8, lo, hi = entry
    dev = torch.device(device) if device is not None else u8.device
    lo = lo.to(device=dev, dtype=torch.float32) if isinstance(lo, torch.Tensor) else torch.tensor(float(lo), device=dev)
    hi = hi.to(device=dev, dtype=torch.float32) if isinstance(hi, torch.Tensor) else torch.tensor(float(hi), device=dev)
    d = u8.to(device=dev, non_blocking=False).to(torch.float32)  # new tensor: in-place below is safe
    d.div_(255.0)
    d.mul_(hi - lo)
    d.add_(lo)
    return d if dtype == torch.float32 else d.to(dtype)


def apply_delta_(weight: torch.Tensor, entry: PatchEntry | tuple, strength: float = 1.0, key: str = "") -> torch.Tensor:
    """Add ``strength * delta`` to ``weight`` in place (decoded on ``weight.device``).

    Args:
        weight: the weight to patch, normally a float32 copy (ComfyUI's ``patch_weight_to_device``
            passes float32; Fooocus sums all LoRA deltas on ``W.float()``). Other float dtypes work:
            the delta is decoded in float32 and cast to ``weight.dtype`` before the multiply-add,
            as Fooocus does (``weight += alpha * w1.type(weight.dtype)``).
        entry: ``PatchEntry`` or ``(w_u8, w_min, w_max)``.
        strength: the LoRA strength (Fooocus uses 1.0). ``0`` leaves the weight untouched.
        key: name for the warning message.

    Returns:
        ``weight`` itself (modified in place), or unchanged with a ``logging.warning`` when
        ``entry``'s shape differs from ``weight.shape``.

    Fooocus counterpart: ``modules/patch.py calculate_weight_patched`` (``'fooocus'`` branch).
    """
    u8 = entry[0]
    if tuple(u8.shape) != tuple(weight.shape):
        logger.warning(
            "inpaint patch: shape mismatch for %s: patch %s, weight %s; weight not merged",
            key or "<weight>", tuple(u8.shape), tuple(weight.shape),
        )
        return weight
    if strength == 0.0:
        return weight
    d = decode_delta(entry, weight.device, torch.float32)
    if weight.dtype != torch.float32:
        d = d.to(weight.dtype)
    if strength != 1.0:  # 1.0 * x == x exactly; skip the pass
        d.mul_(strength)
    weight.add_(d)
    return weight


def _strip(k: str) -> str:
    for p in ("model." + UNET_PREFIX, UNET_PREFIX):
        if k.startswith(p):
            return k[len(p):]
    return k


def match_keys(patch_keys: Iterable[str], model_keys: Iterable[str]) -> tuple[dict[str, str], list[str]]:
    """Map patch keys to model state-dict keys.

    Fooocus and ComfyUI use the same names: ``ModelPatcher.model.state_dict()`` of a ``BaseModel``
    has ``diffusion_model.<unet key>`` (the UNet is the attribute ``diffusion_model``), which is
    what ``add_patches`` takes and what the patch files contain; these match verbatim. When the
    model keys come with another prefix convention (a bare UNet state dict ``input_blocks...``, or
    checkpoint keys ``model.diffusion_model...``) the keys are matched on the part after the
    prefix instead. A verbatim match always wins.

    Args:
        patch_keys: keys of the loaded patch (order is kept).
        model_keys: the model's state-dict keys.

    Returns:
        ``(matched, unmatched)``: ``matched`` maps patch key → model key (in patch-key order);
        ``unmatched`` lists the patch keys with no counterpart.

    Fooocus counterpart: ``modules/lora.py match_lora`` (``'fooocus'`` branch: ``if k in model keys``).
    """
    mkeys = list(model_keys)
    mset = set(mkeys)
    by_bare: dict[str, str] = {}
    for m in mkeys:
        by_bare.setdefault(_strip(m), m)
    matched: dict[str, str] = {}
    unmatched: list[str] = []
    for k in patch_keys:
        if k in mset:
            matched[k] = k
        elif _strip(k) in by_bare:
            matched[k] = by_bare[_strip(k)]
        else:
            unmatched.append(k)
    return matched, unmatched


_ENGINE_RE = re.compile(r"^inpaint(?:_v(\d)(\d))?\.fooocus\.(?:patch|safetensors)$", re.IGNORECASE)


def engine_version_from_filename(name: str | os.PathLike) -> str | None:
    """Fooocus inpaint engine version of a patch file name.

    Args:
        name: file name or path (only the base name is used), case-insensitive.

    Returns:
        ``"v1"`` for ``inpaint.fooocus.patch``, ``"v2.5"`` for ``inpaint_v25.fooocus.patch``,
        ``"v2.6"`` for ``inpaint_v26.fooocus.patch`` (also with a ``.safetensors`` extension, and
        ``"vX.Y"`` for any other ``inpaint_vXY`` name); ``None`` for names that do not follow
        Fooocus's naming.

    Fooocus counterpart: ``modules/config.py downloading_inpaint_models`` (version → file name).
    """
    m = _ENGINE_RE.match(Path(os.fspath(name)).name)
    if not m:
        return None
    if m.group(1) is None:
        return "v1"
    return f"v{m.group(1)}.{m.group(2)}"


def filename_for_engine_version(version: str) -> str:
    """File name Fooocus downloads for an inpaint engine version (``"v1"``, ``"v2.5"``, ``"v2.6"``).

    Raises:
        ValueError: unknown ``version`` (``"None"`` has no patch file).

    Fooocus counterpart: ``modules/config.py downloading_inpaint_models``.
    """
    try:
        return ENGINE_FILENAMES[version]
    except KeyError:
        raise ValueError(
            f"version: unknown Fooocus inpaint engine {version!r}; expected one of {sorted(ENGINE_FILENAMES)}"
        ) from None


def save_inpaint_patch(path: str | os.PathLike, state: Mapping[str, tuple]) -> None:
    """Write a patch file (for tests, conversions and benchmarks).

    Args:
        path: destination. A name ending in ``.safetensors`` gets the flat layout
            (``<key>.u8`` / ``<key>.min`` / ``<key>.max`` + format metadata); anything else gets
            Fooocus's own format: ``torch.save`` (zip) of ``{key: (w_u8, w_min, w_max)}`` with tuple
            values, exactly as stored.
        state: ``{key: (w_u8 uint8 tensor, w_min, w_max)}`` (``PatchEntry`` values are fine);
            validated with :func:`validate_patch` first.

    Raises:
        ValueError (InvalidInpaintPatch): ``state`` is not a valid patch.

    Fooocus counterpart: none (Fooocus only reads these files).
    """
    validate_patch(state, "state")
    p = os.fspath(path)
    if p.lower().endswith(".safetensors"):
        from safetensors.torch import save_file

        flat: dict[str, torch.Tensor] = {}
        for k, (u8, lo, hi) in state.items():
            flat[k + ".u8"] = u8.contiguous()
            for suf, v in ((".min", lo), (".max", hi)):
                t = v if isinstance(v, torch.Tensor) else torch.tensor(float(v))
                flat[k + suf] = t.detach().to(torch.float32).reshape(t.shape if t.dim() else (1,)).contiguous()
        save_file(flat, p, metadata={"format": SAFETENSORS_FORMAT, "format_version": "1"})
        return
    torch.save({k: (v[0], v[1], v[2]) for k, v in state.items()}, p)


def make_random_patch(
    shapes: Mapping[str, tuple[int, ...]],
    seed: int,
    *,
    minmax_dtype: torch.dtype = torch.float32,
    scale: float = 1e-3,
) -> dict[str, tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
    """Deterministic random patch in the exact Fooocus in-memory format.

    Args:
        shapes: ``{unet_key: weight shape}``.
        seed: seed of a private ``torch.Generator`` (same seed and shapes → identical patch).
        minmax_dtype: dtype of the 0-d ``w_min`` / ``w_max`` tensors.
        scale: deltas lie roughly in ``[-scale, scale]``.

    Returns:
        ``{key: (w_u8 uint8 [shape], w_min 0-d, w_max 0-d)}`` with ``w_min < 0 < w_max``.

    Fooocus counterpart: none (test helper).
    """
    g = torch.Generator().manual_seed(int(seed))
    out = {}
    for k, shape in shapes.items():
        u8 = torch.randint(0, 256, tuple(int(s) for s in shape), generator=g, dtype=torch.uint8)
        r = torch.rand(2, generator=g, dtype=torch.float64)
        lo = torch.tensor(-scale * (0.25 + r[0].item()), dtype=minmax_dtype)
        hi = torch.tensor(scale * (0.25 + r[1].item()), dtype=minmax_dtype)
        out[k] = (u8, lo, hi)
    return out


def patch_numel(patch: Mapping[str, tuple]) -> int:
    """Total number of patched parameters (= bytes of uint8 data) in a patch dict."""
    return sum(math.prod(v[0].shape) for v in patch.values())
