"""Building mediapipe's legacy solution graphs (BlazeFace, face mesh) in one place.

mediapipe 0.10.21 ships the models inside its wheel; its graphs are built here so that every
caller gets the same error handling (:class:`ModelError`) and the same quiet start: importing
mediapipe with protobuf 6 prints a harmless ``MessageFactory ... GetPrototype`` traceback line
and absl start-up warnings on the process's stderr, which would alarm users on every run. The
native stderr is silenced only while mediapipe is imported and a graph is built and run once
on a blank image (its first run starts the inference calculators, which log warnings too).

:class:`FaceLandmarkNet` runs the face mesh's landmark network alone, on a crop the caller cut,
through a small graph of mediapipe's own calculators: the legacy solution does not expose the
network's face-presence output, which the detector chain's verification uses.
"""

from __future__ import annotations

import contextlib
import os
import sys
import threading
from collections.abc import Iterator
from typing import Any

import numpy as np

from faceplate.core.errors import ModelError

_lock = threading.Lock()


@contextlib.contextmanager
def _quiet_native_stderr() -> Iterator[None]:
    try:
        fd = sys.stderr.fileno()
    except (AttributeError, OSError, ValueError):  # no real stderr (embedded, captured)
        yield
        return
    sys.stderr.flush()
    saved = os.dup(fd)
    try:
        with open(os.devnull, "w") as null:
            os.dup2(null.fileno(), fd)
            yield
    finally:
        os.dup2(saved, fd)
        os.close(saved)


def _build(what: str, factory: str, **kwargs: Any) -> Any:
    os.environ.setdefault("GLOG_minloglevel", "2")
    with _lock, _quiet_native_stderr():
        try:
            import mediapipe as mp

            solution = getattr(mp.solutions, factory)
            cls = solution.FaceDetection if factory == "face_detection" else solution.FaceMesh
            graph = cls(**kwargs)
            # The first run starts the inference calculators, which log their own warnings.
            graph.process(np.zeros((64, 64, 3), np.uint8))
            return graph
        except Exception as err:  # mediapipe raises bare RuntimeError / missing-file errors
            raise ModelError(f"cannot build the mediapipe {what} graph: {err}") from err


def face_detection(min_confidence: float, short_range: bool = False) -> Any:
    """BlazeFace detection graph: full-range (``model_selection=1``, faces up to ~5 m, 192×192
    input) or short-range (``model_selection=0``, faces filling much of the image, 128×128)."""
    return _build("BlazeFace", "face_detection", model_selection=0 if short_range else 1,
                  min_detection_confidence=min_confidence)


def face_mesh(max_faces: int, min_confidence: float) -> Any:
    """468-point face-mesh graph in still-image mode (no tracking carried between calls)."""
    return _build("face-mesh", "face_mesh", static_image_mode=True, max_num_faces=max_faces,
                  refine_landmarks=False, min_detection_confidence=min_confidence)


#: The face mesh's landmark network on a 192×192 RGB crop (values 0..1): 468 points and the
#: face-flag logit, turned into a probability by a sigmoid, as mediapipe's own face-landmark
#: subgraph does before it gates its output at 0.5.
_LANDMARK_GRAPH = r"""
input_stream: "image"
output_stream: "presence"
output_stream: "landmarks"
node {
  calculator: "ImageToTensorCalculator"
  input_stream: "IMAGE:image"
  output_stream: "TENSORS:input_tensors"
  options: { [mediapipe.ImageToTensorCalculatorOptions.ext] {
    output_tensor_width: 192 output_tensor_height: 192
    output_tensor_float_range { min: 0.0 max: 1.0 } } }
}
node {
  calculator: "InferenceCalculator"
  input_stream: "TENSORS:input_tensors"
  output_stream: "TENSORS:output_tensors"
  options: { [mediapipe.InferenceCalculatorOptions.ext] {
    model_path: "mediapipe/modules/face_landmark/face_landmark.tflite"
    delegate { xnnpack {} } } }
}
node {
  calculator: "SplitTensorVectorCalculator"
  input_stream: "output_tensors"
  output_stream: "landmark_tensors"
  output_stream: "face_flag_tensor"
  options: { [mediapipe.SplitVectorCalculatorOptions.ext] {
    ranges: { begin: 0 end: 1 } ranges: { begin: 1 end: 2 } } }
}
node {
  calculator: "TensorsToFloatsCalculator"
  input_stream: "TENSORS:face_flag_tensor"
  output_stream: "FLOAT:presence"
  options: { [mediapipe.TensorsToFloatsCalculatorOptions.ext] { activation: SIGMOID } }
}
node {
  calculator: "TensorsToLandmarksCalculator"
  input_stream: "TENSORS:landmark_tensors"
  output_stream: "NORM_LANDMARKS:landmarks"
  options: { [mediapipe.TensorsToLandmarksCalculatorOptions.ext] {
    num_landmarks: 468 input_image_width: 192 input_image_height: 192 } }
}
"""

