"""One token for each of B gpt rows in one forward pass, bit for bit each row's own cached step.

`genloop.generate.token_rows` decodes rows that joined at different times, so they sit at
different positions. Their KV caches (`gpt.KVCache`: one (1, 2, nh, block_size, hs) buffer
per layer) are stacked once into a `GptRows` and each row's cache becomes a view of its
slice; a step then costs one write and one attention call per layer for the whole batch:

    x = wte[token_b] + wpe[fed_b]                                      (B, 1, C)
    per block (pre-LN):
        q, k, v = c_attn(ln_1(x))          B one-row products          (B, 1, 3C)
        K[b, :, fed_b] = k_b;  V[b, :, fed_b] = v_b                     one index_copy_
        x = x + c_proj(attention(q, K, V, bias_b: 0 where ≤ fed_b, else −inf))
        x = x + down(gelu(up(ln_2(x))))
    logits = ln_f(x) @ wteᵀ                                             (B, 1, V)

Why each row gets exactly its own step's bits:

* every matrix product is a batch of one-row products, `baddbmm((B, 1, C), (B, C, O))`,
  which torch's CPU BLAS computes as it does a lone row, whereas one (B, C) × (C, O) product
  takes another kernel whose sums differ in the last bit (and a product of 2–3 rows is
  slower here than B one-row ones);
* attention runs over the whole block_size buffer with an additive mask, as the row's own
  step does (`gpt.CausalSelfAttention`), so a row's sums never depend on another row's
  length. With one torch thread torch's CPU attention computes every (row, head) alone, so
  one call serves the batch (measured on 300 random shapes, 1,594 rows: none differs); with
  more it splits the work by thread count and the bits depend on the batch (495 of the
  1,594 differ at two threads), so then each row gets its own call;
* embeddings, LayerNorm, GELU and the residual adds are elementwise or per row.

`tests/generate/test_token_rows.py` checks the logits bit for bit against the model's own
one-row step, with one and with two threads. On a device other than the CPU the batched
products are not promised to be bit-identical.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from genloop.models.gpt import attention_bias


@dataclass(frozen=True)
class _Product:
    """A Linear's operands for B one-row products: bias (B, 1, O) and weightᵀ (B, C, O), views."""

    bias: torch.Tensor | None
    weight_t: torch.Tensor

    @classmethod
    def of(cls, linear: nn.Linear, batch: int) -> _Product:
        # the transposed view, as F.linear uses it: a contiguous copy of weightᵀ is faster
        # but its products differ from the lone row's in the last bit (measured)
        bias = None if linear.bias is None else linear.bias.expand(batch, 1, -1)
        return cls(bias, linear.weight.t().expand(batch, -1, -1))

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        """x (B, 1, C) → (B, 1, O), row b bit-identical to `linear(x[b:b+1])`."""
        if self.bias is None:
            return torch.bmm(x, self.weight_t)
        return torch.baddbmm(self.bias, x, self.weight_t)


@dataclass(frozen=True)
class _Norm:
    """A LayerNorm's operands, read once per batch rather than through the module each step."""

    shape: tuple[int, ...]
    weight: torch.Tensor | None
    bias: torch.Tensor | None
    eps: float

    @classmethod
    def of(cls, norm: nn.LayerNorm) -> _Norm:
        return cls(tuple(norm.normalized_shape), norm.weight, norm.bias, norm.eps)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return F.layer_norm(x, self.shape, self.weight, self.bias, self.eps)


@dataclass(frozen=True)
class _Layer:
    """One block's operands for a batch of B rows."""

    kv: torch.Tensor
    """(B, 2, nh, S, hs): keys [:, 0] and values [:, 1] of every row."""
    flat_kv: torch.Tensor
    """The same memory as (B·2·nh·S, hs): the rows the step's index_copy_ writes."""
    ln_1: _Norm
    c_attn: _Product
    c_proj: _Product
    ln_2: _Norm
    up: _Product
    gelu: str
    """GELU's `approximate` ("none": the exact erf form)."""
    down: _Product

    @classmethod
    def of(cls, block: Any, kv: torch.Tensor) -> _Layer:
        batch = kv.size(0)
        up, gelu, down, _ = block.mlp  # Linear, GELU, Linear, Dropout
        return cls(
            kv,
            kv.view(-1, kv.size(-1)),
            _Norm.of(block.ln_1),
            _Product.of(block.attn.c_attn, batch),
            _Product.of(block.attn.c_proj, batch),
            _Norm.of(block.ln_2),
            _Product.of(up, batch),
            gelu.approximate,
            _Product.of(down, batch),
        )


