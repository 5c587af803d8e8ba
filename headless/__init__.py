"""Headless use of the pack outside ComfyUI's UI: the ``fal-ai/fooocus/inpaint`` command-line client
(:mod:`.cli`, :mod:`.comfy_client`, :mod:`.images`) and the model downloader (:mod:`.download`).

Standard library, ``aiohttp`` (a ComfyUI dependency), numpy and PIL only; never imports ComfyUI.
Run it as ``python -m <pack folder> ...`` from the folder above the pack (see :mod:`.cli`).
"""
