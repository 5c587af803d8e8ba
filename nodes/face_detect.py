"""FaceSwap face crop: find the face (optional detector) and align it (``engine.face_align``), spec §8.

Fooocus (extras/face_crop.py ``crop_image``) detects faces with facexlib's RetinaFace-ResNet50
(``detection_Resnet50_Final.pth``, kept in ``models/controlnet``; confidence threshold 0.97), takes the
first (most confident) face, aligns its 5 landmarks to the FFHQ 512 template and warps the image to
512x512; with no face, the whole image is used.

Detectors, in order, all optional and imported lazily:

1. facexlib (``pip install facexlib``) with ``detection_Resnet50_Final.pth`` in ``models/controlnet``
   (Fooocus's place) or ``models/facedetection``: Fooocus's own detector. The weights are loaded
   with the pack's safe unpickler; nothing is downloaded.
2. OpenCV's YuNet (``cv2.FaceDetectorYN``, opencv-python-headless >= 4.8) with a YuNet ``.onnx``
   file (e.g. ``face_detection_yunet_2023mar.onnx`` from the OpenCV model zoo) in ``models/facedetection``.
3. Neither: one warning line saying what to install / where to put it, and the whole image is used.

No ComfyUI function is replaced; this only reads ``folder_paths``.
"""
from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from typing import Callable

import numpy as np

from ..engine import face_align, preprocessors

log = logging.getLogger(__name__)

FACEXLIB_WEIGHTS = "detection_Resnet50_Final.pth"
#: model folders searched for the RetinaFace weights (Fooocus keeps them with the ControlNets)
FACEXLIB_FOLDERS = ("controlnet", "facedetection", "facexlib")
#: the model folder for OpenCV's YuNet onnx file (and, optionally, the RetinaFace weights)
FACE_DETECTION_FOLDER = "facedetection"
#: Fooocus's RetinaFace confidence threshold (``detect_faces(img, 0.97)``)
FACEXLIB_THRESHOLD = 0.97
YUNET_SCORE_THRESHOLD = 0.9

NO_DETECTOR_HINT = (
    f"FaceSwap: no face detector available, using the whole image. For Fooocus's face crop install "
    f"facexlib and put {FACEXLIB_WEIGHTS} in models/controlnet, or put an OpenCV YuNet .onnx "
    f"(face_detection_yunet_2023mar.onnx) in models/{FACE_DETECTION_FOLDER} (needs opencv-python-headless).")


@dataclass(frozen=True)
class FaceDetector:
    """A loaded detector: ``detect(rgb_u8 HxWx3) -> float (5, 2) landmarks of the best face, or None``."""

    name: str
    path: str
    detect: Callable[[np.ndarray], "np.ndarray | None"]


_CACHE: dict = {}


def _folder_dirs(folder: str) -> list[str]:
    import folder_paths

    dirs: list[str] = []
    try:
        dirs.extend(folder_paths.get_folder_paths(folder))
    except KeyError:  # not registered
        pass
    default = os.path.join(folder_paths.models_dir, folder)
    if default not in dirs:
        dirs.append(default)
    return [d for d in dirs if os.path.isdir(d)]


def find_model_file(folders: tuple[str, ...] | list[str], accept: Callable[[str], bool]) -> str | None:
    """The first file (sorted by name, folders in order) whose lower-case name ``accept`` accepts."""
    for folder in folders:
        for d in _folder_dirs(folder):
            for name in sorted(os.listdir(d)):
                p = os.path.join(d, name)
                if os.path.isfile(p) and accept(name.lower()):
                    return p
    return None


def _load_facexlib(path: str) -> FaceDetector:
    import torch
    from facexlib.detection.retinaface import RetinaFace  # optional dependency

    from ..engine.safe_pickle import load_model_file

    try:
        net = RetinaFace(network_name="resnet50", half=False, device=torch.device("cpu"))
    except TypeError:  # older facexlib: no device argument
        net = RetinaFace(network_name="resnet50", half=False)
    sd, _, _ = load_model_file(path, what="RetinaFace", expected="a state dict of tensors")
    sd = {(k[7:] if k.startswith("module.") else k): v for k, v in dict(sd).items()}
    net.load_state_dict(sd, strict=True)
    net.eval()
    net.to("cpu")
    if hasattr(net, "device"):
        net.device = torch.device("cpu")

    def detect(rgb: np.ndarray) -> np.ndarray | None:
        bgr = np.ascontiguousarray(rgb[:, :, ::-1])
        with torch.no_grad():
            boxes = net.detect_faces(bgr, FACEXLIB_THRESHOLD)
        boxes = np.asarray(boxes) if boxes is not None else np.zeros((0, 15))
        if boxes.ndim != 2 or boxes.shape[0] == 0 or boxes.shape[1] < 15:
            return None
        # rows are sorted by confidence; Fooocus takes the first: [x1, y1, x2, y2, score, 5 x (x, y)]
        return boxes[0, 5:15].astype(np.float64).reshape(5, 2)

    return FaceDetector("facexlib RetinaFace", path, detect)


