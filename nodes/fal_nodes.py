"""Nodes that adapt fal ``fal-ai/fooocus/inpaint`` inputs to the pack: the uploaded-mask path.

fal's ``mask_image_url`` is an ordinary image file (white = repaint). Fooocus binarises such an upload on
its "advanced masking" path (LANCZOS to the image size, mean over RGB, ``> 127``); ComfyUI's own
Load Image (Mask) takes one channel and does not threshold, so the graphs built by
``engine.fal_graph`` use :class:`MaskFromUpload` instead.
"""
from __future__ import annotations

import numpy as np
from comfy_api.latest import io

from ..engine.masks import threshold_upload_mask
from .convert import image_to_u8, u8_to_mask

CATEGORY = "inpaint/fooocus"


class MaskFromUpload(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="FooocusInpaint_MaskFromUpload",
            display_name="Mask From Upload (Fooocus)",
            category=CATEGORY,
            description=(
                "Turns an uploaded mask picture into a repaint mask the way Fooocus (and fal's fooocus/inpaint "
                "mask_image_url) does: resize it to the image with LANCZOS, average the red, green and blue "
                "channels, and make pixels brighter than 127 white (repaint), the rest black. Without a mask "
                "picture the mask is all black (only outpainting or 'invert' then repaints)."
            ),
            inputs=[
                io.Image.Input("image", tooltip="The image to inpaint; only its size is used."),
                io.Image.Input("mask_image", optional=True,
                               tooltip="The uploaded mask picture (white = repaint), e.g. from Load Image. Any size; "
                                       "the first image of a batch is used."),
            ],
            outputs=[io.Mask.Output(display_name="mask", tooltip="The repaint mask at the image's size (0 or 1).")],
        )

    @classmethod
    def execute(cls, image, mask_image=None) -> io.NodeOutput:
        if image.ndim != 4 or image.shape[0] < 1:
            raise ValueError(f"image: expected an IMAGE batch [B,H,W,C], got shape {tuple(image.shape)}")
        height, width = int(image.shape[1]), int(image.shape[2])
        if mask_image is None:
            return io.NodeOutput(u8_to_mask(np.zeros((height, width), np.uint8)))
        if mask_image.ndim != 4 or mask_image.shape[0] < 1:
            raise ValueError(f"mask_image: expected an IMAGE batch [B,H,W,C], got shape {tuple(mask_image.shape)}")
        upload = image_to_u8(mask_image, 0)
        return io.NodeOutput(u8_to_mask(threshold_upload_mask(upload, height, width)))


MENU_ORDER = 21
NODES = [MaskFromUpload]
