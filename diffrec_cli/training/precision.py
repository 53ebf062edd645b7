"""Which precision training and scoring run in: measured, not guessed (``precision = auto``).

A short probe times the model's own GEMM shapes in float32 and bfloat16 on the chosen device; ``auto``
uses bf16 only where it is at least ``AUTO_SPEEDUP`` times faster (AMX or AVX512-BF16 CPUs, most GPUs).
``bf16`` forces it (with a warning when the probe finds it slower), ``fp32`` skips the probe. Scoring in
bf16 is also kept only while its top-K agrees with fp32 scores (checked at the first evaluation).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace
from typing import Any, Callable, Sequence

import torch

from diffrec_cli.training.device import bf16_supported

AUTO_SPEEDUP = 1.3  # bf16 must beat fp32 by this factor on the model's shapes for auto to pick it
TOPK_AGREEMENT = 0.95  # least mean share of the top-20 that bf16 scoring must share with fp32 scoring
PROBE_SECONDS = 0.12  # per dtype and shape set: about a second for training and scoring shapes together
# Below this many GFLOP per training step the matmuls are too small for bf16 to matter and auto stays in
# fp32 without probing (tiny models, tests: no start-up cost, no decision that depends on the load).
MIN_PROBE_GFLOP = 0.5

Shape = tuple[int, int, int]  # (rows, in, out) of one x @ W.T
# (shapes, device, backward) -> (fp32 GFLOP/s, bf16 GFLOP/s)
Probe = Callable[[Sequence[Shape], torch.device, bool], tuple[float, float]]


def _gflops(shapes: Sequence[Shape], device: torch.device, dtype: torch.dtype, backward: bool) -> float:
    pairs = [(torch.randn(m, k, device=device).to(dtype), torch.randn(n, k, device=device).to(dtype))
             for m, k, n in shapes]
    flops = sum(2.0 * m * k * n * (3 if backward else 1) for m, k, n in shapes)

    def once() -> None:
        for x, w in pairs:
            y = x @ w.t()
            if backward:  # the two backward GEMMs of a linear layer: input and weight gradients
                y @ w
                y.t() @ x

    once()  # warm-up: kernel selection, first-touch allocations
    done, started = 0, time.perf_counter()
    while True:
        once()
        done += 1
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        elapsed = time.perf_counter() - started
        if elapsed >= PROBE_SECONDS or done >= 50:
            return flops * done / elapsed / 1e9


_measured: dict[tuple, tuple[float, float]] = {}


def probe_gemms(shapes: Sequence[Shape], device: torch.device, backward: bool) -> tuple[float, float]:
    """Measured GFLOP/s of these GEMMs (forward and, with ``backward``, both backward GEMMs) in fp32, bf16;
    once per process for the same shapes, device and thread count (a tuning run probes once)."""
    key = (tuple(shapes), str(device), backward, torch.get_num_threads())
    if key not in _measured:
        _measured[key] = (_gflops(shapes, device, torch.float32, backward),
                          _gflops(shapes, device, torch.bfloat16, backward))
    return _measured[key]


def step_gflop(shapes: Sequence[Shape]) -> float:
    """GFLOP of one training step's GEMMs, forward and backward."""
    return sum(6.0 * m * k * n for m, k, n in shapes) / 1e9


@dataclass(frozen=True)
class PrecisionChoice:
    """What was asked, what runs, and the throughputs the decision rests on (recorded in the run)."""

    requested: str  # auto | fp32 | bf16
    training: str = "fp32"
    scoring: str = "fp32"
    training_gflops: tuple[float, float] | None = None  # (fp32, bf16) on the training shapes
    scoring_gflops: tuple[float, float] | None = None  # (fp32, bf16) on the scoring shapes
    warning: str | None = None
    scoring_agreement: float | None = None  # top-20 agreement of bf16 with fp32 scores, once checked

    def dtype(self, which: str) -> torch.dtype:
        return torch.bfloat16 if getattr(self, which) == "bf16" else torch.float32

    def describe(self) -> str:
        """One short line for progress output: ``bf16 (auto 2.9x)`` (bf16's measured speed-up over fp32)."""
        if self.training_gflops is None:
            return f"{self.training} ({self.requested})" if self.requested != self.training else self.training
        fp32, bf16 = self.training_gflops
        scoring = "" if self.scoring == self.training else f", scoring {self.scoring}"
        how = "auto" if self.requested == "auto" else "forced"
        return f"{self.training} ({how} {bf16 / fp32:.1f}x{scoring})"

    def to_json(self) -> dict[str, Any]:
        def rates(pair: tuple[float, float] | None) -> dict[str, float] | None:
            return None if pair is None else {"fp32_gflops": round(pair[0], 2), "bf16_gflops": round(pair[1], 2)}

        return {"requested": self.requested, "training": self.training, "scoring": self.scoring,
                "training_probe": rates(self.training_gflops), "scoring_probe": rates(self.scoring_gflops),
                "rule": f"bf16 where at least {AUTO_SPEEDUP}x faster", "warning": self.warning,
                "scoring_top20_agreement": self.scoring_agreement}

    def scoring_checked(self, agreement: float) -> "PrecisionChoice":
        """After the top-K check: bf16 scoring kept only if it agrees with fp32 well enough."""
        keep = agreement >= TOPK_AGREEMENT
        return replace(self, scoring=self.scoring if keep else "fp32", scoring_agreement=round(agreement, 4))


