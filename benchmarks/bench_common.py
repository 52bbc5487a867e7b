"""Shared by the benchmark scripts (run as ``python benchmarks/<name>.py``): machine facts, the
calibration every report carries, and the JSON report.

Calibration: machines of one kind differ (up to 2× on the same "2-core AMD EPYC"), and other
work on a shared machine slows everything. So every report records, measured in the benchmark's
own process, a fixed workload that does not depend on Faceplate's code: the GFLOP/s of one
fp32 and one bf16 convolution (PyTorch/oneDNN, torch's default threads) and the frame rate of
decoding a fixed 1080p H.264 clip to RGB with plain PyAV. A figure divided by the matching
calibration can be compared across machines; a ratio measured in one run needs none.
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import time
from pathlib import Path
from typing import Any

#: The calibration convolution: N×C×H×W input, C→C channels, 3×3, stride 1, channels-last.
CAL_CONV = {"batch": 8, "channels": 128, "size": 64, "kernel": 3}
#: The calibration clip: the woman's sample clip at 1920×1080, H.264 CRF 18 (what
#: ``benchmarks/extract.py`` decodes), first frames only.
CAL_CLIP = ("WolfgangLanger_Pexels.mp4", 60)
#: Seconds each calibration workload is repeated for (after its warm-up).
CAL_SECONDS = 1.5


def cpu_model() -> str:
    """The CPU's marketing name from /proc/cpuinfo (the architecture where it is missing)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _cpu_ids() -> dict[str, Any]:
    """x86 family/model (tells Zen 4 from Zen 5 where the name is just "AMD EPYC") and the
    ISA flags that decide the bf16/int8 paths."""
    out: dict[str, Any] = {}
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return out
    for line in text.splitlines():
        key, _, val = line.partition(":")
        key = key.strip()
        if key in ("cpu family", "model") and key.replace(" ", "_") not in out:
            out[key.replace(" ", "_")] = val.strip()
        if key == "flags" and "isa" not in out:
            flags = set(val.split())
            out["isa"] = sorted(f for f in flags if f.startswith(("avx512", "amx"))
                                or f in ("avx2", "fma", "avx_vnni"))
    return out


def machine_info() -> dict[str, Any]:
    """What the figures were measured on: CPU, cores, memory, platform, Python, load."""
    info: dict[str, Any] = {
        "cpu_model": cpu_model(), **_cpu_ids(), "cpus": os.cpu_count(),
        "cpus_usable": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "platform": platform.platform(), "python": platform.python_version(),
        "load_average": list(os.getloadavg()),
    }
    try:
        mem = Path("/proc/meminfo").read_text().splitlines()[0].split()[1]
        info["memory_gib"] = round(int(mem) / 2**20, 1)
    except (OSError, IndexError, ValueError):
        pass
    return info


def _repeat(fn: Any, seconds: float, warmup: int = 2) -> list[float]:
    """Seconds per call of ``fn`` over ``seconds`` of repeats (at least 3), after ``warmup``."""
    for _ in range(warmup):
        fn()
    times: list[float] = []
    end = time.perf_counter() + seconds
    while len(times) < 3 or time.perf_counter() < end:
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return times


def conv_gflops(dtype: str, seconds: float = CAL_SECONDS) -> dict[str, Any]:
    """GFLOP/s of the calibration convolution in ``dtype`` ("fp32" or "bf16"): the median and
    the best call (2 FLOP per multiply-add; torch's default thread count)."""
    import torch

    n, c, s, k = (CAL_CONV[key] for key in ("batch", "channels", "size", "kernel"))
    dt = {"fp32": torch.float32, "bf16": torch.bfloat16}[dtype]
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(n, c, s, s, generator=gen).to(dt).contiguous(
        memory_format=torch.channels_last)
    conv = torch.nn.Conv2d(c, c, k, padding=k // 2).to(dt).to(
        memory_format=torch.channels_last)  # type: ignore[call-overload]
    flop = 2.0 * n * s * s * c * c * k * k

    def call() -> None:
        with torch.inference_mode():
            conv(x)

    times = _repeat(call, seconds)
    return {"gflops": flop / statistics.median(times) / 1e9,
            "gflops_best": flop / min(times) / 1e9, "calls": len(times),
            "threads": torch.get_num_threads()}


def decode_fps(seconds: float = CAL_SECONDS) -> dict[str, Any]:
    """Frames/s of decoding the calibration clip (1920×1080 H.264) to RGB ``uint8`` arrays
    with plain PyAV (FFmpeg's frame threading), whole passes over the clip."""
    import av

    from faceplate.io import samples

    clip = samples.upscaled_clip(*CAL_CLIP)

    def one_pass() -> int:
        n = 0
        with av.open(str(clip)) as box:
            stream = box.streams.video[0]
            stream.thread_type = "AUTO"
            for frame in box.decode(stream):
                frame.to_ndarray(format="rgb24")
                n += 1
        return n

    frames = one_pass()  # warm-up (and the clip's length)
    times = _repeat(one_pass, seconds, warmup=0)
    return {"fps": frames / statistics.median(times), "fps_best": frames / min(times),
            "frames": frames, "passes": len(times)}


def calibration(seconds: float = CAL_SECONDS) -> dict[str, Any]:
    """The fixed workloads' rates, measured now in this process (about 3 × ``seconds``), with
    the load average when they ran (see the module docstring)."""
    t = time.perf_counter()
    out: dict[str, Any] = {
        "conv_workload": dict(CAL_CONV, layout="channels_last", op="conv2d 3x3 stride 1"),
        "decode_workload": {"clip": f"{CAL_CLIP[0]} 1920x1080 H.264 CRF 18",
                            "frames": CAL_CLIP[1], "to": "rgb24 ndarray"},
        "conv_fp32": conv_gflops("fp32", seconds),
        "conv_bf16": conv_gflops("bf16", seconds),
        "decode_1080p": decode_fps(seconds),
        "load_average": list(os.getloadavg()),
    }
    out["conv_fp32_gflops"] = out["conv_fp32"]["gflops"]
    out["conv_bf16_gflops"] = out["conv_bf16"]["gflops"]
    out["decode_1080p_fps"] = out["decode_1080p"]["fps"]
    out["seconds"] = time.perf_counter() - t
    return out


def write_report(report: dict[str, Any], path: Path) -> None:
    """Write the benchmark's JSON to ``path`` (folders created) and print it.

    A report without a ``calibration`` gets one measured now, after its figures; scripts that
    bracket their run pass ``{"start": ..., "end": ...}`` themselves.
    """
    if "calibration" not in report:
        report["calibration"] = {"end": calibration()}
    text = json.dumps(report, indent=2)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    print(text)