#: Side of the landmark network's input in pixels.
LANDMARK_INPUT = 192


class FaceLandmarkNet:
    """The face mesh's landmark network run on one prepared crop at a time (thread-safe).

    :meth:`run` takes a 192×192×3 ``uint8`` RGB crop with the face upright in its middle (the
    face mesh's own region: about 1.5× the face box around it) and returns the 468 mesh points
    in crop pixels (x, y, and z in the x scale, smaller = nearer) and the network's
    face-presence probability in [0, 1].
    """

    def __init__(self) -> None:
        os.environ.setdefault("GLOG_minloglevel", "2")
        self._lock = threading.Lock()
        self._out: dict[str, Any] = {}
        self._ts = 0
        with _lock, _quiet_native_stderr():
            try:
                import mediapipe as mp
                from mediapipe.python._framework_bindings import resource_util

                self._mp = mp
                resource_util.set_resource_dir(os.path.dirname(os.path.dirname(mp.__file__)))
                graph = mp.CalculatorGraph(graph_config=_LANDMARK_GRAPH)
                graph.observe_output_stream(
                    "presence", lambda _s, p: self._out.__setitem__(
                        "presence", mp.packet_getter.get_float(p)))
                graph.observe_output_stream(
                    "landmarks", lambda _s, p: self._out.__setitem__(
                        "landmarks", mp.packet_getter.get_proto(p)))
                graph.start_run()
                self._graph = graph
                self._run_locked(np.zeros((LANDMARK_INPUT, LANDMARK_INPUT, 3), np.uint8))
            except Exception as err:  # mediapipe raises bare RuntimeError / missing files
                raise ModelError(f"cannot build the mediapipe face-landmark graph: {err}") \
                    from err

    def _run_locked(self, crop: np.ndarray) -> tuple[np.ndarray, float]:
        mp = self._mp
        self._out.clear()
        packet = mp.packet_creator.create_image_frame(image_format=mp.ImageFormat.SRGB,
                                                      data=crop)
        self._graph.add_packet_to_input_stream("image", packet.at(self._ts))
        self._ts += 1
        self._graph.wait_until_idle()
        lms = self._out["landmarks"].landmark
        pts = np.array([[p.x, p.y, p.z] for p in lms], np.float64) * LANDMARK_INPUT
        return pts, float(self._out["presence"])

    def run(self, crop: np.ndarray) -> tuple[np.ndarray, float]:
        """``(468×3 float64 crop-pixel points, presence in [0, 1])`` for one crop."""
        if crop.shape != (LANDMARK_INPUT, LANDMARK_INPUT, 3) or crop.dtype != np.uint8:
            raise ValueError(f"crop: expected {LANDMARK_INPUT}×{LANDMARK_INPUT}×3 uint8, got "
                             f"{crop.shape} {crop.dtype}")
        with self._lock:
            return self._run_locked(np.ascontiguousarray(crop))

    def close(self) -> None:
        """Stop the graph (the instance is unusable afterwards)."""
        with self._lock:
            self._graph.close()