def choose_precision(requested: str, device: torch.device, training_shapes: Sequence[Shape],
                     scoring_shapes: Sequence[Shape], probe: Probe = probe_gemms,
                     supported: bool | None = None) -> PrecisionChoice:
    """fp32 / bf16 for training and for scoring, by ``requested`` and what ``probe`` measures here
    (``supported``: whether the device has bf16 at all; None: look)."""
    if requested == "auto" and step_gflop(training_shapes) < MIN_PROBE_GFLOP:
        return PrecisionChoice(requested)
    supported = bf16_supported(device) if supported is None else supported
    if requested == "fp32" or not training_shapes or not supported:
        note = None
        if requested == "bf16":
            note = f"bf16 is not supported by this {device.type} (or the model has no GEMMs); training in fp32"
        return PrecisionChoice(requested, warning=note)
    train_rates = probe(training_shapes, device, True)
    score_rates = probe(scoring_shapes, device, False) if scoring_shapes else None

    def faster(rates: tuple[float, float] | None) -> bool:
        return rates is not None and rates[1] >= AUTO_SPEEDUP * rates[0]

    if requested == "bf16":
        slower = train_rates[1] < train_rates[0]
        note = (f"bf16 was asked for but is slower here ({train_rates[1]:.0f} against {train_rates[0]:.0f} "
                f"GFLOP/s in fp32)") if slower else None
        return PrecisionChoice(requested, "bf16", "bf16", train_rates, score_rates, note)
    return PrecisionChoice(requested, "bf16" if faster(train_rates) else "fp32",
                           "bf16" if faster(score_rates) else "fp32", train_rates, score_rates)


def replayed_probe(record: dict[str, Any] | None) -> Probe | None:
    """A probe that answers with the throughputs a run recorded (``PrecisionChoice.to_json``), so that a
    resumed run makes the decision it made before; None when nothing was probed."""
    training = (record or {}).get("training_probe")
    if not isinstance(training, dict):
        return None
    scoring = record.get("scoring_probe") if isinstance(record.get("scoring_probe"), dict) else training

    def probe(shapes: Sequence[Shape], device: torch.device, backward: bool) -> tuple[float, float]:
        rates = training if backward else scoring
        return float(rates["fp32_gflops"]), float(rates["bf16_gflops"])

    return probe


def topk_agreement(fp32_scores: torch.Tensor, low_scores: torch.Tensor, k: int = 20) -> float:
    """Mean share of each row's top-k that two score matrices (seen items already masked) have in common."""
    k = min(k, fp32_scores.shape[1])
    a = torch.topk(fp32_scores.float(), k, dim=1).indices
    b = torch.topk(low_scores.float(), k, dim=1).indices
    same = (a[:, :, None] == b[:, None, :]).any(dim=2).sum(dim=1)
    return float(same.double().mean() / k)


def check_scoring(choice: PrecisionChoice, model: Any, data: Any, inputs: Any, users: int = 256) -> PrecisionChoice:
    """Score a sample of validation users in bf16 and fp32 and keep bf16 scoring only if their top-20 agree
    (``TOPK_AGREEMENT``); the model is left set to the precision that was kept."""
    import numpy as np

    from diffrec_cli.data.sparse import dense_rows

    if choice.scoring != "bf16" or choice.scoring_agreement is not None:
        return choice
    device = next(model.parameters()).device
    rows = np.flatnonzero(np.diff(data.valid.indptr) > 0)[:users]
    x = dense_rows(inputs, rows, device)
    seen = dense_rows(data.train, rows, device) != 0
    ids = torch.from_numpy(rows).to(device)
    low = model.scores(ids, x).float().masked_fill(seen, -float("inf"))
    model.set_precision(choice.dtype("training"), torch.float32)
    full = model.scores(ids, x).float().masked_fill(seen, -float("inf"))
    checked = choice.scoring_checked(topk_agreement(full, low) if len(rows) else 1.0)
    model.set_precision(checked.dtype("training"), checked.dtype("scoring"))
    return checked
