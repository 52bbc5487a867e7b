"""Training: a swap model for two facesets (``faceplate train`` / ``python -m faceplate.train``).

``train`` never imports ``convert``; the two meet only in the model directory format
(``faceplate.io.model_files``: a JSON manifest plus safetensors weights, never pickle) and the
architectures both need to run weights (``faceplate.models``).
"""
