"""Every model file the ``fal-ai/fooocus/inpaint`` schema can need, where it comes from and how to check it.

Fooocus counterpart: the ``downloading_*`` functions of ``modules/config.py`` (Fooocus 2.5.5) and the
presets' ``checkpoint_downloads`` / ``lora_downloads``; the table is fooocus-pipeline.md §10.

Each :class:`ModelFile` names the file, the ComfyUI models folder it goes in (ComfyUI's own names:
``checkpoints``, ``loras``, ``controlnet``, ``clip_vision``, ``upscale_models``, ``vae_approx`` and the
pack's ``inpaint``, ``styles``, ``prompt_expansion``, ``safety_checker``), its source URL, and its
size and SHA-256 where they are known.

Where the numbers come from (nothing here was downloaded to measure it):

- **sizes**: a public size list of the same files (fooocus-pipeline.md §10; SimpleSDXL's model check
  script) -- ``None`` where the spec marks the size unverified (juggernautXL v8, inpaint v1 patch, LCM LoRA);
- **SHA-256** of ``fooocus_inpaint_head.pth`` and ``inpaint_v26.fooocus.patch``: a public Nix model set
  that pins those exact Hugging Face URLs with ``fetchurl`` SRI hashes (converted from base64);
- **SHA-256 and size** of the Fooocus V2 tokenizer/config files and the six style files: computed from
  the copies taken unchanged from Fooocus 2.5.5 (commit 59f183ab) in the project's shared data;
- every other ``sha256`` is ``None``: no published value could be found offline, so a download of such
  a file is verified by its **size only** (and not at all when the size is ``None`` too). Hugging Face
  serves the SHA-256 of LFS files in its ``x-linked-etag`` header; the downloader does not rely on it.

Pure module: no I/O except :func:`missing_files` (``os.stat``).
"""
from __future__ import annotations

import os
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from .request import InpaintRequest, effective_inpaint_options

__all__ = [
    "DOWNLOAD_COMMAND", "MANIFEST", "ModelFile", "by_name", "missing_files", "missing_model_message",
    "required_files", "select",
]

#: How users run the downloader: ``python -m <this pack's folder> download``, run from the folder above
#: the pack (``ComfyUI/custom_nodes``); the folder name is this installation's own.
DOWNLOAD_COMMAND = f"python -m {Path(__file__).resolve().parents[1].name} download"

_HF = "https://huggingface.co"
_MISC = f"{_HF}/lllyasviel/misc/resolve/main"
_MASHB1T = f"{_HF}/mashb1t/misc/resolve/main"
_INPAINT = f"{_HF}/lllyasviel/fooocus_inpaint/resolve/main"
_FAV = f"{_HF}/lllyasviel/fav_models/resolve/main/fav"
_SDXL_BASE = f"{_HF}/stabilityai/stable-diffusion-xl-base-1.0/resolve/main"
_FACEXLIB = "https://github.com/xinntao/facexlib/releases/download"
_FOOOCUS_RAW = "https://raw.githubusercontent.com/lllyasviel/Fooocus/main"
_HEX64 = re.compile(r"[0-9a-f]{64}")


@dataclass(frozen=True)
class ModelFile:
    """One downloadable file.

    ``name``: file name (unique in :data:`MANIFEST`); ``folder``: POSIX path under the ComfyUI ``models``
    folder (may have a sub-folder, e.g. ``prompt_expansion/fooocus_expansion``); ``url``: official source;
    ``size``: bytes or ``None`` (unknown); ``sha256``: 64 lowercase hex digits or ``None`` (unknown: the
    download is then checked by size only); ``group``: what needs it (``base``, ``inpaint``, ``performance``,
    ``prompt``, ``output``, ``refiner``, ``image_prompt``, ``preview``); ``purpose``: one line for people.
    """

    name: str
    folder: str
    url: str
    size: int | None
    sha256: str | None
    group: str
    purpose: str

    def __post_init__(self) -> None:
        if not self.name or "/" in self.name or "\\" in self.name:
            raise ValueError(f"ModelFile.name: expected a bare file name, got {self.name!r}")
        p = PurePosixPath(self.folder)
        if not self.folder or p.is_absolute() or ".." in p.parts:
            raise ValueError(f"ModelFile.folder: expected a relative folder, got {self.folder!r}")
        if self.size is not None and (not isinstance(self.size, int) or self.size < 0):
            raise ValueError(f"ModelFile.size: expected an int >= 0 or None, got {self.size!r}")
        if self.sha256 is not None and not _HEX64.fullmatch(self.sha256):
            raise ValueError(f"ModelFile.sha256: expected 64 lowercase hex digits or None, "
                             f"got {self.sha256!r}")
        if not self.url.startswith("https://"):
            raise ValueError(f"ModelFile.url: expected an https URL, got {self.url!r}")

    @property
    def relpath(self) -> str:
        """``folder/name`` (POSIX), the file's path under the models folder and on a mirror."""
        return f"{self.folder}/{self.name}"

    def path(self, models_dir: str | os.PathLike) -> Path:
        """Where the file lives under ``models_dir``."""
        return Path(models_dir, *self.folder.split("/"), self.name)


