"""Start-up time of the ``diffrec`` command beside the time it takes to import torch.

    python benchmarks/startup.py [--runs 10] [--all-plugins]

Runs ``diffrec --help`` and ``diffrec --version`` ``--runs`` times each in fresh interpreters and prints
the median wall time and the median CPU time (user + system, which a busy machine inflates less than wall
time), then ``python -c "import torch"`` the same way, and whether ``python -X importtime`` shows any torch
module imported by ``diffrec --help``. Target (the project's ecosystem issue): under 0.4 s for ``--help``
and ``--version`` with no torch import. By default only the first-party plugins load
(``DIFFREC_LOAD_PLUGINS=baselines,example``): a third-party plugin that imports torch when loaded would
measure that plugin; ``--all-plugins`` loads whatever is installed. The last line is one JSON object.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import print_json_line  # noqa: E402

TARGET_S = 0.4
DIFFREC = [sys.executable, "-m", "diffrec_cli"]


def timed(command: list[str], env: dict[str, str]) -> tuple[float, float]:
    """Wall and CPU seconds of one run of ``command``."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    tick = time.perf_counter()
    subprocess.run(command, env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wall = time.perf_counter() - tick
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def medians(command: list[str], env: dict[str, str], runs: int) -> tuple[float, float]:
    timed(command, env)  # warm the file cache; not counted
    samples = [timed(command, env) for _ in range(runs)]
    return statistics.median(s[0] for s in samples), statistics.median(s[1] for s in samples)


def torch_modules_imported(env: dict[str, str]) -> list[str]:
    """Torch modules ``python -X importtime`` reports for ``diffrec --help``."""
    result = subprocess.run([sys.executable, "-X", "importtime", *DIFFREC[1:], "--help"], env=env,
                            capture_output=True, text=True, check=True)
    names = [line.rsplit("|", 1)[-1].strip() for line in result.stderr.splitlines() if "|" in line]
    return [name for name in names if name == "torch" or name.startswith("torch.")]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--all-plugins", action="store_true", help="load every installed plugin")
    args = parser.parse_args()
    env = dict(os.environ)
    if not args.all_plugins:
        env["DIFFREC_LOAD_PLUGINS"] = "baselines,example"
    rows = {
        "diffrec --help": medians([*DIFFREC, "--help"], env, args.runs),
        "diffrec --version": medians([*DIFFREC, "--version"], env, args.runs),
        "python -c 'pass'": medians([sys.executable, "-c", "pass"], env, args.runs),
        "python -c 'import torch'": medians([sys.executable, "-c", "import torch"], env, args.runs),
    }
    torch_imports = torch_modules_imported(env)
    print(f"median of {args.runs} runs        wall s   cpu s")
    for name, (wall, cpu) in rows.items():
        print(f"{name:<26} {wall:8.3f} {cpu:7.3f}")
    print(f"torch modules imported by diffrec --help: {len(torch_imports)}")
    help_wall, version_wall = rows["diffrec --help"][0], rows["diffrec --version"][0]
    ok = help_wall < TARGET_S and version_wall < TARGET_S and not torch_imports
    (help_cpu, version_cpu) = rows["diffrec --help"][1], rows["diffrec --version"][1]
    print_json_line({"runs": args.runs, "help_s": round(help_wall, 4), "help_cpu_s": round(help_cpu, 4),
                     "version_s": round(version_wall, 4), "version_cpu_s": round(version_cpu, 4),
                     "python_s": round(rows["python -c 'pass'"][0], 4),
                     "import_torch_s": round(rows["python -c 'import torch'"][0], 4),
                     "torch_modules_imported": len(torch_imports), "target_s": TARGET_S, "ok": ok})


if __name__ == "__main__":
    main()
