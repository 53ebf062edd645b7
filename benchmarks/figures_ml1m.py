"""Regenerate the ML-1M versions of the paper's Figure 5 and Figure 6 with ``diffrec tune`` + ``diffrec plot``.

    OMP_NUM_THREADS=1 python benchmarks/figures_ml1m.py [--epochs 10] [--home DIR] [--out docs/figures]

Imports the authors' ML-1M clean split (../shared/data/ml-1m_clean, never stored here) into a data home
with ``diffrec data import-split``, runs four searches of DiffRec around the authors' ML-1M settings and
draws each with ``diffrec plot sweep`` (test Recall@20 and NDCG@20 at the epoch with the best validation
Recall@20, as in the paper):

  Figure 5: importance vs uniform sampling of steps (Eq. 14 vs 13); x0- vs ε-prediction (x0- vs ε-ELBO);
            inference steps T' ∈ {0, T/4, T/2, T} with T = 40
  Figure 6: noise scale s ∈ {1e-4, 1e-3, 5e-3, 1e-2} × steps T ∈ {2, 5, 10, 40} (one search, two figures)

Each trial trains for at most ``--epochs`` epochs (the paper trains to early stopping; DiffRec's best ML-1M
epoch is about 10 here), evaluating every 5. The last line is one JSON object: the figures and the seconds.

What was cut to fit two shared CPU cores: 10 epochs per trial, one seed, T up to 40 (the paper: 100), no
s = 0, and ML-1M only (the paper draws these figures on Amazon-book). The run that drew docs/figures took
3,432 s (57 min; 24 trials, OMP_NUM_THREADS=1, other work on the same cores): sampling 186 s, prediction
460 s (ε-prediction evaluates without the folded x0 recursion), inference steps 670 s, noise × steps 2,040 s.
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

from _common import REPO, print_json_line, shared_folder  # noqa: E402

# The authors' ML-1M clean settings for DiffRec (as in reproduce_ml1m.py), fixed in every trial.
FIXED = {"lr": 1e-3, "weight_decay": 0.0, "batch_size": 400, "eval_every": 5, "patience": 20, "dims": [200, 600],
         "emb_size": 10, "prediction": "x0", "steps": 40, "noise_scale": 0.005, "noise_min": 0.005,
         "noise_max": 0.01, "noising_steps": 0, "sampling": "importance", "seed": 1, "device": "cpu"}
# name: (the swept settings, then each figure drawn from the search: file, x, lines)
SEARCHES = {
    "sampling": ({"sampling": ["importance", "uniform"]}, [("fig5_sampling_ml1m.png", "sampling", None)]),
    "prediction": ({"prediction": ["x0", "eps"]}, [("fig5_prediction_ml1m.png", "prediction", None)]),
    "inference": ({"noising_steps": [0, 10, 20, 40]}, [("fig5_inference_steps_ml1m.png", "noising_steps", None)]),
    "noise": ({"noise_scale": [1e-4, 1e-3, 5e-3, 1e-2], "steps": [2, 5, 10, 40]},
              [("fig6_noise_scale_ml1m.png", "noise_scale", "steps"), ("fig6_steps_ml1m.png", "steps", "noise_scale")]),
}


def toml_value(value) -> str:
    return json.dumps(value)  # numbers, strings and lists of them read the same in TOML


def space_file(folder: Path, name: str, swept: dict, epochs: int) -> Path:
    fixed = {k: v for k, v in {**FIXED, "epochs": epochs}.items() if k not in swept}
    lines = [f"{k} = {toml_value(v)}" for k, v in fixed.items()] + ["", "[search]"]
    lines += [f"{k} = {toml_value(v)}" for k, v in swept.items()]
    path = folder / f"{name}.toml"
    path.write_text("\n".join(lines) + "\n")
    return path


def diffrec(home: Path, *args: str) -> str:
    command = [sys.executable, "-m", "diffrec_cli", *args, "--home", str(home)]
    done = subprocess.run(command, check=True, stdout=subprocess.PIPE, text=True, cwd=REPO)
    return done.stdout


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--epochs", type=int, default=10, help="most epochs per trial")
    parser.add_argument("--home", help="data home to use (default: a new temporary folder)")
    parser.add_argument("--out", default=str(REPO / "docs" / "figures"), help="folder for the figures")
    parser.add_argument("--data", help="the authors' ml-1m_clean folder")
    parser.add_argument("--only", help="comma-separated searches to run: " + ", ".join(SEARCHES))
    args = parser.parse_args()
    started = time.perf_counter()
    home = Path(args.home or tempfile.mkdtemp(prefix="diffrec-figures-"))
    out = Path(args.out)
    folder = shared_folder("ml-1m_clean", args.data)
    if "ml-1m_clean" not in diffrec(home, "data", "list"):
        diffrec(home, "data", "import-split", str(folder), "--name", "ml-1m_clean")
    figures, seconds = [], {}
    for name in (args.only.split(",") if args.only else SEARCHES):
        swept, drawn = SEARCHES[name]
        tick = time.perf_counter()
        result = json.loads(diffrec(home, "tune", "--model", "diffrec", "--dataset", "ml-1m_clean", "--space",
                                    str(space_file(home, name, swept, args.epochs)), "--json"))
        seconds[name] = round(time.perf_counter() - tick, 1)
        for trial in result["trials"]:
            test = trial["test"]
            print(f"{name}: {json.dumps(trial['params'])}: test recall@20 {test.get('recall@20', float('nan')):.4f} "
                  f"ndcg@20 {test.get('ndcg@20', float('nan')):.4f} (best epoch {trial['best_epoch']}, "
                  f"{trial['seconds']:.0f} s)", flush=True)
        for file, x, lines in drawn:
            diffrec(home, "plot", "sweep", result["tune_id"], "--x", x, "--out", str(out / file),
                    *(["--lines", lines] if lines else []))
            figures.append(str(out / file))
    print_json_line({"figures": figures, "search_seconds": seconds, "epochs": args.epochs,
                     "total_s": round(time.perf_counter() - started, 1), "home": str(home),
                     "threads": os.environ.get("OMP_NUM_THREADS")})


if __name__ == "__main__":
    main()
