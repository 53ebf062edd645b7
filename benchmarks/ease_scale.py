"""EASE on a generated 18,000-item catalogue: peak memory of one fit, and ``diffrec tune`` over ``reg``.

    python benchmarks/ease_scale.py [--home DIR] [--users 9000] [--items 18500] [--interactions 600000]
                                    [--regs 100,500,2000,5000] [--skip-tune] [--skip-fit] [--float64-fit]
                                    [--refit-each] [--solvers]

Builds the dataset once in the data home (``diffrec data generate`` then ``data prepare --protocol clean``;
9,000 x 18,500 gives 8,517 users x 18,109 items), then runs each measured command in its own process and
reads that process's peak RSS from ``wait4``:

- ``diffrec train --model ease`` at one λ: one fit (the issue's target: peak RSS <= 3.5 GB). With fewer
  users than items (8,517 x 18,109 here) EASE solves from the users' side: an n_users² inverse in float64
  and sparse products written into the float32 weight; otherwise the items' side, in place;
- ``diffrec tune --model ease`` over the ``--regs`` grid: a fit per λ (a grid this short does not pay for
  a shared eigendecomposition; target < 2 min on 2 cores);
- with ``--float64-fit``: the same single fit solved in float64 (the old precision), for the ratio;
- with ``--refit-each``: one ``train`` per λ of the grid (a Cholesky solve each, no shared factors), the
  alternative to the tune's shared eigendecomposition (and in float64 too with ``--float64-fit``);
- with ``--solvers``: the solves alone in one process, no evaluation: a Cholesky solve per λ against one
  eigendecomposition and B(λ) from it for every λ (what ``refit_break_even`` weighs).

Prints a table and, last, one JSON object. Timings depend on the load: ``uptime`` is printed beside them.
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

from _common import print_json_line  # noqa: E402

CLI = [sys.executable, "-m", "diffrec_cli"]


def measured(args: list[str], env: dict[str, str]) -> tuple[float, float, int]:
    """(seconds, peak RSS in GB, exit code) of one CLI command in its own process."""
    tick = time.perf_counter()
    child = subprocess.Popen(CLI + args, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(child.pid, 0)
    seconds = time.perf_counter() - tick
    err = child.stderr.read().decode() if child.stderr else ""
    if status:
        print(f"  {' '.join(args[:3])}: exit {os.waitstatus_to_exitcode(status)}: {err.strip()[-300:]}")
    return seconds, usage.ru_maxrss * 1024 / 1e9, os.waitstatus_to_exitcode(status)


def ensure_dataset(env: dict[str, str], args: argparse.Namespace) -> str:
    name = f"gen{args.items // 1000}k"
    if subprocess.run(CLI + ["data", "info", f"{name}_clean"], env=env, capture_output=True).returncode == 0:
        return f"{name}_clean"
    for command in (["data", "generate", "--name", name, "--users", str(args.users), "--items", str(args.items),
                     "--interactions", str(args.interactions), "--seed", "0"],
                    ["data", "prepare", name, "--protocol", "clean", "--name", f"{name}_clean"]):
        subprocess.run(CLI + command, env=env, check=True, stdout=subprocess.DEVNULL)
    return f"{name}_clean"


def n_items_of(env: dict[str, str], dataset: str) -> int:
    code = (f"from diffrec_cli.data.store import DataHome; from diffrec_cli.home import resolve_home; "
            f"print(DataHome(resolve_home(None)).load({dataset!r}).n_items)")
    return int(subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                              check=True).stdout.strip())


SOLVERS = """
import json, sys, time
from diffrec_cli.data.store import DataHome
from diffrec_cli.home import resolve_home
from diffrec_baselines.ease import EASE
data = DataHome(resolve_home(None)).load(sys.argv[1])
regs = [float(r) for r in sys.argv[2].split(",")]
out = {}
tick = time.perf_counter()
for reg in regs:
    EASE(data.n_users, data.n_items, reg=reg).fit_closed_form(data.train)
out["cholesky"] = time.perf_counter() - tick
tick = time.perf_counter()
model = EASE(data.n_users, data.n_items)
factors = model.factorise(data.train)
out["eigh"] = time.perf_counter() - tick
for reg in regs:
    model.reg = reg
    model.fit_from(factors)
