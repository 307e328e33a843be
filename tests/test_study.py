"""The study: early stopping in the batched trainer, the learning-rate choice, the
verdict on small synthetic tables both ways, --out checked before any training,
and a tiny grid end to end."""

from __future__ import annotations

import csv
import itertools
import json

import numpy as np
import pandas as pd
import pytest
import torch

from torch_rnnsin import cli
from torch_rnnsin.commands import study as command
from torch_rnnsin.lesson.convert import keras_to_torch
from torch_rnnsin.lesson.data import make_windows, sine_wave, split_series
from torch_rnnsin.lesson.metrics import prediction_mse
from torch_rnnsin.lesson.predict import predict_stateful, predict_stateless
from torch_rnnsin.lesson.study import report, trainer
from torch_rnnsin.lesson.study.grid import StudyConfig, validate
from torch_rnnsin.lesson.study.groups import init_weights, predictions

# --- early stopping ------------------------------------------------------------


def _windows(seed, seq_len=2):
    train, _ = split_series(sine_wave(10, 60, 0.2, seed=seed)["sin_t"].to_numpy())
    fit, val = train[:300], train[300:]
    return make_windows(fit, seq_len), make_windows(val, seq_len)


def _early_stopping_run(members, stop):
    """Stateless training of ``members`` [(seed, lr)] as one batch, early stopping."""
    data = [_windows(s) for s, _ in members]
    X = torch.from_numpy(np.stack([f[0][:, :, 0] for f, _ in data]))
    y = torch.from_numpy(np.stack([f[1] for f, _ in data]))
    Xv = torch.from_numpy(np.stack([v[0][:, :, 0] for _, v in data]))
    yv = torch.from_numpy(np.stack([v[1] for _, v in data]))
    model = trainer.ModelBatch([init_weights(s, 1) for s, _ in members])

    def epoch(batch, lr, rows):
        return trainer.batch_stateless_epoch(batch, X[rows], y[rows], 64, lr)

    def val_loss(batch, rows):
        return trainer.windows_loss(batch, Xv[rows], yv[rows])

    out = trainer.fit(model, [lr for _, lr in members], epoch, val_loss, stop)
    return model, out, (Xv, yv)


def test_early_stopping_keeps_the_best_weights_and_freezes_stopped_models():
    stop = trainer.Stopping(max_epochs=45, patience=15, min_improvement=0.01)
    members = [(0, 0.05), (1, 0.01)]
    model, out, (Xv, yv) = _early_stopping_run(members, stop)
    # the fast learner stops by patience, the slower one runs into the cap
    assert out.converged.tolist() == [True, False]
    assert stop.patience < out.epochs_trained[0] < out.epochs_trained[1] == stop.max_epochs
    assert np.all(out.best_epoch <= out.epochs_trained)
    # each model ends on the weights of its recorded best validation loss
    np.testing.assert_allclose(trainer.windows_loss(model, Xv, yv).numpy(), out.val_loss, rtol=1e-6)
    # a model's result does not depend on its batch: alone, the same epochs and weights
    for m, member in enumerate(members):
        alone, out1, _ = _early_stopping_run([member], stop)
        assert out1.epochs_trained[0] == out.epochs_trained[m]
        assert out1.best_epoch[0] == out.best_epoch[m]
        np.testing.assert_allclose(alone.flat[0].numpy(), model.flat[m].numpy(), atol=1e-6)


# --- the learning rate and the verdict from tables --------------------------------


def _table(wins: dict, const: set = frozenset(), lrs=(0.01,), val=None, test_bias=None):
    """Synthetic study rows: ``wins[(hidden, mode)]`` = share of models where stateful
    prediction beats stateless."""
    rows = []
    for (h, mode), share in wins.items():
        cells = list(itertools.product((2, 5), (0.0, 0.2), (0, 1, 2)))
        for i, ((L, noise, seed), lr) in enumerate(itertools.product(cells, lrs)):
            stateless = 0.09 if mode == "stateless" else 0.1
            stateful = 0.05 if i < share * len(cells) * len(lrs) else 0.2
            for pm, mse in (("stateless", stateless), ("stateful", stateful)):
                rows.append(
                    {
                        "hidden": h,
                        "train_mode": mode,
                        "noise": noise,
                        "seq_len": L,
                        "seed": seed,
                        "lr": lr,
                        "predict_mode": pm,
                        "mse": mse + (test_bias or {}).get(lr, 0.0),
                        "val_loss": (val or {}).get(lr, 0.01),
                        "converged": True,
                        "constant_level": (h, mode, L) in const,
                        "target_spread": 1.0,
                    }
                )
    return pd.DataFrame(rows)


