"""A lean CPU inference graph for speechbrain's ECAPA-TDNN, built from the loaded speechbrain modules.

``EncoderClassifier.encode_batch`` spends its time in fp32 oneDNN convolutions on a (batch, channel,
time) layout, pads a batch to its longest item, and masks only in the statistics. This graph
computes the same function with the same weights, but:

- **time-major, packed**: utterances are concatenated along time into one ``(frames, channels)``
  matrix (no padding at all, so a batch costs exactly the sum of its parts). Every convolution
  becomes one GEMM (``F.linear``): 1x1 convolutions directly, k-tap dilated ones through a gather
  whose indices implement speechbrain's reflect padding *per utterance*, so nothing leaks across
  utterance boundaries and a batch gives the same embedding as the utterance alone;
- **bfloat16 trunk**: weights are cast once; oneDNN runs the GEMMs on AVX512-BF16/AMX where the CPU
  has them, accumulating in fp32. Fbank, all statistics, the attention softmax and the final layers
  stay float32;
- **algebra instead of concatenation**: the attentive-pooling TDNN's input is ``[x | mean | std]``
  and the mean/std part is constant over time, so it becomes a per-utterance bias and the
  9216-channel GEMM shrinks to 3072 channels (exact);
- eval-mode BatchNorm is a per-channel affine (``F.batch_norm`` with the running statistics).

With ``dtype=torch.float32`` the graph matches speechbrain to ~1e-6 relative; with bfloat16 the
cosine to speechbrain's fp32 embedding is > 0.999 (checked by the tests and the benchmark).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F


@dataclass(frozen=True)
class _Linear:
    """A speechbrain Conv1d (stride 1, 'same' reflect padding) as a GEMM on packed frames."""

    weight: torch.Tensor  # (out, k * in), taps major: column block j holds tap j
    bias: torch.Tensor | None  # (out,)
    kernel: int
    dilation: int

    def __call__(self, x: torch.Tensor, gather: _Gather) -> torch.Tensor:
        if self.kernel > 1:
            x = x[gather.index(self.kernel, self.dilation)].flatten(1)  # (N, k * in)
        return F.linear(x, self.weight, self.bias)


@dataclass(frozen=True)
class _Norm:
    """Eval-mode BatchNorm1d on (frames, channels)."""

    mean: torch.Tensor
    var: torch.Tensor
    weight: torch.Tensor
    bias: torch.Tensor
    eps: float

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return F.batch_norm(x, self.mean, self.var, self.weight, self.bias, False, 0.0, self.eps)


def _linear(module: Any, dtype: torch.dtype) -> _Linear:
    """From a speechbrain ``Conv1d`` wrapper (``.conv`` is the torch Conv1d)."""
    conv = module.conv
    if (
        getattr(module, "padding", "same") != "same"
        or getattr(module, "padding_mode", "reflect") != "reflect"
    ):
        raise ValueError("unexpected speechbrain Conv1d padding configuration")
    if conv.stride[0] != 1 or conv.groups != 1:
        raise ValueError("only stride 1, groups 1 convolutions are supported")
    w = conv.weight.detach()  # (out, in, k)
    weight = w.permute(0, 2, 1).reshape(w.shape[0], -1).to(dtype).contiguous()
    bias = None if conv.bias is None else conv.bias.detach().to(dtype).contiguous()
    return _Linear(weight, bias, conv.kernel_size[0], conv.dilation[0])


def _norm(module: Any, dtype: torch.dtype) -> _Norm:
    """From a speechbrain ``BatchNorm1d`` wrapper (``.norm`` is the torch BatchNorm1d)."""
    bn = module.norm
    return _Norm(
        mean=bn.running_mean.detach().to(dtype).contiguous(),
        var=bn.running_var.detach().to(dtype).contiguous(),
        weight=bn.weight.detach().to(dtype).contiguous(),
        bias=bn.bias.detach().to(dtype).contiguous(),
        eps=float(bn.eps),
    )


@dataclass(frozen=True)
class _TDNN:
    """speechbrain TDNNBlock: conv -> ReLU -> BatchNorm."""

    conv: _Linear
    norm: _Norm

    def __call__(self, x: torch.Tensor, gather: _Gather) -> torch.Tensor:
        return self.norm(torch.relu_(self.conv(x, gather)))


def _tdnn(block: Any, dtype: torch.dtype) -> _TDNN:
    if not isinstance(block.activation, torch.nn.ReLU):
        raise ValueError("only ReLU TDNN blocks are supported")
    return _TDNN(_linear(block.conv, dtype), _norm(block.norm, dtype))


class _Gather:
    """Row indices that turn packed frames into k-tap, dilated, per-utterance reflect-padded windows."""

    def __init__(self, lengths: list[int]) -> None:
        self.lengths = lengths
        self._cache: dict[tuple[int, int], torch.Tensor] = {}

    def index(self, kernel: int, dilation: int) -> torch.Tensor:
        key = (kernel, dilation)
        if key not in self._cache:
            half = (kernel - 1) // 2 * dilation
            offsets = torch.arange(-half, half + 1, dilation)  # (k,)
            parts = []
            start = 0
            for n in self.lengths:
                if n <= half:
                    raise ValueError(f"utterance of {n} frames is too short for reflect padding {half}")
                v = torch.arange(n)[:, None] + offsets[None, :]  # (n, k) local source frames
                v = torch.where(v < 0, -v, v)
                v = torch.where(v > n - 1, 2 * (n - 1) - v, v)
                parts.append(v + start)
                start += n
            self._cache[key] = torch.cat(parts)
        return self._cache[key]


class EcapaGraph:
    """The inference graph; call it on per-utterance normalized Fbank features.

    Parameters
    ----------
    model : speechbrain.lobes.models.ECAPA_TDNN.ECAPA_TDNN, in eval mode with loaded weights
    dtype : torch.dtype, the trunk's compute dtype (``torch.bfloat16`` or ``torch.float32``)
    """

    def __init__(self, model: Any, *, dtype: torch.dtype = torch.bfloat16) -> None:
        self.dtype = dtype
        blocks = list(model.blocks)
        self.first = _tdnn(blocks[0], dtype)
        self.se_blocks = []
        for blk in blocks[1:]:
            if blk.shortcut is not None:
                raise ValueError("SE-Res2Net blocks with a shortcut projection are not supported")
            self.se_blocks.append(
                (
                    _tdnn(blk.tdnn1, dtype),
                    [_tdnn(b, dtype) for b in blk.res2net_block.blocks],
                    blk.res2net_block.scale,
                    _tdnn(blk.tdnn2, dtype),
                    _linear(blk.se_block.conv1, torch.float32),
                    _linear(blk.se_block.conv2, torch.float32),
                )
            )
        self.mfa = _tdnn(model.mfa, dtype)
        asp = model.asp
        if not asp.global_context:
            raise ValueError("ECAPA without global context is not supported")
        c = model.channels[-1]
        # The attention TDNN's input is cat([x, mean, std]); split its weight accordingly.
        w = asp.tdnn.conv.conv.weight.detach()[:, :, 0]  # (A, 3C)
        self.att_wx = w[:, :c].to(dtype).contiguous()
        self.att_wm = w[:, c : 2 * c].float().contiguous()
        self.att_ws = w[:, 2 * c :].float().contiguous()
        self.att_b = asp.tdnn.conv.conv.bias.detach().float()
        self.att_norm = _norm(asp.tdnn.norm, torch.float32)
        att_conv = _linear(asp.conv, torch.float32)
        if att_conv.bias is None:
            raise ValueError("expected a bias on the attention convolution")
        self.att_conv_w, self.att_conv_b = att_conv.weight, att_conv.bias
        self.eps = float(asp.eps)
        self.asp_bn = _norm(model.asp_bn, torch.float32)
        self.fc = _linear(model.fc, torch.float32)

    @torch.inference_mode()
    def __call__(self, feats: list[torch.Tensor]) -> torch.Tensor:
        """Embed utterances.

        Parameters
        ----------
        feats : list of torch.Tensor [shape=(T_i, 80)], float32, each sentence-mean-normalized
            log-mel Fbank of one utterance (T_i >= 5 frames)

        Returns
        -------
        torch.Tensor [shape=(len(feats), 192)], float32, unnormalized embeddings (speechbrain's scale)
        """
        lengths = [int(f.shape[0]) for f in feats]
        gather = _Gather(lengths)
        bounds = list(zip([0, *torch.tensor(lengths).cumsum(0).tolist()[:-1]], lengths, strict=False))
        x = torch.cat(feats).to(self.dtype) if len(feats) > 1 else feats[0].to(self.dtype)
        x = self.first(x, gather)
        outs = []
        for tdnn1, res_blocks, scale, tdnn2, se1, se2 in self.se_blocks:
            h = tdnn1(x, gather)
            chunks = torch.chunk(h, scale, dim=1)
            ys = [chunks[0]]
            y = chunks[1]
            for i, blk in enumerate(res_blocks, start=1):
                y = blk(chunks[i] if i == 1 else chunks[i] + y, gather)
                ys.append(y)
            h = tdnn2(torch.cat(ys, dim=1), gather)
            # Squeeze-excitation: per-utterance channel means -> gates.
            s = torch.stack([h[a : a + n].mean(dim=0, dtype=torch.float32) for a, n in bounds])  # (B, C)
            s = torch.sigmoid(se2(torch.relu(se1(s, gather)), gather)).to(self.dtype)
            for (a, n), gate in zip(bounds, s, strict=False):
                h[a : a + n].mul_(gate)
            x = h.add_(x)
            outs.append(x)
        x = self.mfa(torch.cat(outs, dim=1), gather)
        return torch.cat([self._pool(x[a : a + n]) for a, n in bounds])

    def _pool(self, x: torch.Tensor) -> torch.Tensor:
        """Attentive statistics pooling with global context, asp_bn and fc: (T, C) -> (1, 192).

        Runs channel-major, (C, T), so that the softmax and the weighted sums reduce over the
        contiguous axis (a softmax over dim 0 of (T, C) is several times slower on CPU).
        """
        xt = x.t().contiguous().float()  # (C, T)
        mean = xt.mean(dim=1)
        # (torch.var_mean is ~40x slower on CPU than these two passes)
        std = torch.sqrt((xt - mean[:, None]).square_().mean(dim=1).clamp_(min=self.eps))
        ctx = self.att_wm @ mean + self.att_ws @ std + self.att_b  # (A,), constant over time
        a = F.linear(x, self.att_wx).float().add_(ctx)  # (T, A)
        a = torch.tanh(self.att_norm(torch.relu_(a)))
        logits = torch.addmm(self.att_conv_b[:, None], self.att_conv_w, a.t())  # (C, T)
        w = torch.softmax(logits, dim=1)
        wx = w.mul_(xt)
        mean = wx.sum(dim=1)
        # Weighted variance as E_w[x^2] - mean^2 (the weights sum to 1); fp32 is ample here.
        var = wx.mul_(xt).sum(dim=1).sub_(mean * mean)
        std = torch.sqrt(var.clamp_(min=self.eps))
        pooled = self.asp_bn(torch.cat([mean, std])[None, :])
        return F.linear(pooled, self.fc.weight, self.fc.bias)