@dataclass(eq=False)
class GptRows:
    """The KV caches of `rows` (objects with `.cache`, a one-row `KVCache`) stacked on the
    batch, with the model's operands for that batch size; made again when the rows change."""

    model: Any  # gpt.GPT
    rows: list[Any]
    layers: list[_Layer]
    head_base: torch.Tensor
    """(B·2·nh,): the flat_kv row of (row b, key/value head j, position 0)."""
    ln_f: _Norm
    output: _Product

    @classmethod
    def stack(cls, model: Any, rows: list[Any]) -> GptRows:
        """Copy the rows' caches into one buffer per layer; each row's cache becomes a view of it."""
        batch = len(rows)
        buffers = [torch.cat(parts) for parts in zip(*(row.cache.layers for row in rows), strict=True)]
        _, _, heads, size, _ = buffers[0].shape
        layers = [_Layer.of(block, kv) for block, kv in zip(model.blocks, buffers, strict=True)]
        for b, row in enumerate(rows):
            row.cache.layers = [kv[b : b + 1] for kv in buffers]
        head_base = torch.arange(batch * 2 * heads, device=buffers[0].device) * size
        output = _Product(None, model.wte.weight.t().expand(batch, -1, -1))  # tied: logits = h @ wteᵀ
        return cls(model, list(rows), layers, head_base, _Norm.of(model.ln_f), output)

    def next_logits(self, tokens: list[int], positions: list[int]) -> torch.Tensor:
        """Logits (B, V) after feeding row b's token at its position; every cache grows by one."""
        model, batch = self.model, len(self.rows)
        device = self.head_base.device
        token_ids = torch.tensor(tokens, dtype=torch.long, device=device)  # (B,)
        where = torch.tensor(positions, dtype=torch.long, device=device)  # (B,)
        x = (model.wte(token_ids) + model.wpe(where)).unsqueeze(1)  # (B, 1, C); dropout is off (eval)
        width = x.size(-1)
        heads = self.layers[0].kv.size(2)
        size = self.layers[0].kv.size(3)
        bias = attention_bias(where, size, x.dtype).view(batch, 1, 1, size)  # (B, 1, 1, S)
        write = self.head_base + where.repeat_interleave(2 * heads)  # (B·2·nh,)
        for layer in self.layers:
            qkv = layer.c_attn(layer.ln_1(x))  # (B, 1, 3C)
            layer.flat_kv.index_copy_(0, write, qkv[:, 0, width:].reshape(-1, width // heads))
            q = qkv[:, :, :width].view(batch, 1, heads, width // heads).transpose(1, 2)  # (B, nh, 1, hs)
            y = _attention(q, layer.kv, bias)  # (B, nh, 1, hs)
            x = x + layer.c_proj(y.transpose(1, 2).contiguous().view(batch, 1, width))
            x = x + layer.down(F.gelu(layer.up(layer.ln_2(x)), approximate=layer.gelu))
        for row, position in zip(self.rows, positions, strict=True):
            row.cache.length = position + 1
        hidden = self.ln_f(x)  # (B, 1, C)
        return self.output(hidden)[:, -1, :]  # (B, V)


def _attention(q: torch.Tensor, kv: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    """q (B, nh, 1, hs) over kv (B, 2, nh, S, hs) with the additive bias (B, 1, 1, S) → (B, nh, 1, hs)."""
    if torch.get_num_threads() == 1:
        return F.scaled_dot_product_attention(q, kv[:, 0], kv[:, 1], attn_mask=bias)
    one_by_one = []
    for b in range(q.size(0)):
        keys, values = kv[b : b + 1].unbind(1)  # (1, nh, S, hs) each
        row = F.scaled_dot_product_attention(q[b : b + 1], keys, values, attn_mask=bias[b : b + 1])
        one_by_one.append(row)
    return torch.cat(one_by_one)


def gpt_rows(model: Any, rows: list[Any], previous: GptRows | None) -> GptRows:
    """`previous` when it holds exactly these rows of this model, else the rows stacked anew."""
    if previous is not None and previous.model is model and previous.rows == rows:
        return previous
    return GptRows.stack(model, rows)