out["shared"] = time.perf_counter() - tick
print(json.dumps(out))
"""


def solver_rows(env: dict[str, str], dataset: str, regs: list[float]) -> list[tuple]:
    """The solves alone, no evaluation: a Cholesky solve per λ against one eigendecomposition shared."""
    done = subprocess.run([sys.executable, "-c", SOLVERS, dataset, ",".join(map(str, regs))], env=env,
                          capture_output=True, text=True, check=True)
    times = json.loads(done.stdout.strip().splitlines()[-1])
    return [(f"solve {len(regs)} x Cholesky", times["cholesky"], None, 0),
            ("solve: eigh once", times["eigh"], None, 0),
            (f"solve: eigh + {len(regs)} x B", times["shared"], None, 0)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--home", default=os.environ.get("DIFFREC_HOME", "/tmp/diffrec-ease-scale"))
    parser.add_argument("--users", type=int, default=9000)
    parser.add_argument("--items", type=int, default=18500)
    parser.add_argument("--interactions", type=int, default=600000)
    parser.add_argument("--regs", default="100,500,2000,5000")
    parser.add_argument("--skip-tune", action="store_true")
    parser.add_argument("--float64-fit", action="store_true")
    parser.add_argument("--refit-each", action="store_true", help="also fit each λ alone (no shared factors)")
    parser.add_argument("--solvers", action="store_true", help="time the solves alone: per-λ Cholesky, shared eigh")
    parser.add_argument("--skip-fit", action="store_true")
    args = parser.parse_args()
    env = {**os.environ, "DIFFREC_HOME": args.home}
    dataset = ensure_dataset(env, args)
    n_items = n_items_of(env, dataset)
    square_gb = n_items ** 2 * 4 / 1e9
    rows, regs = [], [float(r) for r in args.regs.split(",")]
    base = ["--dataset", dataset, "--quiet", "--no-live"]
    if not args.skip_fit:
        rows.append(("fit, one λ", *measured(["train", "--model", "ease", *base, "--set",
                                                         f"reg={regs[0]}"], env)))
    if args.float64_fit:
        rows.append(("fit, float64", *measured(["train", "--model", "ease", *base, "--set", f"reg={regs[0]}",
                                                "--set", "float64=true"], env)))
    if args.refit_each:  # the path without sharing: one Cholesky solve per λ (float64: the old precision)
        for precision in ("float32", "float64") if args.float64_fit else ("float32",):
            runs = [measured(["train", "--model", "ease", *base, "--set", f"reg={reg}", "--set",
                              f"float64={precision == 'float64'}"], env) for reg in regs]
            rows.append((f"{len(regs)} fits, {precision}", sum(r[0] for r in runs), max(r[1] for r in runs),
                         max(r[2] for r in runs)))
    if args.solvers:
        rows.extend(solver_rows(env, dataset, regs))
    if not args.skip_tune:
        with tempfile.NamedTemporaryFile("w", suffix=".toml", delete=False) as space:
            space.write(f"[search]\nreg = [{', '.join(map(str, regs))}]\n")
        rows.append((f"tune, {len(regs)} x reg", *measured(["tune", "--model", "ease", "--dataset", dataset,
                                                            "--space", space.name, "--no-live"], env)))
    load = os.getloadavg()
    print(f"EASE on {dataset}: {n_items:,} items; one float32 n² matrix = {square_gb:.2f} GB; "
          f"load {load[0]:.1f} {load[1]:.1f} {load[2]:.1f}, {os.cpu_count()} cores")
    print(f"{'command':<24}{'seconds':>10}{'peak RSS GB':>13}{'x n² f32':>10}{'exit':>6}")
    for label, seconds, rss, code in rows:
        memory = f"{rss:>13.2f}{rss / square_gb:>10.2f}" if rss is not None else f"{'-':>13}{'-':>10}"
        print(f"{label:<24}{seconds:>10.1f}{memory}{code:>6}")
    print("targets: one fit <= 3.5 GB peak RSS; tune over 4 values of reg < 120 s on 2 cores")
    print_json_line({"dataset": dataset, "n_items": n_items, "square_gb": round(square_gb, 3), "load": load,
                     "rows": [{"command": label, "seconds": round(s, 1),
                               "peak_rss_gb": None if r is None else round(r, 3), "exit": c}
                              for label, s, r, c in rows]})


if __name__ == "__main__":
    main()
