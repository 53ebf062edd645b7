"""rows_times: sparse rows times a dense item-item matrix gives the dense product."""

import warnings

import torch

from diffrec_cli.models import base
from diffrec_cli.models.base import rows_times


def _rows(density: float, seed: int = 0) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    pattern = torch.rand(37, 211, generator=gen) < density
    return pattern.float() * torch.rand(37, 211, generator=gen)


def test_sparse_rows_go_through_csr_and_match_the_dense_product(monkeypatch):
    weight = torch.randn(211, 211, generator=torch.Generator().manual_seed(1))
    x = _rows(0.03)
    calls = []
    monkeypatch.setattr(base.torch.sparse, "mm", lambda a, b: calls.append(a.layout) or (a.to_dense() @ b))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # torch's beta warning on CSR tensors must not reach the user
        out = rows_times(x, weight)
    assert calls == [torch.sparse_csr]
    torch.testing.assert_close(out, x @ weight, rtol=0, atol=1e-5)


def test_the_real_sparse_product_agrees_and_dense_rows_keep_the_gemm():
    weight = torch.randn(211, 211, generator=torch.Generator().manual_seed(2))
    sparse, dense = _rows(0.03, seed=3), _rows(0.5, seed=4)
    torch.testing.assert_close(rows_times(sparse, weight), sparse @ weight, rtol=1e-5, atol=1e-5)
    assert torch.equal(rows_times(dense, weight), dense @ weight)  # above the density threshold: the GEMM
    empty = torch.zeros(0, 211)
    assert rows_times(empty, weight).shape == (0, 211)
