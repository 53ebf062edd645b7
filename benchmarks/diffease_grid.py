"""Validation grids for the research target (docs/research.md): time-weighted EASE and DiffEASE on ML-1M.

    python benchmarks/diffease_grid.py ease-both   --w-min 0,0.1,0.2,0.3,0.5 --reg 100,250,500,1000,2000
    python benchmarks/diffease_grid.py ease-inputs --w-min 0,0.1,0.2,0.3,0.5 --reg 100,250,500,1000,2000
    python benchmarks/diffease_grid.py diffease --w-min 0 --reg 1000,2000 --blur-time 0,0.1,0.25 \
        --ideal 0,0.1:256 [--binary-targets]

Every point is fitted in closed form from the library's functions (``ease_weights``, DiffEASE's
``heat_kernel``/``denoiser``), with the item graph's spectrum computed once, and evaluated with the
project's protocol on validation and test (R@10, R@20, N@10, N@20). The point to keep is the best
*validation* Recall@20; the test figures are printed beside it, never used to choose. ``ease-both`` weights
the Gram matrix and the inputs (``ease`` with ``reweighting=time-linear``), ``ease-inputs`` only the inputs
(``weight_gram=false``). One JSON line per point, then the selected point as the last line.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import scipy.linalg
import scipy.sparse as sp
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import print_json_line  # noqa: E402

from diffrec_baselines.neighbourhood import ease_weights  # noqa: E402
from diffrec_cli.data.reweighting import TimeLinearReweighting, reweighted_matrix  # noqa: E402
from diffrec_cli.data.store import DataHome  # noqa: E402
from diffrec_cli.training.evaluate import evaluate  # noqa: E402
from diffrec_successors.diffease import denoiser, heat_kernel  # noqa: E402
from diffrec_successors.graph import item_gram, normalized_interactions  # noqa: E402

KEYS = ("recall@10", "recall@20", "ndcg@10", "ndcg@20")


def measure(data, operator: np.ndarray, inputs: sp.csr_matrix) -> dict:
    weights = torch.from_numpy(operator).float()
    metrics = evaluate(lambda users, x: x @ weights, data, ks=(10, 20), input_matrix=inputs.astype(np.float32))
    return {split: [round(metrics[split][k], 4) for k in KEYS] for split in ("valid", "test")}


def points(args, binary: sp.csr_matrix, weighted: dict[float, sp.csr_matrix]):
    """(settings, operator, w_min) for every grid point of the chosen variant."""
    gram = (binary.T @ binary).toarray()
    if args.variant.startswith("ease"):
        for w_min, rows in weighted.items():
            used = (rows.T @ rows).toarray() if args.variant == "ease-both" else gram
            for reg in args.reg:
                yield {"reg": reg}, ease_weights(used, reg), w_min
        return
    values, vectors = scipy.linalg.eigh(item_gram(normalized_interactions(binary, 0.5, 0.5)))
    degree = np.asarray(binary.sum(axis=0)).ravel()
    inv_sqrt, sqrt = np.where(degree > 0, degree ** -0.5, 0.0), np.where(degree > 0, degree ** 0.5, 0.0)
    for blur in args.blur_time:
        heat = heat_kernel(values, vectors, blur) if blur > 0 else np.eye(gram.shape[0])
        for reg in args.reg:
            for w_min, rows in weighted.items():
                cross = gram if args.binary_targets else (binary.T @ rows).toarray()
                base = heat @ denoiser(gram, cross, heat, reg)
                for ideal, factors in args.ideal:
                    top = vectors[:, -factors:]
                    prior = (inv_sqrt[:, None] * top) @ (top.T * sqrt[None, :]) if ideal > 0 else 0.0
                    yield ({"reg": reg, "blur_time": blur, "ideal_weight": ideal, "factors": factors},
                           base + ideal * prior, w_min)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("variant", choices=("ease-both", "ease-inputs", "diffease"))
    floats = lambda text: [float(v) for v in text.split(",")]  # noqa: E731
    parser.add_argument("--w-min", type=floats, default=[0.1])
    parser.add_argument("--reg", type=floats, default=[500.0])
    parser.add_argument("--blur-time", type=floats, default=[0.0])
    parser.add_argument("--ideal", default="0", help="IDEAL_WEIGHT:FACTORS,... (0 = no prior)")
    parser.add_argument("--binary-targets", action="store_true", help="DiffEASE reconstructs binary rows")
    parser.add_argument("--dataset", default="ml-1m_clean")
    parser.add_argument("--home", default=None)
    args = parser.parse_args()
    args.ideal = [(float(s.split(":")[0]), int(s.split(":")[1]) if ":" in s else 1) for s in args.ideal.split(",")]
    data = DataHome(args.home).load(args.dataset)
    binary = sp.csr_matrix(data.train, dtype=np.float64)
    binary.data[:] = 1.0
    weighted = {w: sp.csr_matrix(reweighted_matrix(data.train, data.train_order, TimeLinearReweighting(w_min=w)),
                                 dtype=np.float64) for w in args.w_min}
    best, started = None, time.perf_counter()
    for settings, operator, w_min in points(args, binary, weighted):
        row = {"variant": args.variant, "w_min": w_min, **settings, **measure(data, operator, weighted[w_min])}
        print(json.dumps(row), flush=True)
        if best is None or row["valid"][1] > best["valid"][1]:
            best = row
    print(f"selected on validation R@20 ({time.perf_counter() - started:.0f} s): {best}")
    print_json_line(best)


if __name__ == "__main__":
    main()
