"""L-DiffRec (paper §3.5): item clusters, one variational encoder per cluster, diffusion in the latent space.

Items are grouped into C clusters by k-means on item embeddings. A user's interaction vector is split by
cluster; cluster c's encoder q_φc (input dropout, tanh layers) compresses its part to the mean and
log-variance of a latent z_c whose size is proportional to the cluster's item count (the last cluster
takes the remainder, so the sizes add up to ``latent_size``). The concatenated z = [z_1, …, z_C] is
diffused and denoised like DiffRec's x by an MLP denoiser; decoders map the latent back to item scores.

Internally every item-wide tensor is kept in *cluster order* (cluster 0's items, then cluster 1's, …);
``item_order[j]`` is the item id at cluster-order position j, and ``scores`` scatters the decoder's output
back to item ids. ``item_order`` is a buffer, so a checkpoint restores the clustering without redoing it;
the cluster sizes (which fix the layer shapes) are recorded in the model's settings.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import numpy as np
import scipy.sparse as sp
import torch
import torch.nn.functional as F
from torch import nn

from diffrec_cli.diffusion.gaussian import GaussianDiffusion
from diffrec_cli.errors import DiffrecError
from diffrec_cli.models.base import Batch, Recommender, adamw
from diffrec_cli.models.denoiser import MLPDenoiser
from diffrec_cli.models.kmeans import kmeans, svd_item_factors
from diffrec_cli.models.losses import annealed_weight, gaussian_kl

SVD_DIM = 64  # size of the SVD item factors used when a dataset has no item embeddings (LightGCN's 64)


def proportional_sizes(total: int, shares: Sequence[int]) -> list[int]:
    """Split ``total`` units in proportion to ``shares`` as the authors do: every part but the last gets
    ⌊share/Σshares·total⌋ (at least 1), the last part the remainder."""
    whole = sum(shares)
    sizes = [max(1, share * total // whole) for share in shares[:-1]]
    sizes.append(total - sum(sizes))
    if sizes[-1] < 1:
        raise DiffrecError(f"cannot split {total} units over {len(shares)} clusters of sizes {list(shares)}: "
                           f"the last cluster gets none (use fewer clusters or a larger size)")
    return sizes


def _init_linear(layer: nn.Linear) -> None:
    # Xavier-normal weights, zero biases: the authors' initialisation for the encoders and decoders.
    nn.init.xavier_normal_(layer.weight)
    nn.init.zeros_(layer.bias)


class ItemLinear(nn.Module):
    """A linear layer whose input is an interaction vector, stored (in_features, out_features) so that a
    sparse row's output is the weighted sum of its items' weight rows (``embedding_bag``): training and
    scoring cost scales with the user's interactions, not with the cluster's item count. Dense input works
    too (``forward``). Xavier-normal weights and zero biases, like the other layers."""

    def __init__(self, in_features: int, out_features: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.empty(in_features, out_features))
        self.bias = nn.Parameter(torch.zeros(out_features))
        nn.init.xavier_normal_(self.weight)  # symmetric in fan-in/fan-out, so the layout does not matter

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.addmm(self.bias, x, self.weight)

    def forward_sparse(self, index: torch.Tensor, offsets: torch.Tensor, values: torch.Tensor) -> torch.Tensor:
        """Rows given as CSR-like (column ``index``, row start ``offsets``, ``values``)."""
        return F.embedding_bag(index, self.weight, offsets, mode="sum",
                               per_sample_weights=values.to(self.weight.dtype)) + self.bias


def _mlp(sizes: Sequence[int], final_activation: bool) -> nn.Sequential:
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        linear = nn.Linear(a, b)
        _init_linear(linear)
        layers.append(linear)
        if i < len(sizes) - 2 or final_activation:
            layers.append(nn.Tanh())
    return nn.Sequential(*layers)


def _check_settings(n_items: int, n_clusters: int, latent_size: int, encoder_dims: tuple[int, ...],
                    decoder_dims: tuple[int, ...], denoiser_dims: tuple[int, ...], dropout: float,
                    denoiser_dropout: float, lam: float, lam_floor: float, lam_epochs: int, kl_cap: float,
                    kl_anneal_batches: int, decode_from: str, denoiser_lr: float) -> None:
    """L-DiffRec's settings, checked before anything is built (one error naming the first bad one)."""
    checks = [
        (int(n_clusters) == n_clusters and 1 <= n_clusters <= n_items,
         f"n_clusters must be an integer in 1..{n_items}, got {n_clusters}"),
        (latent_size >= n_clusters, f"latent_size must be at least n_clusters ({n_clusters}), got {latent_size}"),
        (min(encoder_dims + decoder_dims, default=1) > 0, "encoder_dims and decoder_dims must be positive sizes"),
        (bool(denoiser_dims) and min(denoiser_dims) > 0,
         f"denoiser_dims must be a non-empty list of positive sizes, got {list(denoiser_dims)}"),
        (0.0 <= dropout < 1.0 and 0.0 <= denoiser_dropout < 1.0, "dropouts must lie in [0, 1)"),
        (lam >= 0 and lam_floor >= 0 and lam_epochs >= 0, "lam, lam_floor and lam_epochs must be >= 0"),
        (kl_cap >= 0 and kl_anneal_batches >= 0, "kl_cap and kl_anneal_batches must be >= 0"),
        (decode_from in ("denoised", "sampled"),
         f"decode_from must be 'denoised' or 'sampled', got {decode_from!r}"),
        (denoiser_lr >= 0, f"denoiser_lr must be >= 0, got {denoiser_lr}"),
    ]
    for ok, message in checks:
        if not ok:
            raise DiffrecError(message)


