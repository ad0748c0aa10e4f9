"""python -m benchmarks.demo: micrograd's demo by default, other runs by option, pictures and JSON out."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from benchmarks.demo import main
from benchmarks.training import TrainConfig, train, try_load_backends

BACKENDS, _ = try_load_backends()
PNG = b"\x89PNG\r\n\x1a\n"


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[str, str]:
    assert main([*argv]) == 0
    captured = capsys.readouterr()
    return captured.out, captured.err


def test_the_default_run_is_micrograds_demo(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out, err = _run(capsys, "--out", str(tmp_path))  # about 13 s on the python backend
    summary = json.loads((tmp_path / "summary.json").read_text())
    # micrograd's notebook prints "step 99 loss 0.010978..., accuracy 100.0%".
    assert summary["final_loss"] == pytest.approx(0.010978, abs=5e-7)
    assert summary["final_accuracy"] == 1.0
    assert len(summary["losses"]) == len(summary["accuracies"]) == 100
    assert summary["backend"] == "python" and summary["parameters"] == 337
    assert "loss 0.0109784  accuracy 100.0%" in out and "ms/step" in out
    assert "loss=" in err and "acc=100%" in err  # the progress bar
    for name in ("curves.png", "boundary.png"):
        assert (tmp_path / name).read_bytes().startswith(PNG)


@pytest.mark.parametrize(
    ("argv", "pictures"),
    [
        (["--dataset", "toy"], ["curves.png", "fit.png"]),
        (["--dataset", "circles", "--optimizer", "adam", "--hidden", "8"], ["curves.png", "boundary.png"]),
        (
            ["--loss", "bce", "--optimizer", "momentum", "--activation", "tanh"],
            ["curves.png", "boundary.png"],
        ),
        (["--loss", "mse", "--alpha", "0"], ["curves.png", "boundary.png"]),
    ],
    ids=["toy", "circles-adam", "bce-momentum", "mse"],
)
def test_other_runs_write_their_pictures(
    argv: list[str], pictures: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out, _ = _run(capsys, *argv, "--steps", "3", "--no-progress", "--out", str(tmp_path))
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([*pictures, "summary.json"])
    for name in pictures:
        assert (tmp_path / name).read_bytes().startswith(PNG)
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert len(summary["losses"]) == 3
    if "toy" in argv:
        assert summary["final_accuracy"] is None and "n/a (regression)" in out


def test_the_same_seed_gives_the_same_numbers() -> None:
    config = TrainConfig(dataset="circles", optimizer="adam", steps=3, seed=5)
    first, again = train(config), train(config)
    other = train(TrainConfig(dataset="circles", optimizer="adam", steps=3, seed=6))
    assert first.losses == again.losses and first.accuracies == again.accuracies
    assert first.losses != other.losses


@pytest.mark.parametrize("name", sorted(set(BACKENDS) - {"python"}))
def test_every_backend_trains_to_the_same_numbers(name: str) -> None:
    config = TrainConfig(steps=3)
    assert train(TrainConfig(backend=name, steps=3)).losses == train(config).losses


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--backend", "nonesuch"], "no gradspec backend named 'nonesuch'"),
        (["--hidden", "16,x"], "expected layer sizes like 16,16"),
        (["--hidden", "16,0"], "layer sizes must be from 1 to 4096"),
        (["--hidden", "100000"], "layer sizes must be from 1 to 4096"),
        (["--dataset", "toy", "--loss", "svm"], "trained with the mse loss"),
        (["--steps", "0"], "steps must be an integer from 1 to 1,000,000"),
        (["--steps", str(10**22)], "steps must be an integer from 1 to 1,000,000"),
        (["--lr", "-1"], "lr must be a positive number"),
        (["--seed", "-1"], "seed must be an integer >= 0"),
    ],
)
def test_bad_options_exit_with_a_message(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(argv)
    assert exit_.value.code == 2
    assert message in capsys.readouterr().err


def test_a_diverging_run_fails_cleanly(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--lr", "1e300", "--steps", "3", "--no-progress", "--out", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert "training failed: ResultOverflowError" in err and "at training step 1 of 3" in err
    assert not tmp_path.exists() or not any(tmp_path.iterdir())


@pytest.mark.parametrize("where", ["a_file", "a_file/below_it", "no_permission/out"])
def test_an_unusable_out_is_refused_before_training(
    where: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "a_file").write_text("")
    locked = tmp_path / "no_permission"
    locked.mkdir(mode=0o500)
    if where.startswith("no_permission") and os.access(locked, os.W_OK):
        pytest.skip("running as a user that may write anywhere (root)")
    with pytest.raises(SystemExit) as exit_:
        main(["--steps", "3", "--no-progress", "--out", str(tmp_path / where)])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert "cannot write to --out" in err and "training" not in err
