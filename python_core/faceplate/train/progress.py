"""Training progress: the console line, the preview grid, the loss curve and TensorBoard.

- :class:`Meter` tracks seconds per iteration and reports EGs/s the way Faceswap does: both
  sides count, so EGs/s = 2 × batch × accumulation ÷ seconds per iteration.
- :func:`console_line` formats ``iteration, EGs/s, each loss per side, ETA``.
- :func:`preview_grid` lays out the seed's preview: for each side, a row of originals, a row of
  reconstructions and a row of swaps (A | A→A | A→B, then B | B→B | B→A), a few faces each,
  labelled on the left; :func:`write_png` writes it atomically.
- :func:`plot_losses` draws the loss history (matplotlib, Agg backend, log scale) to a PNG.
- :class:`TensorBoard` writes scalars and the preview image under ``MODEL_DIR/logs``.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
from torch import Tensor

from faceplate.core.errors import OutputError
from faceplate.io.model_files import write_bytes_atomic

#: Row labels of the preview grid, in order.
PREVIEW_ROWS = ("A", "A>A", "A>B", "B", "B>B", "B>A")


@dataclass
class Meter:
    """Seconds-per-iteration meter (exponential moving average after a short warm-up).

    Args:
        examples_per_iteration: Faces that go through the model per iteration, both sides
            counted (2 × batch × accumulation).
    """

    examples_per_iteration: int
    _last: float = field(default_factory=time.perf_counter)
    _ema: float = 0.0
    _count: int = 0

    def tick(self, iterations: int = 1) -> None:
        """Mark ``iterations`` iterations done since the previous tick."""
        now = time.perf_counter()
        per = (now - self._last) / max(1, iterations)
        self._last = now
        self._count += 1
        # the first iterations include warm-up (allocations, compile): replace, don't average
        self._ema = per if self._count <= 2 else 0.9 * self._ema + 0.1 * per

    def reset_clock(self) -> None:
        """Restart the clock (after a pause such as a checkpoint or preview)."""
        self._last = time.perf_counter()

    @property
    def seconds_per_iteration(self) -> float:
        return self._ema

    @property
    def egs_per_second(self) -> float:
        """Examples per second, both sides counted (Faceswap's EGs/s)."""
        return self.examples_per_iteration / self._ema if self._ema > 0 else 0.0

    def eta(self, remaining: int) -> float:
        """Seconds to go for ``remaining`` iterations."""
        return max(0, remaining) * self._ema


def format_duration(seconds: float) -> str:
    """``H:MM:SS`` (``D d H:MM:SS`` beyond a day); ``--:--:--`` when unknown."""
    if not math.isfinite(seconds) or seconds < 0:
        return "--:--:--"
    s = int(round(seconds))
    d, s = divmod(s, 86400)
    h, s = divmod(s, 3600)
    m, s = divmod(s, 60)
    return (f"{d} d " if d else "") + f"{h}:{m:02d}:{s:02d}"


def console_line(iteration: int, target: int, meter: Meter,
                 losses: Mapping[str, Mapping[str, float]]) -> str:
    """One progress line, e.g.
    ``[  1200/100000] 14.2 EGs/s | A ssim 0.1234 l2 0.0123 total 0.1357 | B ... | ETA 1:02:03``.

    Args:
        iteration: Iterations done.
        target: The target iteration.
        meter: The speed meter.
        losses: Side ("a"/"b", ...) → loss name → value (averaged since the last line).
    """
    width = len(str(target))
    parts = [f"[{iteration:>{width}d}/{target}] {meter.egs_per_second:.1f} EGs/s"]
    for side, vals in losses.items():
        parts.append(side.upper() + " " + " ".join(f"{k} {v:.4f}" for k, v in vals.items()))
    parts.append(f"ETA {format_duration(meter.eta(target - iteration))}")
    return " | ".join(parts)


def _to_uint8(t: Tensor) -> np.ndarray:
    """N×C×H×W float [0, 1] (C = 1 or 3) → N×H×W×3 uint8 RGB."""
    t = t.detach().float().clamp(0, 1).cpu()
    if t.shape[1] == 1:
        t = t.expand(-1, 3, -1, -1)
    return (t.permute(0, 2, 3, 1).numpy() * 255.0 + 0.5).astype(np.uint8)


def preview_grid(rows: Sequence[Tensor], labels: Sequence[str] = PREVIEW_ROWS,
                 cell: int | None = None, label_width: int = 48) -> np.ndarray:
    """Lay out rows of faces as one image.

    Args:
        rows: One N×3×H×W float tensor per row, RGB sRGB in [0, 1] (all rows the same N; faces
            of different sizes are resized to ``cell``).
        labels: One label per row, drawn in a left margin.
        cell: Side of each face cell in px (default: the first row's H).
        label_width: Width of the label margin in px.

    Returns:
        H×W×3 uint8 RGB image (``len(rows)·cell`` × ``label_width + N·cell``), 1 px gaps.
    """
    if not rows:
        raise ValueError("preview_grid needs at least one row")
    n = rows[0].shape[0]
    cell = cell or int(rows[0].shape[-2])
    gap = 1
    h = len(rows) * (cell + gap) - gap
    w = label_width + n * (cell + gap) - gap
    canvas = np.full((h, w, 3), 24, np.uint8)
    for r, (row, label) in enumerate(zip(rows, labels)):
        faces = _to_uint8(row[:n])
        y = r * (cell + gap)
        for c, face in enumerate(faces):
            if face.shape[0] != cell:
                face = cv2.resize(face, (cell, cell), interpolation=cv2.INTER_AREA)
            x = label_width + c * (cell + gap)
            canvas[y:y + cell, x:x + cell] = face
        scale = max(0.3, min(0.6, cell / 160))
        cv2.putText(canvas, label, (4, y + cell // 2 + 5), cv2.FONT_HERSHEY_SIMPLEX, scale,
                    (235, 235, 235), 1, cv2.LINE_AA)
    return canvas


def write_png(path: str | Path, rgb: np.ndarray) -> Path:
    """Write an H×W×3 uint8 RGB image as PNG atomically."""
    ok, buf = cv2.imencode(".png", np.ascontiguousarray(rgb[..., ::-1]))
    if not ok:
        raise OutputError("PNG encoding failed", path)
    return write_bytes_atomic(path, buf.tobytes())


def save_preview(model_dir: Path, iteration: int, grid: np.ndarray) -> Path:
    """Write a preview grid (H×W×3 uint8 RGB) as ``previews/preview_<iteration>.png`` and
    ``previews/latest.png`` under ``model_dir``; returns the first path."""
    folder = model_dir / "previews"
    try:
        folder.mkdir(exist_ok=True)
    except OSError as err:
        raise OutputError(f"cannot write previews ({err.strerror or err})", folder) from None
    path = write_png(folder / f"preview_{iteration:08d}.png", grid)
    write_png(folder / "latest.png", grid)
    return path


def _smooth(values: np.ndarray, alpha: float = 0.1) -> np.ndarray:
    out = np.empty_like(values)
    acc = values[0]
    for i, v in enumerate(values):
        acc = alpha * v + (1 - alpha) * acc if i else v
        out[i] = acc
    return out


def plot_losses(history: Sequence[Mapping[str, Any]], path: str | Path,
                title: str = "training loss", sides: Sequence[str] = ("a", "b")) -> Path:
    """Draw the loss history to a PNG (Agg backend; written atomically).

    Args:
        history: Entries ``{"iteration": int, "a": {name: value}, "b": {name: value}}`` (one
            ``{name: value}`` per side).
        path: The PNG to write.
        title: Plot title.
        sides: The entries' side keys (a mask model's history has one, ``"mask"``).
    """
    import io

    import matplotlib

    matplotlib.use("Agg", force=False)
    from matplotlib.figure import Figure

    fig = Figure(figsize=(9, 4.5), dpi=100)
    ax = fig.add_subplot(1, 1, 1)
    its = np.array([h["iteration"] for h in history], dtype=np.float64)
    line_styles = ("-", "--", ":", "-.")
    styles = {side: line_styles[i % len(line_styles)] for i, side in enumerate(sides)}
    for side in sides:
        names: list[str] = []
        for h in history:
            for k in h.get(side, {}):
                if k not in names:
                    names.append(k)
        for name in names:
            vals = np.array([h.get(side, {}).get(name, np.nan) for h in history], np.float64)
            ok = np.isfinite(vals) & (vals > 0)
            if not ok.any():
                continue
            line, = ax.plot(its[ok], vals[ok], styles[side], alpha=0.25, linewidth=0.8)
            ax.plot(its[ok], _smooth(vals[ok]), styles[side], color=line.get_color(),
                    linewidth=1.5, label=f"{side.upper()} {name}")
    ax.set_yscale("log")
    ax.set_xlabel("iteration")
    ax.set_ylabel("loss")
    ax.set_title(title)
    ax.grid(True, which="both", alpha=0.3)
    if ax.lines:
        ax.legend(loc="upper right", fontsize=8, ncol=2)
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return write_bytes_atomic(path, buf.getvalue())


class TensorBoard:
    """Scalars and images under ``log_dir`` (``torch.utils.tensorboard.SummaryWriter``).

    Args:
        log_dir: Usually ``MODEL_DIR/logs``.
        purge_step: On resume, the iteration resumed from: events logged after it by the
            interrupted run are dropped by TensorBoard.
    """

    def __init__(self, log_dir: Path, purge_step: int | None = None) -> None:
        from torch.utils.tensorboard import SummaryWriter

        try:
            log_dir.mkdir(parents=True, exist_ok=True)
            self.writer = SummaryWriter(log_dir=str(log_dir), purge_step=purge_step)
        except OSError as err:
            raise OutputError(f"cannot write TensorBoard logs ({err.strerror or err})",
                              log_dir) from None

    def scalars(self, iteration: int, losses: Mapping[str, Mapping[str, float]],
                extra: Mapping[str, float] | None = None) -> None:
        """``loss/<side>/<name>`` for each value, plus ``extra`` (e.g. ``speed/egs_per_s``)."""
        for side, vals in losses.items():
            for name, v in vals.items():
                self.writer.add_scalar(f"loss/{side}/{name}", v, iteration)
        for name, v in (extra or {}).items():
            self.writer.add_scalar(name, v, iteration)

    def image(self, iteration: int, rgb: np.ndarray, tag: str = "preview") -> None:
        """An H×W×3 uint8 RGB image."""
        self.writer.add_image(tag, rgb, iteration, dataformats="HWC")

    def flush(self) -> None:
        self.writer.flush()

    def close(self) -> None:
        self.writer.close()


def swap_rows(model: torch.nn.Module, faces_a: Tensor, faces_b: Tensor) -> list[Tensor]:
    """The six preview rows (:data:`PREVIEW_ROWS`) from a swap model, without gradients.

    Args:
        model: Called as ``model(x, side) -> (face, mask)``.
        faces_a: A's unwarped faces, N×3×S×S sRGB in [0, 1] at the model's input size.
        faces_b: B's, likewise.

    Returns:
        ``[A, A→A, A→B, B, B→B, B→A]``, each N×3×·×· float in [0, 1].
    """
    with torch.no_grad():
        rows: list[Tensor] = []
        for x, own, other in ((faces_a, "a", "b"), (faces_b, "b", "a")):
            rec, _ = model(x, own)
            swp, _ = model(x, other)
            rows += [x, rec, swp]
    return rows
