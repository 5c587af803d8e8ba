"""Safe loading of untrusted model files (torch pickles and safetensors).

Fooocus loads its inpaint files with a plain ``torch.load`` (full pickle, arbitrary code allowed).
Here every torch pickle is read with ``torch.load(..., weights_only=True)``, which only rebuilds
tensors, storages and plain containers (dict, list, tuple, str, int, float, bool, None) and refuses
any other global, so a ``__reduce__`` payload such as ``os.system`` is rejected before it can run.
The Fooocus formats (``{"head": tensor}`` and ``{key: (u8, min, max)}``) load fine that way.

The format is detected from the file's first bytes, never from its name:

- ``PK\\x03\\x04``: the ``torch.save`` zip format (torch >= 1.6, all current Fooocus files);
- ``\\x80`` (pickle protocol marker): the legacy, non-zip ``torch.save`` format;
- an 8-byte little-endian header length followed by ``{``: safetensors.

Every failure is reported as :class:`UnsafeOrCorruptModelFile` (a ``ValueError``) or one of its
subclasses, with a message that names the file and what was expected.
"""
from __future__ import annotations

import logging
import os
import pickle
import struct
import zipfile
from pathlib import Path
from typing import Any

import torch

logger = logging.getLogger(__name__)

__all__ = [
    "UnsafeOrCorruptModelFile",
    "UnsafeModelFile",
    "CorruptModelFile",
    "ModelFileMissing",
    "sniff_format",
    "safe_torch_load",
    "load_safetensors",
    "load_model_file",
]

_ZIP_MAGIC = b"PK\x03\x04"
_PICKLE_PROTO = 0x80
# Largest safetensors JSON header we accept (the format itself caps it at 100 MB).
_MAX_ST_HEADER = 100 * 1024 * 1024


class UnsafeOrCorruptModelFile(ValueError):
    """A model file could not be loaded safely: unreadable, corrupt, or with executable content."""


class UnsafeModelFile(UnsafeOrCorruptModelFile):
    """The file holds pickle content that would run code or import non-tensor objects; refused."""


class CorruptModelFile(UnsafeOrCorruptModelFile):
    """The file is not a torch zip / pickle / safetensors file, is truncated, or is malformed."""


class ModelFileMissing(UnsafeOrCorruptModelFile, FileNotFoundError):
    """The path does not exist or is not a regular file (also a ``FileNotFoundError``)."""


def _describe(path: str | os.PathLike, what: str) -> str:
    return f"{what} file {os.fspath(path)!r}"


def _check_exists(path: str | os.PathLike, what: str) -> Path:
    p = Path(path)
    if not p.is_file():
        raise ModelFileMissing(f"{_describe(path, what)} does not exist or is not a regular file")
    return p


def sniff_format(path: str | os.PathLike, what: str = "model") -> str:
    """Detect a model file's container format from its first bytes.

    Args:
        path: file to inspect.
        what: human name of the file for error messages (e.g. ``"inpaint patch"``).

    Returns:
        ``"torch_zip"`` (``torch.save`` zip format), ``"torch_legacy"`` (pre-1.6 pickle format)
        or ``"safetensors"``.

    Raises:
        ModelFileMissing: the file does not exist.
        CorruptModelFile: empty file, or none of the three formats.

    Fooocus counterpart: none (Fooocus calls ``torch.load`` / ``safetensors`` by file name in
    ``ldm_patched/modules/utils.py load_torch_file``).
    """
    p = _check_exists(path, what)
    size = p.stat().st_size
    with open(p, "rb") as f:
        head = f.read(16)
    if not head:
        raise CorruptModelFile(
            f"{_describe(path, what)} is empty; expected a torch.save file (zip or pickle) or safetensors"
        )
    if head.startswith(_ZIP_MAGIC):
        return "torch_zip"
    if head[0] == _PICKLE_PROTO:
        return "torch_legacy"
    if len(head) >= 9:
        (n,) = struct.unpack("<Q", head[:8])
        if 2 <= n <= _MAX_ST_HEADER and head[8:9] == b"{" and 8 + n <= size:
            return "safetensors"
    raise CorruptModelFile(
        f"{_describe(path, what)} is neither a torch.save file (zip archive starting with 'PK' or a "
        f"pickle starting with 0x80) nor a safetensors file; its first bytes are {head[:8]!r}"
    )


def _is_unsafe_message(msg: str) -> bool:
    m = msg.lower()
    return ("global" in m and ("unsupported" in m or "blocked" in m or "not an allowed" in m)) or (
        "weights only load failed" in m and "global" in m
    )


