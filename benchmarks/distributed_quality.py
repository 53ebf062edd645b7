"""Does data-parallel training reach the quality of one process? DiffRec on the demo data, several seeds each.

    python benchmarks/distributed_quality.py [--epochs 30] [--seeds 1 2 3] [--nproc 2] [--home HOME]

Trains through the CLI (``diffrec train``, then ``--nproc N``: the same global batch split over N gloo ranks
on this machine), reads each run's best-validation test Recall@20 from its folder and prints the mean ± sd of
each setting, and whether the N-process mean lies within the 1-process seeds' range. The same seed is not
the same run in both settings (each rank draws its own noise), so the comparison is of distributions.
Last line: one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import print_json_line  # noqa: E402

from diffrec_cli.runs import read_runs  # noqa: E402

METRIC = "recall@20"


def train_once(home: Path, seed: int, nproc: int, epochs: int, model: str) -> dict:
    before = {run.id for run in read_runs(home / "runs")} if (home / "runs").exists() else set()
    command = [sys.executable, "-m", "diffrec_cli", "train", "--model", model, "--dataset", "demo",
               "--seed", str(seed), "--epochs", str(epochs), "--quiet", "--no-live", "--samples", "0",
               *(["--nproc", str(nproc)] if nproc > 1 else [])]
    tick = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, env={**os.environ, "DIFFREC_HOME": str(home)})
    seconds = time.perf_counter() - tick
    if done.returncode != 0:
        raise SystemExit(f"training failed ({done.returncode}): {' '.join(command)}\n{done.stderr[-2000:]}")
    (run,) = [run for run in read_runs(home / "runs") if run.id not in before]
    final = run.final or {}
    return {"seed": seed, "nproc": nproc, "test": final["test"][METRIC], "valid": final["valid"][METRIC],
            "best_epoch": final["best_epoch"], "seconds": round(seconds, 1)}


def summary(values: list[float]) -> tuple[float, float]:
    return statistics.mean(values), (statistics.stdev(values) if len(values) > 1 else 0.0)


def welch_pvalue(a: list[float], b: list[float]) -> float:
    """Two-sided p of Welch's t-test: the seeds of the two settings are independent draws (not paired: the
    same seed draws different noise on two ranks)."""
    from scipy.stats import ttest_ind

    return float(ttest_ind(a, b, equal_var=False).pvalue) if len(a) > 1 and len(b) > 1 else float("nan")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument("--nproc", type=int, default=2)
    parser.add_argument("--model", default="diffrec")
    parser.add_argument("--home", default=None, help="data home for the runs (default: a temporary one)")
    args = parser.parse_args()
    home = Path(args.home) if args.home else Path(tempfile.mkdtemp(prefix="diffrec-dq-"))
    rows = [train_once(home, seed, nproc, args.epochs, args.model) for nproc in (1, args.nproc)
            for seed in args.seeds]
    print(f"{args.model} on demo, {args.epochs} epochs at most, test {METRIC} at the best validation epoch")
    print(f"{'processes':>9}  {'seed':>4}  {'test R@20':>9}  {'valid R@20':>10}  {'best ep':>7}  {'wall s':>6}")
    for row in rows:
        print(f"{row['nproc']:>9}  {row['seed']:>4}  {row['test']:>9.4f}  {row['valid']:>10.4f}  "
              f"{row['best_epoch']:>7}  {row['seconds']:>6.1f}")
    alone = [r["test"] for r in rows if r["nproc"] == 1]
    spread = [r["test"] for r in rows if r["nproc"] == args.nproc]
    (mean1, sd1), (mean_n, sd_n) = summary(alone), summary(spread)
    within = min(alone) <= mean_n <= max(alone)
    welch_p = welch_pvalue(alone, spread)
    print(f"1 process:   {mean1:.4f} ± {sd1:.4f}  (range {min(alone):.4f}..{max(alone):.4f})")
    print(f"{args.nproc} processes: {mean_n:.4f} ± {sd_n:.4f}  "
          f"({'within' if within else 'outside'} the 1-process range; Welch t-test p = {welch_p:.2f})")
    print_json_line({"benchmark": "distributed_quality", "model": args.model, "epochs": args.epochs,
                     "seeds": args.seeds, "nproc": args.nproc, "metric": f"test {METRIC}",
                     "one_process": {"mean": mean1, "sd": sd1, "values": alone},
                     "n_processes": {"mean": mean_n, "sd": sd_n, "values": spread},
                     "within_one_process_range": within, "welch_p": welch_p, "runs": rows})


if __name__ == "__main__":
    main()
