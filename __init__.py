"""Fooocus Inpaint for ComfyUI.

ComfyUI imports this package from ``custom_nodes/``. Importing it only registers the model folders
the pack reads (see :mod:`.nodes.model_folders`) and adds the fal drop-in's HTTP routes to ComfyUI's
server (see :mod:`.nodes.fal_dropin`); nodes are handed to ComfyUI through the V3 entry
point :func:`comfy_entrypoint`. Nothing is downloaded and no ComfyUI function is replaced.

Outside ComfyUI (``python -m <this folder> ...``, the headless client) there is no host to register
with, and only the command-line client is available.
"""
try:
    import folder_paths  # noqa: F401  (only importable inside a ComfyUI process)
except ImportError:  # imported by the command-line client, outside ComfyUI
    __all__: list[str] = []
else:
    from .nodes import comfy_entrypoint
    from .nodes.fal_dropin import register_routes as _register_fal_routes
    from .nodes.model_folders import register_model_folders

    register_model_folders()
    _register_fal_routes()  # the fal drop-in's HTTP routes (docs/fal_dropin.md); no-op without a PromptServer

    #: the editor extension (web/fooocus_inpaint.js): folds the pack's expert widgets ("Show Advanced")
    WEB_DIRECTORY = "./web"

    __all__ = ["comfy_entrypoint", "WEB_DIRECTORY"]
