"""The SDXL -> SD1.5 latent interposer Fooocus uses for an SD1.5 refiner (VAE-swap method).

Fooocus: ``extras/vae_interpose.py`` (``parse``), loading ``vae_approx/xl-to-v1_interposer-v4.0.safetensors``
(lllyasviel/misc on Hugging Face; the network is city96's SD-Latent-Interposer). The file Fooocus loads has
this layout (``H`` hidden channels, 128 in Fooocus's file; ``N`` residual blocks, 3 in Fooocus's file)::

    head_short                 conv3x3 4 -> H
    head_long.{0,2,4}          conv3x3 4 -> H, LeakyReLU(0.1), conv3x3 H -> H, LeakyReLU(0.1), conv3x3 H -> H
    y = relu(head_long(x) + head_short(x))
    core.{i}.long.{0,2,4}      per block: conv3x3, LeakyReLU(0.1), conv3x3, LeakyReLU(0.1), conv3x3;
                               y = relu(long(y) + y)
    tail.1                     relu, then conv3x3 H -> 4

All convolutions are 3x3, stride 1, zero padding 1, with bias. The input and output are *raw*
(unscaled) VAE latents: SDXL latent in, SD1.5 latent out.

Pure torch: no ComfyUI import.
"""
from __future__ import annotations

import logging
import re
from pathlib import Path

import torch
import torch.nn.functional as F

log = logging.getLogger(__name__)

LATENT_CHANNELS = 4
LEAKY_SLOPE = 0.1
FOOOCUS_FILE_NAME = "xl-to-v1_interposer-v4.0.safetensors"

_CONV_NAMES_HEAD = ("head_short", "head_long.0", "head_long.2", "head_long.4")
_BLOCK_RE = re.compile(r"^core\.(\d+)\.long\.(0|2|4)\.(weight|bias)$")


class LatentInterposer(torch.nn.Module):
    """XL -> v1 latent interposer (see the module docstring for the layout).

    ``forward(x)``: ``x`` float [B, 4, h, w] raw SDXL latent -> [B, 4, h, w] raw SD1.5 latent, in ``x``'s
    dtype and device (computed in the module's dtype). Fooocus: ``extras/vae_interpose.Interposer``.
    """

    def __init__(self, hidden: int = 128, blocks: int = 3):
        super().__init__()
        if hidden < 1 or blocks < 0:
            raise ValueError(f"hidden/blocks: expected hidden >= 1 and blocks >= 0, got {hidden}, {blocks}")
        self.hidden = int(hidden)
        self.blocks = int(blocks)
        self.params = torch.nn.ParameterDict()
        for name, cin, cout in self._conv_specs():
            key = name.replace(".", "_")
            self.params[key + "__w"] = torch.nn.Parameter(torch.zeros(cout, cin, 3, 3))
            self.params[key + "__b"] = torch.nn.Parameter(torch.zeros(cout))

    def _conv_specs(self) -> list[tuple[str, int, int]]:
        h, c = self.hidden, LATENT_CHANNELS
        specs = [("head_short", c, h), ("head_long.0", c, h), ("head_long.2", h, h), ("head_long.4", h, h)]
        for i in range(self.blocks):
            specs += [(f"core.{i}.long.{j}", h, h) for j in (0, 2, 4)]
        specs.append(("tail.1", h, c))
        return specs

    def file_state_dict(self) -> dict[str, torch.Tensor]:
        """The weights under the file's key names (``head_short.weight``, ``core.0.long.2.bias``...)."""
        out = {}
        for name, _, _ in self._conv_specs():
            key = name.replace(".", "_")
            out[name + ".weight"] = self.params[key + "__w"].detach()
            out[name + ".bias"] = self.params[key + "__b"].detach()
        return out

    def load_file_state_dict(self, sd: dict[str, torch.Tensor]) -> None:
        """Load weights keyed as in the file. Raises ``ValueError`` on a missing, extra or misshaped key."""
        expected = {}
        for name, cin, cout in self._conv_specs():
            expected[name + ".weight"] = (cout, cin, 3, 3)
            expected[name + ".bias"] = (cout,)
        missing = sorted(set(expected) - set(sd))
        extra = sorted(set(sd) - set(expected))
        if missing or extra:
            raise ValueError(f"interposer: state dict does not match the layout (missing {missing[:3]}, "
                             f"unexpected {extra[:3]})")
        with torch.no_grad():
            for k, shape in expected.items():
                t = sd[k]
                if tuple(t.shape) != shape:
                    raise ValueError(f"interposer: {k} has shape {tuple(t.shape)}, expected {shape}")
                name, kind = k.rsplit(".", 1)
                p = self.params[name.replace(".", "_") + ("__w" if kind == "weight" else "__b")]
                p.copy_(t.to(p.dtype))

    def _conv(self, name: str, x: torch.Tensor) -> torch.Tensor:
        key = name.replace(".", "_")
        return F.conv2d(x, self.params[key + "__w"], self.params[key + "__b"], stride=1, padding=1)

    def _long(self, prefix: str, x: torch.Tensor) -> torch.Tensor:
        y = F.leaky_relu(self._conv(prefix + ".0", x), LEAKY_SLOPE)
        y = F.leaky_relu(self._conv(prefix + ".2", y), LEAKY_SLOPE)
        return self._conv(prefix + ".4", y)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 4 or x.shape[1] != LATENT_CHANNELS:
            raise ValueError(f"x: expected a latent [B, 4, h, w], got {tuple(x.shape)}")
        dtype = next(iter(self.params.values())).dtype
        h = x.to(dtype)
        y = F.relu(self._long("head_long", h) + self._conv("head_short", h))
        for i in range(self.blocks):
            y = F.relu(self._long(f"core.{i}.long", y) + y)
        return self._conv("tail.1", F.relu(y)).to(x.dtype)


