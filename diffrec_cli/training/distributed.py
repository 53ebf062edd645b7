"""Data-parallel training over users with ``torch.distributed``: what the loop asks of its ranks.

``diffrec train --nproc N`` starts N copies of itself through ``torch.distributed.run`` (torchrun's engine);
``torchrun --nnodes M --nproc-per-node N -m diffrec_cli train ...`` does the same over several machines.
Either way each process finds RANK and WORLD_SIZE in its environment and ``join`` opens the process group
(NCCL on CUDA, gloo on a CPU). The loop then talks to a ``Parallel`` through a handful of hooks; a lone
process gets ``Parallel`` itself, whose hooks do nothing, and ``DataParallel`` fills them in:

- every rank draws the same permutation of users (the shared seed) and densifies only its slice of each
  batch (``models/base.py:UserShard``);
- after each backward pass the gradients are weighted by the rank's share of the batch and summed across
  ranks, so every rank takes the step one process would take on the whole batch and the weights stay equal;
- the importance-sampling loss history is gathered across ranks in rank order, so every rank keeps the
  history one process would keep and samples its steps from the same distribution;
- evaluation scores every ranks-th batch of users and the ranks' per-batch sums are merged in batch order:
  the metrics are bit for bit the single-process ones;
- decisions (stop early, stop now) are rank 0's, broadcast; only rank 0 reports events, so only it writes.
"""

from __future__ import annotations

import os
from typing import Any, Iterator

import scipy.sparse as sp
import torch
import torch.distributed as dist

from diffrec_cli.data.sparse import InteractionData
from diffrec_cli.diffusion.gaussian import GaussianDiffusion
from diffrec_cli.errors import DiffrecError
from diffrec_cli.models.base import Batch, Recommender, UserShard
from diffrec_cli.training.evaluate import MetricAccumulator, ScoreFn, accumulate
from diffrec_cli.training.events import Reporter, silent

# gradients are summed in buckets of this many elements: few collectives without a second copy of them all
BUCKET_ELEMENTS = 1 << 23


def launched_ranks() -> int:
    """How many processes the launcher (torchrun) started for this job; 1 when started alone."""
    return int(os.environ.get("WORLD_SIZE", "1"))


def launched_rank() -> int:
    return int(os.environ.get("RANK", "0"))


def launched_local_rank() -> int:
    return int(os.environ.get("LOCAL_RANK", "0"))


class Parallel:
    """One process alone: every hook leaves things as they are."""

    rank, ranks = 0, 1

    @property
    def leads(self) -> bool:
        """Whether this process reports and writes (rank 0)."""
        return self.rank == 0

    def place(self, device: torch.device) -> torch.device:
        return device

    def attach(self, model: Recommender, seed: int) -> None:
        """Called once the model is on its device, before the first epoch."""

    def batches(self, model: Recommender, inputs: sp.csr_matrix, batch_size: int, generator: torch.Generator,
                device: torch.device) -> Iterator[Batch]:
        return model.batches(inputs, batch_size, generator, device)

    def reduce_gradients(self, model: Recommender, share: float) -> None:
        """After backward: make every rank's gradients the whole batch's."""

    def mean(self, value: float) -> float:
        return value

    def agree(self, decision: bool) -> bool:
        """Rank 0's decision, on every rank."""
        return decision

    def evaluate(self, score_fn: ScoreFn, data: InteractionData, **options: Any) -> dict[str, dict[str, float]]:
        accumulators = accumulate(score_fn, data, **options)
        return {split: acc.result() for split, acc in accumulators.items()}

    def reporter(self, reporter: Reporter) -> Reporter:
        return reporter if self.leads else silent

    def check_resumable(self) -> None:
        """Resuming continues a run in one process."""

    def describe(self) -> list[str]:
        """Lines for the start of training."""
        return []