class LDiffRec(Recommender):
    """L-DiffRec. Defaults are the authors' ML-1M (clean) settings for it.

    Clustering: ``n_clusters`` (C; 1 = no clustering) groups from ``embeddings``: "auto" uses the dataset's
    item embeddings (``item_emb.npy``) when it has them, else the SVD item factors of the training matrix;
    "svd" always uses the SVD factors; any other value is the path of an (n_items, d) ``.npy`` file.
    k-means is seeded by ``cluster_seed``. ``cluster_sizes`` is derived from the clustering and recorded
    so that checkpoints rebuild the same shapes; it is not a setting to give by hand.

    VAE: ``latent_size`` (300) split over clusters in proportion to their sizes; ``encoder_dims``, hidden
    sizes of each encoder before the latent layer (scaled the same way; empty: one linear layer);
    ``dropout`` on the encoder input; ``bounded_posterior``: tanh on the encoders' mean and log-variance,
    as the authors' encoders apply their activation after every layer. ``decoder_dims`` empty: one linear
    layer from the whole latent to all items (the authors' choice); otherwise one decoder per cluster with
    these hidden sizes (scaled per cluster) from that cluster's latent part to its items.

    Diffusion: the ``schedule`` component and ``prediction``, ``step_weighting``, ``sampling``,
    ``noising_steps`` (T'), ``history`` as for DiffRec, on the latent; ``denoiser_dims``, ``emb_size`` and
    ``denoiser_dropout`` configure the denoiser like DiffRec's ``dims``, ``emb_size`` and ``dropout``.

    Loss (Eq. 15): L_VAE = multinomial log-likelihood of the user's row under softmax(decoder) + γ·KL,
    γ = min(``kl_cap``, batches/``kl_anneal_batches``) (MultiVAE's per-batch annealing); λ =
    max(``lam``·(1 − epochs/``lam_epochs``), ``lam_floor``) per completed epoch. With step weighting the total
    is λ·L_diffusion + L_VAE, without it L_diffusion + λ·L_VAE (the authors' two cases). The diffusion
    target is the sampled latent z = μ + σ·ε; ``decode_from`` "denoised" decodes the denoiser's x̂_0 of
    it (the authors' code), "sampled" decodes z itself (Eq. 15 read literally). Inference encodes with μ.
    ``denoiser_lr``: learning rate of the denoiser (the VAE uses the trainer's ``lr``); 0 = the same.
    """

    name = "ldiffrec"
    distributable = True
    data_args = ("n_users", "n_items", "item_emb", "train")
    components = {"schedule": ("noise_schedule", "linear-var")}
    # The authors' ML-1M (clean) L-DiffRec schedule; their latent diffusion leaves β₁ as Eq. 4 gives it.
    component_defaults = {"steps": 40, "noise_scale": 0.005, "noise_min": 0.005, "noise_max": 0.02,
                          "first_beta": None}
    test_settings = {"n_clusters": 2, "latent_size": 12, "denoiser_dims": [16], "emb_size": 4, "steps": 5}

    def __init__(self, n_users: int, n_items: int, item_emb: np.ndarray | None = None,
                 train: sp.spmatrix | None = None, *, schedule: Any, n_clusters: int = 2, latent_size: int = 300,
                 encoder_dims: Sequence[int] = (), decoder_dims: Sequence[int] = (),
                 denoiser_dims: Sequence[int] = (300,), emb_size: int = 10, dropout: float = 0.1,
                 denoiser_dropout: float = 0.5, bounded_posterior: bool = True, prediction: str = "x0",
                 step_weighting: bool = True, sampling: str = "importance", noising_steps: int = 0,
                 history: int = 10, lam: float = 0.03, lam_floor: float = 0.005, lam_epochs: int = 500,
                 kl_cap: float = 0.3, kl_anneal_batches: int = 200, decode_from: str = "denoised",
                 denoiser_lr: float = 5e-4, embeddings: str = "auto", cluster_seed: int = 0,
                 cluster_sizes: Sequence[int] | None = None) -> None:
        super().__init__(n_users, n_items)
        encoder_dims = tuple(int(d) for d in encoder_dims)
        decoder_dims = tuple(int(d) for d in decoder_dims)
        denoiser_dims = tuple(int(d) for d in denoiser_dims)
        _check_settings(n_items, n_clusters, latent_size, encoder_dims, decoder_dims, denoiser_dims, dropout,
                        denoiser_dropout, lam, lam_floor, lam_epochs, kl_cap, kl_anneal_batches, decode_from,
                        denoiser_lr)
        n_clusters = int(n_clusters)

        order, sizes, self.cluster_source = self._cluster(n_items, n_clusters, item_emb, train, embeddings,
                                                          cluster_seed, cluster_sizes)
        self._build_cluster_buffers(order, sizes)
        self.latent_sizes = proportional_sizes(latent_size, sizes)
        self._build_vae(encoder_dims, decoder_dims, bounded_posterior, latent_size)

        # ----- latent diffusion -----
        self.schedule = schedule
        self.diffusion = GaussianDiffusion(schedule.betas(), prediction=prediction, step_weighting=step_weighting,
                                           sampling=sampling, history=history)
        if not 0 <= noising_steps <= self.diffusion.steps:
            raise DiffrecError(f"noising_steps (T') must lie in 0..{self.diffusion.steps}, got {noising_steps}")
        self.denoiser = MLPDenoiser(latent_size, denoiser_dims, emb_size, denoiser_dropout)

        self.dropout = dropout
        self.noising_steps = noising_steps
        self.latent_size = latent_size
        self.lam, self.lam_floor, self.lam_epochs = lam, lam_floor, lam_epochs
        self.kl_cap, self.kl_anneal_batches = kl_cap, kl_anneal_batches
        self.decode_from = decode_from
        self.denoiser_lr = denoiser_lr
        self.batches_seen = 0  # drives γ (per batch)
        self.epochs_done = 0  # drives λ (per epoch)

    def _build_cluster_buffers(self, order: np.ndarray, sizes: list[int]) -> None:
        self.register_buffer("item_order", torch.as_tensor(order, dtype=torch.long))
        # derived from item_order (and rebuilt when a checkpoint's item_order is loaded)
        self.register_buffer("item_position", torch.empty(self.n_items, dtype=torch.long), persistent=False)
        self.register_buffer("position_cluster", torch.repeat_interleave(
            torch.arange(len(sizes)), torch.as_tensor(sizes)), persistent=False)
        self.register_buffer("cluster_start", torch.as_tensor(np.cumsum([0] + sizes[:-1]), dtype=torch.long),
                             persistent=False)
        self._sync_positions()
        self.register_load_state_dict_post_hook(lambda module, _keys: module._sync_positions())
        self.cluster_sizes = sizes

    def _build_vae(self, encoder_dims: tuple[int, ...], decoder_dims: tuple[int, ...], bounded_posterior: bool,
                   latent_size: int) -> None:
        sizes, n_clusters = self.cluster_sizes, len(self.cluster_sizes)
        hidden = [proportional_sizes(d, sizes) for d in encoder_dims]  # hidden[layer][cluster]
        # encoder c: ItemLinear(items of c → first size), then the rest (tanh between layers; after the last
        # one too when the posterior is bounded)
        enc_sizes = [[sizes[c], *(h[c] for h in hidden), 2 * self.latent_sizes[c]] for c in range(n_clusters)]
        self.encoder_inputs = nn.ModuleList(ItemLinear(e[0], e[1]) for e in enc_sizes)
        self.encoders = nn.ModuleList(
            nn.Sequential(*([nn.Tanh()] if len(e) > 2 or bounded_posterior else []),
                          *_mlp(e[1:], final_activation=bounded_posterior))
            for e in enc_sizes)
        if decoder_dims:
            dec_hidden = [proportional_sizes(d, sizes) for d in decoder_dims]
            self.decoders = nn.ModuleList(
                _mlp([self.latent_sizes[c], *(h[c] for h in dec_hidden), sizes[c]], final_activation=False)
                for c in range(n_clusters))
        else:
            self.decoders = nn.ModuleList([_mlp([latent_size, self.n_items], final_activation=False)])

    # ----- clustering ---------------------------------------------------------------------------
    @staticmethod
    def _cluster(n_items: int, n_clusters: int, item_emb: np.ndarray | None, train: sp.spmatrix | None,
                 embeddings: str, seed: int, recorded: Sequence[int] | None) -> tuple[np.ndarray, list[int], str]:
        """(item ids in cluster order, cluster sizes, where the clustering came from)."""
        if recorded is not None:
            if isinstance(recorded, str) or item_emb is not None or train is not None:
                raise DiffrecError("cluster_sizes is derived from the clustering and recorded in checkpoints; "
                                   "set n_clusters (and embeddings, cluster_seed) instead")
            sizes = [int(s) for s in recorded]
            if len(sizes) != n_clusters or min(sizes) < 1 or sum(sizes) != n_items:
                raise DiffrecError(f"recorded cluster_sizes {sizes} do not split {n_items} items into "
                                   f"{n_clusters} clusters")
            # the checkpoint's item_order buffer replaces this placeholder when the state dict is loaded
            return np.arange(n_items), sizes, "restored from a checkpoint"
        if n_clusters == 1:
            return np.arange(n_items), [n_items], "no clustering (C = 1)"
        if embeddings == "auto" and item_emb is not None:
            points, source = np.asarray(item_emb), f"the dataset's item embeddings ({np.shape(item_emb)[1]}-d)"
        elif embeddings in ("auto", "svd"):
            if train is None:
                raise DiffrecError(f"ldiffrec clusters items with {n_clusters} clusters: it needs the dataset's "
                                   f"item embeddings or its training matrix (or n_clusters=1)")
            points, source = svd_item_factors(train, SVD_DIM, seed=seed), f"SVD item factors ({SVD_DIM}-d)"
        else:
            path = Path(embeddings).expanduser()
            try:
                points = np.load(path, allow_pickle=False)
            except (OSError, ValueError) as exc:
                raise DiffrecError(f"cannot read item embeddings from {path}: {exc}") from None
            source = f"item embeddings from {path} ({np.shape(points)[-1]}-d)"
        if points.ndim != 2 or points.shape[0] != n_items:
            raise DiffrecError(f"item embeddings must have shape ({n_items}, d), got {points.shape}")
        labels, _ = kmeans(points, n_clusters, seed=seed)
        sizes = np.bincount(labels, minlength=n_clusters)
        order = np.argsort(labels, kind="stable")  # cluster 0's items (ascending ids), then cluster 1's, ...
        return order, [int(s) for s in sizes], "k-means on " + source

    def _sync_positions(self) -> None:
        with torch.no_grad():
            self.item_position[self.item_order] = torch.arange(self.n_items, device=self.item_order.device)

    def item_clusters(self) -> np.ndarray:
        """The cluster of every item id, (n_items,)."""
        labels = np.repeat(np.arange(len(self.cluster_sizes)), self.cluster_sizes)
        out = np.empty(self.n_items, dtype=np.int64)
        out[self.item_order.cpu().numpy()] = labels
        return out

    def derived_config(self) -> dict[str, Any]:
        return {"cluster_sizes": list(self.cluster_sizes)}

    def diffusion_steps(self) -> int:
        return self.diffusion.steps

    def describe(self) -> list[str]:
        """Cluster statistics and parameter counts, printed when training starts."""
        vae = sum(p.numel() for p in self.vae_parameters())
        den = sum(p.numel() for p in self.denoiser.parameters())
        return [f"clusters: C = {len(self.cluster_sizes)}, {self.cluster_source}",
                f"  items per cluster {self.cluster_sizes}, latent dims {self.latent_sizes} (sum {self.latent_size})",
                f"  parameters: {self.parameter_count():,} = VAE {vae:,} + denoiser {den:,}"]

    # ----- VAE ----------------------------------------------------------------------------------
    def vae_parameters(self) -> list[nn.Parameter]:
        return [p for m in (self.encoder_inputs, self.encoders, self.decoders) for p in m.parameters()]

    def split_rows(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """The nonzeros of rows ``x`` (item order): (row, cluster-order position, cluster, value), row-major."""
        rows, items = x.nonzero(as_tuple=True)
        position = self.item_position[items]
        return rows, position, self.position_cluster[position], x[rows, items]

    def encode_sparse(self, rows: torch.Tensor, position: torch.Tensor, cluster: torch.Tensor, values: torch.Tensor,
                      batch: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean and log-variance (B, latent_size) of q(z | x) from the nonzeros of ``batch`` rows."""
        mus, logvars = [], []
        for c, (first, rest, size) in enumerate(zip(self.encoder_inputs, self.encoders, self.latent_sizes)):
            mine = cluster == c
            mine_rows = rows[mine]
            offsets = torch.searchsorted(mine_rows, torch.arange(batch, device=rows.device))
            h = rest(first.forward_sparse(position[mine] - self.cluster_start[c], offsets, values[mine]))
            mus.append(h[:, :size])
            logvars.append(h[:, size:])
        return torch.cat(mus, 1), torch.cat(logvars, 1)

    def encode(self, x_clustered: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean and log-variance (B, latent_size) of q(z | x) from dense rows in cluster order."""
        mus, logvars = [], []
        parts = x_clustered.split(self.cluster_sizes, dim=1)
        for first, rest, part, size in zip(self.encoder_inputs, self.encoders, parts, self.latent_sizes):
            h = rest(first(part))
            mus.append(h[:, :size])
            logvars.append(h[:, size:])
        return torch.cat(mus, 1), torch.cat(logvars, 1)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """Item logits in cluster order, (B, n_items)."""
        if len(self.decoders) == 1:
            return self.decoders[0](z)
        return torch.cat([dec(part) for dec, part in zip(self.decoders, z.split(self.latent_sizes, dim=1))], 1)

    def to_cluster_order(self, x: torch.Tensor) -> torch.Tensor:
        return x.index_select(1, self.item_order)

    def to_item_order(self, x: torch.Tensor) -> torch.Tensor:
        out = torch.empty_like(x)
        out[:, self.item_order] = x
        return out

    # ----- training -----------------------------------------------------------------------------
    def kl_weight(self) -> float:
        """γ after ``batches_seen`` batches."""
        return annealed_weight(self.kl_cap, self.batches_seen, self.kl_anneal_batches)

    def diffusion_lambda(self) -> float:
        """λ after ``epochs_done`` epochs."""
        if self.lam_epochs == 0:
            return max(self.lam, self.lam_floor)
        return max((1.0 - self.epochs_done / self.lam_epochs) * self.lam, self.lam_floor)

    def training_state(self) -> dict[str, Any]:
        return {"batches_seen": self.batches_seen}

    def load_training_state(self, state: dict[str, Any]) -> None:
        self.batches_seen = int(state["batches_seen"])

    def on_epoch_start(self, epoch: int) -> None:
        self.epochs_done = epoch - 1

    def make_optimizer(self, lr: float, weight_decay: float) -> Any:
        groups = [{"params": self.vae_parameters(), "lr": lr},
                  {"params": list(self.denoiser.parameters()), "lr": self.denoiser_lr or lr}]
        return adamw(groups, lr=lr, weight_decay=weight_decay)

    def losses(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """The loss terms of one batch of rows ``x`` (item order), before λ and γ are applied."""
        rows, position, cluster, values = self.split_rows(x)
        # input dropout acts on the nonzeros only, exactly as dropout on the dense rows would
        dropped = F.dropout(values, self.dropout, self.training) if self.dropout else values
        mu, logvar = self.encode_sparse(rows, position, cluster, dropped, x.shape[0])
        z = mu + torch.exp(0.5 * logvar) * torch.randn_like(mu) if self.training else mu
        diffusion, z0_hat = self.diffusion.training_losses(self.denoiser, z, return_x0=True)
        logits = self.decode(z0_hat if self.decode_from == "denoised" else z)
        # multinomial log-likelihood Σ_i x_i·log softmax(logits)_i, over the nonzeros only
        nll = -(F.log_softmax(logits, dim=1)[rows, position] * values).sum() / x.shape[0]
        return {"diffusion": diffusion.mean(), "nll": nll, "kl": gaussian_kl(mu, logvar)}

    def loss(self, batch: Batch) -> torch.Tensor:
        terms = self.losses(batch.x)
        lam, gamma = self.diffusion_lambda(), self.kl_weight()
        vae = terms["nll"] + gamma * terms["kl"]
        if self.training:
            self.batches_seen += 1
        if self.diffusion.step_weighting:
            return lam * terms["diffusion"] + vae
        return terms["diffusion"] + lam * vae

    def step_losses(self) -> list[float | None]:
        return self.diffusion.mean_loss_per_step()

    # ----- inference ----------------------------------------------------------------------------
    def reverse(self, z: torch.Tensor) -> torch.Tensor:
        """Algorithm 2 in the latent space: noise z for T' steps, then T deterministic denoising steps."""
        return self.diffusion.reverse(self.denoiser, z, self.noising_steps)

    @torch.no_grad()
    def scores(self, users: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        mu, _ = self.encode_sparse(*self.split_rows(x), x.shape[0])
        return self.to_item_order(self.decode(self.reverse(mu)))
