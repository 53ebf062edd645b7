"""Data pipeline at Amazon-book scale: generate a log, write it as CSV, import it and prepare ``clean``.

    python benchmarks/data_scale.py [--users 108822] [--items 94949] [--interactions 3100000] [--seed 0]

Generating and writing the CSV run in a child process, so the peak RSS reported here is that of the
import + prepare alone (as ``diffrec data import`` and ``diffrec data prepare`` do it, through the same
library calls, minus the CLI's start-up). Targets from the project's data issue: the 3.1 M-row import +
prepare in under 30 s and under 4 GB peak RSS on 2 cores. The last line of output is one JSON object:
rows, users, items, generate_s, csv_s, import_s, import_rows_per_s, prepare_s, prepare_rows_per_s,
import_prepare_s, peak_rss_mb, train, valid, test, targets and ok.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import peak_rss_mb, print_json_line  # noqa: E402

AMAZON_BOOK = dict(users=108_822, items=94_949, interactions=3_100_000)
TARGET_S, TARGET_RSS_MB = 30.0, 4096.0


def generate(args: argparse.Namespace, csv: Path) -> dict:
    """Child process: generate the log and write it as CSV; prints one JSON line with its timings."""
    from diffrec_cli.data.demo import generate_log

    tick = time.perf_counter()
    frame = generate_log(args.users, args.items, args.interactions, seed=args.seed)
    generated = time.perf_counter() - tick
    tick = time.perf_counter()
    frame.rename({"user": "user_id", "item": "item_id", "time": "timestamp"}).write_csv(csv)
    return {"rows": frame.height, "generate_s": generated, "csv_s": time.perf_counter() - tick,
            "csv_mb": csv.stat().st_size / 2**20, "generate_peak_rss_mb": peak_rss_mb()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=AMAZON_BOOK["users"])
    parser.add_argument("--items", type=int, default=AMAZON_BOOK["items"])
    parser.add_argument("--interactions", type=int, default=AMAZON_BOOK["interactions"])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--generate-only", metavar="CSV", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.generate_only:
        print(json.dumps(generate(args, Path(args.generate_only))))
        return

    with tempfile.TemporaryDirectory(prefix="diffrec-data-scale-") as tmp:
        csv = Path(tmp) / "log.csv"
        child = subprocess.run(
            [sys.executable, __file__, "--users", str(args.users), "--items", str(args.items),
             "--interactions", str(args.interactions), "--seed", str(args.seed), "--generate-only", str(csv)],
            capture_output=True, text=True, env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
        if child.returncode != 0:
            print(child.stderr, file=sys.stderr)
            raise SystemExit(child.returncode)
        made = json.loads(child.stdout.strip().splitlines()[-1])

        from diffrec_cli.data.ingest import read_log
        from diffrec_cli.data.recipes import make_recipe
        from diffrec_cli.data.store import DataHome

        store = DataHome(Path(tmp) / "home")
        rss_before = peak_rss_mb()
        tick = time.perf_counter()
        log = read_log(csv)
        store.save_log(log, "big")
        import_s = time.perf_counter() - tick
        del log
        tick = time.perf_counter()
        data = make_recipe("clean").prepare(store.load_log("big"), "big-clean")
        store.save(data)
        prepare_s = time.perf_counter() - tick
        peak = peak_rss_mb()
        counts = data.counts()
        log_meta = store.log_meta("big")

    rows = log_meta["rows"]
    total = import_s + prepare_s
    ok = total < TARGET_S and peak < TARGET_RSS_MB
    print(f"synthetic log: {args.users:,} users x {args.items:,} items, {made['rows']:,} rows generated "
          f"in {made['generate_s']:.1f} s, CSV ({made['csv_mb']:.0f} MB) written in {made['csv_s']:.1f} s")
    print(f"{'step':28}{'seconds':>10}{'rows':>12}{'rows/s':>14}")
    print(f"{'import (CSV -> raw log)':28}{import_s:>10.2f}{rows:>12,}{rows / import_s:>14,.0f}")
    print(f"{'prepare clean (+ save)':28}{prepare_s:>10.2f}{rows:>12,}{rows / prepare_s:>14,.0f}")
    print(f"{'import + prepare':28}{total:>10.2f}{'':>12}{'':>14}   target < {TARGET_S:.0f} s: "
          f"{'met' if total < TARGET_S else 'MISSED'}")
    print(f"peak RSS (import + prepare process): {peak:,.0f} MB (before importing: {rss_before:,.0f} MB)   "
          f"target < {TARGET_RSS_MB:,.0f} MB: {'met' if peak < TARGET_RSS_MB else 'MISSED'}")
    print(f"clean: {counts['users']:,} users, {counts['items']:,} items, train {counts['train']:,}, "
          f"valid {counts['valid']:,}, test {counts['test']:,}; cores available: {os.cpu_count()}")
    print_json_line({
        "rows": rows, "users": args.users, "items": args.items, "generate_s": round(made["generate_s"], 3),
        "csv_s": round(made["csv_s"], 3), "import_s": round(import_s, 3),
        "import_rows_per_s": round(rows / import_s), "prepare_s": round(prepare_s, 3),
        "prepare_rows_per_s": round(rows / prepare_s), "import_prepare_s": round(total, 3),
        "peak_rss_mb": round(peak, 1), "train": counts["train"], "valid": counts["valid"], "test": counts["test"],
        "target_s": TARGET_S, "target_rss_mb": TARGET_RSS_MB, "ok": ok,
    })


if __name__ == "__main__":
    main()
