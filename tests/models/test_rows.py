"""Row-exact products: a row's result does not depend on the batch it is computed in."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from genloop.models.rows import linear_rows, matmul_rows


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize(("inputs", "outputs"), [(26, 3136), (384, 10), (10, 16)])
def test_a_rows_product_does_not_depend_on_its_batch(
    threads: int, inputs: int, outputs: int, one_torch_thread: None
) -> None:
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    linear = nn.Linear(inputs, outputs)
    x = torch.randn(64, inputs)
    with torch.no_grad():
        alone = torch.cat([linear_rows(x[i : i + 1], linear) for i in range(len(x))])
        batched = linear_rows(x, linear)
        assert torch.equal(batched, alone)
        assert torch.equal(linear_rows(x[5:37], linear), alone[5:37])
        assert torch.equal(linear_rows(x.flip(0), linear), alone.flip(0))
        torch.testing.assert_close(batched, linear(x))  # the same product, up to the last bit
        plain = torch.cat([matmul_rows(x[i : i + 1], linear.weight.t()) for i in range(len(x))])
        assert torch.equal(matmul_rows(x, linear.weight.t()), plain)
        torch.testing.assert_close(plain, x @ linear.weight.t())
