"""Mixed precision only where the device computes bf16 natively: emulated bf16 is many times slower."""

from __future__ import annotations

import torch

from genloop.train.device import autocast, effective_precision, fast_bf16

CPU = torch.device("cpu")


def test_bf16_is_used_only_where_the_cpu_has_native_bf16() -> None:
    native = bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    assert fast_bf16("cpu") is native
    assert effective_precision("bf16", CPU) == ("bf16" if native else "fp32")
    assert effective_precision("fp32", CPU) == "fp32"
    x, w = torch.randn(4, 8), torch.randn(8, 3)
    with autocast("bf16", CPU):
        y = x @ w
    assert y.dtype == (torch.bfloat16 if native else torch.float32)
    with autocast("fp32", CPU):
        assert (x @ w).dtype == torch.float32
