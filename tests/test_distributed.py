"""Data-parallel training over users (training/distributed.py): two gloo ranks on this machine.

The ranks run in processes of their own (torch.multiprocessing, or torchrun for the CLI); they write what
they hold to files and the assertions run here, beside a single-process reference.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import uuid
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.multiprocessing as mp
from safetensors.torch import load_file, save_file
from typer.testing import CliRunner

from diffrec_cli.cli.app import app

from diffrec_cli.config import TrainConfig
from diffrec_cli.contract import tiny_dataset
from diffrec_cli.data.sparse import dense_rows
from diffrec_cli.diffusion.schedules import LinearVarianceSchedule
from diffrec_cli.models.base import UserShard
from diffrec_cli.models.diffrec import DiffRec
from diffrec_cli.training.evaluate import evaluate

RANKS = 2
GLOBAL_USERS = np.array([3, 17, 5, 29, 11, 0, 38])  # 7: the ranks take 3 and 4 users, unequal shares
TRAIN = {"epochs": 1, "batch_size": 16, "eval_every": 1, "ks": (5, 10), "metric": "recall@10",
         "eval_batch_size": 8, "seed": 4}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _model(importance_ready: bool = True) -> DiffRec:
    """A small DiffRec without dropout (its mask would differ per rank), importance sampling switched on."""
    torch.manual_seed(0)
    model = DiffRec(40, 30, schedule=LinearVarianceSchedule(steps=5, noise_scale=0.1, noise_min=0.001,
                                                              noise_max=0.02), dims=(16,), emb_size=4, dropout=0.0, history=4)
    if importance_ready:  # a full history, so the step probabilities p_t divide the loss
        generator = torch.Generator().manual_seed(1)
        model.diffusion.loss_history.copy_(torch.rand(5, 4, generator=generator, dtype=torch.float64) + 0.1)
        model.diffusion.loss_count.fill_(4)
    return model


def _fixed_step_inputs() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    x = dense_rows(tiny_dataset().train, GLOBAL_USERS, "cpu")
    generator = torch.Generator().manual_seed(2)
    t = torch.randint(0, 5, (len(GLOBAL_USERS),), generator=generator)
    noise = torch.randn(x.shape, generator=generator)
    return x, t, noise


def _join_as(rank: int, port: int) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), LOCAL_RANK=str(rank),
                      WORLD_SIZE=str(RANKS), OMP_NUM_THREADS="1")
    torch.set_num_threads(1)


def _one_step(rank: int, port: int, out: str) -> None:
    """Rank ``rank``'s part of one optimisation step on the fixed global batch; writes its gradients."""
    from diffrec_cli.training.distributed import join, leave

    _join_as(rank, port)
    parallel = join(torch.device("cpu"))
    model = _model()
    parallel.attach(model, seed=0)
    x, t, noise = _fixed_step_inputs()
    rows = UserShard(rank, RANKS).part(np.arange(len(GLOBAL_USERS)))
    loss = model.diffusion.training_losses(model.denoiser, x[rows], steps=t[rows], noise=noise[rows]).mean()
    loss.backward()
    parallel.reduce_gradients(model, len(rows) / len(GLOBAL_USERS))
    tensors = {f"grad.{name}": p.grad.contiguous() for name, p in model.named_parameters()}
    tensors["loss_history"] = model.diffusion.loss_history.clone()
    save_file(tensors, f"{out}/rank{rank}.safetensors")
    leave()


def _fit_and_evaluate(rank: int, port: int, out: str) -> None:
    """One epoch of the real loop on two ranks, then both evaluations of the trained model."""
    from diffrec_cli.training.distributed import join, leave
    from diffrec_cli.training.loop import fit

    _join_as(rank, port)
    data, model = tiny_dataset(), _model(importance_ready=False)
    config = TrainConfig(model="diffrec", dataset="tiny", patience=5, **TRAIN)
    fit(model, data, config)  # its history fills within the epoch, so the later steps sample by importance
    parallel = join(torch.device("cpu"))
    options = {"ks": TRAIN["ks"], "batch_size": TRAIN["eval_batch_size"]}
    sharded = parallel.evaluate(model.scores, data, **options)
    alone = evaluate(model.scores, data, **options)
    save_file({"loss_history": model.diffusion.loss_history, "loss_count": model.diffusion.loss_count,
               **{f"weight.{k}": v.contiguous() for k, v in model.denoiser.state_dict().items()}},
              f"{out}/rank{rank}.safetensors")
    Path(f"{out}/rank{rank}.json").write_text(json.dumps({"sharded": sharded, "alone": alone}))
    leave()


def _spawn(task, out: Path) -> list[dict[str, torch.Tensor]]:
    mp.spawn(task, args=(_free_port(), str(out)), nprocs=RANKS, join=True)
    return [load_file(out / f"rank{r}.safetensors") for r in range(RANKS)]


def test_shards_in_rank_order_make_the_batch_and_each_rank_densifies_only_its_rows(tiny):
    model = _model(importance_ready=False)
    whole = list(model.batches(tiny.train, 16, torch.Generator().manual_seed(3), torch.device("cpu")))
    parts = [list(model.batches(tiny.train, 16, torch.Generator().manual_seed(3), torch.device("cpu"),
                                UserShard(rank, 3))) for rank in range(3)]
    assert [len(p) for p in parts] == [3, 3, 3] and len(whole) == 3  # 40 users: 16 + 16 + 8
    for i, batch in enumerate(whole):
        assert torch.equal(torch.cat([p[i].users for p in parts]), batch.users)
        assert torch.equal(torch.cat([p[i].x for p in parts]), batch.x)
        assert [p[i].x.shape[0] for p in parts] == ([5, 5, 6] if i < 2 else [2, 3, 3])
        assert sum(p[i].share for p in parts) == pytest.approx(1.0)
    assert UserShard(1, 3).part(np.arange(2)).tolist() == [0]  # rows 0..1 over 3 ranks: [], [0], [1]


