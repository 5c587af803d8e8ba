"""Draw the bundled example image and mask (workflows/input/) and the workflow thumbnails
(workflows/*.jpg), deterministically, with numpy + PIL.

The image is a simple synthetic landscape (sky gradient, hills, a lake, a house); the mask marks
the house and its surroundings for repainting. Run with any Python that has numpy and Pillow.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

OUT = Path(__file__).resolve().parents[1] / "workflows" / "input"
W, H = 768, 576


def draw_image() -> Image.Image:
    y = np.linspace(0, 1, H)[:, None]
    sky = np.stack([110 + 90 * y, 160 + 70 * y, 235 + 10 * y], -1) * np.ones((1, W, 1))
    img = Image.fromarray(np.clip(sky, 0, 255).astype(np.uint8))
    d = ImageDraw.Draw(img)
    d.ellipse([560, 60, 660, 160], fill=(255, 236, 170))
    d.polygon([(0, 330), (180, 250), (360, 320), (540, 240), (768, 310), (768, 576), (0, 576)], fill=(86, 140, 72))
    d.polygon([(0, 400), (260, 360), (520, 390), (768, 370), (768, 576), (0, 576)], fill=(70, 122, 58))
    d.ellipse([40, 440, 420, 540], fill=(70, 120, 170))
    d.rectangle([470, 300, 640, 420], fill=(196, 160, 120))
    d.polygon([(455, 300), (555, 225), (655, 300)], fill=(150, 60, 50))
    d.rectangle([540, 350, 575, 420], fill=(90, 60, 40))
    d.rectangle([490, 320, 525, 350], fill=(200, 225, 240))
    d.rectangle([595, 320, 628, 350], fill=(200, 225, 240))
    return img.filter(ImageFilter.GaussianBlur(1.2))


def draw_mask() -> Image.Image:
    m = Image.new("L", (W, H), 0)
    ImageDraw.Draw(m).rounded_rectangle([440, 210, 670, 435], radius=30, fill=255)
    return m.convert("RGB")




def thumbnails() -> None:
    """Template-browser thumbnails (workflows/<name>.jpg): the example image with what each workflow
    repaints tinted, drawn from the same example image and mask."""
    from PIL import ImageOps

    img, mask = draw_image(), draw_mask().convert("L")
    tint = Image.new("RGB", img.size, (255, 70, 160))

    def overlay(base: Image.Image, m: Image.Image) -> Image.Image:
        return Image.composite(Image.blend(base, tint.resize(base.size), 0.45), base, m)

    wf = OUT.parent
    overlay(img, mask).save(wf / "fooocus_inpaint_default.jpg", quality=85)
    side = int(W * 0.3)
    padded = ImageOps.expand(img, border=(side, 0, side, 0), fill=(128, 128, 128))
    pm = ImageOps.expand(Image.new("L", img.size, 0), border=(side, 0, side, 0), fill=255)
    overlay(padded, pm).resize((W, int(H * W / padded.width))).save(wf / "fooocus_outpaint_left_right.jpg", quality=85)
    detail = img.crop((400, 180, 710, 470)).resize((W, H), Image.LANCZOS)
    detail.save(wf / "fooocus_improve_detail.jpg", quality=85)
    overlay(img, mask).convert("L").convert("RGB").save(wf / "fooocus_modify_content.jpg", quality=85)
    # the other workflows repaint the same area: the tinted example with the feature's name on a banner
    labels = {"fooocus_sdxl_refiner": "SDXL refiner", "fooocus_fal_default": "fal default request",
              "fooocus_fal_speed": "Performance: Speed", "fooocus_fal_quality": "Performance: Quality",
              "fooocus_fal_lightning": "Performance: Lightning", "fooocus_fal_hyper_sd": "Performance: Hyper-SD",
              "fooocus_fal_loras": "LoRA stack", "fooocus_fal_sd15_refiner": "SD1.5 refiner",
              "fooocus_fal_image_prompts": "Image prompts + inpaint",
              "fooocus_fal_no_safety_checker": "Safety checker off"}
    for name, label in labels.items():
        labelled(overlay(img, mask), label).save(wf / f"{name}.jpg", quality=85)


def labelled(im: Image.Image, text: str) -> Image.Image:
    """``im`` with ``text`` on a dark banner at the top (PIL's default font, scaled up)."""
    from PIL import ImageFont

    im = im.copy()
    d = ImageDraw.Draw(im)
    try:
        font = ImageFont.load_default(size=44)
    except TypeError:  # Pillow < 10.1: fixed-size bitmap font
        font = ImageFont.load_default()
    d.rectangle([0, 0, im.width, 80], fill=(30, 30, 40))
    d.text((24, 16), text, fill=(255, 255, 255), font=font)
    return im


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    draw_image().save(OUT / "fooocus_inpaint_example.png", optimize=True)
    draw_mask().save(OUT / "fooocus_inpaint_example_mask.png", optimize=True)
    thumbnails()


if __name__ == "__main__":
    main()
