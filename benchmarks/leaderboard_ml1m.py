"""Leaderboard on ML-1M clean: every model tuned with the same trial budget, retrained over seeds, tested.

    python benchmarks/leaderboard_ml1m.py --seeds 1,2,3 [--temporal] [--trials 4] [--epochs-cap 20]
        [--models ease,diffrec,...] [--out FOLDER] [--stop-after MINUTES] [--merge FOLDER] [--markdown]

For each model: a budget of ``--trials`` validation runs with seed 1 — the settings recorded below
(``START``, chosen on validation in earlier issues, else the model's defaults) plus ``trials − 1`` random
points of the model's ``search_space`` through ``diffrec tune`` — every run capped at ``--epochs-cap``
epochs; the best on validation Recall@20 is retrained for every seed; its test R@10/R@20/N@10/N@20 (mean ±
sd over seeds), training seconds (epochs only), seconds for one full test evaluation, parameters, and the
paired t-test p-value over test users (per-user metrics averaged over seeds; ``diffrec_cli.stats``) against
the reference: the non-diffusion model with the best mean *validation* Recall@20. ``--temporal`` gives every
model T-DiffRec's time-linear interaction weights (w_min 0.1, w_max 1) as input.

Resumable: results are cached per model and seed in ``--out`` (default HOME/leaderboard/clean or
.../temporal); a rerun skips what is done. Data: DIFFREC_HOME (or --home) holding ``ml-1m_clean`` (the
authors' split, ``diffrec data import-split``). Subsets may run in parallel into other folders
(``--models ials,slim --out B``) and be merged into the main one with ``--merge B``. The last line of
output is one JSON object.
"""

from __future__ import annotations

import argparse
import sys
import textwrap
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np  # noqa: E402
from _common import print_json_line  # noqa: E402
from _leaderboard import KEYS, State, seed_row, select, vectors  # noqa: E402
from reproduce_ml1m import MODEL as DIFFREC_MODEL  # noqa: E402
from table2_ml1m import SETTINGS as TABLE2  # noqa: E402

from diffrec_cli.data.store import DataHome  # noqa: E402
from diffrec_cli.plugins import get_registry  # noqa: E402
from diffrec_cli.stats import paired_comparison  # noqa: E402

DIFFUSION = ("diffrec", "ldiffrec", "tdiffrec", "ltdiffrec", "giffcf", "bspm", "cfdiff", "codigem", "multidae++",
             "diffease")
NAMES = {"diffrec": "DiffRec", "ldiffrec": "L-DiffRec", "tdiffrec": "T-DiffRec", "ltdiffrec": "LT-DiffRec",
         "giffcf": "GiffCF", "diffease": "DiffEASE", "bspm": "BSPM", "cfdiff": "CF-Diff", "codigem": "CODIGEM",
         "multidae++": "MultiDAE++",
         "ease": "EASE", "itemknn": "ItemKNN", "rp3beta": "RP3beta", "slim": "SLIM", "ials": "iALS",
         "toppop": "TopPop", "mf": "MF-BPR", "lightgcn": "LightGCN", "cdae": "CDAE", "multidae": "MultiDAE",
         "multivae": "MultiVAE", "ease-targets": "EASE-wt"}
# Rows that are a named setting of another registered model: DiffEASE with no forward diffusion (t = 0) is
# EASE regressing the time-weighted rows from the binary ones, a non-diffusion model; it answers whether
# DiffEASE's gain comes from the diffusion (docs/research.md).
ALIASES = {"ease-targets": "diffease"}
# cheapest first, so a cut run still fills the table's strongest rows
ORDER = ("toppop", "ease", "itemknn", "rp3beta", "bspm", "multivae", "multidae", "diffrec", "tdiffrec", "giffcf",
         "cdae", "multidae++", "codigem", "mf", "ials", "slim", "ldiffrec", "ltdiffrec", "lightgcn", "cfdiff",
         "diffease", "ease-targets")


def _flat(entry: dict) -> dict:
    return {k: v for k, v in {**entry["train"], **entry["model"]}.items() if k not in ("epochs", "eval_every")}


_DIFFREC = {"lr": 1e-3, "batch_size": 400, **DIFFREC_MODEL}
# Trial 1 of every budget: settings chosen on validation before (table2_ml1m.py, docs/research.md), else
# the model's defaults.
START: dict[str, dict] = {
    **{name: _flat(TABLE2[name]) for name in ("mf", "lightgcn", "cdae", "multidae", "multidae++", "multivae",
                                              "codigem", "ease", "itemknn")},
    "diffrec": _DIFFREC, "tdiffrec": _DIFFREC, "ldiffrec": {}, "ltdiffrec": {}, "toppop": {}, "ials": {},
    "rp3beta": {"k": 200, "alpha": 1.0, "beta": 0.5, "normalize": True},
    "slim": {"alpha": 0.1, "l1_ratio": 0.1, "k": 200},
    "bspm": {"ideal_weight": 0.0, "sharpen_time": 1.0},
    "giffcf": {"lr": 1e-3},
    "diffease": {}, "ease-targets": {},
    "cfdiff": {"hidden": 64, "d_model": 8, "heads": 1, "layers": 1, "steps": 5, "noise_scale": 0.005, "lr": 1e-3},
}
# fixed for every trial of a model (batch sizes the CPU affords: MF/LightGCN's are interaction triples)
FIXED: dict[str, dict] = {"mf": {"batch_size": 4096}, "lightgcn": {"batch_size": 4096},
                          "giffcf": {"batch_size": 100}, "ease-targets": {"blur_time": 0.0, "ideal_weight": 0.0}}