def _f(name, folder, src, size, sha256, group, purpose) -> ModelFile:
    """``src``: the full URL, or a base URL (last segment without a dot) the name is appended to."""
    url = src if "." in src.rsplit("/", 1)[-1] else f"{src}/{name}"
    return ModelFile(name, folder, url, size, sha256, group, purpose)


_EXP = "prompt_expansion/fooocus_expansion"
_EXP_RAW = f"{_FOOOCUS_RAW}/models/prompt_expansion/fooocus_expansion"
_STYLES_RAW = f"{_FOOOCUS_RAW}/sdxl_styles"

#: All files, in a stable order (also the download order).
MANIFEST: tuple[ModelFile, ...] = (
    _f("juggernautXL_v8Rundiffusion.safetensors", "checkpoints", _FAV,
       None, None, "base", "SDXL base checkpoint of Fooocus's default preset (~7 GB; size unverified)"),
    _f("sd_xl_offset_example-lora_1.0.safetensors", "loras", _SDXL_BASE,
       49_553_604, None, "base", "offset LoRA of fal's default 'loras' (scale 0.1)"),
    _f("fooocus_inpaint_head.pth", "inpaint", _INPAINT, 52_602,
       "32f7f838e0c6d8f13437ba8411e77a4688d77a2e34df8857e4ef4d51f6b97692", "inpaint", "Fooocus inpaint head"),
    _f("inpaint_v26.fooocus.patch", "inpaint", _INPAINT, 1_323_362_033,
       "f8657a025104e22d70f9c060635d8e8c2196f433871a2f68dc40abd2171f0d59", "inpaint",
       "Fooocus inpaint patch v2.6 (inpaint_engine 'v2.6', the default)"),
    _f("inpaint_v25.fooocus.patch", "inpaint", _INPAINT, 2_580_722_369, None,
       "inpaint", "Fooocus inpaint patch v2.5 (inpaint_engine 'v2.5')"),
    _f("inpaint.fooocus.patch", "inpaint", _INPAINT, None, None, "inpaint",
       "Fooocus inpaint patch v1 (inpaint_engine 'v1'; ~1.3 GB, size unverified)"),
    _f("fooocus_upscaler_s409985e5.bin", "upscale_models", _MISC, 33_636_613,
       None, "inpaint", "Fooocus ESRGAN upscaler for small inpaint crops"),
    _f("sdxl_lcm_lora.safetensors", "loras", _MISC, None, None, "performance",
       "LCM LoRA of 'Extreme Speed' (fal's default performance; ~394 MB, size unverified)"),
    _f("sdxl_lightning_4step_lora.safetensors", "loras", _MASHB1T,
       393_854_592, None, "performance", "Lightning LoRA of 'Lightning'"),
    _f("sdxl_hyper_sd_4step_lora.safetensors", "loras", _MASHB1T,
       787_359_648, None, "performance", "Hyper-SD LoRA of 'Hyper-SD'"),
    _f("pytorch_model.bin", _EXP, f"{_MISC}/fooocus_expansion.bin", 351_283_802, None, "prompt",
       "Fooocus V2 prompt expansion weights (GPT-2; lllyasviel/misc fooocus_expansion.bin)"),
    _f("config.json", _EXP, _EXP_RAW, 937,
       "55a78bf7ce753eafb57a7d0b3a8f9680fa6d2530535d32b6296a0735a6922fb3",
       "prompt", "Fooocus V2 model config"),
    _f("positive.txt", _EXP, _EXP_RAW, 5_655,
       "ac571555cce32ad1b693d9405a0c613be13a79aba798a96455060cd8b53b910e", "prompt", "Fooocus V2 word list"),
    _f("tokenizer.json", _EXP, _EXP_RAW, 2_107_625,
       "86f12f9648802a0c45c4b87ef2ab235e9bfdf1a43cc40571291507c81e35c4c3", "prompt", "Fooocus V2 tokenizer"),
    _f("tokenizer_config.json", _EXP, _EXP_RAW, 255,
       "0f7123cb7e1be4e9c2e8770bd3c00f73d75364fb71680d0412d6263e7af2654c",
       "prompt", "Fooocus V2 tokenizer config"),
    _f("special_tokens_map.json", _EXP, _EXP_RAW, 99,
       "6f50ab5a5a509a1c309d6171f339b196a900dc9c99ad0408ff23bb615fdae7ad",
       "prompt", "Fooocus V2 special tokens"),
    _f("vocab.json", _EXP, _EXP_RAW, 798_156,
       "3ba3c3109ff33976c4bd966589c11ee14fcaa1f4c9e5e154c2ed7f99d80709e7",
       "prompt", "Fooocus V2 GPT-2 vocabulary"),
    _f("merges.txt", _EXP, _EXP_RAW, 456_356,
       "fe36cab26d4f4421ed725e10a2e9ddb7f799449c603a96e7f29b5a3c82a95862",
       "prompt", "Fooocus V2 GPT-2 merges"),
    _f("sdxl_styles_fooocus.json", "styles", _STYLES_RAW, 4_569,
       "1251fd16ac0862e99a6ecb1969e10cef13af43b9a1ddd715013cd6d7c856e0f9",
       "prompt", "Fooocus styles (Enhance, Sharp...)"),
    _f("sdxl_styles_sai.json", "styles", _STYLES_RAW, 4_962,
       "a70cfade8c71bc697a188a5f7f9eed531c2ac7446fcb6044114dbabaef5103fb", "prompt", "SAI styles"),
    _f("sdxl_styles_mre.json", "styles", _STYLES_RAW, 6_658,
       "150db608f01912ea68a8f6f2c1f946dd1f123c68eb7ece61965dda978385210e", "prompt", "MRE styles"),
    _f("sdxl_styles_twri.json", "styles", _STYLES_RAW, 24_290,
       "3296a6a0b0572924e792dd330b374e12900f18deae05bf9158b9295ec2a96761", "prompt", "twri styles"),
    _f("sdxl_styles_diva.json", "styles", _STYLES_RAW, 18_395,
       "6a0d06f876628c85f7aec07e1aeb841dd2b34e4aff0e6eda61ec74e96fab5150", "prompt", "diva styles"),
    _f("sdxl_styles_marc_k3nt3l.json", "styles", _STYLES_RAW,
       22_078, "8381c538d3ed15b99d4bfab5229c73466cab92cd5a458264f91098fe2f72fcdd",
       "prompt", "marc_k3nt3l styles"),
    _f("stable-diffusion-safety-checker.bin", "safety_checker", _MASHB1T,
       1_216_067_303, None, "output", "safety checker of enable_safety_checker (default on)"),
    _f("realisticVisionV60B1_v51VAE.safetensors", "checkpoints", _FAV,
       2_132_625_894, None,
       "refiner", "SD1.5 refiner of refiner_model 'realisticVisionV60B1_v51VAE.safetensors'"),
    _f("xl-to-v1_interposer-v4.0.safetensors", "vae_approx", _MASHB1T,
       5_667_280, None, "refiner", "SDXL -> SD1.5 latent interposer for the SD1.5 refiner"),
    _f("clip_vision_vit_h.safetensors", "clip_vision", _MISC, 1_972_298_538,
       None, "image_prompt", "CLIP ViT-H image encoder of ImagePrompt / FaceSwap"),
    _f("fooocus_ip_negative.safetensors", "controlnet", _MISC, 65_616, None,
       "image_prompt", "IP-Adapter negative embedding of ImagePrompt / FaceSwap"),
    _f("ip-adapter-plus_sdxl_vit-h.bin", "controlnet", _MISC, 1_013_454_427,
       None, "image_prompt", "IP-Adapter plus (image prompt type ImagePrompt)"),
    _f("ip-adapter-plus-face_sdxl_vit-h.bin", "controlnet", _MISC,
       1_013_454_761, None, "image_prompt", "IP-Adapter plus face (image prompt type FaceSwap)"),
    _f("detection_Resnet50_Final.pth", "controlnet",
       f"{_FACEXLIB}/v0.1.0/detection_Resnet50_Final.pth", 109_497_761,
       None, "image_prompt", "face detector of FaceSwap's face crop (facexlib)"),
    _f("parsing_parsenet.pth", "controlnet",
       f"{_FACEXLIB}/v0.2.2/parsing_parsenet.pth", 85_331_193, None,
       "image_prompt", "face parser of FaceSwap's face crop (facexlib)"),
    _f("control-lora-canny-rank128.safetensors", "controlnet", _MISC,
       395_733_680, None, "image_prompt", "ControlNet of image prompt type PyraCanny"),
    _f("fooocus_xl_cpds_128.safetensors", "controlnet", _MISC, 395_706_528,
       None, "image_prompt", "ControlNet of image prompt type CPDS"),
    _f("xlvaeapp.pth", "vae_approx", _MISC, 213_777, None, "preview",
       "Fooocus SDXL latent preview approximation (optional: ComfyUI has its own previews)"),
    _f("vaeapp_sd15.pth", "vae_approx", _MISC, 213_777, None, "preview",
       "Fooocus SD1.5 latent preview approximation (optional)"),
)

