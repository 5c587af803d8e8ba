"""Mask and canvas preparation nodes: erode/dilate + invert, and outpaint padding."""
from __future__ import annotations

import numpy as np
import torch
from comfy_api.latest import io

from ..engine.masks import erode_or_dilate, hwc3
from ..engine.outpaint import outpaint_pad
from .convert import fit_mask, image_to_u8, mask_to_u8, u8_to_image, u8_to_mask

CATEGORY = "inpaint/fooocus"
SIDES = ("left", "right", "top", "bottom")


class MaskErodeDilate(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="FooocusInpaint_MaskErodeDilate",
            display_name="Mask Erode / Dilate (Fooocus)",
            category=CATEGORY,
            description=("Fooocus 'mask erode or dilate', then optional invert (in that order, as Fooocus): a positive "
                         "amount grows the white (repaint) area by that many pixels with a 3x3 square kernel, a negative "
                         "amount shrinks it. Works on every mask of a batch."),
            inputs=[
                io.Mask.Input("mask", tooltip="White = repaint."),
                io.Int.Input("amount", default=0, min=-64, max=64, step=1,
                             tooltip="Pixels to dilate (> 0) or erode (< 0); Fooocus range -64..64."),
                io.Boolean.Input("invert", default=False,
                                 tooltip="Invert after erode/dilate (Fooocus 'invert mask'): repaint what was kept."),
            ],
            outputs=[io.Mask.Output(display_name="mask", tooltip="The processed mask (0..1, 8-bit steps).")],
        )

    @classmethod
    def execute(cls, mask, amount, invert) -> io.NodeOutput:
        if not isinstance(amount, int) or isinstance(amount, bool) or not -64 <= amount <= 64:
            raise ValueError(f"amount: expected an integer in [-64, 64], got {amount!r}")
        m = mask if mask.ndim == 3 else mask[None]
        out = []
        for i in range(m.shape[0]):
            u8 = erode_or_dilate(mask_to_u8(m, i), amount)
            if invert:
                u8 = 255 - u8
            out.append(u8_to_mask(u8))
        return io.NodeOutput(torch.cat(out))


class OutpaintPad(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        side_inputs = []
        for side in SIDES:
            side_inputs.append(io.Boolean.Input(side, default=False, tooltip=f"Extend the image on the {side}."))
        for side in SIDES:
            side_inputs.append(io.Int.Input(
                f"{side}_pixels", default=0, min=0, max=8192, step=8,
                tooltip=f"How far to extend on the {side}, in pixels. 0 = Fooocus's 30% of the "
                        f"{'height' if side in ('top', 'bottom') else 'width'}."))
        return io.Schema(
            node_id="FooocusInpaint_OutpaintPad",
            display_name="Outpaint Pad (Fooocus)",
            category=CATEGORY,
            description=("Fooocus outpaint: extends the canvas on the chosen sides (top, bottom, then left, right; 30% of the "
                         "side by default, or a pixel distance) by repeating the border pixels, and marks the new area "
                         "white (repaint) in the mask. Fooocus then inpaints the whole canvas (use respective field 1)."),
            inputs=[
                io.Image.Input("image", tooltip="The image to extend (one image)."),
                io.Mask.Input("mask", optional=True, tooltip="Optional existing repaint mask; padded with white. A mask of "
                                                               "another size is resized to the image (LANCZOS)."),
                *side_inputs,
            ],
            outputs=[
                io.Image.Output(display_name="image", tooltip="The extended image (edge pixels repeated)."),
                io.Mask.Output(display_name="mask", tooltip="The repaint mask: the new area is white."),
            ],
        )

    @classmethod
    def execute(cls, image, mask=None, left=False, right=False, top=False, bottom=False,
                left_pixels=0, right_pixels=0, top_pixels=0, bottom_pixels=0) -> io.NodeOutput:
        if image.shape[0] != 1:
            raise ValueError(f"image: expected one image, got a batch of {image.shape[0]}")
        img = hwc3(image_to_u8(image))
        m = mask_to_u8(mask) if mask is not None else np.zeros(img.shape[:2], np.uint8)
        m = fit_mask(m, img.shape[0], img.shape[1], "Outpaint Pad")
        flags = {"left": left, "right": right, "top": top, "bottom": bottom}
        pixels = {"left": left_pixels, "right": right_pixels, "top": top_pixels, "bottom": bottom_pixels}
        directions = [s for s in SIDES if flags[s]]
        distances = {s: int(pixels[s]) for s in directions if pixels[s] > 0}
        out_img, out_mask = outpaint_pad(img, m, directions, distances or None)
        return io.NodeOutput(u8_to_image(out_img), u8_to_mask(out_mask))


MENU_ORDER = 20
NODES = [MaskErodeDilate, OutpaintPad]
