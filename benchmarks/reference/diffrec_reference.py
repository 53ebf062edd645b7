"""A plain PyTorch DiffRec loop in the structure of the authors' released code, for speed ratios only.

Written for this repository (not copied): it follows the authors' *structure* so that "ours / reference"
means the same thing on any machine: the whole training matrix densified once and served by a
``DataLoader``; an MLP with ``nn.Dropout`` on the input; Gaussian diffusion whose ``training_losses``
samples steps by importance (Eq. 14) and updates the loss history one sample at a time in Python; AdamW
with torch's default implementation; evaluation that runs the unfused T-step reverse process
(``p_sample``: the full network at every step) over every user, once for validation and again for test,
masks seen items, takes the top 100 and scores the lists with Python loops. Nothing here is used by the
library.
"""

from __future__ import annotations

import math

import numpy as np
import scipy.sparse as sp
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset


class DenseRows(Dataset):
    def __init__(self, dense: torch.Tensor) -> None:
        self.dense = dense

    def __len__(self) -> int:
        return self.dense.shape[0]

    def __getitem__(self, index: int) -> torch.Tensor:
        return self.dense[index]


def step_embedding(steps: torch.Tensor, dim: int, max_period: float = 10000.0) -> torch.Tensor:
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(0, half, dtype=torch.float32) / half)
    args = steps[:, None].float() * freqs[None]
    emb = torch.cat([torch.cos(args), torch.sin(args)], dim=-1)
    return torch.cat([emb, torch.zeros_like(emb[:, :1])], dim=-1) if dim % 2 else emb


class DNN(nn.Module):
    """in_dims = out_dims reversed; the step embedding is concatenated to the (dropped-out) input."""

    def __init__(self, in_dims: list[int], out_dims: list[int], emb_size: int, dropout: float = 0.5) -> None:
        super().__init__()
        self.emb_size = emb_size
        self.emb_layer = nn.Linear(emb_size, emb_size)
        first = [in_dims[0] + emb_size] + in_dims[1:]
        self.in_layers = nn.ModuleList(nn.Linear(a, b) for a, b in zip(first[:-1], first[1:]))
        self.out_layers = nn.ModuleList(nn.Linear(a, b) for a, b in zip(out_dims[:-1], out_dims[1:]))
        self.drop = nn.Dropout(dropout)
        for layer in [*self.in_layers, *self.out_layers, self.emb_layer]:
            fan_out, fan_in = layer.weight.shape
            layer.weight.data.normal_(0.0, math.sqrt(2.0 / (fan_in + fan_out)))
            layer.bias.data.normal_(0.0, 0.001)

    def forward(self, x: torch.Tensor, steps: torch.Tensor) -> torch.Tensor:
        emb = self.emb_layer(step_embedding(steps, self.emb_size))
        h = torch.cat([self.drop(x), emb], dim=-1)
        for layer in self.in_layers:
            h = torch.tanh(layer(h))
        for i, layer in enumerate(self.out_layers):
            h = layer(h)
            if i != len(self.out_layers) - 1:
                h = torch.tanh(h)
        return h


def extract(values: torch.Tensor, steps: torch.Tensor, shape: torch.Size) -> torch.Tensor:
    out = values[steps].float()
    while out.dim() < len(shape):
        out = out[..., None]
    return out.expand(shape)


