"""Kill -9 at random instants of ``data import --force``, ``data prepare --force`` and ``train``; nothing is lost.

    python benchmarks/faults.py [--instants 20] [--seed 0] [--keep DIR]

Not a test (it takes minutes): for each operation it first times one uninterrupted run (and when it starts
writing the home), then starts it ``--instants`` times in a fresh copy of a small data home and sends SIGKILL
after a random delay: half of them anywhere in the run, half after it started writing. After each kill it checks, as a user would find it:

- import / prepare over an existing name: the name still reads back complete (every file loads, the splits
  match the recorded fingerprint) and holds either the old or the new log/dataset; every other entry of the
  home is untouched; the next command that writes the home leaves no temporary folder behind.
- train: a run folder, if the kill came after it was created, reads back (``runs.read_run``) with no problem
  (a killed run has no final.json, which is not one); when it holds a resumable state,
  ``diffrec train --resume RUN`` finishes it.

It prints a table (instants tried, kills that landed while the command ran, entries or runs left complete,
how many held the old and the new content, run folders found and resumed, anything lost) and, last, one
JSON object. Anything lost must be 0 (the exit status is 1 otherwise).
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import print_json_line  # noqa: E402

TRAIN_SETS = {"epochs": "6", "eval_every": "1", "checkpoint_every": "1", "patience": "100", "dims": "[32]",
              "steps": "5", "emb_size": "4", "batch_size": "64"}
TRAIN = ["train", "--dataset", "ds", "--device", "cpu", "--no-live", "--samples", "0",
         *[a for k, v in TRAIN_SETS.items() for a in ("--set", f"{k}={v}")]]


def data_step(kind: str, second: Path) -> list[str]:
    """The command killed: an import of another file over log ``raw``, or a prepare over dataset ``ds``."""
    if kind == "import":
        return ["data", "import", str(second), "--name", "raw", "--force"]
    return ["data", "prepare", "raw", "--name", "ds", "--force", "--set", "min_user=3"]


@dataclass
class Tally:
    operation: str
    instants: int = 0
    killed: int = 0  # the kill landed while the command still ran
    complete: int = 0  # the name (or the run) read back complete afterwards
    old: int = 0
    new: int = 0
    runs: int = 0  # train: kills that came after the run folder existed
    resumed: int = 0
    lost: int = 0
    notes: str = ""


def diffrec(home: Path, *args: str) -> list[str]:
    return [sys.executable, "-m", "diffrec_cli", *args, "--home", str(home)]


def env() -> dict[str, str]:
    return {**os.environ, "OMP_NUM_THREADS": "1", "DIFFREC_LOAD_PLUGINS": ""}


def run(command: list[str], timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run(command, capture_output=True, text=True, env=env(), timeout=timeout)


def kill_in_copy(base: Path, work: Path, command: list[str], delay: float, tally: "Tally") -> Path:
    """A fresh copy of the home ``base``, where ``command`` is started and killed after ``delay`` seconds."""
    home = work / "home"
    shutil.rmtree(home, ignore_errors=True)
    shutil.copytree(base, home)
    tally.instants += 1
    tally.killed += killed_after(diffrec(home, *command), delay)
    return home


def killed_after(command: list[str], delay: float) -> bool:
    """Start ``command``, SIGKILL it after ``delay`` seconds; whether it was still running then."""
    proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env())
    try:
        proc.wait(timeout=delay)
        return False
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        return True


def build_base(root: Path) -> tuple[Path, Path, Path]:
    """A home with raw log ``raw`` and dataset ``ds`` (made from it), and a second log file for --force."""
    from diffrec_cli.data.demo import generate_log

    files = root / "files"
    files.mkdir(parents=True)
    first, second = files / "first.csv", files / "second.csv"
    generate_log(400, 300, 12_000, seed=1).write_csv(first)
    generate_log(500, 300, 15_000, seed=2).write_csv(second)
    home = root / "base"
    for args in (["data", "import", str(first), "--name", "raw"],
                 ["data", "prepare", "raw", "--name", "ds", "--set", "min_user=5"]):
        done = run(diffrec(home, *args))
        assert done.returncode == 0, done.stderr
    return home, first, second


def describe(home: Path) -> dict[str, str]:
    """Every stored name with a digest of its content, read the way the commands read it; a name that does
    not read back complete maps to "DAMAGED: why"."""
    from diffrec_cli.data.store import DataHome
    from diffrec_cli.errors import DiffrecError

    store, out = DataHome(home), {}
    for name in store.names():
        try:
            data = store.load(name)
            out[name] = "dataset " + data.fingerprint()
            if out[name] != "dataset " + store.meta(name)["fingerprint"]:
                out[name] = "DAMAGED: splits differ from the recorded fingerprint"
        except DiffrecError as exc:
            out[name] = f"DAMAGED: {exc}"
    for name in store.log_names():
        try:
            log = store.load_log(name)
            ok = log.frame.height == log.meta["rows"]
            out[name] = f"log {log.meta['rows']} rows from {Path(log.meta['source']['path']).name}" if ok else \
                "DAMAGED: row count differs"
        except DiffrecError as exc:
            out[name] = f"DAMAGED: {exc}"
    return out


def hidden_leftovers(home: Path) -> list[str]:
    return [p.name for d in (home / "datasets", home / "logs") if d.is_dir() for p in d.iterdir()
            if p.name.startswith(".")]


def data_instants(kind: str, base: Path, work: Path, second: Path, delays: list[float]) -> Tally:
    """Kill ``data import --force`` (kind "import") or ``data prepare --force`` ("prepare") at each delay."""
    tally, before = Tally(kind), describe(base)
    name, args = ("raw" if kind == "import" else "ds"), data_step(kind, second)
    reference = work / "reference"
    shutil.copytree(base, reference)
    assert run(diffrec(reference, *args)).returncode == 0
    new = describe(reference)[name]
    for delay in delays:
        home = kill_in_copy(base, work, args, delay, tally)
        after = describe(home)
        others_intact = {k: v for k, v in after.items() if k != name} == {k: v for k, v in before.items() if k != name}
        if after.get(name) in (before[name], new) and others_intact:
            tally.complete += 1
            tally.old += after[name] == before[name]
            tally.new += after[name] == new
        else:
            tally.lost += 1
            tally.notes += f" [{delay:.2f}s: {after.get(name, 'missing')}]"
        run(diffrec(home, "data", "import", str(second), "--name", "tidy"))  # a command that writes the home
        if hidden_leftovers(home):
            tally.notes += f" [{delay:.2f}s: left {hidden_leftovers(home)}]"
    return tally


def train_instants(base: Path, work: Path, delays: list[float]) -> Tally:
    from diffrec_cli.runs import read_run, run_folders

    tally = Tally("train")
    for delay in delays:
        home = kill_in_copy(base, work, TRAIN, delay, tally)
        folders = run_folders(home / "runs")
        if not folders:
            tally.complete += 1  # killed before the run folder existed: nothing to lose
            continue
        tally.runs += 1
        record = read_run(folders[0])
        if record.problems or record.status is None:
            tally.lost += 1
            tally.notes += f" [{delay:.2f}s: {record.problems}]"
            continue
        tally.complete += 1
        if any((folders[0] / "resume").glob("*.json")) and record.final is None:
            done = run(diffrec(home, "train", "--resume", folders[0].name, "--no-live", "--samples", "0"))
            if done.returncode == 0 and read_run(folders[0]).final is not None:
                tally.resumed += 1
            else:
                tally.lost += 1
                tally.notes += f" [{delay:.2f}s: resume failed: {done.stderr.strip()[-200:]}]"
    return tally


def timed(command: list[str], writes: Path) -> tuple[float, float]:
    """(seconds the command takes, seconds until it starts writing: a new entry appears in ``writes``)."""
    before = set(writes.iterdir()) if writes.is_dir() else set()
    tick, started = time.perf_counter(), None
    proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env())
    while proc.poll() is None:
        if started is None and writes.is_dir() and set(writes.iterdir()) - before:
            started = time.perf_counter() - tick
        time.sleep(0.005)
    assert proc.returncode == 0, proc.stderr.read()
    span = time.perf_counter() - tick
    return span, span if started is None else started


def instants(rng: random.Random, count: int, span: float, writing_from: float) -> list[float]:
    """Kill delays: half anywhere in the command's run, half from when it starts writing (where the data home
    changes: the interesting instants, which start-up and reading would otherwise crowd out)."""
    return [rng.uniform(0, span) if k % 2 else rng.uniform(max(0.0, writing_from - 0.05), span)
            for k in range(count)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--instants", type=int, default=20, help="kills per operation")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--keep", type=Path, help="work in this folder and keep it")
    args = parser.parse_args()
    work = args.keep or Path(tempfile.mkdtemp(prefix="diffrec-faults-"))
    rng = random.Random(args.seed)
    base, _, second = build_base(work)
    tallies = []
    for kind in ("import", "prepare", "train"):
        scratch = work / f"timing-{kind}"
        shutil.copytree(base, scratch)
        writes = scratch / {"import": "logs", "prepare": "datasets", "train": "runs"}[kind]
        span, writing_from = timed(diffrec(scratch, *(TRAIN if kind == "train" else data_step(kind, second))),
                                   writes)
        delays = instants(rng, args.instants, span, writing_from)
        tallies.append(train_instants(base, work / kind, delays) if kind == "train" else
                       data_instants(kind, base, work / kind, second, delays))
    print(f"{'operation':<10}{'instants':>9}{'killed':>8}{'complete':>10}{'old':>5}{'new':>5}{'runs':>6}"
          f"{'resumed':>9}{'lost':>6}")
    for t in tallies:
        print(f"{t.operation:<10}{t.instants:>9}{t.killed:>8}{t.complete:>10}{t.old:>5}{t.new:>5}{t.runs:>6}"
              f"{t.resumed:>9}{t.lost:>6}")
        if t.notes:
            print(f"  notes:{t.notes}")
    if args.keep is None:
        shutil.rmtree(work, ignore_errors=True)
    lost = sum(t.lost for t in tallies)
    print_json_line({"instants": sum(t.instants for t in tallies), "killed": sum(t.killed for t in tallies),
                     "complete": sum(t.complete for t in tallies), "lost": lost,
                     "operations": [asdict(t) for t in tallies], "ok": lost == 0})
    raise SystemExit(0 if lost == 0 else 1)


if __name__ == "__main__":
    main()
