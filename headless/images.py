"""Fetch and check the request's input images (``inpaint_image_url``, ``mask_image_url``, image prompts).

An image reference is an ``http(s)`` URL (downloaded with a timeout and a size limit), a ``data:`` URI
(base64 or percent-encoded) or a local path (this pack's extension; fal takes URLs and data URIs,
fal-schema.md §5.3). Every image is decoded with PIL before anything is sent to the server, so a broken
link or a file that is not an image fails early with the request field in the message.
"""
from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import io
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, UnidentifiedImageError

from ..engine.request import classify_image_ref

__all__ = ["DEFAULT_MAX_BYTES", "DEFAULT_TIMEOUT", "ImageInputError", "LoadedImage", "load_image_ref",
           "load_image_ref_async"]

DEFAULT_TIMEOUT = 30.0
DEFAULT_MAX_BYTES = 64 * 1024 * 1024
MAX_PIXELS = 16384 * 16384
_EXT = {"PNG": "png", "JPEG": "jpg", "WEBP": "webp", "GIF": "gif", "BMP": "bmp", "TIFF": "tiff", "MPO": "jpg"}


class ImageInputError(ValueError):
    """An input image could not be read; the message starts with the request field (``mask_image_url: ...``)."""

    def __init__(self, field: str, msg: str):
        self.field = field
        super().__init__(f"{field}: {msg}")


@dataclass(frozen=True)
class LoadedImage:
    """Bytes of one input image as received, checked decodable.

    ``data``: the file bytes; ``format``: PIL format name (``PNG``...); ``width``/``height``: pixels;
    ``upload_name``: a content-addressed file name (``fal_<sha256[:20]>.<ext>``) so that concurrent
    uploads of different images never collide and equal images are stored once.
    """

    field: str
    data: bytes
    format: str
    width: int
    height: int

    @property
    def upload_name(self) -> str:
        digest = hashlib.sha256(self.data).hexdigest()[:20]
        return f"fal_{digest}.{_EXT.get(self.format, 'png')}"


def _read_url(field: str, url: str, timeout: float, max_bytes: int) -> bytes:
    req = urllib.request.Request(url, headers={"User-Agent": "fooocus-inpaint-headless/1"})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            length = resp.headers.get("Content-Length")
            if length is not None and length.isdigit() and int(length) > max_bytes:
                raise ImageInputError(field, f"{url} is {int(length):,} bytes, over the {max_bytes:,}-byte limit")
            data = resp.read(max_bytes + 1)
    except ImageInputError:
        raise
    except urllib.error.HTTPError as e:
        raise ImageInputError(field, f"could not download {url}: HTTP {e.code} {e.reason}") from None
    except (urllib.error.URLError, OSError, ValueError) as e:
        reason = getattr(e, "reason", e)
        raise ImageInputError(field, f"could not download {url} (timeout {timeout:g}s): {reason}") from None
    if len(data) > max_bytes:
        raise ImageInputError(field, f"{url} is over the {max_bytes:,}-byte limit")
    return data


def _read_data_uri(field: str, uri: str, max_bytes: int) -> bytes:
    header, _, payload = uri.partition(",")
    try:
        if header.lower().endswith(";base64"):
            data = base64.b64decode(payload.strip(), validate=False)
        else:
            data = urllib.parse.unquote_to_bytes(payload)
    except (binascii.Error, ValueError) as e:
        raise ImageInputError(field, f"the data URI's base64 payload is invalid ({e})") from None
    if len(data) > max_bytes:
        raise ImageInputError(field, f"the data URI holds {len(data):,} bytes, over the {max_bytes:,}-byte limit")
    return data


def _read_path(field: str, ref: str, max_bytes: int) -> bytes:
    p = Path(ref[7:] if ref.startswith("file://") else ref).expanduser()
    try:
        size = p.stat().st_size
        if size > max_bytes:
            raise ImageInputError(field, f"{p} is {size:,} bytes, over the {max_bytes:,}-byte limit")
        return p.read_bytes()
    except ImageInputError:
        raise
    except FileNotFoundError:
        raise ImageInputError(field, f"no such file: {p}") from None
    except OSError as e:
        raise ImageInputError(field, f"cannot read {p}: {e.strerror or e}") from None


def _check_image(field: str, data: bytes, what: str) -> LoadedImage:
    if not data:
        raise ImageInputError(field, f"{what} is empty")
    try:
        with Image.open(io.BytesIO(data)) as im:
            fmt, (w, h) = im.format or "PNG", im.size
            if w * h > MAX_PIXELS:
                raise ImageInputError(field, f"{what} is {w}x{h}, over the {MAX_PIXELS:,}-pixel limit")
            im.load()
    except ImageInputError:
        raise
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, Image.DecompressionBombError) as e:
        raise ImageInputError(field, f"{what} is not a decodable image ({len(data):,} bytes; {e})") from None
    return LoadedImage(field, data, fmt, w, h)


def load_image_ref(field: str, ref: str, *, timeout: float = DEFAULT_TIMEOUT,
                   max_bytes: int = DEFAULT_MAX_BYTES, base_dir: str | Path | None = None) -> LoadedImage:
    """Read one image reference and check it decodes.

    ``field``: the request field for messages (``"inpaint_image_url"``, ``"image_prompt_2.image_url"``);
    ``ref``: URL, data URI or path (relative paths are resolved against ``base_dir``, usually the request
    file's folder); ``timeout``: seconds for an URL; ``max_bytes``: size limit for every kind.
    Raises :class:`ImageInputError` (a ``ValueError``) naming the field.
    """
    try:
        kind = classify_image_ref(ref)
    except ValueError as e:
        raise ImageInputError(field, str(e).removeprefix("image reference: ")) from None
    if kind == "url":
        return _check_image(field, _read_url(field, ref, timeout, max_bytes), ref)
    if kind == "data":
        return _check_image(field, _read_data_uri(field, ref, max_bytes), "the data URI")
    path = Path(ref).expanduser()
    if base_dir is not None and not path.is_absolute():
        path = Path(base_dir) / path
    return _check_image(field, _read_path(field, str(path), max_bytes), str(path))


async def load_image_ref_async(field: str, ref: str, **kw) -> LoadedImage:
    """:func:`load_image_ref` in a worker thread (downloads do not block the event loop)."""
    return await asyncio.to_thread(load_image_ref, field, ref, **kw)