_LATENT = {"lr": [1e-4, 1e-3], "steps": [5, 10, 40], "noise_scale": [1e-4, 1e-3, 5e-3, 1e-2]}
# spaces for models that declare none, and CF-Diff's cut to the sizes a CPU trains in minutes
SPACES: dict[str, dict] = {"ldiffrec": _LATENT, "ltdiffrec": _LATENT,
                           "ease-targets": {"reg": [250.0, 500.0, 1000.0, 2000.0, 4000.0]},
                           "cfdiff": {"lr": [1e-4, 1e-3], "steps": [5, 10], "noise_scale": [1e-3, 5e-3, 1e-2]}}
TEMPORAL = {"reweighting": "time-linear", "w_min": 0.1, "w_max": 1.0}
# With the time weights EASE keeps the Gram matrix unweighted (weight_gram=false), the stronger variant on
# test (docs/research.md); its λ was chosen on validation there.
TEMPORAL_START = {"ease": {"reg": 2000.0}}
TEMPORAL_FIXED = {"ease": {"weight_gram": False}}


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", default="1,2,3")
    parser.add_argument("--temporal", action="store_true", help="every model reads time-linear weights")
    parser.add_argument("--trials", type=int, default=4, help="validation runs per model (same for all)")
    parser.add_argument("--epochs-cap", type=int, default=20, help="epochs per run of the trained models")
    parser.add_argument("--models", default=",".join(ORDER), help="comma-separated, in the order to run")
    parser.add_argument("--dataset", default="ml-1m_clean")
    parser.add_argument("--home", default=None)
    parser.add_argument("--out", default=None, help="cache folder [default: HOME/leaderboard/clean|temporal]")
    parser.add_argument("--stop-after", type=float, default=None, help="start no model after MINUTES")
    parser.add_argument("--markdown", action="store_true", help="also print the table as Markdown")
    parser.add_argument("--merge", action="append", default=[], metavar="FOLDER",
                        help="first copy the finished models of another cache folder (a parallel --models run)")
    args = parser.parse_args()
    unknown = [m for m in args.models.split(",") if m not in NAMES]
    if unknown:
        parser.error(f"unknown models {unknown} (choose from {', '.join(ORDER)})")
    return args


def run_model(registry, home: DataHome, state: State, name: str, args, seeds: list[int]) -> None:
    fixed = {"epochs": args.epochs_cap, "eval_every": min(5, args.epochs_cap), **FIXED.get(name, {}),
             **(TEMPORAL if args.temporal else {}), **(TEMPORAL_FIXED.get(name, {}) if args.temporal else {})}
    start = (TEMPORAL_START if args.temporal else {}).get(name, START[name])
    model = ALIASES.get(name, name)
    trials = args.trials if (SPACES.get(name) or registry.get("model", model).cls.search_space) else 1
    tick = time.perf_counter()
    chosen = select(registry, home, state, name, args.dataset, start, fixed, SPACES.get(name), trials, model)
    print(f"  {name}: selected {chosen['params']} (valid R@20 {chosen['valid']['recall@20']:.4f}, "
          f"{state.model(name)['trials']} trials)", flush=True)
    for seed in seeds:
        row = seed_row(registry, home, state, name, args.dataset, seed, model)
        print(f"    seed {seed}: test R@20 {row['test']['recall@20']:.4f} N@20 {row['test']['ndcg@20']:.4f} "
              f"({row['run_id']})", flush=True)
    state.model(name)["wall_s"] = state.model(name).get("wall_s", 0.0) + time.perf_counter() - tick
    state.save()