def test_verdict_yes_when_stateful_prediction_always_loses():
    df = _table({(1, "stateless"): 0.0, (1, "stateful-seq"): 0.0, (4, "stateless"): 0.0})
    v = report.verdict(df)
    assert v.startswith("**Yes**")
    assert "hidden 1: yes" in v
    assert "hidden 4: yes" in v
    assert "in every one of its 24 models" in v
    assert "lowest test MSE at every noise level comes from stateless training" in v


def test_verdict_no_when_stateful_training_makes_stateful_prediction_win():
    df = _table({(1, "stateless"): 0.0, (1, "stateful-seq"): 0.75, (4, "stateless"): 0.0})
    v = report.verdict(df)
    assert v.startswith("**No.**")
    assert (
        "hidden 1: no, stateful prediction beats stateless prediction of the same weights "
        "trained `stateful-seq` in 9 of 12 models" in v
    )
    assert "hidden 4: yes" in v


def test_verdict_leaves_constant_level_models_out():
    # the stateful wins are all in constant-level models: they do not count
    df = _table({(1, "stateless"): 0.0, (1, "stateful-last"): 0.5}, const={(1, "stateful-last", 2)})
    assert report.mode_counts(df)[(1, "stateful-last")] == (0, 6, pytest.approx(2.0))
    assert report.verdict(df).startswith("**Yes**")


def test_learning_rate_chosen_by_validation_loss_never_by_test_loss():
    # lr 0.03 has the lower validation loss, lr 0.01 the lower test loss
    df = _table(
        {(1, "stateless"): 0.0},
        lrs=(0.01, 0.03),
        val={0.01: 1e-2, 0.03: 1e-3},
        test_bias={0.03: 0.3},
    )
    chosen, table = report.choose_lrs(df, (0.01, 0.03))
    assert chosen == {(1, "stateless"): 0.03}
    # ... unless its models did not converge
    df.loc[df.lr == 0.03, "converged"] = False
    chosen, table = report.choose_lrs(df, (0.01, 0.03))
    assert chosen == {(1, "stateless"): 0.01}
    assert table.set_index("lr").loc[0.03, "converged"] == 0.0


def test_the_trap_targets_of_seq_len_5_are_zero_crossings():
    cfg = StudyConfig()
    phases = report.target_phases(cfg, 5)
    assert phases == [0, 5]
    assert np.abs(np.sin(2 * np.pi * np.array(phases) / cfg.steps_per_cycle)).max() < 1e-9
    assert len(report.target_phases(cfg, 3)) == cfg.steps_per_cycle  # every phase


# --- the batched predictions are predict.py's --------------------------------------


def test_batched_predictions_equal_predict_and_prediction_mse():
    ws = [init_weights(s, 3) for s in (0, 1)]
    series = [sine_wave(10, 8, n, seed=2)["sin_t"].to_numpy() for n in (0.0, 0.3)]
    got = predictions(trainer.ModelBatch(ws), series, 3)
    for m, (w, v) in enumerate(zip(ws, series, strict=True)):
        model = keras_to_torch(w)
        for mode, want in (
            ("stateless", predict_stateless(model, v, 3)[0]),
            ("stateful", predict_stateful(model, v)[0]),
        ):
            np.testing.assert_allclose(got[mode][m], want, atol=1e-6)
            assert prediction_mse(got[mode][m], v, mode, 3) == pytest.approx(
                prediction_mse(want, v, mode, 3), rel=1e-5
            )


# --- settings and --out, before any training ---------------------------------------


TINY = [
    "--seq-lens", "2", "--noises", "0", "--hiddens", "1,2", "--seeds", "0",
    "--lrs", "0.01", "--train-modes", "stateless,stateful-seq", "--max-epochs", "25",
    "--patience", "5", "--cycles", "60", "--batch-size", "50", "--streams", "5",
    "--workers", "1",
]  # fmt: skip


def main(argv: list[str]) -> int:
    """The study command, as ``python -m torch_rnnsin study ARGV`` runs it."""
    return cli.main(["study", *argv], prog="python -m torch_rnnsin")


