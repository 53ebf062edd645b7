"""``diffrec train --nproc N``: start N ranks of the same command through ``torch.distributed.run``.

torchrun's own engine does the launching (a c10d rendezvous on localhost, restarts off, the workers' exit
codes back); this module only rewrites the command line: ``-m diffrec_cli train ...`` without ``--nproc``.
Each rank finds its place in the environment torchrun sets (``training/distributed.py``). For several
machines, run ``torchrun --nnodes M --nproc-per-node N ... -m diffrec_cli train ...`` on each of them.
"""

from __future__ import annotations

import logging
import os
import sys

from diffrec_cli.errors import DiffrecError


def without_nproc(argv: list[str]) -> list[str]:
    """The command line with ``--nproc N`` (or ``--nproc=N``) taken out."""
    out: list[str] = []
    skip = False
    for arg in argv:
        if skip:
            skip = False
        elif arg == "--nproc":
            skip = True
        elif not arg.startswith("--nproc="):
            out.append(arg)
    return out


def check_launch(nproc: int, model_class: type, *, resuming: bool) -> None:
    """Everything that rules a launch out, decided here so that one line says it, not one per rank."""
    from diffrec_cli.training.distributed import launched_ranks, require_distributable

    if nproc < 1:
        raise DiffrecError(f"the number of processes must be at least 1, got {nproc}")
    if resuming:
        raise DiffrecError("a run resumes in one process: resuming across several processes is not supported")
    if launched_ranks() > 1:
        raise DiffrecError("this process is already one rank of a distributed job; a launcher (torchrun) "
                           "started it, so it must not start more")
    require_distributable(model_class, nproc)


def launch(nproc: int, argv: list[str]) -> int:
    """Run ``diffrec`` with ``argv`` (without --nproc) in ``nproc`` ranks on this machine; the exit code
    of the first rank that failed, else 0."""
    from torch.distributed.elastic.multiprocessing.api import SignalException
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.run import parse_args, run

    # torchrun would set one thread per rank and warn about it; share the cores out instead
    os.environ.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // nproc)))
    logging.getLogger("torch.distributed.elastic").setLevel(logging.ERROR)
    args = parse_args(["--standalone", "--nnodes", "1", "--nproc-per-node", str(nproc), "--max-restarts", "0",
                       "-m", "diffrec_cli", *argv])
    try:
        run(args)
    except ChildFailedError as failed:
        code = failed.get_first_failure()[1].exitcode
        return code if code > 0 else 128 - code if code < 0 else 1  # killed by signal s: 128 + s, as a shell says
    except SignalException as stopped:  # Ctrl-C or SIGTERM reached the ranks too: rank 0 stops the run cleanly
        return 128 + int(stopped.sigval)
    return 0


def relaunch_argv() -> list[str]:
    return without_nproc(sys.argv[1:])
