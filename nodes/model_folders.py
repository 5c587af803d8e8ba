"""The model folders the pack reads, registered with ComfyUI's ``folder_paths``.

Folder names are shared with other Fooocus packs (``inpaint`` is what Acly's and other
Fooocus-inpaint packs use), so files users already have are found. Each folder defaults to
``<ComfyUI models>/<name>``; users can add more through ``extra_model_paths.yaml`` as usual.
"""
from __future__ import annotations

import os

import folder_paths

# name -> file extensions the pack looks for in it
MODEL_FOLDERS: dict[str, set[str]] = {
    # Fooocus inpaint head (.pth) and patches (.patch); safetensors re-saves are accepted too
    "inpaint": {".pth", ".pt", ".patch", ".safetensors", ".bin"},
    # Fooocus style files (sdxl_styles_*.json) and the user's own style files
    "styles": {".json"},
    # Fooocus V2 prompt expansion: a folder per model (tokenizer files, positive.txt, weights)
    "prompt_expansion": {".bin", ".safetensors", ".json", ".txt"},
    # Stable Diffusion safety checker weights (diffusers / Fooocus layout)
    "safety_checker": {".bin", ".safetensors", ".json"},
    # Fooocus wildcards: <name>.txt, one choice per line, used as __name__ in prompts
    "wildcards": {".txt"},
    # optional FaceSwap face detector weights (OpenCV YuNet .onnx; facexlib RetinaFace .pth)
    "facedetection": {".onnx", ".pth"},
}


def register_model_folders() -> None:
    """Add the pack's folders to ``folder_paths`` without disturbing entries other packs made."""
    for name, exts in MODEL_FOLDERS.items():
        default = os.path.join(folder_paths.models_dir, name)
        if name in folder_paths.folder_names_and_paths:
            paths, known = folder_paths.folder_names_and_paths[name]
            if default not in paths:
                paths.append(default)
            if isinstance(known, set):
                known.update(exts)
        else:
            folder_paths.folder_names_and_paths[name] = ([default], set(exts))
