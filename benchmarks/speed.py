"""DiffRec speed on ML-1M clean, in one run: this project, a plain PyTorch reference loop, and the GEMM floor.

    python benchmarks/speed.py [--threads 1|all] [--epochs N] [--quick] [--home DIR]

Times (a) this project's training epoch and full evaluation (validation + test) with the authors' ML-1M
settings, in fp32 and bf16, and what ``--precision auto`` picks here; (b) the reference in
``benchmarks/reference/`` (the authors' loop structure: dense matrix, DataLoader, unfused T-step reverse
process for validation and again for test); (c) the GEMM floor: this network's four layer shapes as bare
matmuls, forward and backward, for one epoch's batches, in fp32 and bf16. Prints each figure, the ratios
ours / reference and ours / floor, the top-20 agreement of bf16 and fp32 evaluation, a torch.profiler
breakdown of one training epoch per precision and the peak RSS of this project's part (measured before
the reference runs). With one thread every figure is the process's CPU time, so a busy shared machine
slows the figures less (wall time with more threads); runs of ours, the reference and the floor alternate,
and the fastest of each counts. Ratios are only meaningful within one run. Reads the
imported split ``ml-1m_clean`` from the data home (``--home``, else ``$DIFFREC_HOME``). The last line of
output is one JSON object.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np  # noqa: E402
import torch  # noqa: E402
from _common import peak_rss_mb, print_json_line  # noqa: E402
from _profile import epoch_breakdown, print_breakdown  # noqa: E402
from reference.diffrec_reference import ReferenceRun  # noqa: E402

from diffrec_cli.config import resolve_settings  # noqa: E402
from diffrec_cli.data.store import DataHome  # noqa: E402
from diffrec_cli.models.build import build_model  # noqa: E402
from diffrec_cli.plugins import load_plugins  # noqa: E402
from diffrec_cli.training.loop import evaluate_now, prepare_fit, train_epoch  # noqa: E402
from diffrec_cli.training.precision import topk_agreement  # noqa: E402

# The authors' ML-1M (clean) DiffRec settings (datasets/recipes/ml-1m_clean.toml).
MODEL = {"dims": [200, 600], "emb_size": 10, "prediction": "x0", "steps": 40, "noise_scale": 0.005,
         "noise_min": 0.005, "noise_max": 0.01, "noising_steps": 0, "step_weighting": True,
         "sampling": "importance", "schedule": "linear-var"}
BATCH = 400


def build(data, registry, precision: str, seed: int = 1):
    settings = resolve_settings({"lr": 1e-3, "batch_size": BATCH, "epochs": 1000}, {}, seed=seed, device="cpu",
                                precision=precision, dataset=data.name)
    torch.manual_seed(seed)
    model, _ = build_model(registry, "diffrec", dict(MODEL), n_users=data.n_users, n_items=data.n_items)
    return model, prepare_fit(model, data, settings.train)


def prepare_ours(data, registry, precision: str) -> dict:
    """A built model and its fit setup, after one warm-up epoch."""
    model, setup = build(data, registry, precision)
    train_epoch(model, setup, 1, lambda event: None, lambda: False)
    return {"model": model, "setup": setup, "decision": setup.precision.describe(), "epochs": 1}


def our_epoch(run: dict):
    def epoch() -> None:
        run["epochs"] += 1
        train_epoch(run["model"], run["setup"], run["epochs"], lambda event: None, lambda: False)

    return epoch


def top20_agreement(model, data, setup, users: int = 1500) -> float:
    """Mean share of each user's top-20 (seen items excluded) that bf16 and fp32 scoring agree on."""
    from diffrec_cli.data.sparse import dense_rows

    rows = np.flatnonzero(np.diff(data.valid.indptr) > 0)[:users]
    x = dense_rows(setup.inputs, rows)
    seen = dense_rows(data.train, rows) != 0
    model.eval()
    scores = []
    for dtype in (torch.float32, torch.bfloat16):
        model.set_precision(setup.precision.dtype("training"), dtype)
        scores.append(model.scores(torch.from_numpy(rows), x).float().masked_fill(seen, -np.inf))
    model.set_precision(setup.precision.dtype("training"), setup.precision.dtype("scoring"))
    return topk_agreement(scores[0], scores[1], k=20)


