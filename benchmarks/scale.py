"""The paper's Amazon-book and Yelp shapes on one machine: size, speed and memory of each model.

    python benchmarks/scale.py [--shape amazon-book|yelp] [--device cpu|cuda] [--batches N]
                               [--models diffrec,ldiffrec,multivae,itemknn,ease] [--rec-users N]
                               [--eval-users N] [--precision fp32|bf16] [--home DIR] [--memory-cap-gib G]

A synthetic log of the shape (users, items, interactions of the paper's Table 1) is made once with
``diffrec data generate`` (seed 0) and prepared with ``diffrec data prepare --protocol clean`` keeping every
interaction (min_rating 0, min_user 1; 7:2:1 per user by time), cached in the data home (``--home``, else
``$DIFFREC_HOME``, else the default) as ``synthetic-<shape>``. Items that land only in validation or test
are dropped by the protocol, so the item count comes out a few dozen short of the paper's.

Each model then runs in its own process (so peak RSS is per model) through the library's normal path: the
memory check of ``diffrec train`` (``training/budget.py``), the registry build, ``prepare_fit``; then N + 1
optimiser steps on batches of 400 users (the first is a warm-up; seconds per batch is the median of the
other N), the projected epoch (median × batches per epoch), one full evaluation of validation + test over
every user with ground truth (``training/evaluate.py``, as ``diffrec eval``; with ``--eval-users N`` only the
first N users are scored and the full time is projected linearly, which leaves the memory unchanged since
evaluation holds one batch), and the throughput of
``diffrec recommend --all-users`` (``serve.write_all_recommendations``, top 20 into Parquet) over the first
``--rec-users`` users (0: all). Settings: the authors' Amazon-book ones for DiffRec (dims [1000], lr 5e-5,
T 5, s 1e-4, α 5e-4..5e-3, step weighting) and L-DiffRec (C 2, latent 300 with no hidden encoder layer, i.e.
their encoder [300], denoiser [300], lr 5e-4 / 1e-4, λ 0.05, T 5, s 0.5, α 1e-3..5e-3); MultiVAE [200, 600];
ItemKNN k 100; EASE λ 250. A model refused by the memory check is reported with its one-line error (EASE is
then also run through ``diffrec train`` to record the exit code). Each child runs under an address-space
cap (``--memory-cap-gib``, default 14) so that a model which would take the shared machine's memory fails
instead. Parameter counts and GPU memory are printed beside the paper's Table 6. The last line is one JSON
object.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import peak_rss_mb, print_json_line  # noqa: E402

SHAPES = {"amazon-book": dict(users=108_822, items=94_949, interactions=3_146_256),
          "yelp": dict(users=54_574, items=34_395, interactions=1_402_736)}
# Table 6 of the paper: (parameters in millions, GPU memory in MB)
PAPER = {"amazon-book": {"diffrec": (190, 5049), "ldiffrec": (75, 3077), "multivae": (114, 3711)},
         "yelp": {"diffrec": (69, 2103), "ldiffrec": (29, 1429), "multivae": (42, 1615)}}
MODELS = {
    "diffrec": ({"lr": 5e-5}, {"dims": [1000], "steps": 5, "noise_scale": 1e-4, "noise_min": 5e-4,
                               "noise_max": 5e-3, "step_weighting": True}),
    "ldiffrec": ({"lr": 5e-4}, {"n_clusters": 2, "latent_size": 300, "denoiser_dims": [300], "denoiser_lr": 1e-4,
                                "lam": 0.05, "steps": 5, "noise_scale": 0.5, "noise_min": 1e-3, "noise_max": 5e-3}),
    "multivae": ({"lr": 1e-3}, {"dims": [200, 600]}),
    "itemknn": ({}, {"k": 100}),
    "ease": ({}, {"reg": 250.0}),
}
BATCH = 400
REC_K = 20


def dataset_name(shape: str) -> str:
    return f"synthetic-{shape}"


def cli(home: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "diffrec_cli", *args, "--home", str(home)], capture_output=True,
                          text=True, env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path), "COLUMNS": "100"})


def ensure_dataset(home: Path, shape: str) -> float:
    """Generate and prepare the synthetic dataset unless the home has it; the seconds it took (0: cached)."""
    name = dataset_name(shape)
    if (home / "datasets" / name).is_dir():
        return 0.0
    tick = time.perf_counter()
    size = SHAPES[shape]
    steps = [("data", "generate", "--name", f"{name}-log", "--users", str(size["users"]), "--items",
              str(size["items"]), "--interactions", str(size["interactions"]), "--seed", "0", "--force"),
             ("data", "prepare", f"{name}-log", "--name", name, "--protocol", "clean", "--set", "min_rating=0",
              "--set", "min_user=1", "--force")]
    for step in steps:
        done = cli(home, *step)
        if done.returncode != 0:
            print(done.stderr, file=sys.stderr)
            raise SystemExit(done.returncode)
    return time.perf_counter() - tick


# ----- one model, in its own process ----------------------------------------------------------------------
def timed_batches(model, setup, n: int) -> list[float]:
    """Seconds of each of n + 1 optimiser steps (the loop's own step: autocast, backward, AdamW)."""
    import torch

    model.train()
    model.on_epoch_start(1)
    seconds = []
    for batch in model.batches(setup.inputs, setup.config.batch_size, setup.shuffler, setup.device):
        sync(setup.device)
        tick = time.perf_counter()
        with setup.autocast():
            loss = model.loss(batch)
        setup.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        setup.optimizer.step()
        float(loss.detach())
        sync(setup.device)
        seconds.append(time.perf_counter() - tick)
        if len(seconds) > n:
            break
    del batch, loss
    torch.cuda.empty_cache() if setup.device.type == "cuda" else None
    return seconds


def sync(device) -> None:
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize(device)


def run_child(args: argparse.Namespace) -> dict:
    import numpy as np
    import torch

    from diffrec_cli.config import TrainConfig
    from diffrec_cli.data.store import DataHome
    from diffrec_cli.errors import DiffrecError
    from diffrec_cli.models.build import build_model
    from diffrec_cli.plugins import get_plugins
    from diffrec_cli.training.budget import check_training_fits
    from diffrec_cli.training.loop import prepare_fit

    name = args.child
    train_keys, settings = MODELS[name]
    config = TrainConfig(model=name, dataset=dataset_name(args.shape), batch_size=BATCH, epochs=1,
                         device=args.device, precision=args.precision, **train_keys)
    registry = get_plugins().registry
    tick = time.perf_counter()
    data = DataHome(Path(args.home)).load(config.dataset)
    out = {"model": name, "load_s": time.perf_counter() - tick}
    device = torch.device(args.device)
    try:
        estimate = check_training_fits(registry, config, settings, data, device)
        out["estimate_gib"] = estimate.total / 2**30
        tick = time.perf_counter()
        model, _ = build_model(registry, name, settings, n_users=data.n_users, n_items=data.n_items, data=data)
        setup = prepare_fit(model, data, config)
        out["build_s"] = time.perf_counter() - tick
    except DiffrecError as exc:
        return {**out, "status": "refused", "error": str(exc), "peak_rss_mb": peak_rss_mb()}
    out["params"] = model.parameter_count()
    out["derived"] = model.derived_config()  # e.g. L-DiffRec's cluster sizes, which set its parameter count
    if setup.device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(setup.device)
    if setup.optimizer is None:
        tick = time.perf_counter()
        model.fit_closed_form(setup.inputs)
        out["fit_s"] = time.perf_counter() - tick
    else:
        seconds = timed_batches(model, setup, args.batches)
        out["first_batch_s"], out["batch_s"] = seconds[0], float(np.median(seconds[1:] or seconds))
        out["batches"], out["steps_per_epoch"] = len(seconds) - 1, setup.steps_per_epoch
        out["epoch_s"] = out["batch_s"] * setup.steps_per_epoch
    out["train_peak_rss_mb"] = peak_rss_mb()
    try:
        serve_measures(args, model, data, setup, out)
    except (MemoryError, RuntimeError) as exc:  # an allocation past the cap: recorded, not a crash
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        return {**out, "status": "failed", "error": f"after training: {first[:200]}", "peak_rss_mb": peak_rss_mb()}
    if setup.device.type == "cuda":
        out["gpu_peak_mb"] = torch.cuda.max_memory_allocated(setup.device) / 2**20
    return {**out, "status": "ok", "peak_rss_mb": peak_rss_mb()}


def serve_measures(args: argparse.Namespace, model, data, setup, out: dict) -> None:
    """One evaluation of validation + test and the recommend --all-users throughput, into ``out``."""
    import numpy as np

    from diffrec_cli.serve import write_all_recommendations
    from diffrec_cli.training.loop import evaluate_now

    scored = first_users(data, args.eval_users)
    metrics, out["eval_s"] = evaluate_now(model, scored, setup)
    out["eval_users"] = {s: int(m["users"]) for s, m in metrics.items()}
    out["eval_full_s"] = out["eval_s"] * users_with_truth(data) / max(1, users_with_truth(scored))
    out["test_recall@20"] = metrics["test"]["recall@20"]
    rows = np.arange(data.n_users if args.rec_users <= 0 else min(args.rec_users, data.n_users))
    with tempfile.TemporaryDirectory(prefix="diffrec-scale-") as tmp:
        tick = time.perf_counter()
        write_all_recommendations(model, data, Path(tmp) / "recs.parquet", REC_K, inputs=setup.inputs, rows=rows)
        out["rec_users"], out["rec_users_per_s"] = len(rows), len(rows) / (time.perf_counter() - tick)


def first_users(data, n: int):
    """``data`` with validation and test cut to the first ``n`` users (0: all), so that evaluation scores
    only them: its cost is linear in the users scored, and its memory is one batch whatever their number."""
    import dataclasses

    import numpy as np
    import scipy.sparse as sp

    if n <= 0 or n >= data.n_users:
        return data

    def cut(m):
        end = m.indptr[n]
        indptr = np.concatenate([m.indptr[:n + 1], np.full(m.shape[0] - n, end, dtype=m.indptr.dtype)])
        return sp.csr_matrix((m.data[:end], m.indices[:end], indptr), shape=m.shape)

    return dataclasses.replace(data, valid=cut(data.valid), test=cut(data.test))


def users_with_truth(data) -> int:
    import numpy as np

    return int(((np.diff(data.valid.indptr) > 0) | (np.diff(data.test.indptr) > 0)).sum())


def cap_memory(gib: float) -> None:
    """An address-space limit: an allocation past it fails in this process instead of exhausting the machine."""
    if gib > 0:
        limit = int(gib * 2**30)
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))