_BY_NAME = {f.name: f for f in MANIFEST if f.folder != _EXP}
_BY_REL = {f.relpath: f for f in MANIFEST}
assert len(_BY_REL) == len(MANIFEST)
#: Groups downloaded when no selection is given: everything except the optional preview files.
DEFAULT_GROUPS = ("base", "inpaint", "performance", "prompt", "output", "refiner", "image_prompt")

_PERFORMANCE_LORA = {"Extreme Speed": "sdxl_lcm_lora.safetensors",
                     "Lightning": "sdxl_lightning_4step_lora.safetensors",
                     "Hyper-SD": "sdxl_hyper_sd_4step_lora.safetensors"}
_PATCH = {"v1": "inpaint.fooocus.patch", "v2.5": "inpaint_v25.fooocus.patch",
          "v2.6": "inpaint_v26.fooocus.patch"}
_IMAGE_PROMPT_FILES = {
    "ImagePrompt": ("clip_vision_vit_h.safetensors", "fooocus_ip_negative.safetensors",
                    "ip-adapter-plus_sdxl_vit-h.bin"),
    "FaceSwap": ("clip_vision_vit_h.safetensors", "fooocus_ip_negative.safetensors",
                 "ip-adapter-plus-face_sdxl_vit-h.bin",
                 "detection_Resnet50_Final.pth", "parsing_parsenet.pth"),
    "PyraCanny": ("control-lora-canny-rank128.safetensors",),
    "CPDS": ("fooocus_xl_cpds_128.safetensors",),
}


