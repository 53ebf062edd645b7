"""One closed-form (or untrained) fit of a registered model on a prepared dataset, then one evaluation.

    python benchmarks/fit_once.py MODEL [JSON_SETTINGS] [--dataset ml-1m_clean] [--home HOME] [--seed 0]

For quick orientation figures without run directories (docs/research.md's "defaults" rows): builds the
model through the registry, calls ``prepare`` and ``fit_closed_form`` on the training matrix, evaluates
with the project's protocol. The last line of output is one JSON object: model, settings, fit_s, eval_s,
valid and test (R@10, R@20, N@10, N@20).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import print_json_line  # noqa: E402

from diffrec_cli.data.store import DataHome  # noqa: E402
from diffrec_cli.models.build import build_model  # noqa: E402
from diffrec_cli.plugins import get_registry  # noqa: E402
from diffrec_cli.training.evaluate import evaluate  # noqa: E402

KEYS = ("recall@10", "recall@20", "ndcg@10", "ndcg@20")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model")
    parser.add_argument("settings", nargs="?", default="{}")
    parser.add_argument("--dataset", default="ml-1m_clean")
    parser.add_argument("--home", default=None)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    settings = json.loads(args.settings)
    data = DataHome(args.home).load(args.dataset)
    torch.manual_seed(args.seed)
    model, _ = build_model(get_registry(), args.model, settings, n_users=data.n_users, n_items=data.n_items,
                           data=data)
    tick = time.perf_counter()
    model.prepare(data.train)
    if getattr(model, "closed_form", False):
        model.fit_closed_form(data.train)
    fit_s = time.perf_counter() - tick
    model.eval()
    tick = time.perf_counter()
    metrics = evaluate(model.scores, data, ks=(10, 20))
    eval_s = time.perf_counter() - tick
    print(f"{args.model} {settings}: fit {fit_s:.1f} s, eval {eval_s:.1f} s")
    for split in ("valid", "test"):
        print(f"  {split}: " + "  ".join(f"{k} {metrics[split][k]:.4f}" for k in KEYS))
    print_json_line({"model": args.model, "settings": settings, "fit_s": fit_s, "eval_s": eval_s,
                     **{split: {k: metrics[split][k] for k in KEYS} for split in ("valid", "test")}})


if __name__ == "__main__":
    main()