# ----- the parent: one child per model, then the table ----------------------------------------------------
def machine_state() -> dict:
    free = subprocess.run(["free", "-g"], capture_output=True, text=True).stdout.splitlines()
    mem = free[1].split() if len(free) > 1 else []
    return {"load_1min": os.getloadavg()[0], "free_g": {"total": int(mem[1]), "used": int(mem[2]),
                                                        "available": int(mem[6])} if len(mem) > 6 else None}


def measure(args: argparse.Namespace, name: str) -> dict:
    before = machine_state()
    command = [sys.executable, __file__, "--child", name, "--shape", args.shape, "--device", args.device,
               "--batches", str(args.batches), "--home", str(args.home), "--rec-users", str(args.rec_users),
               "--eval-users", str(args.eval_users),
               "--precision", args.precision, "--memory-cap-gib", str(args.memory_cap_gib)]
    tick = time.perf_counter()
    child = subprocess.run(command, capture_output=True, text=True,
                           env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
    wall = time.perf_counter() - tick
    last = (child.stdout.strip().splitlines() or [""])[-1]
    try:
        result = json.loads(last)
    except json.JSONDecodeError:
        tail = (child.stderr.strip().splitlines() or ["no output"])[-1]
        result = {"model": name, "status": "failed", "error": f"exit {child.returncode}: {tail}"}
    result.update(wall_s=wall, machine_before=before)
    if name == "ease" and result["status"] == "refused":
        done = cli(Path(args.home), "train", "--model", "ease", "--dataset", dataset_name(args.shape), "--quiet")
        result["cli_exit"], result["cli_stderr"] = done.returncode, done.stderr.strip()
    print(f"  {name}: {result['status']} in {wall:.0f} s", file=sys.stderr, flush=True)
    return result


def row(shape: str, r: dict) -> str:
    paper = PAPER[shape].get(r["model"])
    fmt = lambda key, spec, scale=1.0: (format(r[key] * scale, spec) if key in r else "–")  # noqa: E731
    params = r.get("params")
    delta = f"{100 * (params / 1e6 - paper[0]) / paper[0]:+.1f}" if params and paper else "–"
    gpu = fmt("gpu_peak_mb", ",.0f") + (f" ({paper[1]:,})" if paper else "")
    return (f"{r['model']:9}{fmt('params', '.1f', 1e-6):>7}{(str(paper[0]) if paper else '–'):>6}{delta:>6}"
            f"{fmt('batch_s', '.2f'):>8}{fmt('epoch_s', ',.0f'):>8}{fmt('eval_full_s', ',.0f'):>7}"
            f"{fmt('rec_users_per_s', ',.0f'):>7}{fmt('peak_rss_mb', '.1f', 1 / 1024):>6}  {gpu}")


def report(args: argparse.Namespace, results: list[dict], prepared_s: float, counts: dict) -> None:
    print(f"{args.shape}-shaped synthetic data: {counts['users']:,} users x {counts['items']:,} items, "
          f"{counts['all']:,} interactions (train {counts['train']:,}); device {args.device}, {args.precision}, "
          f"batch {BATCH}, {args.batches} timed batches" + (f"; dataset built in {prepared_s:.0f} s" if prepared_s
                                                            else ""))
    print(f"{'model':9}{'M par':>7}{'paper':>6}{'Δ%':>6}{'s/batch':>8}{'s/epoch':>8}{'eval s':>7}{'rec/s':>7}"
          f"{'GiB':>6}  GPU MB (paper)")
    for r in results:
        print(row(args.shape, r))
        if r.get("derived"):
            print(f"  {r['model']}: {r['derived']}")
        if r["status"] != "ok":
            print(f"  {r['status']}: {r.get('error', '')}"[:300])
            if "cli_exit" in r:
                print(f"  diffrec train --model {r['model']}: exit {r['cli_exit']}, {r['cli_stderr'][:200]}")
    print("M par: parameters (millions), paper: Table 6, GiB: peak RSS of the model's process, rec/s: users per "
          "second of recommend --all-users (top 20 to Parquet), eval s: one full valid + test evaluation" +
          (f" (projected from the first {args.eval_users:,} users)" if args.eval_users else ""))


def markdown(paths: list[str]) -> None:
    """The docs' table from saved JSON lines of this script (one file per shape)."""
    print("| shape | model | M params (paper) | s/batch | s/epoch | eval s | rec users/s | peak RSS GiB |")
    print("|---|---|---|---|---|---|---|---|")
    for path in paths:
        run = json.loads(Path(path).read_text().strip().splitlines()[-1])
        for r in run["models"]:
            paper = PAPER[run["shape"]].get(r["model"])
            params = f"{r['params'] / 1e6:.1f}" if "params" in r else r["status"]
            params += f" ({paper[0]})" if paper else ""
            cells = [format(r[key] * scale, spec) if key in r else "–" for key, spec, scale in
                     (("batch_s", ".2f", 1), ("epoch_s", ",.0f", 1), ("eval_full_s", ",.0f", 1),
                      ("rec_users_per_s", ",.0f", 1), ("peak_rss_mb", ".1f", 1 / 1024))]
            print(f"| {run['shape']} | {r['model']} | {params} | " + " | ".join(cells) + " |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shape", choices=sorted(SHAPES), default="amazon-book")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--precision", choices=("fp32", "bf16"), default="fp32")
    parser.add_argument("--batches", type=int, default=5)
    parser.add_argument("--models", default=",".join(MODELS))
    parser.add_argument("--rec-users", type=int, default=0, help="users for the recommend throughput (0: all)")
    parser.add_argument("--eval-users", type=int, default=0,
                        help="evaluate the first N users and project the full evaluation linearly (0: all)")
    parser.add_argument("--home", default=None, help="data home (default: $DIFFREC_HOME, else diffrec's default)")
    parser.add_argument("--memory-cap-gib", type=float, default=14.0)
    parser.add_argument("--markdown", nargs="+", metavar="JSON", help="print the docs' table from saved output")
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.markdown:
        markdown(args.markdown)
        return
    if args.home is None:
        from diffrec_cli.data.store import DataHome
        args.home = str(DataHome(None).root)
    if args.child:
        cap_memory(args.memory_cap_gib)
        print(json.dumps(run_child(args)))
        return
    names = [m.strip() for m in args.models.split(",") if m.strip()]
    unknown = sorted(set(names) - set(MODELS))
    if unknown:
        parser.error(f"unknown model(s) {', '.join(unknown)}; known: {', '.join(MODELS)}")
    prepared_s = ensure_dataset(Path(args.home), args.shape)
    from diffrec_cli.data.store import DataHome
    counts = DataHome(Path(args.home)).load(dataset_name(args.shape)).counts()
    counts["all"] = counts["train"] + counts["valid"] + counts["test"]
    results = [measure(args, name) for name in names]
    report(args, results, prepared_s, counts)
    print_json_line({"shape": args.shape, "device": args.device, "precision": args.precision,
                     "batches": args.batches, "batch_size": BATCH, "dataset": counts, "dataset_build_s": prepared_s,
                     "paper_table6": PAPER[args.shape], "models": results})


if __name__ == "__main__":
    main()
