"""The digits demo: the split, the batches, the NumPy evaluation, training on every backend, the CLI."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from benchmarks.demo import main
from benchmarks.digits import (
    CLASSES,
    DigitsConfig,
    build_model,
    check_numpy_forward,
    confusion_matrix,
    eager_logits,
    epoch_batches,
    load_split,
    numpy_logits,
    train_digits,
)
from benchmarks.training import try_load_backends

BACKENDS, _ = try_load_backends()
PNG = b"\x89PNG\r\n\x1a\n"
#: a small, fast run: one epoch (22 steps of 64 samples) through MLP(64, [2, 10])
TINY = DigitsConfig(hidden=(2,), epochs=1, batch_size=64)


def test_the_split_is_stratified_deterministic_and_scaled() -> None:
    from sklearn.datasets import load_digits

    split, again = load_split(), load_split.__wrapped__()  # cached, and computed afresh
    for name in ("X_train", "y_train", "X_test", "y_test"):
        assert np.array_equal(getattr(split, name), getattr(again, name)), name
    assert split.X_train.shape == (1437, 64) and split.X_test.shape == (360, 64)
    assert split.X_train.min() == 0.0 and split.X_train.max() == 1.0
    total = np.bincount(load_digits().target, minlength=CLASSES)
    test = np.bincount(split.y_test, minlength=CLASSES)
    assert np.array_equal(np.bincount(split.y_train, minlength=CLASSES) + test, total)
    assert np.abs(test - 0.2 * total).max() <= 1  # each class split 80/20
    assert split.T_train.shape == (1437, CLASSES)
    assert np.array_equal(split.T_train.argmax(axis=1), split.y_train)


def test_an_epoch_is_a_seeded_permutation_in_full_batches() -> None:
    batches = list(epoch_batches(10, 3, np.random.default_rng(0)))
    assert [len(b) for b in batches] == [3, 3, 3]  # the tenth sample waits for another epoch
    assert len(set(np.concatenate(batches).tolist())) == 9
    again = list(epoch_batches(10, 3, np.random.default_rng(0)))
    assert all(np.array_equal(a, b) for a, b in zip(batches, again, strict=True))
    rng = np.random.default_rng(0)
    first, second = list(epoch_batches(10, 3, rng)), list(epoch_batches(10, 3, rng))
    assert not all(np.array_equal(a, b) for a, b in zip(first, second, strict=True))


@pytest.mark.parametrize("name", sorted(BACKENDS))
@pytest.mark.parametrize("hidden", [(32,), (8, 6)], ids=["one-hidden", "two-hidden"])
def test_the_numpy_forward_is_the_models_own(name: str, hidden: tuple[int, ...]) -> None:
    config = DigitsConfig(backend=name, hidden=hidden, seed=3)
    model = build_model(config, BACKENDS[name])
    X = load_split().X_test[:5]
    expected = eager_logits(model, X)
    actual = numpy_logits([p.data for p in model.parameters()], config.sizes, X)
    assert actual.shape == expected.shape == (5, CLASSES)
    np.testing.assert_allclose(actual, expected, rtol=1e-12, atol=1e-12)
    assert np.array_equal(actual.argmax(axis=1), expected.argmax(axis=1))
    check_numpy_forward(model, config.sizes, X)


class _Shifted:
    """A model whose outputs are not what its parameters say: the check must notice."""

    def __init__(self, model: object) -> None:
        self.model = model

    def __call__(self, x: list[float]) -> list[object]:
        return [v + 1e-9 for v in self.model(x)]  # type: ignore[operator]

    def parameters(self) -> list[object]:
        return self.model.parameters()  # type: ignore[attr-defined,no-any-return]


def test_the_check_notices_a_numpy_forward_that_differs() -> None:
    config = DigitsConfig(backend="python", hidden=(8,))
    model = build_model(config, BACKENDS["python"])
    with pytest.raises(AssertionError, match="NumPy forward differs from the model's outputs by up to 1e-09"):
        check_numpy_forward(_Shifted(model), config.sizes, load_split().X_test[:2])


def test_confusion_matrix_counts_true_rows_and_predicted_columns() -> None:
    counts = confusion_matrix(np.array([0, 0, 1, 2]), np.array([0, 1, 1, 1]), k=3)
    assert counts.tolist() == [[1, 1, 0], [0, 1, 0], [0, 1, 0]]


def test_every_backend_trains_to_the_same_numbers() -> None:
    results = {name: train_digits(replace(TINY, backend=name)) for name in sorted(BACKENDS)}
    reference = results["python"]
    assert reference.steps == 22 and reference.step_mode == "eager"
    for result in results.values():
        assert result.losses == reference.losses
        assert result.accuracies == reference.accuracies
        assert np.array_equal(result.predictions, reference.predictions)


def test_the_same_seed_gives_the_same_run() -> None:
    first, again = (train_digits(replace(TINY, seed=4)) for _ in range(2))
    other = train_digits(replace(TINY, seed=5))
    assert first.losses == again.losses and first.losses != other.losses


@pytest.mark.skipif("numba" not in BACKENDS, reason="the Numba backend does not import here")
def test_the_default_run_writes_its_pictures_and_reaches_95_percent(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # The defaults, as `nox -s demo -- --dataset digits` runs them: a few seconds on Numba.
    assert main(["--dataset", "digits", "--no-progress", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    names = ["confusion.png", "curves.png", "misclassified.png", "summary.json"]
    assert sorted(p.name for p in tmp_path.iterdir()) == names
    for name in names[:3]:
        assert (tmp_path / name).read_bytes().startswith(PNG)
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["backend"] == "numba" and summary["step_mode"] == "replay"
    assert summary["config"] == {
        "backend": "numba",
        "hidden": [32],
        "epochs": 15,
        "batch_size": 32,
        "optimizer": "adam",
        "lr": 0.01,
        "init": "scaled",
        "seed": 0,
    }
    assert summary["train_samples"] == 1437 and summary["test_samples"] == 360
    assert summary["parameters"] == 64 * 32 + 32 + 32 * 10 + 10
    assert summary["epochs"] == len(summary["history"]) == 15 and summary["steps"] == 15 * 44
    assert 0.95 <= summary["test_accuracy"] <= 1.0
    assert summary["test_accuracy"] == summary["history"][-1]["test_accuracy"]
    assert (
        0 < summary["capture_seconds"] < summary["train_seconds"] == summary["history"][-1]["train_seconds"]
    )
    assert summary["target"]["seconds_to_accuracy"] is not None
    confusion = np.array(summary["confusion"])
    assert confusion.shape == (10, 10) and confusion.sum() == 360
    assert np.trace(confusion) == round(360 * summary["test_accuracy"])
    assert "test accuracy" in out and "ms/step" in out and "summary.json" in out


def test_the_progress_bar_shows_loss_and_test_accuracy(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["--dataset", "digits", "--hidden", "2", "--epochs", "2", "--batch-size", "64"]
    assert main([*argv, "--optimizer", "momentum", "--out", str(tmp_path)]) == 0
    err = capsys.readouterr().err
    assert "digits" in err and "loss=" in err and "test acc=" in err
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["config"]["optimizer"] == "momentum" and summary["config"]["lr"] == 0.1
    assert len(summary["history"]) == 2


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--epochs", "0"], "epochs must be an integer from 1 to 10,000"),
        (["--epochs", str(10**22)], "epochs must be an integer from 1 to 10,000"),
        (["--epochs", "two"], "invalid int value"),
        (["--batch-size", "0"], "batch size must be an integer from 1"),
        (["--batch-size", "5000"], "at most the 1437 training samples"),
        (["--lr", "-1"], "lr must be a positive number"),
        (["--lr", "nan"], "lr must be a positive number"),
        (["--optimizer", "sgd"], "invalid choice: 'sgd'"),
        (["--init", "xavier"], "invalid choice: 'xavier'"),
        (["--hidden", "32,0"], "layer sizes must be from 1 to 4096"),
        (["--seed", "-1"], "seed must be an integer >= 0"),
        (["--backend", "nonesuch"], "no gradspec backend named 'nonesuch'"),
        (["--steps", "3"], "unrecognized arguments: --steps 3"),  # a moons option
    ],
)
def test_bad_options_exit_with_a_message(
    argv: list[str], message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["--dataset", "digits", *argv, "--out", str(tmp_path / "out")])
    assert exit_.value.code == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "out").exists()  # refused before anything was made


def test_an_unwritable_out_is_refused_before_training(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with pytest.raises(SystemExit) as exit_:
        main(["--dataset", "digits", "--out", str(blocker / "out")])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert "cannot write to --out" in err and "epoch/s" not in err  # no progress bar: no training


def test_help_tells_each_demo_apart(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["--help"])
    assert "--dataset digits --help" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        main(["--dataset", "digits", "--help"])
    out = capsys.readouterr().out
    assert "--batch-size" in out and "--epochs" in out and "--steps" not in out
