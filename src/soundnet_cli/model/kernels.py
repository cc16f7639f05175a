"""CPU kernels the network uses in training mode: a pooled layer fused, thin convolutions as one
matrix product. Imported only where training runs (:class:`.network.SoundNet` in training mode
on CPU, see its ``fast_training``); inference never loads this module.

In training, BatchNorm normalises with the batch's statistics, so it cannot be folded into the
convolution as the inference engine does. What still holds exactly (in real arithmetic):

- The affine map and the ReLU are monotone per channel, so ``max_pool(relu(a*y + b)) ==
  relu(a*max_pool(y) + b)`` for a >= 0 (``min_pool`` for a < 0): the elementwise work runs on
  the ``pool``-times smaller tensor, and backward touches the full-rate conv output only to
  route the pooled gradient and for the statistics.
- The first convolution (one input channel; conv1: kernel 64, stride 2) is one matrix product
  over a space-to-depth view of the waveform: ``group`` output frames at once from overlapping
  ``taps * stride * group``-sample rows. Its output comes channel-major within each row, so the
  pooling windows are contiguous. Its batch statistics come from the rows' Gram matrix (a
  96 x 96 product) instead of a pass over the 16 x 55,126-frame output; backward is the same
  product transposed. oneDNN runs the thin original, and above all its weight gradient, far below
  matrix-multiply speed.
"""

from __future__ import annotations

from typing import Any, cast

import torch
from torch import nn

#: A one-channel first convolution computes this many output frames per space-to-depth row.
TRAIN_S2D_FRAMES = 16
#: ... and runs on this many clips at a time (products of a few MB, pooled while in cache; fewer
#: parallel regions than clip by clip, which matters on a busy machine).
TRAIN_S2D_CLIPS = 4