def by_name(name: str) -> ModelFile:
    """The manifest entry for a file name (``"inpaint_v26.fooocus.patch"``) or a ``folder/name`` path
    (needed for the Fooocus V2 folder, whose ``config.json`` etc. have generic names; its weights are also
    found as ``fooocus_expansion.bin``). Raises ``ValueError`` naming the known files when there is none."""
    if not isinstance(name, str):
        raise ValueError(f"name: expected a model file name, got {type(name).__name__}")
    if name in _BY_REL:
        return _BY_REL[name]
    if name in _BY_NAME:
        return _BY_NAME[name]
    if name == "fooocus_expansion.bin":
        return _BY_REL[f"{_EXP}/pytorch_model.bin"]
    known = sorted(_BY_NAME) + [f.relpath for f in MANIFEST if f.folder == _EXP]
    raise ValueError(f"name: {name!r} is not a file of the model manifest; known: {', '.join(known)}")


def select(names: Iterable[str] = (), groups: Iterable[str] = ()) -> list[ModelFile]:
    """Entries chosen by name (see :func:`by_name`; a group name also works, e.g. ``"prompt"``) and/or group,
    in manifest order, without duplicates. With neither: every file of :data:`DEFAULT_GROUPS`."""
    names, groups = list(names), list(groups)
    all_groups = {f.group for f in MANIFEST}
    for g in groups:
        if g not in all_groups:
            raise ValueError(f"groups: {g!r} is not a manifest group; expected one of {sorted(all_groups)}")
    if not names and not groups:
        groups = list(DEFAULT_GROUPS)
    chosen: set[str] = set()
    for n in names:
        if n in all_groups and n not in _BY_NAME:
            chosen.update(f.relpath for f in MANIFEST if f.group == n)
        else:
            chosen.add(by_name(n).relpath)
    chosen.update(f.relpath for f in MANIFEST if f.group in groups)
    return [f for f in MANIFEST if f.relpath in chosen]


