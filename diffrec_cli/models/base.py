"""What the trainer, evaluator and checkpoints expect of a model.

A model is an ``nn.Module`` whose constructor takes the dataset sizes (``data_args``) and then keyword
arguments that are its configuration. Component-valued arguments (a noise schedule, say) are named in
``components``: the registry builds them from settings and checkpoints record them by name and plugin.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import Any, ClassVar, Iterator

import numpy as np
import scipy.sparse as sp
import torch
from torch import nn

from diffrec_cli.data.reweighting import NoReweighting, reweighted_matrix
from diffrec_cli.data.sparse import InteractionData, dense_rows
from diffrec_cli.models.adamw import FusedAdamW
from diffrec_cli.protocols import Reweighting


@dataclass
class Batch:
    """One training batch: the users' (possibly reweighted) interaction rows, densified on the device."""

    users: torch.Tensor  # (B,) dense user ids
    x: torch.Tensor  # (B, n_items)
    # this process's share of the whole batch's users: 1 except in data-parallel training, where each rank's
    # gradient is weighted by it so the ranks' gradients add up to the whole batch's
    share: float = field(default=1.0, kw_only=True)  # keyword-only: subclasses add positional fields


@dataclass(frozen=True)
class UserShard:
    """One process's part of every training batch in data-parallel training (``training/distributed.py``).

    Rank ``rank`` of ``ranks`` takes the ``rank``-th of ``ranks`` contiguous, near-equal slices of a batch's
    users, so the slices in rank order are the whole batch, in its order.
    """

    rank: int = 0
    ranks: int = 1

    def part(self, rows: np.ndarray) -> np.ndarray:
        bounds = [len(rows) * r // self.ranks for r in range(self.ranks + 1)]
        return rows[bounds[self.rank]:bounds[self.rank + 1]]


WHOLE = UserShard()


# Below this share of non-zeros a batch of rows times a dense item-item matrix goes through CSR rows.
SPARSE_ROWS_DENSITY = 0.1


def rows_times(x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """x·W for a batch of user rows and a dense item-item W (EASE-like scores). On a CPU, rows holding few
    items go through a CSR copy of x: the product then reads only the rows of W that a batch's items pick,
    where the dense GEMM streams all of W for every batch (measured at 18,109 items: 23× faster)."""
    if x.device.type == "cpu" and x.dtype == weight.dtype and x.dim() == 2 and x.numel():
        if int(torch.count_nonzero(x)) <= SPARSE_ROWS_DENSITY * x.numel():
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # torch flags its CSR tensors as beta
                return torch.sparse.mm(x.to_sparse_csr(), weight)
    return x @ weight


def adamw(params: Any, **kwargs: Any) -> Any:
    """AdamW with the fused kernel where this torch build has one: on a CPU the default per-tensor loop
    costs several times more per step than the fused update, a noticeable share of a DiffRec epoch.
    ``FusedAdamW`` calls that kernel without torch.optim's compiler wrappers (models/adamw.py says why)."""
    params = list(params)
    flat = [p for group in params for p in group["params"]] if params and isinstance(params[0], dict) else params
    if FusedAdamW.supports(flat):
        return FusedAdamW(params, **kwargs)
    return torch.optim.AdamW(params, **kwargs)


class Recommender(nn.Module):
    """Base class: subclasses implement ``loss`` (training) and ``scores`` (full ranking).

    The class attributes below are the contract the registry, trainer, tuner and tests read; a model
    overrides the ones that apply to it. The constructor's keyword arguments are the model's settings: the
    build step records them (``models/build.py``), so a model never keeps a copy of its own config.
    """

    #: Registry name (``--model NAME``).
    name: ClassVar[str] = ""
    #: Positional constructor arguments taken from the dataset, in order: the sizes, then any
    #: ``InteractionData`` attribute the model needs (e.g. ``"item_emb"``, ``"train"``).
    data_args: ClassVar[tuple[str, ...]] = ("n_users", "n_items")
    #: Component-valued constructor arguments: parameter -> (registry kind, default name), e.g.
    #: ``{"schedule": ("noise_schedule", "linear-var")}``. Each is built from the settings by name.
    components: ClassVar[dict[str, tuple[str, str]]] = {}
    #: The model's own defaults for its components' settings (e.g. L-DiffRec's noise schedule).
    component_defaults: ClassVar[dict[str, Any]] = {}
    #: The reweighting strategy used when the settings name none (T-DiffRec: ``time-linear``).
    default_reweighting: ClassVar[str] = "none"
    #: ``diffrec tune``'s default search space: setting -> list of choices (or a range, see tuning.py).
    search_space: ClassVar[dict[str, Any]] = {}
    #: Small settings for the contract tests (``--set``-style values); empty: the defaults.
    test_settings: ClassVar[dict[str, Any]] = {}
    #: Closed-form models (EASE, ItemKNN, ...) implement ``fit_closed_form``; the trainer fits them once and
    #: evaluates once instead of running epochs.
    closed_form: ClassVar[bool] = False
    #: Settings a closed-form fit can change without redoing its expensive part. ``diffrec tune`` fits the
    #: trials that differ only in these from one ``factorise`` result, through ``fit_from`` (EASE: ``reg``,
    #: over one eigendecomposition of its Gram matrix). Models that name any implement both methods.
    refit_settings: ClassVar[tuple[str, ...]] = ()
    #: The fewest trials that must share one ``factorise`` before it costs less than fitting each alone:
    #: ``diffrec tune`` shares only within groups at least this large.
    refit_break_even: ClassVar[int] = 2
    #: Whether training can run data-parallel over users (``diffrec train --nproc``, ``torchrun``): the loss
    #: is a mean over the batch's users (plus terms that do not depend on the batch) and ``batches`` honours
    #: its ``shard``, so each rank's gradient weighted by its ``Batch.share`` adds up to the whole batch's.
    #: Closed-form fits and models that batch something other than user rows (interaction pairs) say False.
    distributable: ClassVar[bool] = False

    def __init__(self, n_users: int, n_items: int) -> None:
        super().__init__()
        self.n_users = n_users
        self.n_items = n_items
        # the build step replaces this with the strategy named in the settings (a component like any other)
        self.reweighting: Reweighting = NoReweighting()

    def inputs(self, data: InteractionData) -> sp.csr_matrix:
        """The training matrix this model reads, in training and when serving: the dataset's training
        interactions with values from its reweighting strategy (1s without one)."""
        return reweighted_matrix(data.train, data.train_order, self.reweighting)

    def derived_config(self) -> dict[str, Any]:
        """Settings computed from the data at construction that a checkpoint must record to rebuild the same
        shapes (L-DiffRec's cluster sizes); given back to the constructor on reload."""
        return {}

    def diffusion_steps(self) -> int | None:
        """T, for models that diffuse (progress panels show the loss per step); None otherwise."""
        return None

    def training_state(self) -> dict[str, Any]:
        """Training progress kept outside the state dict (counters that drive annealing, say), as JSON
        values: saved in resumable checkpoints so a resumed run continues exactly."""
        return {}

    def load_training_state(self, state: dict[str, Any]) -> None:
        """Take back what :meth:`training_state` returned."""

    def describe(self) -> list[str]:
        """Extra lines about the built model, printed when training starts (e.g. L-DiffRec's clusters)."""
        return []

    def item_embeddings(self) -> torch.Tensor | None:
        """(n_items, d) item embeddings for ``diffrec export-embeddings``; None for models without them."""
        return None

    def loss(self, batch: Batch) -> torch.Tensor:
        raise NotImplementedError

    def fit_closed_form(self, train: sp.csr_matrix) -> None:
        raise NotImplementedError

    def fit_memory(self, train_nnz: int, *, factorised: bool = False) -> int:
        """Bytes ``fit_closed_form`` allocates beyond the model's own parameters and buffers, for a training
        matrix with ``train_nnz`` entries (``factorised``: of ``factorise`` and ``fit_from`` instead, the
        factors included). Checked against free memory before anything is allocated; 0: nothing notable."""
        return 0

    def factorise(self, train: sp.csr_matrix) -> Any:
        """The part of ``fit_closed_form`` that no ``refit_settings`` changes (models that declare some)."""
        raise NotImplementedError

    def fit_from(self, factors: Any) -> None:
        """Finish the fit from a ``factorise`` result, made by a model whose settings differ at most in
        ``refit_settings``; gives the weights ``fit_closed_form`` gives, to float rounding."""
        raise NotImplementedError

    def prepare(self, train: sp.csr_matrix) -> None:
        """Called once before the first epoch with the (reweighted) training matrix the model reads.

        Models that derive state from the data (an item-item graph, its spectrum) fill persistent buffers
        here, so a checkpoint carries that state and a reload needs no data. The default does nothing.
        """

    def make_optimizer(self, lr: float, weight_decay: float) -> Any:
        """AdamW over every parameter; models with parameter groups (e.g. per-part learning rates) override."""
        return adamw(self.parameters(), lr=lr, weight_decay=weight_decay)

    def on_epoch_start(self, epoch: int) -> None:
        """Called before each training epoch (1-based): schedules such as KL annealing hook in here."""

    def steps_per_epoch(self, train: sp.csr_matrix, batch_size: int) -> int:
        users = int((np.diff(train.indptr) > 0).sum())
        return max(1, -(-users // batch_size))

    def batches(self, train: sp.csr_matrix, batch_size: int, generator: torch.Generator,
                device: torch.device, shard: UserShard = WHOLE) -> Iterator[Batch]:
        """One epoch of training batches: users with training interactions, shuffled, rows densified on
        ``device`` one batch at a time. Pairwise models may override to batch interactions instead.

        With a ``shard`` (data-parallel training) every rank draws the same permutation and densifies only
        its part of each batch; a last batch with fewer users than ranks is left out on every rank.
        """
        users = np.flatnonzero(np.diff(train.indptr) > 0)
        order = users[torch.randperm(len(users), generator=generator).numpy()]
        for lo in range(0, len(order), batch_size):
            whole = order[lo:lo + batch_size]
            if len(whole) < shard.ranks:
                continue
            rows = shard.part(whole)
            yield Batch(torch.from_numpy(rows).to(device), dense_rows(train, rows, device),
                        share=len(rows) / len(whole))

    def scores(self, users: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """Scores for every item, (B, n_items), from the users' input rows ``x``; higher ranks first."""
        raise NotImplementedError

    def gemm_shapes(self, batch_size: int, *, scoring: bool = False) -> list[tuple[int, int, int]]:
        """(rows, in, out) of the matrix products one training step (or, with ``scoring``, one scoring pass)
        runs: what the precision probe times in fp32 and bf16. The default lists every ``nn.Linear``."""
        return [(batch_size, m.in_features, m.out_features) for m in self.modules() if isinstance(m, nn.Linear)]

    def set_precision(self, training: torch.dtype, scoring: torch.dtype) -> bool:
        """Run training matmuls in ``training`` and scoring matmuls in ``scoring`` through the model's own
        mixed-precision path (fp32 master weights, loss and item-wide scores). Returns False when the model
        has none: the trainer then trains under autocast and scores in fp32."""
        return False

    def step_losses(self) -> list[float | None] | None:
        """Mean loss per diffusion step for progress displays; None for models without steps."""
        return None

    def parameter_count(self) -> int:
        return sum(p.numel() for p in self.parameters())