class DataParallel(Parallel):
    """This process as rank ``rank`` of ``ranks`` in an open process group."""

    def __init__(self, rank: int, ranks: int, local_rank: int) -> None:
        self.rank, self.ranks, self.local_rank = rank, ranks, local_rank

    def place(self, device: torch.device) -> torch.device:
        return torch.device("cuda", self.local_rank) if device.type == "cuda" else device

    def attach(self, model: Recommender, seed: int) -> None:
        for tensor in [*model.parameters(), *model.buffers()]:  # rank 0's weights everywhere, whatever built them
            dist.broadcast(tensor.data, src=0)
        for module in model.modules():
            if isinstance(module, GaussianDiffusion):
                module.gather_losses = self.gather_losses
        # each rank its own noise and dropout: the same draws on every rank would waste the extra users
        torch.manual_seed(seed + self.rank)

    def batches(self, model: Recommender, inputs: sp.csr_matrix, batch_size: int, generator: torch.Generator,
                device: torch.device) -> Iterator[Batch]:
        return model.batches(inputs, batch_size, generator, device, UserShard(self.rank, self.ranks))

    def reduce_gradients(self, model: Recommender, share: float) -> None:
        bucket: list[torch.Tensor] = []
        for param in model.parameters():
            if not param.requires_grad:
                continue
            if param.grad is None:  # unused this step here, maybe not elsewhere: every rank sends the same list
                param.grad = torch.zeros_like(param)
            if bucket and (bucket[0].dtype != param.grad.dtype
                           or sum(g.numel() for g in bucket) + param.grad.numel() > BUCKET_ELEMENTS):
                _sum_weighted(bucket, share)
                bucket = []
            bucket.append(param.grad)
        if bucket:
            _sum_weighted(bucket, share)

    def gather_losses(self, t: torch.Tensor, losses: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Every rank's (step, loss) pairs, in rank order: the whole batch's, as one process records them."""
        packed = torch.stack([t.to(torch.float64), losses.to(torch.float64)], dim=1)  # steps are small ints
        sizes = [torch.zeros(1, dtype=torch.int64, device=t.device) for _ in range(self.ranks)]
        dist.all_gather(sizes, torch.tensor([len(t)], dtype=torch.int64, device=t.device))
        longest = int(max(sizes).item())
        padded = torch.zeros(longest, 2, dtype=torch.float64, device=t.device)
        padded[:len(t)] = packed
        parts = [torch.empty_like(padded) for _ in range(self.ranks)]
        dist.all_gather(parts, padded)
        whole = torch.cat([part[:int(size.item())] for part, size in zip(parts, sizes)])
        return whole[:, 0].to(t.dtype), whole[:, 1].to(losses.dtype)

    def mean(self, value: float) -> float:
        total = torch.tensor([value], dtype=torch.float64, device=self._wire())
        dist.all_reduce(total)
        return float(total.item()) / self.ranks

    def agree(self, decision: bool) -> bool:
        flag = torch.tensor([int(decision)], dtype=torch.int64, device=self._wire())
        dist.broadcast(flag, src=0)
        return bool(flag.item())

    def evaluate(self, score_fn: ScoreFn, data: InteractionData, **options: Any) -> dict[str, dict[str, float]]:
        mine = accumulate(score_fn, data, part=(self.rank, self.ranks), **options)
        return {split: self._merged(acc).result() for split, acc in mine.items()}

    def _merged(self, mine: MetricAccumulator) -> MetricAccumulator:
        """The accumulator one process would have: every rank's batches, added in batch order."""
        width = len(mine.sums) + 1
        counts = [torch.zeros(1, dtype=torch.int64, device=self._wire()) for _ in range(self.ranks)]
        dist.all_gather(counts, torch.tensor([len(mine.batch_totals)], dtype=torch.int64, device=self._wire()))
        batches = int(sum(counts).item())
        # each batch's row is filled by the one rank that scored it; adding the others' zeros is exact
        table = torch.zeros(batches, width, dtype=torch.float64, device=self._wire())
        for k, totals in enumerate(mine.batch_totals):
            table[self.rank + k * self.ranks] = torch.tensor(totals, dtype=torch.float64)
        dist.all_reduce(table)
        merged = MetricAccumulator(mine.ks)
        for row in table.tolist():
            merged.add_totals(row)
        return merged

    def check_resumable(self) -> None:
        raise DiffrecError("a run resumes in one process: resuming across several processes is not supported")

    def describe(self) -> list[str]:
        return [f"data-parallel over {self.ranks} ranks ({dist.get_backend()}): each takes 1/{self.ranks} of a batch"]

    def _wire(self) -> torch.device:
        """Where small messages live: NCCL moves only CUDA tensors."""
        return torch.device("cuda", self.local_rank) if dist.get_backend() == "nccl" else torch.device("cpu")


def _sum_weighted(grads: list[torch.Tensor], share: float) -> None:
    flat = torch.cat([g.reshape(-1) for g in grads])
    flat.mul_(share)
    dist.all_reduce(flat)
    offset = 0
    for g in grads:
        g.copy_(flat[offset:offset + g.numel()].view_as(g))
        offset += g.numel()


def join(device: torch.device) -> Parallel:
    """This process's part in the job: alone, or a rank of the process group the launcher's environment
    describes (opened here on first use: NCCL for CUDA, gloo otherwise)."""
    if launched_ranks() <= 1:
        return Parallel()
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if not dist.is_initialized():
        if device.type == "cuda":
            torch.cuda.set_device(local_rank)
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return DataParallel(dist.get_rank(), dist.get_world_size(), local_rank)


def require_distributable(model_class: type[Recommender], ranks: int) -> None:
    """A one-line error for a model whose training cannot be split over ranks (its ``distributable``)."""
    if ranks > 1 and not model_class.distributable:
        raise DiffrecError(f"model {model_class.name!r} cannot train data-parallel over users (it fits in "
                           f"closed form or batches something other than user rows); train it in one process")


def leave() -> None:
    """Close the process group, if this process opened one."""
    if dist.is_initialized():
        dist.destroy_process_group()