def required_files(req: InpaintRequest) -> list[ModelFile]:
    """The manifest files one request needs, in manifest order.

    Rules (Fooocus 2.5.5 ``async_worker.py``, fooocus-pipeline.md §4-§10): the base checkpoint; each LoRA whose
    path's last component is a manifest file (fal's default offset LoRA URL is); the performance LoRA
    (Extreme Speed -> LCM, Lightning, Hyper-SD); the inpaint head, the patch of the effective engine (after
    the mode presets and override) and the upscaler unless the engine is ``None`` (the upscaler is still
    listed then: Fooocus upscales small crops whatever the engine); the Fooocus V2 folder when
    ``"Fooocus V2"`` is a style and the style files when any other style is; the safety checker when enabled;
    the SD1.5 refiner and interposer for the realisticVision refiner (not for performances that force
    ``refiner=None``); for each image prompt with an ``image_url`` the models of its type (whether or not
    ``mixing_image_prompt_and_inpaint`` is set: the graph decides, this list errs on the side of listing).
    LoRAs given by other paths/URLs are not in the manifest and are not listed.
    """
    if not isinstance(req, InpaintRequest):
        raise ValueError(f"req: expected an InpaintRequest, got {type(req).__name__}")
    want: list[str] = ["juggernautXL_v8Rundiffusion.safetensors"]
    for lora in req.loras:
        base = re.split(r"[/\\]", lora.path.split("?")[0])[-1]
        if base in _BY_NAME:
            want.append(base)
    if req.performance in _PERFORMANCE_LORA:
        want.append(_PERFORMANCE_LORA[req.performance])
    opts = effective_inpaint_options(req)
    want.append("fooocus_upscaler_s409985e5.bin")
    if opts.engine in _PATCH:
        want += ["fooocus_inpaint_head.pth", _PATCH[opts.engine]]
    if "Fooocus V2" in req.styles:
        want += [f.relpath for f in MANIFEST if f.folder == _EXP]
    if any(s not in ("Fooocus V2", "Random Style") for s in req.styles) or "Random Style" in req.styles:
        want += [f.name for f in MANIFEST if f.folder == "styles"]
    if req.enable_safety_checker:
        want.append("stable-diffusion-safety-checker.bin")
    if req.refiner_model != "None" and req.performance not in _PERFORMANCE_LORA:
        want += [req.refiner_model, "xl-to-v1_interposer-v4.0.safetensors"]
    for ip in req.image_prompts:
        if ip is not None and ip.image_url:
            want += list(_IMAGE_PROMPT_FILES[ip.type])
    rel = {by_name(n).relpath for n in want}
    return [f for f in MANIFEST if f.relpath in rel]


def missing_files(files: Sequence[ModelFile], models_dir: str | os.PathLike) -> list[ModelFile]:
    """The entries of ``files`` absent from ``models_dir`` (a ComfyUI ``models`` folder) or of the wrong size
    (when the size is known). Only ``os.stat`` is used; checksums are the downloader's job."""
    out = []
    for f in files:
        p = f.path(models_dir)
        try:
            size = p.stat().st_size
        except OSError:
            out.append(f)
            continue
        if f.size is not None and size != f.size:
            out.append(f)
    return out


def missing_model_message(file: str | ModelFile, searched: Sequence[str | os.PathLike] = ()) -> str:
    """A one-paragraph error for a model file a node could not find.

    ``file``: a manifest name (``"inpaint_v26.fooocus.patch"``, ``"fooocus_expansion.bin"``, a
    ``folder/name`` path) or a :class:`ModelFile`; ``searched``: the folders looked in (shown when given).
    Names the file, the ComfyUI models sub-folder it belongs in, the download command with ``--only`` and
    the official URL; a name outside the manifest gets a generic hint instead of an exception.
    """
    if isinstance(file, ModelFile):
        entry: ModelFile | None = file
        name = file.name
    else:
        name = str(file)
        try:
            entry = by_name(name)
        except ValueError:
            entry = None
    where = f" (searched: {', '.join(str(s) for s in searched)})" if searched else ""
    if entry is None:
        return (f"Model file {name!r} was not found{where}. It is not one of the files the pack can "
                f"download; put it in the matching ComfyUI models folder yourself.")
    size = f", {entry.size:,} bytes" if entry.size is not None else ""
    only = entry.relpath if entry.folder == _EXP else entry.name
    return (f"Model file {entry.name!r} ({entry.purpose}{size}) was not found{where}. It belongs in "
            f"ComfyUI/models/{entry.folder}/. Download it with: {DOWNLOAD_COMMAND} --only {only} "
            f"[--models-dir <ComfyUI>/models] (or fetch {entry.url} into that folder yourself).")