def safe_torch_load(
    path: str | os.PathLike, *, what: str = "model", expected: str = "a dict of tensors", mmap: bool = False
) -> Any:
    """Load a ``torch.save`` file with ``weights_only=True`` onto the CPU.

    Args:
        path: ``.pth`` / ``.patch`` / ``.bin`` / ``.ckpt`` file (zip or legacy format).
        what: human name of the file for error messages.
        expected: description of the expected content, used in error messages.
        mmap: memory-map the tensor storages instead of reading them (zip format only; ignored,
            with a debug log, for the legacy format). Tensors then page in lazily from the file.

    Returns:
        The unpickled object (tensors on the CPU, dtypes as stored).

    Raises:
        ModelFileMissing: no such file.
        UnsafeModelFile: the pickle references a global outside torch's weights-only allow-list
            (e.g. ``os.system`` from a ``__reduce__`` payload); nothing is executed.
        CorruptModelFile: not a torch file, truncated zip/pickle, or any other read error.

    Fooocus counterpart: ``ldm_patched/modules/utils.py load_torch_file`` (there with a full,
    unsafe pickle for ``.patch`` files).
    """
    fmt = sniff_format(path, what)
    if fmt == "safetensors":
        raise CorruptModelFile(
            f"{_describe(path, what)} is a safetensors file, not a torch.save pickle; expected {expected}"
        )
    if fmt == "torch_zip" and not zipfile.is_zipfile(path):
        raise CorruptModelFile(
            f"{_describe(path, what)} starts like a zip archive but has no readable zip directory "
            f"(truncated or damaged download?); expected a torch.save zip holding {expected}"
        )
    use_mmap = bool(mmap) and fmt == "torch_zip"
    if mmap and not use_mmap:
        logger.debug("%s: legacy torch format, loading without mmap", os.fspath(path))
    fspath = os.fspath(path)
    try:
        if fspath.endswith(".safetensors"):
            # torch.load dispatches on that suffix to safetensors; pass a handle to read the pickle.
            with open(fspath, "rb") as fh:
                return torch.load(fh, map_location="cpu", weights_only=True)
        return torch.load(fspath, map_location="cpu", weights_only=True, mmap=use_mmap)
    except pickle.UnpicklingError as e:
        msg = str(e)
        if _is_unsafe_message(msg):
            detail = next((ln.strip() for ln in msg.splitlines() if "GLOBAL" in ln.upper()), msg[-300:])
            raise UnsafeModelFile(
                f"refused to load {_describe(path, what)}: its pickle references a global that a weights-only "
                f"file must not contain ({detail}), i.e. executable content or a damaged file; expected "
                f"{expected}. Nothing from it was executed. Re-download the file from its official source."
            ) from None
        raise CorruptModelFile(
            f"{_describe(path, what)} is not a valid torch pickle ({msg.strip().splitlines()[-1] if msg.strip() else type(e).__name__}); "
            f"expected {expected}"
        ) from e
    except (MemoryError, KeyboardInterrupt):
        raise
    except Exception as e:  # truncated zips give OSError/RuntimeError/EOFError/KeyError, depending on where
        raise CorruptModelFile(
            f"{_describe(path, what)} could not be read as a torch.save file "
            f"({type(e).__name__}: {str(e).strip()[:200] or 'no detail'}); the file is probably truncated "
            f"or damaged; expected {expected}"
        ) from e


def load_safetensors(path: str | os.PathLike, *, what: str = "model") -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """Load every tensor of a safetensors file onto the CPU, plus its string metadata.

    Args:
        path: ``.safetensors`` file.
        what: human name of the file for error messages.

    Returns:
        ``(tensors, metadata)``: ``{name: tensor}`` with dtypes as stored, and the header's
        ``__metadata__`` dict (empty when absent).

    Raises:
        ModelFileMissing / CorruptModelFile, as :func:`safe_torch_load`.

    Fooocus counterpart: ``ldm_patched/modules/utils.py load_torch_file`` (safetensors branch).
    """
    fmt = sniff_format(path, what)
    if fmt != "safetensors":
        raise CorruptModelFile(f"{_describe(path, what)} is a torch.save file ({fmt}), not safetensors")
    try:
        from safetensors import safe_open

        out: dict[str, torch.Tensor] = {}
        with safe_open(os.fspath(path), framework="pt", device="cpu") as f:
            meta = dict(f.metadata() or {})
            for k in f.keys():
                out[k] = f.get_tensor(k)
        return out, meta
    except (MemoryError, KeyboardInterrupt):
        raise
    except Exception as e:
        raise CorruptModelFile(
            f"{_describe(path, what)} is not a valid safetensors file ({type(e).__name__}: "
            f"{str(e).strip()[:200]}); the file is probably truncated or damaged"
        ) from e


def load_model_file(
    path: str | os.PathLike, *, what: str = "model", expected: str = "a dict of tensors", mmap: bool = False
) -> tuple[Any, dict[str, str] | None, str]:
    """Load a torch pickle or safetensors file safely, whatever its extension.

    Args:
        path: the file; its format is sniffed from the content (see :func:`sniff_format`).
        what, expected: used in error messages.
        mmap: forwarded to :func:`safe_torch_load` (ignored for safetensors, which this reads fully).

    Returns:
        ``(obj, metadata, fmt)``: for torch files ``obj`` is the unpickled object and ``metadata``
        is ``None``; for safetensors ``obj`` is a flat ``{name: tensor}`` dict and ``metadata`` the
        header's string metadata. ``fmt`` is the value of :func:`sniff_format`.

    Raises:
        ModelFileMissing, UnsafeModelFile, CorruptModelFile (all ``ValueError``).

    Fooocus counterpart: ``ldm_patched/modules/utils.py load_torch_file``.
    """
    fmt = sniff_format(path, what)
    if fmt == "safetensors":
        tensors, meta = load_safetensors(path, what=what)
        return tensors, meta, fmt
    return safe_torch_load(path, what=what, expected=expected, mmap=mmap), None, fmt
