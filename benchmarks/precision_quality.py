"""Test metrics of a short DiffRec run on ML-1M clean, per precision and seed: the bf16-vs-fp32 quality check.

    python benchmarks/precision_quality.py [--seeds 1,2,3] [--precisions fp32,bf16] [--epochs 10]
                                           [--threads 1] [--home DIR]

Trains the authors' ML-1M settings for ``--epochs`` epochs (evaluating every 5, selection on validation
Recall@20) for each seed and precision, and prints the test metrics of the selected epoch with the mean and
standard deviation over seeds, and the bf16 − fp32 difference per seed (paired). Also the before/after check
of a speed change: run it at seed 1 in fp32 on the old and the new code, same thread count; the figures
should agree. Reads the imported split ``ml-1m_clean`` from the data home (``--home``, else
``$DIFFREC_HOME``). The last line of output is one JSON object.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import torch  # noqa: E402
from _common import peak_rss_mb, print_json_line  # noqa: E402

from diffrec_cli.config import resolve_settings  # noqa: E402
from diffrec_cli.data.store import DataHome  # noqa: E402
from diffrec_cli.models.build import build_model  # noqa: E402
from diffrec_cli.plugins import load_plugins  # noqa: E402
from diffrec_cli.training.loop import fit  # noqa: E402

MODEL = {"dims": [200, 600], "emb_size": 10, "prediction": "x0", "steps": 40, "noise_scale": 0.005,
         "noise_min": 0.005, "noise_max": 0.01, "noising_steps": 0, "step_weighting": True,
         "sampling": "importance", "schedule": "linear-var"}
KEYS = ("recall@10", "recall@20", "ndcg@10", "ndcg@20")


def run_one(data, registry, seed: int, precision: str, epochs: int) -> dict:
    settings = resolve_settings({"lr": 1e-3, "batch_size": 400, "epochs": epochs, "eval_every": 5,
                                 "patience": 1000}, {}, seed=seed, device="cpu", precision=precision,
                                dataset=data.name)
    torch.manual_seed(seed)
    model, _ = build_model(registry, "diffrec", dict(MODEL), n_users=data.n_users, n_items=data.n_items)
    result = fit(model, data, settings.train)
    return {**{k: result.test[k] for k in KEYS}, "best_epoch": result.best_epoch,
            "epoch_s": statistics.median(result.epoch_seconds), "eval_s": statistics.median(result.eval_seconds)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", default="1")
    parser.add_argument("--precisions", default="fp32", help="comma-separated: fp32, bf16, auto")
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--home", default=os.environ.get("DIFFREC_HOME"))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if not args.home:
        raise SystemExit("error: give --home or set DIFFREC_HOME (a data home with ml-1m_clean imported)")
    data = DataHome(Path(args.home)).load("ml-1m_clean")
    registry = load_plugins(entry_points=False).registry
    seeds = [int(s) for s in args.seeds.split(",") if s.strip()]
    precisions = [p.strip() for p in args.precisions.split(",") if p.strip()]
    rows: dict[str, list[dict]] = {p: [] for p in precisions}
    started = time.perf_counter()
    for seed in seeds:
        for precision in precisions:
            row = run_one(data, registry, seed, precision, args.epochs)
            rows[precision].append(row)
            print(f"seed {seed} {precision:>4}: best epoch {row['best_epoch']}, "
                  + " ".join(f"{k} {row[k]:.4f}" for k in KEYS)
                  + f", {row['epoch_s']:.2f} s/epoch, {row['eval_s']:.2f} s/eval", flush=True)
    print(f"\n{args.epochs} epochs, {args.threads} thread(s), seeds {seeds}, "
          f"wall {time.perf_counter() - started:.0f} s, load {os.getloadavg()[0]:.2f}")
    print(f"{'precision':12}" + "".join(f"{k:>18}" for k in KEYS))
    summary = {}
    for precision, values in rows.items():
        means = {k: statistics.mean(r[k] for r in values) for k in KEYS}
        sds = {k: (statistics.stdev(r[k] for r in values) if len(values) > 1 else 0.0) for k in KEYS}
        summary[precision] = {k: [round(means[k], 5), round(sds[k], 5)] for k in KEYS}
        print(f"{precision:12}" + "".join(f"{means[k]:>10.4f} ±{sds[k]:.4f}" for k in KEYS))
    out = {"seeds": seeds, "epochs": args.epochs, "threads": args.threads, "metrics": summary,
           "per_seed": {p: [{k: round(r[k], 6) for k in KEYS} for r in v] for p, v in rows.items()},
           "peak_rss_mb": round(peak_rss_mb(), 1)}
    if "fp32" in rows and "bf16" in rows:
        diffs = {k: [b[k] - f[k] for f, b in zip(rows["fp32"], rows["bf16"])] for k in KEYS}
        print(f"{'bf16 - fp32':12}" + "".join(f"{statistics.mean(d):>+18.4f}" for d in diffs.values()))
        out["bf16_minus_fp32"] = {k: round(statistics.mean(d), 5) for k, d in diffs.items()}
    print_json_line(out)


if __name__ == "__main__":
    main()