@pytest.fixture
def no_training(monkeypatch):
    from torch_rnnsin.lesson.study import groups

    def boom(*a, **k):
        raise AssertionError("training started")

    monkeypatch.setattr(groups, "run_grid", boom)


@pytest.mark.parametrize(
    ("make", "msg"),
    [
        (lambda p: p.write_text("x"), "out is not a folder"),
        (lambda p: (p.mkdir(), (p / "notes.txt").write_text("mine")), "not a study's (notes.txt)"),
        (lambda p: None, None),  # a new folder is fine (checked, nothing created)
    ],
)
def test_out_is_checked_before_training(tmp_path, no_training, capsys, make, msg):
    out = tmp_path / "out"
    make(out)
    before = sorted(p.name for p in tmp_path.rglob("*"))
    if msg is None:
        assert command.check_out(out) is False
        assert not out.exists()
        return
    assert main([*TINY, "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert msg in err
    assert len(err.strip().splitlines()) == 1
    assert sorted(p.name for p in tmp_path.rglob("*")) == before  # nothing written


def test_a_training_run_folder_is_not_a_study_folder(tmp_path, no_training, capsys):
    from torch_rnnsin.common.runfolder import open_run_folder

    with open_run_folder(tmp_path / "run", kind="train"):
        pass
    assert main([*TINY, "--out", str(tmp_path / "run")]) == 2
    assert "holds a train run, not a study" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("flags", "msg"),
    [
        (["--lrs", "0"], "--lrs 0: must be numbers in (0, 1]"),
        (["--train-modes", "stateless,bogus"], "--train-modes stateless,bogus: must be among"),
        (["--seq-lens", "400"], "--seq-lens 400: the longest window needs 401 points"),
    ],
)
def test_bad_settings_one_line_before_training(tmp_path, no_training, capsys, flags, msg):
    assert main([*TINY, *flags, "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert msg in err
    assert len(err.strip().splitlines()) == 1
    assert not (tmp_path / "o").exists()


def test_unparsable_list_is_a_parse_error(capsys):
    with pytest.raises(SystemExit) as e:
        main(["--seq-lens", "2,x"])
    assert e.value.code == 2
    assert "'2,x': give comma-separated integers" in capsys.readouterr().err


def test_defaults_come_from_the_training_run():
    from torch_rnnsin.lesson.config import TrainConfig

    cfg, run = StudyConfig(), TrainConfig()
    for name in ("cycles", "steps_per_cycle", "test_size", "batch_size", "streams"):
        assert getattr(cfg, name) == getattr(run, name)
    assert cfg.lesson_lr == run.lr
    validate(cfg)
    validate(StudyConfig.quick())


# --- a tiny grid end to end --------------------------------------------------------


def test_tiny_study_end_to_end(tmp_path):
    out = tmp_path / "study"
    assert main([*TINY, "--out", str(out)]) == 0
    with open(out / "study.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    for col in ("hidden", "lr", "epochs_trained", "converged", "constant_level", "selected"):
        assert col in rows[0]
    # 2 hidden x 2 modes x 1 model at the swept lr, + the lesson's cell at 0.001: x 2 predictions
    assert len(rows) == 2 * (2 * 2 + 2)
    assert {r["lr"] for r in rows} == {"0.01", "0.001"}
    assert {r["hidden"] for r in rows} == {"1", "2"}
    assert all(np.isfinite(float(r["mse"])) for r in rows)
    assert all(1 <= int(r["epochs_trained"]) <= 25 for r in rows)
    text = (out / "report.md").read_text()
    sel = [r for r in rows if r["selected"] == "True" and r["predict_mode"] == "stateless"]
    conv = sum(r["converged"] == "True" for r in sel)
    assert f"{conv} of {len(sel)} models" in text  # the numbers come from the table
    assert "at most 25 epochs" in text
    assert "1000 epochs" not in text
    # the answer is the verdict of the selected rows of study.csv, read back
    table = pd.read_csv(out / "study.csv")
    assert f"## Answer\n\n{report.verdict(table[table.selected])}\n" in text
    assert json.loads((out / "study.json").read_text())["settings"]["max_epochs"] == 25
    for png in ("mse_vs_seq_len.png", "traces.png"):
        assert (out / png).read_bytes()[:4] == b"\x89PNG"
    # a study folder of ours may be written again; its outputs are replaced
    assert main([*TINY, "--max-epochs", "10", "--out", str(out)]) == 0
    assert "at most 10 epochs" in (out / "report.md").read_text()
