"""Loading Fooocus's ESRGAN upscaler (used for small inpaint crops)."""
from __future__ import annotations

import logging

import comfy.utils
import folder_paths
from comfy_api.latest import io

from ..engine.model_manifest import missing_model_message
from ..engine.upscaler_keys import is_fooocus_upscaler, rename_fooocus_upscaler_keys

log = logging.getLogger(__name__)
FOOOCUS_UPSCALER = "fooocus_upscaler_s409985e5.bin"


class FooocusUpscalerLoader(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        try:
            names = folder_paths.get_filename_list("upscale_models")
        except KeyError:
            names = []
        return io.Schema(
            node_id="FooocusInpaint_UpscalerLoader",
            display_name="Load Upscale Model (Fooocus)",
            category="inpaint/fooocus",
            description=("Loads an ESRGAN-family upscaler from models/upscale_models, including Fooocus's own "
                         "fooocus_upscaler_s409985e5.bin (its 'residual_block_' keys are renamed as Fooocus does). "
                         "Connect it to Inpaint Conditioning's upscale_model: small crops are then upscaled before "
                         "the LANCZOS resize to the working size, as in Fooocus."),
            inputs=[io.Combo.Input("model_name", options=names or [FOOOCUS_UPSCALER],
                                   default=FOOOCUS_UPSCALER if FOOOCUS_UPSCALER in names else None,
                                   tooltip="Upscaler file in models/upscale_models (Fooocus: fooocus_upscaler_s409985e5.bin).")],
            outputs=[io.UpscaleModel.Output(display_name="upscale_model",
                                            tooltip="For Inpaint Conditioning (or ComfyUI's Upscale Image (using Model)).")],
        )

    @classmethod
    def execute(cls, model_name: str) -> io.NodeOutput:
        from spandrel import ImageModelDescriptor, ModelLoader

        path = folder_paths.get_full_path("upscale_models", model_name)
        if path is None:
            raise ValueError("model_name: " + missing_model_message(model_name, folder_paths.get_folder_paths("upscale_models")))
        sd = comfy.utils.load_torch_file(path, safe_load=True)
        if is_fooocus_upscaler(sd):
            sd = rename_fooocus_upscaler_keys(sd)
        if "module.layers.0.residual_group.blocks.0.norm1.weight" in sd:
            sd = comfy.utils.state_dict_prefix_replace(sd, {"module.": ""})
        try:
            model = ModelLoader().load_from_state_dict(sd).eval()
        except Exception as e:  # spandrel raises many types for unknown layouts
            raise ValueError(f"model_name: {model_name!r} is not an upscaler ComfyUI can load: {e}") from e
        if not isinstance(model, ImageModelDescriptor):
            raise ValueError(f"model_name: {model_name!r} is not a single-image upscale model")
        log.info("Fooocus upscaler %s: %s x%s", model_name, model.architecture.name, model.scale)
        return io.NodeOutput(model)


MENU_ORDER = 15
NODES = [FooocusUpscalerLoader]