def layout_of(sd: dict[str, torch.Tensor]) -> tuple[int, int]:
    """``(hidden, blocks)`` of an interposer state dict in the file layout. Raises ``ValueError`` if
    ``sd`` is not one (e.g. a different interposer version's layout)."""
    if "head_short.weight" not in sd:
        raise ValueError("interposer: no 'head_short.weight' key; this is not the XL->v1 interposer layout "
                         f"Fooocus loads (first keys: {sorted(sd)[:3]})")
    hidden = int(sd["head_short.weight"].shape[0])
    idx = {int(m.group(1)) for k in sd if (m := _BLOCK_RE.match(k))}
    blocks = (max(idx) + 1) if idx else 0
    if idx != set(range(blocks)):
        raise ValueError(f"interposer: core block indices are not contiguous: {sorted(idx)}")
    return hidden, blocks


def load_interposer(path: str | Path, dtype: torch.dtype = torch.float32) -> LatentInterposer:
    """Load an XL->v1 interposer ``.safetensors`` (Fooocus ``xl-to-v1_interposer-v4.0.safetensors``).
    Returns the module in eval mode, on CPU, in ``dtype``. Fooocus: ``vae_interpose.parse`` (first call)."""
    from safetensors.torch import load_file

    p = Path(path)
    if not p.is_file():
        raise ValueError(f"path: interposer file not found: {p}")
    sd = load_file(str(p))
    return interposer_from_state_dict(sd, dtype)


def interposer_from_state_dict(sd: dict[str, torch.Tensor], dtype: torch.dtype = torch.float32) -> LatentInterposer:
    """Build a :class:`LatentInterposer` sized from ``sd`` (file key layout) and load it, eval mode, in
    ``dtype``. Fooocus: ``vae_interpose.parse`` (model construction + ``load_state_dict``)."""
    hidden, blocks = layout_of(sd)
    m = LatentInterposer(hidden, blocks)
    m.load_file_state_dict(sd)
    return m.to(dtype).eval()


def interpose(model: LatentInterposer, latent: torch.Tensor) -> torch.Tensor:
    """Map a raw SDXL latent [B,4,h,w] to a raw SD1.5 latent [B,4,h,w] (same dtype/device as ``latent``),
    without gradients. Fooocus: ``extras/vae_interpose.parse``."""
    if not isinstance(latent, torch.Tensor):
        raise ValueError(f"latent: expected a tensor, got {type(latent).__name__}")
    with torch.no_grad():
        dev_model = model.to(latent.device)
        return dev_model(latent)