def test_a_two_rank_step_has_the_gradients_of_one_process_on_the_whole_batch(tmp_path):
    ranks = _spawn(_one_step, tmp_path)
    reference = _model()
    x, t, noise = _fixed_step_inputs()
    reference.diffusion.training_losses(reference.denoiser, x, steps=t, noise=noise).mean().backward()
    for name, param in reference.named_parameters():
        scale = float(param.grad.abs().max())  # the SNR weights make gradients of hundreds: 1e-5 relative
        assert scale > 1e-4  # the comparison is about something
        for rank in ranks:
            torch.testing.assert_close(rank[f"grad.{name}"], param.grad, rtol=1e-5, atol=1e-5 * scale)
    # the importance-sampling history took the whole batch's losses, in its order, on both ranks
    assert torch.equal(ranks[0]["loss_history"], ranks[1]["loss_history"])
    torch.testing.assert_close(ranks[0]["loss_history"], reference.diffusion.loss_history, rtol=1e-6, atol=0)


def test_after_an_epoch_every_rank_holds_the_same_history_and_weights_and_sharded_evaluation_is_exact(tmp_path):
    ranks = _spawn(_fit_and_evaluate, tmp_path)
    assert torch.equal(ranks[0]["loss_count"], ranks[1]["loss_count"])
    assert int(ranks[0]["loss_count"].sum()) >= 15  # 40 losses over 5 steps of 4 kept: (nearly) all filled
    assert torch.equal(ranks[0]["loss_history"], ranks[1]["loss_history"])
    for key in ranks[0]:
        assert torch.equal(ranks[0][key], ranks[1][key]), key
    for rank in range(RANKS):
        metrics = json.loads((tmp_path / f"rank{rank}.json").read_text())
        assert metrics["sharded"] == metrics["alone"]  # exactly: the per-batch sums added in the same order
        assert metrics["alone"]["test"]["users"] == 40 and metrics["alone"]["test"]["recall@10"] > 0


def _diffrec(*args: str, timeout: float = 240) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-m", "diffrec_cli", *args], capture_output=True, text=True,
                          env=env, timeout=timeout)


FAST = ["--set", "dims=[16]", "--set", "steps=5", "--set", "emb_size=4", "--set", "batch_size=16",
        "--set", "eval_batch_size=8", "--epochs", "2"]


def test_nproc_training_writes_one_run_whose_checkpoint_evaluates_in_one_process(tiny_home):
    done = _diffrec("train", "--dataset", "tiny", "--nproc", "2", "--quiet", "--no-live", *FAST)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.count("diffrec on tiny: best epoch") == 1  # only rank 0 speaks
    (run,) = list(tiny_home.runs_dir.iterdir())
    final = json.loads((run / "final.json").read_text())
    reloaded = _diffrec("eval", run.name, "--json")
    assert reloaded.returncode == 0, reloaded.stderr[-3000:]
    assert json.loads(reloaded.stdout)["test"] == pytest.approx(final["test"], rel=1e-6)
    assert json.loads((run / "config.json").read_text())["ranks"] == 2
    # its resumable state continues in one process (the same global batch)
    resumed = CliRunner().invoke(app, ["train", "--resume", run.name, "--epochs", "3", "--quiet", "--samples", "0"])
    assert resumed.exit_code == 0, resumed.output
    assert json.loads((run / "final.json").read_text())["epochs_run"] == 3


def test_two_torchrun_launchers_of_one_rank_each_train_to_the_end(tiny_home):
    port, job = _free_port(), uuid.uuid4().hex[:8]
    launcher = [sys.executable, "-m", "torch.distributed.run", "--nnodes", "2", "--nproc-per-node", "1",
                "--rdzv-backend", "c10d", "--rdzv-endpoint", f"127.0.0.1:{port}", "--rdzv-id", job,
                "--max-restarts", "0", "-m", "diffrec_cli", "train", "--dataset", "tiny", "--quiet", "--no-live",
                "--samples", "0", *FAST]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    nodes = [subprocess.Popen(launcher, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
             for _ in range(2)]
    outputs = [node.communicate(timeout=240) for node in nodes]
    assert [node.returncode for node in nodes] == [0, 0], [err[-2000:] for _, err in outputs]
    (run,) = list(tiny_home.runs_dir.iterdir())
    status = json.loads((run / "status.json").read_text())
    final = json.loads((run / "final.json").read_text())
    assert status["status"] == "finished" and final["epochs_run"] == 2
    assert sum(out.count("diffrec on tiny: best epoch") for out, _ in outputs) == 1


@pytest.mark.parametrize("args, line", [
    (["--model", "ease", "--nproc", "2"],
     "error: model 'ease' cannot train data-parallel over users (it fits in closed form or batches something "
     "other than user rows); train it in one process"),
    (["--nproc", "0"], "error: the number of processes must be at least 1, got 0"),
    (["--resume", "some-run", "--nproc", "2"],
     "error: a run resumes in one process: resuming across several processes is not supported"),
])
def test_launches_that_cannot_work_are_one_error_line(tiny_home, args, line):
    done = CliRunner(env={"COLUMNS": "400"}).invoke(app, ["train", "--dataset", "tiny", *args])
    assert (done.exit_code, done.stderr.strip()) == (2, line)
    assert not tiny_home.runs_dir.exists() or not any(tiny_home.runs_dir.iterdir())