class Diffusion:
    """x0-prediction Gaussian diffusion with the linear-variance schedule and SNR step weights."""

    def __init__(self, noise_scale: float, noise_min: float, noise_max: float, steps: int, history: int = 10) -> None:
        variance = noise_scale * np.linspace(noise_min, noise_max, steps, dtype=np.float64)
        alpha_bar = 1.0 - variance
        betas = [1.0 - alpha_bar[0]] + [min(1.0 - alpha_bar[i] / alpha_bar[i - 1], 0.999) for i in range(1, steps)]
        betas = np.array(betas, dtype=np.float64)
        self.steps, self.history = steps, history
        cum = np.cumprod(1.0 - betas)
        prev = np.append(1.0, cum[:-1])
        tensor = lambda a: torch.tensor(a, dtype=torch.float64)  # noqa: E731
        self.alphas_cumprod = tensor(cum)
        self.sqrt_ac = tensor(np.sqrt(cum))
        self.sqrt_1m_ac = tensor(np.sqrt(1.0 - cum))
        self.coef1 = tensor(betas * np.sqrt(prev) / (1.0 - cum))
        self.coef2 = tensor((1.0 - prev) * np.sqrt(1.0 - betas) / (1.0 - cum))
        self.loss_history = torch.zeros(steps, history, dtype=torch.float64)
        self.loss_count = torch.zeros(steps, dtype=torch.long)

    def sample_steps(self, batch_size: int, uniform_prob: float = 0.001) -> tuple[torch.Tensor, torch.Tensor]:
        if not (self.loss_count == self.history).all():
            return torch.randint(0, self.steps, (batch_size,)), torch.ones(batch_size)
        rms = torch.sqrt(torch.mean(self.loss_history ** 2, dim=-1))
        probs = rms / rms.sum() * (1 - uniform_prob) + uniform_prob / self.steps
        t = torch.multinomial(probs, num_samples=batch_size, replacement=True)
        return t, probs.gather(0, t) * self.steps

    def q_sample(self, x0: torch.Tensor, t: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        return extract(self.sqrt_ac, t, x0.shape) * x0 + extract(self.sqrt_1m_ac, t, x0.shape) * noise

    def snr(self, t: torch.Tensor) -> torch.Tensor:
        return self.alphas_cumprod[t] / (1 - self.alphas_cumprod[t])

    def training_losses(self, model: nn.Module, x0: torch.Tensor) -> torch.Tensor:
        t, pt = self.sample_steps(x0.shape[0])
        noise = torch.randn_like(x0)
        output = model(self.q_sample(x0, t, noise), t)
        mse = ((x0 - output) ** 2).mean(dim=1)
        weight = torch.where(t == 0, 1.0, self.snr(t - 1) - self.snr(t))
        loss = weight * mse
        for step, value in zip(t, loss):  # the history, one sample at a time, as the authors update it
            if self.loss_count[step] == self.history:
                old = self.loss_history.clone()
                self.loss_history[step, :-1] = old[step, 1:]
                self.loss_history[step, -1] = value.detach()
            else:
                self.loss_history[step, self.loss_count[step]] = value.detach()
                self.loss_count[step] += 1
        return loss / pt

    def p_sample(self, model: nn.Module, x0: torch.Tensor) -> torch.Tensor:
        """T' = 0, no sampling noise: x_{t-1} = posterior mean with x̂_0 = model(x_t, t), t = T..1."""
        xt = x0
        for i in reversed(range(self.steps)):
            t = torch.tensor([i] * xt.shape[0])
            predicted = model(xt, t)
            xt = extract(self.coef1, t, xt.shape) * predicted + extract(self.coef2, t, xt.shape) * xt
        return xt


def top_n_accuracy(truth: list[list[int]], predicted: list[list[int]], top_n: list[int]) -> dict[str, float]:
    """Recall and NDCG per cut-off, averaged over users with ground truth, in plain Python loops."""
    out = {}
    for n in top_n:
        recall = ndcg = 0.0
        users = 0
        for items, ranked in zip(truth, predicted):
            if not items:
                continue
            users += 1
            relevant = set(items)
            hits = [j for j in range(n) if ranked[j] in relevant]
            dcg = sum(1.0 / math.log2(j + 2) for j in hits)
            idcg = sum(1.0 / math.log2(j + 2) for j in range(min(len(items), n)))
            recall += len(hits) / len(items)
            ndcg += dcg / idcg
        out[f"recall@{n}"], out[f"ndcg@{n}"] = recall / max(1, users), ndcg / max(1, users)
    return out


class ReferenceRun:
    """The authors' ML-1M setup: ``dims`` as the decoder side, dense training matrix, AdamW."""

    def __init__(self, train: sp.csr_matrix, valid: sp.csr_matrix, test: sp.csr_matrix, *, dims: list[int],
                 emb_size: int, steps: int, noise_scale: float, noise_min: float, noise_max: float,
                 lr: float = 1e-3, batch_size: int = 400, seed: int = 1) -> None:
        torch.manual_seed(seed)
        self.train_csr, self.valid, self.test = train, valid, test
        self.dense = torch.FloatTensor(train.toarray())
        self.train_loader = DataLoader(DenseRows(self.dense), batch_size=batch_size, shuffle=True)
        self.eval_loader = DataLoader(DenseRows(self.dense), batch_size=batch_size, shuffle=False)
        out_dims = list(dims) + [train.shape[1]]
        self.model = DNN(out_dims[::-1], out_dims, emb_size)
        self.diffusion = Diffusion(noise_scale, noise_min, noise_max, steps)
        self.optimizer = torch.optim.AdamW(self.model.parameters(), lr=lr, weight_decay=0.0)
        self.batch_size = batch_size

    def train_epoch(self) -> float:
        self.model.train()
        total = 0.0
        for batch in self.train_loader:
            self.optimizer.zero_grad()
            loss = self.diffusion.training_losses(self.model, batch).mean()
            total += float(loss.detach())
            loss.backward()
            self.optimizer.step()
        return total / len(self.train_loader)

    @torch.no_grad()
    def evaluate(self, truth_matrix: sp.csr_matrix, seen: sp.csr_matrix, top_n: list[int]) -> dict[str, float]:
        self.model.eval()
        predicted: list[list[int]] = []
        for index, batch in enumerate(self.eval_loader):
            lo = index * self.batch_size
            seen_rows = seen[lo:lo + len(batch)]
            scores = self.diffusion.p_sample(self.model, batch)
            scores[seen_rows.nonzero()] = -np.inf
            predicted.extend(torch.topk(scores, top_n[-1]).indices.numpy().tolist())
        truth = [truth_matrix[i, :].nonzero()[1].tolist() for i in range(truth_matrix.shape[0])]
        return top_n_accuracy(truth, predicted, top_n)

    @torch.no_grad()
    def time_partial_eval(self, batches: int) -> float:
        """CPU seconds for ``batches`` batches of each reverse pass (validation and test), scaled to all users."""
        import time

        self.model.eval()
        tick = time.process_time()
        for index, batch in enumerate(self.eval_loader):
            if index == batches:
                break
            torch.topk(self.diffusion.p_sample(self.model, batch), 100)
        return 2 * (time.process_time() - tick) / batches * len(self.eval_loader)

    def evaluate_valid_and_test(self, top_n: tuple[int, ...] = (10, 20, 50, 100)) -> dict[str, dict[str, float]]:
        valid = self.evaluate(self.valid, self.train_csr, list(top_n))
        test = self.evaluate(self.test, (self.train_csr + self.valid).tocsr(), list(top_n))
        return {"valid": valid, "test": test}

