# Buffers: any C-contiguous object with the buffer protocol (NumPy arrays, bytes); the image
# may be strided.
from typing import Any

Dims = tuple[int, int, int, int, int]

def parse(data: bytes, /) -> tuple[Dims, bytes, bytes, bytes, bytes, bytes, bytes, bytes]: ...
def predict(image: Any, rect: tuple[float, float, float, float], initial: Any, idx1: Any,
            idx2: Any, thresh: Any, leaves: Any, scales: Any, anchor: Any, deltas: Any,
            dims: Dims, origin: tuple[int, int] = ..., /) -> bytes: ...
def quantize(leaves: Any, cascades: int, /) -> tuple[bytes, bytes]: ...
