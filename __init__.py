"""Fooocus Inpaint for ComfyUI.

ComfyUI imports this package from ``custom_nodes/``. Importing it only registers the model folders
the pack reads (see :mod:`.nodes.model_folders`); nodes are handed to ComfyUI through the V3 entry
point :func:`comfy_entrypoint`. Nothing is downloaded and no ComfyUI function is replaced.
"""
from .nodes import comfy_entrypoint
from .nodes.model_folders import register_model_folders

register_model_folders()

__all__ = ["comfy_entrypoint"]
