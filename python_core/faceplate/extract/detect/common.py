"""Helpers shared by the detectors: box-convention mapping, NMS, resizing, rotation, ONNX shapes.

Convention:
    Points are (x, y) frame pixels, x right, y down, pixel centres at +0.5. Boxes are
    ``(x, y, w, h)`` floats in the same coordinates; arrays of boxes are N×4 float64
    ``(x0, y0, x1, y1)`` corner form unless stated.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from faceplate.core.types import BBox, Detection


@dataclass(frozen=True)
class BoxMap:
    """An affine map from a detector's native box to dlib's frontal-HOG box convention.

    With the native box centre ``(cx, cy)`` and size ``(w, h)``::

        cx' = cx + dx * w      cy' = cy + dy * h      w' = sw * w      h' = sh * h

    The constants are calibrated per detector by ``tools/calibrate_boxes.py`` (least squares
    against dlib HOG boxes on the sample media).
    """

    dx: float = 0.0
    dy: float = 0.0
    sw: float = 1.0
    sh: float = 1.0

    def apply(self, x: float, y: float, w: float, h: float) -> BBox:
        """Map the native box ``(x, y, w, h)`` to the aligner convention."""
        cx = x + w / 2.0 + self.dx * w
        cy = y + h / 2.0 + self.dy * h
        nw, nh = self.sw * w, self.sh * h
        return BBox(float(cx - nw / 2.0), float(cy - nh / 2.0), float(nw), float(nh))

    def invert(self, box: BBox) -> BBox:
        """The native box that :meth:`apply` maps onto ``box``."""
        w, h = box.w / self.sw, box.h / self.sh
        cx, cy = box.center
        cx, cy = cx - self.dx * w, cy - self.dy * h
        return BBox(float(cx - w / 2.0), float(cy - h / 2.0), float(w), float(h))


IDENTITY_MAP = BoxMap()


def nms(boxes: np.ndarray, scores: np.ndarray, iou_threshold: float) -> np.ndarray:
    """Greedy non-maximum suppression.

    Args:
        boxes: N×4 float ``(x0, y0, x1, y1)``.
        scores: N floats; higher is better.
        iou_threshold: A box overlapping a kept, higher-scoring box by more than this is dropped.

    Returns:
        Indices of the kept boxes, best first (int64).
    """
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    order = np.argsort(-np.asarray(scores, dtype=np.float64), kind="stable")
    areas = np.maximum(boxes[:, 2] - boxes[:, 0], 0) * np.maximum(boxes[:, 3] - boxes[:, 1], 0)
    keep: list[int] = []
    while order.size:
        i = int(order[0])
        keep.append(i)
        rest = order[1:]
        ix = np.minimum(boxes[i, 2], boxes[rest, 2]) - np.maximum(boxes[i, 0], boxes[rest, 0])
        iy = np.minimum(boxes[i, 3], boxes[rest, 3]) - np.maximum(boxes[i, 1], boxes[rest, 1])
        inter = np.maximum(ix, 0) * np.maximum(iy, 0)
        union = areas[i] + areas[rest] - inter
        iou = np.where(union > 0, inter / np.maximum(union, 1e-12), 0.0)
        order = rest[iou <= iou_threshold]
    return np.asarray(keep, dtype=np.int64)


def fit_max_side(rgb: np.ndarray, max_side: int) -> tuple[np.ndarray, float]:
    """Downscale so the longer side is at most ``max_side`` (0 = never).

    Returns:
        The (possibly new) image and the factor ``k`` with ``resized = k * original``
        coordinates (k ≤ 1).
    """
    h, w = rgb.shape[:2]
    if max_side <= 0 or max(h, w) <= max_side:
        return rgb, 1.0
    k = max_side / max(h, w)
    nw, nh = max(1, round(w * k)), max(1, round(h * k))
    out = cv2.resize(rgb, (nw, nh), interpolation=cv2.INTER_AREA)
    # The exact per-axis factors differ by rounding; use the mean (error < half a pixel).
    return out, 0.5 * (nw / w + nh / h)


def scale_detection(det: Detection, k: float) -> Detection:
    """``det`` with box and keypoints divided by ``k`` (resized → original coordinates)."""
    b = det.bbox
    kp = None if det.keypoints is None else (det.keypoints / k).astype(np.float32)
    return Detection(BBox(b.x / k, b.y / k, b.w / k, b.h / k), det.score, det.detector, kp,
                     det.angle)


def rotate_frame(rgb: np.ndarray, angle: float) -> tuple[np.ndarray, np.ndarray]:
    """Rotate a frame counter-clockwise by ``angle`` degrees onto a canvas that holds all of it.

    Returns:
        The rotated H'×W'×3 image and the 2×3 float64 matrix mapping rotated-frame points back to
        the original frame (pixel centres at +0.5 on both sides). Multiples of 90° are exact
        (``np.rot90``); other angles are resampled bilinearly with black borders.
    """
    h, w = rgb.shape[:2]
    a = float(angle) % 360.0
    if a in (0.0, 90.0, 180.0, 270.0):
        k = int(a // 90)
        rot = np.ascontiguousarray(np.rot90(rgb, k))
        # Forward map (original → rotated) for a counter-clockwise turn, y down.
        fwd = {
            0: np.array([[1.0, 0, 0], [0, 1.0, 0]]),
            1: np.array([[0, 1.0, 0], [-1.0, 0, w]]),
            2: np.array([[-1.0, 0, w], [0, -1.0, h]]),
            3: np.array([[0, -1.0, h], [1.0, 0, 0]]),
        }[k]
    else:
        t = np.radians(a)
        c, s = np.cos(t), np.sin(t)
        nw = int(np.ceil(abs(w * c) + abs(h * s)))
        nh = int(np.ceil(abs(w * s) + abs(h * c)))
        # Counter-clockwise on screen (y down): x' = c*x + s*y, y' = -s*x + c*y about the centres.
        lin = np.array([[c, s], [-s, c]])
        off = np.array([nw / 2.0, nh / 2.0]) - lin @ np.array([w / 2.0, h / 2.0])
        fwd = np.hstack([lin, off[:, None]])
        cvm = fwd.copy()
        cvm[:, 2] += fwd[:, :2] @ np.array([0.5, 0.5]) - 0.5
        rot = cv2.warpAffine(rgb, cvm, (nw, nh), flags=cv2.INTER_LINEAR,
                             borderMode=cv2.BORDER_CONSTANT)
    full = np.vstack([fwd, [0.0, 0.0, 1.0]])
    back = np.linalg.inv(full)[:2]
    return rot, back


def clip_box(box: BBox, width: int, height: int, margin: float = 0.5) -> BBox | None:
    """``box`` unchanged if it overlaps the frame; ``None`` if less than ``margin`` of it does.

    Boxes are allowed to stick out of the frame (a face cut by the edge keeps its true box, which
    the aligner needs); a box mostly outside the frame is not a usable detection.
    """
    ix = max(0.0, min(box.x + box.w, width) - max(box.x, 0.0))
    iy = max(0.0, min(box.y + box.h, height) - max(box.y, 0.0))
    area = box.w * box.h
    if area <= 0 or ix * iy < margin * area:
        return None
    return box


# --- ONNX: drop the fixed input/output shapes a model declares -------------------------------
# Minimal protobuf wire-format editing (no ``onnx`` package needed). Field numbers are those of
# onnx.proto: ModelProto.graph = 7; GraphProto.initializer = 5, input = 11, output = 12;
# TensorProto.name = 8; ValueInfoProto.name = 1, type = 2; TypeProto.tensor_type = 1;
# TypeProto.Tensor.shape = 2.


def _read_varint(buf: bytes, i: int) -> tuple[int, int]:
    value, shift = 0, 0
    while True:
        b = buf[i]
        i += 1
        value |= (b & 0x7F) << shift
        shift += 7
        if not b & 0x80:
            return value, i


def _write_varint(value: int) -> bytes:
    out = bytearray()
    while True:
        b = value & 0x7F
        value >>= 7
        if value:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def _fields(buf: bytes) -> list[tuple[int, bytes, bytes | None]]:
    """Split a protobuf message into (field number, raw bytes, payload for length-delimited)."""
    out: list[tuple[int, bytes, bytes | None]] = []
    i, n = 0, len(buf)
    while i < n:
        start = i
        key, i = _read_varint(buf, i)
        num, wire = key >> 3, key & 7
        payload = None
        if wire == 0:
            _, i = _read_varint(buf, i)
        elif wire == 1:
            i += 8
        elif wire == 5:
            i += 4
        elif wire == 2:
            ln, j = _read_varint(buf, i)
            i = j + ln
            payload = buf[j:i]
        else:
            raise ValueError(f"unsupported protobuf wire type {wire}")
        if i > n:
            raise ValueError("truncated protobuf message")
        out.append((num, buf[start:i], payload))
    return out


def _ld(num: int, payload: bytes) -> bytes:
    return _write_varint((num << 3) | 2) + _write_varint(len(payload)) + payload


def _name(msg: bytes, field: int) -> str:
    for num, _, payload in _fields(msg):
        if num == field and payload is not None:
            return bytes(payload).decode("utf-8", "replace")
    return ""


def _strip_shape(value_info: bytes) -> bytes:
    out = bytearray()
    for num, raw, payload in _fields(value_info):
        if num == 2 and payload is not None:  # type
            tp = bytearray()
            for tnum, traw, tpay in _fields(payload):
                if tnum == 1 and tpay is not None:  # tensor_type
                    kept = b"".join(r for n2, r, _ in _fields(tpay) if n2 != 2)
                    tp += _ld(1, kept)
                else:
                    tp += traw
            out += _ld(2, bytes(tp))
        else:
            out += raw
    return bytes(out)


def onnx_dynamic_io(model: bytes) -> bytes:
    """Serialized ONNX model with the shapes of its graph inputs and outputs removed, and its
    weights no longer listed as graph inputs.

    Some exported models declare a fixed input size although every layer is size-agnostic;
    onnxruntime then refuses other sizes. Removing the declared shapes lets the runtime infer
    them from the actual input. Old exporters also list every initialiser (weight) as a graph
    input, which tells the runtime a caller may replace it, so it cannot fold batch norms into
    convolutions or pre-pack weights; dropping those entries (the initialisers stay) makes
    CenterFace about twice as fast with the same outputs (to 1e-5). Models from IR version 4 on
    allow initialisers that are not inputs.
    """
    out = bytearray()
    fields = _fields(model)
    # ModelProto.ir_version (field 1, a varint): before IR 4 initialisers had to be inputs.
    ir = next((_read_varint(raw, 1)[0] for num, raw, _ in fields if num == 1), 0)
    for num, raw, payload in fields:
        if num != 7 or payload is None:
            out += raw
            continue
        graph_fields = _fields(payload)
        inits = {_name(p, 8) for n, _, p in graph_fields if n == 5 and p is not None}
        graph = bytearray()
        for gnum, graw, gpay in graph_fields:
            if gnum == 11 and gpay is not None and ir >= 4 and _name(gpay, 1) in inits:
                continue  # a weight listed as an input: drop it, it stays an initialiser
            if gpay is not None and gnum in (11, 12):
                graph += _ld(gnum, _strip_shape(gpay))
            else:
                graph += graw
        out += _ld(7, bytes(graph))
    return bytes(out)
