"""Building blocks shared by the swap models (NCHW float32 tensors, channels-last friendly).

Every block is a plain ``nn.Module`` with no per-sample Python: the whole batch goes through one
convolution per layer, so the same code runs fast on CPU (oneDNN, channels-last) and GPU, and
exports to ONNX unchanged.

Initialisation (:func:`init_weights`) is He-uniform for convolutions followed by a LeakyReLU,
Glorot-uniform for dense layers and output heads, zero biases, and ICNR for the convolutions that
feed a pixel shuffle (:func:`icnr_`): ICNR makes every sub-pixel of an upscale start from the same
kernel, so a fresh upscaler behaves like nearest-neighbour resizing and shows no checkerboard.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor, nn
from torch.nn import functional as F  # noqa: N812  (the PyTorch convention)

#: Negative slope of the LeakyReLU after down/upscale convolutions (Faceswap and DFL use 0.1).
LEAK = 0.1
#: Negative slope inside residual blocks (DFL and Faceswap use 0.2).
RES_LEAK = 0.2
#: Training convolutions on the CPU whose output map has at most this many pixels per image
#: (4×4: ``original``'s last encoder conv and its first upscale at 64 px) take their weight
#: gradient from :class:`_SmallMapConv`, one matrix product over the unfolded input, instead of
#: oneDNN's backward-weights kernel, which spends 2-4× the forward's time on maps this small
#: (the forward and the input gradient stay oneDNN's). 0 turns it off.
GEMM_WEIGHT_GRAD_MAX_PIXELS = 16


def pixel_norm(x: Tensor, dim: int = 1, eps: float = 1e-6) -> Tensor:
    """Scale each sample so that the mean square of ``x`` along ``dim`` is 1 (DFL's ``-u``).

    Args:
        x: Any float tensor, e.g. N×F latent vectors.
        dim: The axis normalised (the feature axis).
        eps: Added to the mean square to keep all-zero vectors finite.

    Returns:
        ``x * rsqrt(mean(x², dim) + eps)``, same shape and dtype.
    """
    return x * torch.rsqrt(x.pow(2).mean(dim=dim, keepdim=True) + eps)


def icnr_(weight: Tensor, init: Callable[[Tensor], object], scale: int = 2) -> Tensor:
    """ICNR initialisation, in place, of a conv weight that feeds ``pixel_shuffle(scale)``.

    ``pixel_shuffle`` reads output channel ``c`` at sub-pixel ``s`` from input channel
    ``c·scale² + s``. Drawing one kernel per output channel ``c`` with ``init`` and copying it to
    all ``scale²`` sub-pixels makes the upscale start as a nearest-neighbour resize of a normal
    convolution (no checkerboard).

    Args:
        weight: Conv weight of shape (C·scale², C_in, k, k).
        init: An in-place initialiser (e.g. ``nn.init.xavier_uniform_``) for the C×C_in×k×k base.
        scale: The pixel-shuffle factor.

    Returns:
        ``weight`` (modified in place).
    """
    out_ch = weight.shape[0]
    sub = scale * scale
    if out_ch % sub:
        raise ValueError(f"ICNR: {out_ch} output channels are not a multiple of {sub}")
    with torch.no_grad():
        base = torch.empty(out_ch // sub, *weight.shape[1:], dtype=weight.dtype)
        init(base)
        weight.copy_(base.repeat_interleave(sub, dim=0))
    return weight


class _SmallMapConv(torch.autograd.Function):
    """A 2-D convolution (groups 1, dilation 1, zero padding) whose weight gradient is one
    matrix product: ``grad_w = grad_out (C_out × N·L) @ unfold(x)ᵀ (N·L × C_in·k·k)``, L the
    output pixels of one image. Forward and input gradient are ``F.conv2d``'s. All tensors one
    float dtype (the caller casts under autocast)."""

    @staticmethod
    def forward(ctx: torch.autograd.function.FunctionCtx, x: Tensor, weight: Tensor,
                bias: Tensor | None, stride: tuple[int, int], padding: tuple[int, int]
                ) -> Tensor:
        ctx.save_for_backward(x, weight)
        ctx.conv = (stride, padding, bias is not None)  # type: ignore[attr-defined]
        return F.conv2d(x, weight, bias, stride, padding)

    @staticmethod
    def backward(ctx: torch.autograd.function.FunctionCtx, *grads: Tensor
                 ) -> tuple[Tensor | None, ...]:
        x, weight = ctx.saved_tensors  # type: ignore[attr-defined]
        stride, padding, has_bias = ctx.conv  # type: ignore[attr-defined]
        need = ctx.needs_input_grad  # type: ignore[attr-defined]
        g = grads[0].contiguous()
        gx = gw = gb = None
        if need[0]:
            gx = torch.ops.aten.convolution_backward(
                g, x, weight, None, list(stride), list(padding), [1, 1], False, [0, 0], 1,
                [True, False, False])[0]
        if need[1]:
            c_out = weight.shape[0]
            cols = F.unfold(x, weight.shape[2:], padding=padding, stride=stride)  # N×CKK×L
            g2 = g.flatten(2).transpose(0, 1).reshape(c_out, -1)  # C_out × N·L
            cols2 = cols.transpose(0, 1).reshape(cols.shape[1], -1)  # CKK × N·L
            gw = (g2 @ cols2.t()).view_as(weight)
        if has_bias and need[2]:
            gb = g.sum((0, 2, 3))
        return gx, gw, gb, None, None


def conv2d(conv: nn.Conv2d, x: Tensor) -> Tensor:
    """``conv(x)``; while training on the CPU, convolutions with small output maps (at most
    :data:`GEMM_WEIGHT_GRAD_MAX_PIXELS` pixels) go through :class:`_SmallMapConv` (same result,
    a faster weight gradient). Under autocast the inputs are cast as autocast casts a conv's.

    Args:
        conv: A plain ``nn.Conv2d`` (its parameters; groups 1, dilation 1, zero padding for the
            fast path, otherwise it is called as is).
        x: N×C_in×H×W float tensor.

    Returns:
        N×C_out×H'×W', as ``conv(x)``.
    """
    w = conv.weight
    if (not torch.is_grad_enabled() or not w.requires_grad or x.device.type != "cpu"
            or conv.groups != 1 or conv.dilation != (1, 1) or conv.padding_mode != "zeros"
            or not isinstance(conv.padding, tuple)):
        return conv(x)
    stride = (int(conv.stride[0]), int(conv.stride[1]))
    pad = (int(conv.padding[0]), int(conv.padding[1]))
    kh, kw = w.shape[2:]
    out_h = (x.shape[2] + 2 * pad[0] - kh) // stride[0] + 1
    out_w = (x.shape[3] + 2 * pad[1] - kw) // stride[1] + 1
    if out_h * out_w > GEMM_WEIGHT_GRAD_MAX_PIXELS:
        return conv(x)
    b = conv.bias
    if torch.is_autocast_enabled("cpu"):
        dt = torch.get_autocast_dtype("cpu")
        x, w = x.to(dt), w.to(dt)
        b = None if b is None else b.to(dt)
    with torch.autocast("cpu", enabled=False):
        out: Tensor = _SmallMapConv.apply(x, w, b, stride, pad)
    return out


def _he(t: Tensor) -> None:
    nn.init.kaiming_uniform_(t, a=LEAK, nonlinearity="leaky_relu")


class Downscale(nn.Module):
    """Stride-2 convolution + LeakyReLU(0.1): C_in×H×W → C_out×⌈H/2⌉×⌈W/2⌉."""

    def __init__(self, in_ch: int, out_ch: int, kernel: int = 5) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_ch, out_ch, kernel, stride=2, padding=kernel // 2)

    def forward(self, x: Tensor) -> Tensor:
        return F.leaky_relu(conv2d(self.conv, x), LEAK)


class Upscale(nn.Module):
    """Sub-pixel upscale: conv to 4·C_out channels, LeakyReLU(0.1), pixel shuffle ×2.

    C_in×H×W → C_out×2H×2W. The conv weight is ICNR-initialised by :func:`init_weights`.
    """

    def __init__(self, in_ch: int, out_ch: int, kernel: int = 3) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_ch, out_ch * 4, kernel, padding=kernel // 2)

    def forward(self, x: Tensor) -> Tensor:
        return F.pixel_shuffle(F.leaky_relu(conv2d(self.conv, x), LEAK), 2)


class ResidualBlock(nn.Module):
    """Two 3×3 convs with a skip: ``lrelu(x + conv2(lrelu(conv1(x))))``, slope 0.2; C×H×W kept."""

    def __init__(self, ch: int, kernel: int = 3) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(ch, ch, kernel, padding=kernel // 2)
        self.conv2 = nn.Conv2d(ch, ch, kernel, padding=kernel // 2)

    def forward(self, x: Tensor) -> Tensor:
        y = F.leaky_relu(self.conv1(x), RES_LEAK)
        return F.leaky_relu(x + self.conv2(y), RES_LEAK)


class OutputHead(nn.Module):
    """The last layer of a decoder branch: conv to ``out_ch`` channels, then a sigmoid → [0, 1].

    With ``shuffle=True`` the conv produces 4·out_ch channels that a pixel shuffle turns into an
    image twice the size (DFL's ``-d`` output): C×H×W → out_ch×2H×2W.
    """

    def __init__(self, in_ch: int, out_ch: int, kernel: int, *, shuffle: bool = False) -> None:
        super().__init__()
        self.shuffle = shuffle
        self.conv = nn.Conv2d(in_ch, out_ch * (4 if shuffle else 1), kernel, padding=kernel // 2)

    def forward(self, x: Tensor) -> Tensor:
        y = self.conv(x)
        if self.shuffle:
            y = F.pixel_shuffle(y, 2)
        return torch.sigmoid(y)


class DenseToMap(nn.Module):
    """Dense layer whose output is reshaped to a C×R×R feature map: N×F → N×C×R×R."""

    def __init__(self, in_features: int, ch: int, res: int) -> None:
        super().__init__()
        self.ch, self.res = ch, res
        self.dense = nn.Linear(in_features, ch * res * res)

    def forward(self, x: Tensor) -> Tensor:
        return self.dense(x).view(-1, self.ch, self.res, self.res)


def init_weights(module: nn.Module) -> None:
    """Initialise every conv/dense layer under ``module`` (see the module docstring).

    Convs inside :class:`Upscale` get ICNR, convs in :class:`Downscale`/:class:`ResidualBlock`
    He-uniform for LeakyReLU, dense layers and :class:`OutputHead` convs Glorot-uniform (the head
    feeds a sigmoid, the dense layers are linear); all biases start at zero.
    """
    for m in module.modules():
        if isinstance(m, Upscale):
            icnr_(m.conv.weight, _he)
        elif isinstance(m, Downscale | ResidualBlock):
            for conv in m.modules():
                if isinstance(conv, nn.Conv2d):
                    _he(conv.weight)
        elif isinstance(m, OutputHead):
            if m.shuffle:
                icnr_(m.conv.weight, nn.init.xavier_uniform_)
            else:
                nn.init.xavier_uniform_(m.conv.weight)
        elif isinstance(m, nn.Linear):
            nn.init.xavier_uniform_(m.weight)
        else:
            continue
        for p in m.modules():
            if isinstance(p, nn.Conv2d | nn.Linear) and p.bias is not None:
                nn.init.zeros_(p.bias)