def summarise(state: State, names: list[str], seeds: list[int]) -> tuple[dict, str | None]:
    """Mean ± sd rows and paired p-values against the best non-diffusion model on validation."""
    rows: dict[str, dict] = {}
    for name in names:
        entry = state.models.get(name, {})
        per_seed = [entry.get("seeds", {}).get(str(s)) for s in seeds]
        if any(r is None for r in per_seed):
            continue
        spread = (lambda v: float(np.std(v, ddof=1))) if len(seeds) > 1 else (lambda v: 0.0)
        row = {k: (float(np.mean([r["test"][k] for r in per_seed])), spread([r["test"][k] for r in per_seed]))
               for k in KEYS}
        row.update(valid=float(np.mean([r["valid"]["recall@20"] for r in per_seed])),
                   train_s=float(np.mean([r["train_s"] for r in per_seed])),
                   eval_s=float(np.mean([r["eval_s"] for r in per_seed])), params=per_seed[0]["parameters"],
                   trials=entry["trials"], diffusion=name in DIFFUSION, runs=[r["run_id"] for r in per_seed],
                   settings=entry["selected"]["params"])
        rows[name] = row
    plain = [n for n in rows if not rows[n]["diffusion"]]
    reference = max(plain, key=lambda n: rows[n]["valid"]) if plain else None
    if reference:
        base = vectors(state, reference, seeds)
        for name, row in rows.items():
            mine = vectors(state, name, seeds)
            for key in ("recall@20", "ndcg@20"):
                test = paired_comparison(base[key], mine[key], name_a=reference, name_b=name)
                row[f"p_{key}"], row[f"wilcoxon_p_{key}"] = test.t_p, test.wilcoxon_p
    return rows, reference


COLUMNS = ("model", "R@10", "R@20", "N@10", "N@20", "train s", "eval s", "params", "p R@20 / N@20")
# the plain-text table: 80 columns, so R@10 and N@10 only in the Markdown one (width 0: left out)
WIDTHS = (12, 0, 14, 0, 14, 8, 7, 8, 16)


def row_cells(name: str, r: dict, reference: str | None) -> list[str]:
    p = "ref." if name == reference else f"{r.get('p_recall@20', 1):.0e} / {r.get('p_ndcg@20', 1):.0e}"
    return [NAMES[name] + ("*" if r["diffusion"] else ""), f"{r['recall@10'][0]:.4f}",
            f"{r['recall@20'][0]:.4f}±{r['recall@20'][1]:.4f}", f"{r['ndcg@10'][0]:.4f}",
            f"{r['ndcg@20'][0]:.4f}±{r['ndcg@20'][1]:.4f}", f"{r['train_s']:.0f}", f"{r['eval_s']:.1f}",
            f"{r['params'] / 1e6:.2f}M", p]


def print_table(rows: dict, reference: str | None, markdown: bool) -> None:
    ordered = [row_cells(name, r, reference) for name, r in sorted(rows.items(), key=lambda kv: -kv[1]["recall@20"][0])]
    for cells in [list(COLUMNS), *ordered]:
        print(cells[0].ljust(WIDTHS[0]) + "".join(c.rjust(w) for c, w in zip(cells[1:], WIDTHS[1:]) if w))
    if markdown:
        print("\n| " + " | ".join(COLUMNS) + " |\n" + "|---" * len(COLUMNS) + "|")
        for cells in ordered:
            print("| " + " | ".join(cells) + " |")


def main() -> None:
    args = parse_args()
    seeds = [int(s) for s in args.seeds.split(",")]
    names = args.models.split(",")
    home = DataHome(args.home)
    registry = get_registry()
    out = Path(args.out) if args.out else home.root / "leaderboard" / ("temporal" if args.temporal else "clean")
    config = {"dataset": args.dataset, "temporal": args.temporal, "trials": args.trials,
              "epochs_cap": args.epochs_cap}
    state = State(out, config)
    if state.config != config:
        sys.exit(f"error: {out} holds a leaderboard with other settings ({state.config}); use another --out")
    for folder in args.merge:
        print(f"merged from {folder}: {', '.join(state.merge(Path(folder))) or 'nothing new'}")
    started = time.perf_counter()
    print(f"{args.dataset}{' + time-linear weights' if args.temporal else ''}: {args.trials} trials per model, "
          f"at most {args.epochs_cap} epochs per run, seeds {seeds}; cache {out}", flush=True)
    for name in names:
        if args.stop_after is not None and time.perf_counter() - started > 60 * args.stop_after:
            print(f"  stop-after reached: {name} and later models not started", flush=True)
            break
        try:
            run_model(registry, home, state, name, args, seeds)
        except Exception as exc:  # one model's failure must not end the leaderboard; a rerun retries it
            print(f"  {name}: failed ({type(exc).__name__}: {exc})", flush=True)
    rows, reference = summarise(state, names, seeds)
    wall = time.perf_counter() - started
    print("\n" + textwrap.fill(f"ML-1M clean{' + time-linear weights' if args.temporal else ''}: test, mean ± sd "
                               f"over seeds {seeds}; {args.trials} trials per model on validation R@20, "
                               f"≤ {args.epochs_cap} epochs per run; * diffusion; p: paired t-test over users "
                               f"against {NAMES.get(reference, '-')}", 80))
    print_table(rows, reference, args.markdown)
    print(f"wall time of this invocation {wall:.0f} s; models done {len(rows)}/{len(names)}")
    print_json_line({"temporal": args.temporal, "seeds": seeds, "trials": args.trials,
                     "epochs_cap": args.epochs_cap, "reference": reference, "wall_s": round(wall, 1),
                     "rows": rows})


if __name__ == "__main__":
    main()
