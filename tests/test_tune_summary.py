"""The ``diffrec tune`` summary in 80 columns: whole headers and values, one line per trial, every K."""

from __future__ import annotations

import io
import os
from pathlib import Path

from rich.console import Console

from diffrec_cli.cli.tune_summary import print_summary
from diffrec_cli.tuning import Trial, TuneResult

SNAPSHOT = Path(__file__).parent / "snapshots" / "tune_summary_80.txt"
KS = (10, 20, 50, 100)


def metrics(base: float) -> dict[str, float]:
    return {f"{m}@{k}": round(base * k / 20 * f, 4) for k in KS for m, f in (("recall", 1.0), ("ndcg", 0.6),
                                                                             ("precision", 0.1), ("mrr", 0.3),
                                                                             ("hit", 2.0))}


def result() -> TuneResult:
    space = {"noise_scale": [0.0001, 0.001], "steps": [5, 40], "dims": [[200, 600], [1000]]}
    trials = []
    for n, (scale, steps, dims) in enumerate([(0.0001, 5, [200, 600]), (0.001, 40, [1000]),
                                              (0.001, 5, [1000]), (0.0001, 40, [200, 600])], start=1):
        base = (0.06, 0.05, 0.04, 0.08)[n - 1]
        trials.append(Trial(n, {"noise_scale": scale, "steps": steps, "dims": dims}, "finished",
                            f"20240301-1015{n:02d}-diffrec-ml-1m_clean-a{n}b{n}", None, metrics(base),
                            metrics(base * 0.9), best_epoch=10 * n, epochs_run=10 * n + 20, seconds=123.4 * n))
    trials.append(Trial(5, {"noise_scale": 0.01, "steps": 40, "dims": [1000]}, "failed",
                        error="training diverged"))
    return TuneResult("20240301-101500-diffrec-ml-1m_clean-ffff", None, "diffrec", "ml-1m_clean", "grid",
                      "recall@20", {}, space, trials)


def summary(width: int = 80) -> str:
    out = io.StringIO()
    print_summary(Console(file=out, width=width, color_system=None), result())
    return out.getvalue()


def test_summary_fits_80_columns_whole():
    text = summary()
    lines = text.splitlines()
    assert max(len(line) for line in lines) <= 80
    assert "…" not in text
    assert lines[0] == "diffrec on ml-1m_clean: 5 trials, ranked by validation recall@20"
    header = lines[1].split()
    assert header == ["#", "trial", "noise_scale", "steps", "dims", "valid", "R@20", "epoch", "s", "status"]
    # one line per trial, best first, the failed one last
    rows = [line.split() for line in lines[3:8]]
    assert [(r[0], r[1]) for r in rows] == [("1", "4"), ("2", "1"), ("3", "2"), ("4", "3"), ("-", "5")]
    assert rows[0][2:5] == ["0.0001", "40", "[200,600]"] and rows[0][5] == "0.0800"
    assert rows[4][-1] == "failed"


def test_summary_shows_every_k_for_both_splits():
    text = summary()
    words = text.split()
    assert words.count("R@10") == 2 and words.count("N@10") == 2 and words.count("N@100") == 2  # valid and test
    valid = text[text.index("validation metrics"):text.index("test metrics")]
    best = next(line.split() for line in valid.splitlines() if line.startswith("1 "))
    assert best[2:] == ["0.0400", "0.0240", "0.0800", "0.0480", "0.2000", "0.1200", "0.4000", "0.2400"]
    assert "precision, mrr, hit per trial: in tune.json" in text


def test_summary_splits_metric_columns_on_a_narrow_terminal():
    text = summary(width=50)
    assert max(len(line) for line in text.splitlines()) <= 50 and "…" not in text
    assert text.split().count("N@100") == 2


def test_summary_snapshot():
    """The whole summary as a person sees it at 80 columns (DIFFREC_UPDATE_SNAPSHOTS=1 rewrites it)."""
    text = summary()
    if os.environ.get("DIFFREC_UPDATE_SNAPSHOTS"):
        SNAPSHOT.write_text(text)
    assert text == SNAPSHOT.read_text()