def _load_yunet(path: str) -> FaceDetector:
    from ..engine.preprocessors import require_cv2

    cv2 = require_cv2()
    if not hasattr(cv2, "FaceDetectorYN"):
        raise ImportError("this OpenCV has no cv2.FaceDetectorYN (needs opencv-python-headless >= 4.8)")
    net = cv2.FaceDetectorYN.create(path, "", (320, 320), YUNET_SCORE_THRESHOLD, 0.3, 5000)

    def detect(rgb: np.ndarray) -> np.ndarray | None:
        h, w = rgb.shape[:2]
        net.setInputSize((int(w), int(h)))
        _, faces = net.detect(np.ascontiguousarray(rgb[:, :, ::-1]))
        if faces is None or len(faces) == 0:
            return None
        faces = np.asarray(faces, dtype=np.float64)
        # [x, y, w, h, right eye, left eye, nose, right mouth, left mouth (the subject's sides, i.e.
        # image-left first, as facexlib's order), score]
        return faces[int(np.argmax(faces[:, 14])), 4:14].reshape(5, 2)

    return FaceDetector("OpenCV YuNet", path, detect)


def _cached(kind: str, path: str, loader: Callable[[str], FaceDetector]) -> FaceDetector:
    key = (kind, path, os.stat(path).st_mtime_ns)
    if key not in _CACHE:
        _CACHE.clear()
        _CACHE[key] = loader(path)
    return _CACHE[key]


def _facexlib_importable() -> bool:
    import importlib.util

    try:
        return importlib.util.find_spec("facexlib") is not None
    except (ImportError, ValueError):
        return False


def find_detector() -> tuple[FaceDetector | None, str]:
    """The best available detector, or ``(None, reason)`` with a one-line hint of what to install."""
    problems: list[str] = []
    if _facexlib_importable():
        path = find_model_file(FACEXLIB_FOLDERS, lambda n: n == FACEXLIB_WEIGHTS.lower())
        if path is None:
            problems.append(f"facexlib is installed but {FACEXLIB_WEIGHTS} is not in models/controlnet")
        else:
            try:
                return _cached("facexlib", path, _load_facexlib), ""
            except Exception as exc:  # noqa: BLE001 - fall through to the next detector, say why
                problems.append(f"facexlib RetinaFace could not be loaded from {path}: {exc}")
    yunet = find_model_file((FACE_DETECTION_FOLDER,), lambda n: n.endswith(".onnx") and "yunet" in n) \
        or find_model_file((FACE_DETECTION_FOLDER,), lambda n: n.endswith(".onnx"))
    if yunet is not None:
        try:
            return _cached("yunet", yunet, _load_yunet), ""
        except Exception as exc:  # noqa: BLE001 - cv2 missing or a bad onnx: say so, use the whole image
            problems.append(f"OpenCV YuNet could not be loaded from {yunet}: {exc}".splitlines()[0])
    return None, (NO_DETECTOR_HINT + (" (" + "; ".join(problems) + ")" if problems else ""))


def _align(image_u8: np.ndarray, landmarks: np.ndarray) -> np.ndarray:
    """The 512 FaceSwap crop: OpenCV's LMEDS fit + warpAffine when OpenCV imports (exactly Fooocus, robust to
    one outlying landmark), else the pure least-squares fit and the cv2-exact warp of :mod:`engine.face_align`."""
    try:
        import cv2  # noqa: F401  (optional; lazily imported)
    except ImportError:
        face, _ = face_align.align_face(image_u8, landmarks, face_align.FACE_SIZE)
        return face
    return preprocessors.align_face(image_u8, np.asarray(landmarks, np.float32), face_align.FACE_SIZE)


def crop_face(image_u8: np.ndarray, detector: FaceDetector | None = None) -> np.ndarray:
    """Fooocus FaceSwap crop: the first face aligned to a 512x512 FFHQ crop, else the whole image.

    Fooocus: extras/face_crop.py ``crop_image``.

    Args:
        image_u8: uint8 ``H x W x 3`` RGB.
        detector: a :class:`FaceDetector`; default: :func:`find_detector` (a warning when none).
    Returns:
        uint8 ``512 x 512 x 3`` (a face was found) or ``image_u8`` itself (no detector / no face).
    """
    if not isinstance(image_u8, np.ndarray) or image_u8.dtype != np.uint8 or image_u8.ndim != 3 \
            or image_u8.shape[2] != 3:
        got = f"{getattr(image_u8, 'dtype', type(image_u8).__name__)} {getattr(image_u8, 'shape', '')}"
        raise ValueError(f"image must be a uint8 HxWx3 array, got {got}")
    if detector is None:
        detector, why = find_detector()
        if detector is None:
            log.warning(why)
            return image_u8
    landmarks = detector.detect(image_u8)
    if landmarks is None:
        log.warning("FaceSwap: %s found no face, using the whole image (as Fooocus does)", detector.name)
        return image_u8
    try:
        face = _align(image_u8, landmarks)
    except ValueError as exc:
        log.warning("FaceSwap: %s gave unusable landmarks (%s), using the whole image", detector.name, exc)
        return image_u8
    log.info("FaceSwap: face aligned with %s", detector.name)
    return face