def gemm_floor(n_items: int, n_users: int, dims: list[int], emb: int, dtype: torch.dtype) -> tuple:
    """One epoch of this network's GEMMs, forward and backward, as bare matmuls: (run it, its GFLOP)."""
    decoder = list(dims) + [n_items]
    sizes = [n_items + emb] + decoder[::-1][1:] + decoder[1:]
    layers = [(a, b) for a, b in zip(sizes[:-1], sizes[1:])]
    weights = [torch.randn(b, a).to(dtype) for a, b in layers]
    batches = [BATCH] * (n_users // BATCH) + ([n_users % BATCH] if n_users % BATCH else [])
    flops = 0.0
    for size in set(batches):
        for i, (a, b) in enumerate(layers):
            flops += batches.count(size) * 2.0 * size * a * b * (2 if i == 0 else 3)
    inputs = {size: [torch.randn(size, a).to(dtype) for a, _ in layers] for size in set(batches)}
    grads = {size: [torch.randn(size, b).to(dtype) for _, b in layers] for size in set(batches)}

    def epoch() -> None:
        for size in batches:
            for i, w in enumerate(weights):
                torch.mm(inputs[size][i], w.t())  # forward
                torch.mm(grads[size][i].t(), inputs[size][i])  # weight gradient
                if i:
                    torch.mm(grads[size][i], w)  # input gradient (none for the first layer's data input)

    epoch()
    return epoch, flops / 1e9


# With one thread every timing is the CPU time of this process (what the code costs, whatever else the shared
# machine runs); with more threads CPU time would add the threads up, so wall time is used.
CLOCK = {"clock": time.process_time}


def _timed(fn) -> float:
    tick = CLOCK["clock"]()
    fn()
    return CLOCK["clock"]() - tick


def prepare_reference(data) -> ReferenceRun:
    ref = ReferenceRun(data.train, data.valid, data.test, dims=MODEL["dims"], emb_size=MODEL["emb_size"],
                       steps=MODEL["steps"], noise_scale=MODEL["noise_scale"], noise_min=MODEL["noise_min"],
                       noise_max=MODEL["noise_max"], batch_size=BATCH)
    ref.train_epoch()
    return ref


def reference_eval(ref: ReferenceRun, eval_batches: int | None) -> dict:
    tick = CLOCK["clock"]()
    if eval_batches is None:
        recall = ref.evaluate_valid_and_test()["valid"]["recall@20"]
        return {"eval_s": CLOCK["clock"]() - tick, "extrapolated": False, "valid_recall20": recall}
    # --quick: a few batches of each reverse pass, scaled to the whole user set
    return {"eval_s": ref.time_partial_eval(eval_batches), "extrapolated": True, "valid_recall20": None}


def interleaved(runners: dict, rounds: int) -> dict[str, float]:
    """The fastest of ``rounds`` timings of each runner, taken in turn (one of each per round): on a shared
    machine a load spike then slows one round of every runner instead of all of one."""
    times: dict[str, list[float]] = {name: [] for name in runners}
    for _ in range(rounds):
        for name, fn in runners.items():
            times[name].append(_timed(fn))
    return {name: min(values) for name, values in times.items()}


def one_run_peak_rss(data, threads: int) -> float:
    """Peak RSS (MB) of ``diffrec train`` as a user runs it, in a fresh process: precision auto, 2 epochs,
    an evaluation, a checkpoint and a resume state after each, on a scratch data home holding the split
    as this version stores it."""
    import resource
    import subprocess
    import tempfile

    with tempfile.TemporaryDirectory() as home:
        DataHome(Path(home)).save(data)
        sets = [arg for key, value in MODEL.items() for arg in ("--set", f"{key}={value}")]
        command = [sys.executable, "-m", "diffrec_cli", "train", "--home", home, "--dataset", data.name,
                   "--model", "diffrec", "--epochs", "2", "--set", "eval_every=1", "--set", f"batch_size={BATCH}",
                   *sets, "--samples", "0", "--quiet", "--no-live"]
        subprocess.run(command, check=True, stdout=subprocess.DEVNULL,
                       env={**os.environ, "OMP_NUM_THREADS": str(threads), "PYTHONWARNINGS": "ignore"})
    return resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", default="1", help="1 or all")
    parser.add_argument("--epochs", type=int, default=3, help="timed epochs per measurement (the fastest counts)")
    parser.add_argument("--quick", action="store_true", help="1 timed epoch, reference evaluation extrapolated")
    parser.add_argument("--home", default=os.environ.get("DIFFREC_HOME"))
    args = parser.parse_args()
    threads = (os.cpu_count() or 1) if args.threads == "all" else int(args.threads)
    torch.set_num_threads(threads)
    CLOCK["clock"] = time.process_time if threads == 1 else time.perf_counter
    epochs = 1 if args.quick else max(1, args.epochs)
    if not args.home:
        raise SystemExit("error: give --home or set DIFFREC_HOME (a data home with ml-1m_clean imported)")
    data = DataHome(Path(args.home)).load("ml-1m_clean")
    registry = load_plugins(entry_points=False).registry
    started = time.perf_counter()
    load_before = os.getloadavg()[0]
    print(f"DiffRec, ML-1M clean ({data.n_users:,} users, {data.n_items:,} items), dims {MODEL['dims']}, "
          f"T={MODEL['steps']}, batch {BATCH}; {threads} thread(s), torch {torch.__version__}", flush=True)

    peak_one_run = one_run_peak_rss(data, threads)
    ours = {p: prepare_ours(data, registry, p) for p in ("fp32", "bf16", "auto")}
    ref_run = prepare_reference(data)
    users = int((np.diff(data.train.indptr) > 0).sum())
    floor_fns = {p: gemm_floor(data.n_items, users, MODEL["dims"], MODEL["emb_size"], dt)
                 for p, dt in (("fp32", torch.float32), ("bf16", torch.bfloat16))}
    epoch_s = interleaved({**{p: our_epoch(run) for p, run in ours.items()}, "reference": ref_run.train_epoch,
                           **{f"floor {p}": fn for p, (fn, _) in floor_fns.items()}}, epochs)
    eval_s = interleaved({p: (lambda run=run: evaluate_now(run["model"], data, run["setup"]))
                          for p, run in ours.items()}, 2 if epochs > 1 else 1)
    for p, run in ours.items():
        run.update(epoch_s=epoch_s[p], eval_s=eval_s[p])
    floors = {p: {"s": epoch_s[f"floor {p}"], "gflop": gflop, "gflops": gflop / epoch_s[f"floor {p}"]}
              for p, (_, gflop) in floor_fns.items()}
    agreement = top20_agreement(ours["fp32"]["model"], data, ours["fp32"]["setup"])
    profiles = {p: epoch_breakdown(ours[p]["model"], ours[p]["setup"]) for p in ("fp32", "bf16")}
    peak_ours = {"one_run": peak_one_run, "benchmark": peak_rss_mb()}
    ref = {"epoch_s": epoch_s["reference"], **reference_eval(ref_run, 2 if args.quick else None)}
    report(ours, floors, ref, agreement, profiles, peak_ours, threads, load_before, time.perf_counter() - started)


def report(ours, floors, ref, agreement, profiles, peak_ours, threads, load_before, wall) -> None:
    kind = "CPU seconds (1 thread)" if CLOCK["clock"] is time.process_time else "wall seconds"
    print(f"\ntimes in {kind}; the fastest of the interleaved rounds")
    print(f"{'':28}{'s/epoch':>9}{'/ref':>7}{'/floor':>8}{'s/eval':>9}{'/ref':>7}")
    for p in ("fp32", "bf16", "auto"):
        o = ours[p]
        floor = floors["bf16" if o["decision"].startswith("bf16") else "fp32"] if p == "auto" else floors[p]
        print(f"{'ours ' + p:28}{o['epoch_s']:>9.3f}{o['epoch_s'] / ref['epoch_s']:>7.2f}"
              f"{o['epoch_s'] / floor['s']:>8.2f}{o['eval_s']:>9.2f}{o['eval_s'] / ref['eval_s']:>7.3f}")
    mark = " (extrapolated)" if ref["extrapolated"] else ""
    print(f"{'reference (authors loop)':28}{ref['epoch_s']:>9.3f}{1:>7.2f}{'':>8}{ref['eval_s']:>9.2f}{1:>7.3f}{mark}")
    for p, f in floors.items():
        print(f"{'GEMM floor ' + p:28}{f['s']:>9.3f}  ({f['gflop']:.0f} GFLOP at {f['gflops']:.0f} GFLOP/s)")
    print(f"auto picked: {ours['auto']['decision']}")
    if ref["valid_recall20"] is not None:  # a sanity check that the reference loop learns
        print(f"reference validation R@20 after its timed epochs: {ref['valid_recall20']:.4f}")
    print(f"top-20 agreement, bf16 vs fp32 evaluation: {agreement:.4f}")
    for p, rows in profiles.items():
        print_breakdown(f"profile of one {p} training epoch", rows)
    print(f"peak RSS: one `diffrec train` (auto, 2 epochs, 2 evaluations, own process) "
          f"{peak_ours['one_run']:.0f} MB; this benchmark's part before the reference {peak_ours['benchmark']:.0f} MB")
    print(f"wall {wall:.0f} s; "
          f"load average before/after {load_before:.2f}/{os.getloadavg()[0]:.2f}")
    out = {"threads": threads, "torch": torch.__version__, "clock": kind, "ref_epoch_s": round(ref["epoch_s"], 4),
           "ref_eval_s": round(ref["eval_s"], 3), "ref_eval_extrapolated": ref["extrapolated"],
           "floor_fp32_s": round(floors["fp32"]["s"], 4), "floor_bf16_s": round(floors["bf16"]["s"], 4),
           "floor_fp32_gflops": round(floors["fp32"]["gflops"], 1),
           "floor_bf16_gflops": round(floors["bf16"]["gflops"], 1)}
    for p in ("fp32", "bf16", "auto"):
        o = ours[p]
        out.update({f"{p}_epoch_s": round(o["epoch_s"], 4), f"{p}_eval_s": round(o["eval_s"], 3),
                    f"{p}_epoch_vs_ref": round(o["epoch_s"] / ref["epoch_s"], 3),
                    f"{p}_eval_vs_ref": round(o["eval_s"] / ref["eval_s"], 4)})
    out.update({"fp32_epoch_vs_floor": round(ours["fp32"]["epoch_s"] / floors["fp32"]["s"], 3),
                "bf16_epoch_vs_floor": round(ours["bf16"]["epoch_s"] / floors["bf16"]["s"], 3),
                "auto_decision": ours["auto"]["decision"], "top20_agreement_bf16": round(agreement, 4),
                "peak_rss_mb": round(peak_ours["one_run"], 1), "load_before": round(load_before, 2),
                "load_after": round(os.getloadavg()[0], 2), "wall_s": round(wall, 1)})
    print_json_line(out)


if __name__ == "__main__":
    main()