def _s2d_weight(weight: torch.Tensor, stride: int, group: int) -> tuple[torch.Tensor, int]:
    """A kernel ``(out, in, k)`` as the dense ``(out*group, in*width)`` matrix of the
    space-to-depth product, and the row length ``width`` in input frames: row ``o*group + r``
    (output channel ``o``, frame phase ``r``) holds ``weight[o, c, j - stride*r]`` at column
    ``c*width + j`` where that lies in the kernel, else 0."""
    out, cin, k = weight.shape
    block = stride * group
    width = -(-(stride * (group - 1) + k) // block) * block
    j = torch.arange(width, device=weight.device)[None, :] - \
        stride * torch.arange(group, device=weight.device)[:, None]
    index = torch.where((j >= 0) & (j < k), j, torch.full_like(j, k))  # k: the zero pad
    padded = nn.functional.pad(weight, (0, 1))[:, :, index]  # (out, in, group, width)
    return padded.permute(0, 2, 1, 3).reshape(out * group, cin * width), width


class _S2DConvPool(torch.autograd.Function):
    """Max-pooled space-to-depth product, a few clips at a time so that each product is pooled
    while in cache; backward recomputes the clip's rows and needs only the window-local arg-max
    (uint8), not the product (28 M floats for 32 clips of 5 s).

    Inputs: ``wave (batch, need)`` (no gradient) and ``dense (out*group, width)``. Returns the
    pooled ``(batch, rows, out*group // pool)`` (windows of ``pool`` consecutive columns) and,
    without gradients, the rows' sums ``(width,)`` and Gram matrix ``(width, width)`` (float64)
    and each clip's last row ``(batch, width)``, for :func:`_gram_stats`.
    """

    @staticmethod
    def forward(ctx: Any, wave: torch.Tensor, dense: torch.Tensor, width: int, block: int,
                pool: int) -> tuple[torch.Tensor, ...]:
        batch, cols = wave.shape[0], dense.shape[0]
        rows = (wave.shape[1] - width) // block + 1
        pooled = wave.new_empty(batch, rows, cols // pool)
        index = torch.empty(batch, rows, cols // pool, dtype=torch.uint8, device=wave.device)
        sums = torch.zeros(width, dtype=torch.float64, device=wave.device)
        gram = torch.zeros(width, width, dtype=torch.float64, device=wave.device)
        last = wave.new_empty(batch, width)
        weight = dense.detach().t()
        for b in range(0, batch, TRAIN_S2D_CLIPS):
            u = _s2d_rows(wave[b:b + TRAIN_S2D_CLIPS], width, block)  # (clips*rows, width)
            n = u.shape[0] // rows
            pooled[b:b + n], index[b:b + n] = max_first((u @ weight).view(n, rows, -1, pool))
            sums += u.sum(0, dtype=torch.float64)
            gram += (u.t() @ u).double()
            last[b:b + n] = u.view(n, rows, width)[:, -1]
        ctx.save_for_backward(wave, index)
        ctx.shape = (width, block, pool, cols)
        ctx.mark_non_differentiable(sums, gram, last)
        return pooled, sums, gram, last

    @staticmethod
    def backward(ctx: Any, d_pooled: torch.Tensor, *_: Any) -> tuple[Any, ...]:
        wave, index = ctx.saved_tensors
        width, block, pool, cols = ctx.shape
        d_dense = d_pooled.new_zeros(cols, width)
        rows = index.shape[1]
        for b in range(0, wave.shape[0], TRAIN_S2D_CLIPS):
            u = _s2d_rows(wave[b:b + TRAIN_S2D_CLIPS], width, block)
            n = u.shape[0] // rows
            dy = d_pooled.new_zeros(n, rows, cols // pool, pool)
            dy.scatter_(3, index[b:b + n].long().unsqueeze(-1), d_pooled[b:b + n].unsqueeze(-1))
            d_dense.addmm_(dy.view(n * rows, cols).t(), u)
        return None, d_dense, None, None, None


def max_first(v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``torch.max(v, dim=-1)``: the maxima and the (uint8) index of each one's first
    occurrence, for a last dim of at most 256. For a power of two it is a tournament of adjacent
    pairs (ties keep the left one, so the first index wins as in ``max``): elementwise ops that
    vectorise, 2-3x faster than ``max``'s reduction over a short last dim."""
    size = v.shape[-1]
    if size & (size - 1) or size > 256:
        top = v.max(dim=-1)
        return top.values, top.indices.to(torch.uint8)
    rights = []
    while v.shape[-1] > 1:
        left, right = v[..., 0::2], v[..., 1::2]
        rights.append(right > left)
        v = torch.maximum(left, right)
    index = torch.zeros(v.shape, dtype=torch.int64, device=v.device)
    for won in reversed(rights):  # down the bracket: which of each pair won
        index = index * 2 + won.gather(-1, index)
    return v.squeeze(-1), index.squeeze(-1).to(torch.uint8)


def _s2d_rows(wave: torch.Tensor, width: int, block: int) -> torch.Tensor:
    """The overlapping rows ``(clips*rows, width)`` of waveforms ``(clips, need)``, a copy."""
    return wave.unfold(1, width, block).reshape(-1, width)


def _first_conv_pooled(conv: nn.Conv1d, bn_weight: torch.Tensor, x: torch.Tensor, pool: int
                       ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, int]:
    """A one-channel ``conv`` (without its bias) on padded input ``(batch, 1, n)``, max-pooled
    (min-pooled where ``bn_weight`` is negative): ``(batch, out, frames // pool)``, with the
    batch mean and biased variance ``(out,)`` of the un-pooled output and its frame count."""
    k, s = conv.kernel_size[0], conv.stride[0]
    group = pool * -(-TRAIN_S2D_FRAMES // pool)
    batch, _, n = x.shape
    out = conv.out_channels
    frames = (n - k) // s + 1
    dense, width = _s2d_weight(conv.weight, s, group)
    block, rows = s * group, -(-frames // group)
    need = (rows - 1) * block + width
    wave = x.reshape(batch, n)
    wave = nn.functional.pad(wave, (0, need - n)) if need > n else wave[:, :need]
    sign = None
    if bool((bn_weight < 0).any()):  # min-pool(y) = -max-pool(-y)
        sign = torch.where(bn_weight.detach() < 0, -1.0, 1.0).to(dense.dtype)
    signed = dense if sign is None else dense * sign.repeat_interleave(group)[:, None]
    pooled, sums, gram, last = _S2DConvPool.apply(wave.contiguous(), signed, width, block, pool)
    pooled = pooled.view(batch, rows, out, group // pool)
    pooled = pooled if sign is None else pooled * sign[:, None]
    pooled = pooled.permute(0, 2, 1, 3).reshape(batch, out, -1)[..., : frames // pool]
    mean, var = _gram_stats(sums, gram, last, dense, batch, frames, group)
    return pooled, mean, var, frames


def _gram_stats(sums: torch.Tensor, gram: torch.Tensor, last: torch.Tensor, dense: torch.Tensor,
                batch: int, frames: int, group: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-channel mean and biased variance of ``u @ dense.T`` over the true frames, from the
    rows' sums and Gram matrix and each clip's last row (whose phases from ``frames % group`` on
    lie past the true end); float64 on these small products, differentiable in ``dense``."""
    d = dense.double()
    s1, s2 = d @ sums, ((d @ gram) * d).sum(1)
    s1, s2 = s1.view(-1, group).sum(1), s2.view(-1, group).sum(1)
    rem = frames % group
    if rem:
        tail = (last.double() @ d.t()).view(batch, -1, group)[..., rem:]
        s1, s2 = s1 - tail.sum((0, 2)), s2 - (tail * tail).sum((0, 2))
    mean = s1 / (batch * frames)
    var = (s2 / (batch * frames) - mean * mean).clamp_min(0)
    return mean.to(dense.dtype), var.to(dense.dtype)


def _pool_windows(windows: torch.Tensor, bn_weight: torch.Tensor) -> torch.Tensor:
    """Max over the last dim of ``(..., channels, windows, pool)``, min for the channels whose
    BatchNorm weight is negative."""
    top = windows.max(dim=-1).values
    if bool((bn_weight < 0).any()):
        top = torch.where((bn_weight >= 0)[:, None], top, windows.min(dim=-1).values)
    return top


def fused_conv_bn_relu_pool(conv: nn.Conv1d, bn: nn.BatchNorm1d, x: torch.Tensor,
                             pool: int) -> torch.Tensor:
    p = cast(tuple[int, ...], conv.padding)[0]  # built from an int
    x = nn.functional.pad(x, (p, p)) if p else x
    batch = x.shape[0]
    if conv.in_channels == 1 and not x.requires_grad:
        pooled, mean, var, frames = _first_conv_pooled(conv, bn.weight, x, pool)
    else:  # oneDNN's own convolution is the faster one here; the statistics read its output
        y = nn.functional.conv1d(x, conv.weight, None, conv.stride[0])
        frames = y.shape[-1]
        var, mean = torch.var_mean(y, dim=(0, 2), unbiased=False)
        windows = y[..., : frames // pool * pool].unflatten(2, (frames // pool, pool))
        pooled = _pool_windows(windows, bn.weight)
    bias = conv.bias if conv.bias is not None else torch.zeros_like(mean)
    mean = mean + bias  # the conv bias shifts every frame, so the pool and the mean alike
    if bn.training or bn.running_mean is None or bn.running_var is None:
        _update_running_stats(bn, mean.detach(), var.detach(), frames * batch)
    else:
        mean, var = bn.running_mean, bn.running_var
    gain = bn.weight * torch.rsqrt(var + bn.eps)
    shift = bn.bias + (bias - mean) * gain
    return torch.relu(pooled * gain[None, :, None] + shift[None, :, None])


#: In training, convolutions with at most this many output frames run as one matrix product
#: over unfolded input (conv6, conv7 and the heads of SoundNet-8 on 5 s clips): oneDNN's kernels,
#: above all their backward, are slow on so few frames.
TRAIN_GEMM_FRAMES = 16


def conv_train(conv: nn.Conv1d, x: torch.Tensor) -> torch.Tensor:
    """``conv(x)`` for ``(batch, in, n)``; as ``unfold`` + one matrix product when the output has
    at most :data:`TRAIN_GEMM_FRAMES` frames (same result, to rounding, and the same gradients)."""
    k, s = conv.kernel_size[0], conv.stride[0]
    p = cast(tuple[int, ...], conv.padding)[0]  # built from an int
    frames = (x.shape[-1] + 2 * p - k) // s + 1
    if frames > TRAIN_GEMM_FRAMES or conv.groups != 1 or conv.dilation[0] != 1:
        return conv(x)
    batch, cin = x.shape[0], x.shape[1]
    x = nn.functional.pad(x, (p, p)) if p else x
    u = x.unfold(2, k, s).permute(0, 2, 1, 3).reshape(batch * frames, cin * k)
    weight = conv.weight.reshape(conv.out_channels, cin * k)
    y = u @ weight.t() if conv.bias is None else torch.addmm(conv.bias, u, weight.t())
    return y.view(batch, frames, -1).transpose(1, 2)


def _update_running_stats(bn: nn.BatchNorm1d, mean: torch.Tensor, var: torch.Tensor,
                          n: int) -> None:
    """What ``F.batch_norm`` does to the running statistics in training mode."""
    tracked, running_mean, running_var = bn.num_batches_tracked, bn.running_mean, bn.running_var
    if not bn.track_running_stats or tracked is None or running_mean is None or running_var is None:
        return
    with torch.no_grad():
        tracked.add_(1)
        momentum = (1.0 / float(tracked)) if bn.momentum is None else bn.momentum
        running_mean.mul_(1 - momentum).add_(mean, alpha=momentum)
        running_var.mul_(1 - momentum).add_(var * (n / max(1, n - 1)), alpha=momentum)

