"""Graphs, token inputs, masks and state between layers, judged by Keras itself: every model of
tests/graph_models.py (Keras 3 .keras and .h5, Keras 2 .h5) ported, run on the inputs Keras ran,
compared output by output; written back as .keras, loaded and run by Keras 3 again."""

from __future__ import annotations

import json
from pathlib import Path

import kcache
import numpy as np
import pytest
import torch
from conftest import build_graph_models, needs_keras, shared_tmp

from torch_rnnsin.port.model import load_keras_model, save_keras_model

pytestmark = pytest.mark.keras
HERE = Path(__file__).parent


def _keras(*args: str) -> None:
    """tests/graph_models.py in the session's Keras 3 worker (tests/kcache.py): no new TensorFlow."""
    err = kcache.run_script(HERE / "graph_models.py", list(args), "k3").wait()
    assert err is None, err


@pytest.fixture(scope="session")
def built(tmp_path_factory) -> Path:
    """The Keras models, built once for all xdist workers."""
    needs_keras("keras", "tensorflow", "tf_keras")
    return build_graph_models(shared_tmp(tmp_path_factory))


def _cases() -> list[str]:
    # the names are fixed by graph_models.cases(); listed here so that pytest can collect them
    k = ["emb_mask_SimpleRNN_pre", "emb_mask_LSTM_post", "emb_mask_GRU_holes"]
    for kind in ("SimpleRNN", "LSTM", "GRU"):
        k += [f"masking_{kind}", f"state_between_{kind}"]
    k += ["seq2seq_train", "seq2seq_encoder", "seq2seq_decoder", "text_classifier"]
    k += ["babi_two_inputs", "video_bool_mask", "relu_hard_sigmoid", "elu_selu_reset_before"]
    k += ["rnn_cells", "merges", "shared_layer", "nested", "hierarchical_td_lstm"]
    k2 = ["k2_stateful_fixed_batch", "k2_float_ids_masks_merged", "k2_cudnn"]
    return [f"k3_{n}" for n in k] + [f"k2_{n}" for n in k] + k2


CASES = _cases()


def _io(built: Path, case: str):
    with np.load(built / f"{case}.npz") as z:
        xs = [z[k] for k in sorted(z.files) if k.startswith("x")]
        ys = [z[k] for k in sorted(z.files) if k.startswith("y")]
    return xs, ys


def _run(model, xs) -> list[np.ndarray]:
    with torch.no_grad():
        y = model(*[torch.from_numpy(x) for x in xs])
    return [t.numpy() for t in (y if isinstance(y, tuple) else (y,))]


def assert_close(got, want, what: str) -> None:
    assert len(got) == len(want), f"{what}: {len(got)} outputs, Keras {len(want)}"
    for i, (g, w) in enumerate(zip(got, want, strict=True)):
        assert g.shape == w.shape, f"{what} output {i}: shape {g.shape}, Keras {w.shape}"
        err = np.abs(g.astype(np.float64) - w) / np.maximum(1.0, np.abs(w))
        assert float(err.max()) <= 1e-5, f"{what} output {i}: {float(err.max()):.2e}"


def test_every_case_was_built(built):
    assert sorted(json.loads((built / "cases.json").read_text())) == sorted(CASES)


@pytest.mark.parametrize("case", CASES)
def test_ported_model_predicts_what_keras_predicted(built, case):
    xs, want = _io(built, case)
    spec = json.loads((built / "cases.json").read_text())[case]
    for name in spec["files"]:
        model = load_keras_model(built / name)
        assert [tuple(d for d in i.shape[1:]) for i in model.inputs] == [
            tuple(None if d is None else d for d in i.shape[1:]) for i in model.inputs
        ]
        assert len(model.inputs) == len(xs)
        assert_close(_run(model, xs), want, name)


@pytest.fixture(scope="session")
def written_back(built, tmp_path_factory) -> Path:
    """Every Keras 3 .keras case ported and written back as .keras; Keras 3 predicts them all
    in one process."""
    from filelock import FileLock

    root = shared_tmp(tmp_path_factory)
    out = root / "graph_models_back"
    with FileLock(str(root / "graph_models_back.lock")):
        if not (out / "done").exists():
            out.mkdir(exist_ok=True)
            for case in CASES:
                src = built / json.loads((built / "cases.json").read_text())[case]["files"][0]
                path = out / f"{case}.keras"
                (out / f"{case}.npz").write_bytes((built / f"{case}.npz").read_bytes())
                try:
                    save_keras_model(load_keras_model(src), path, overwrite=True)
                except ValueError as e:  # reported by the case's own test
                    (out / f"{case}.error").write_text(str(e))
            _keras("predict", str(out))
            (out / "done").write_text("")
    return out


KERAS2_HARD_SIGMOID = ("k2_relu_hard_sigmoid", "k2_elu_selu_reset_before")


@pytest.mark.parametrize("case", [c for c in CASES if c not in KERAS2_HARD_SIGMOID])  # + cudnn
def test_written_back_keras_predicts_the_same(written_back, case):
    _, want = _io(written_back, case)
    for err in (written_back / f"{case}.error", written_back / f"{case}.out.error"):
        assert not err.exists(), err.read_text()
    with np.load(written_back / f"{case}.out.npz") as z:
        got = [z[f"y{i}"] for i in range(len(z.files))]
    assert_close(got, want, f"{case} written back")


@pytest.mark.parametrize("case", KERAS2_HARD_SIGMOID)
def test_keras2_hard_sigmoid_is_not_written_as_keras3(written_back, case):
    """Keras 3 has no clip(0.2x + 0.5): refused on the way back, never another formula."""
    err = (written_back / f"{case}.error").read_text()
    assert "Keras 2's hard_sigmoid (clip(0.2x + 0.5)) differs from Keras 3's" in err


def test_masks_change_the_result(built):
    """The judge is sound: without its mask, a masked model gives other numbers."""
    xs, want = _io(built, "k2_emb_mask_GRU_holes")
    model = load_keras_model(built / "k2_emb_mask_GRU_holes.h5")
    model.layers[0].mask_zero = False
    assert not np.allclose(_run(model, xs)[0], want[0], atol=1e-3)


def test_seq2seq_states_stream_between_models(built):
    """The encoder's states fed to the decoder model == the training model's output."""
    enc = load_keras_model(built / "k3_seq2seq_encoder.keras")
    dec = load_keras_model(built / "k3_seq2seq_decoder.keras")
    xs, want = _io(built, "k3_seq2seq_train")
    with torch.no_grad():
        h, c = enc(torch.from_numpy(xs[0]))
        y, _, _ = dec(torch.from_numpy(xs[1]), h, c)
    assert_close([y.numpy()], want, "encoder -> decoder")
    assert len(dec.inputs) == 3
    assert len(dec.outputs) == 3


def test_stateful_model_keeps_its_fixed_batch(built):
    model = load_keras_model(built / "k2_stateful_fixed_batch.h5")
    assert model.inputs[0].shape[0] == 4
    with pytest.raises(ValueError, match=r"input .*: expected a tensor of shape \(4, 6, 3\)"):
        model(torch.zeros(3, 6, 3))


def test_string_inputs_refused_naming_the_layer(keras3, tmp_path):
    """A TextVectorization inside the model: refused naming it, not the InputLayer."""
    L = keras3.layers
    x = keras3.Input((1,), dtype="string")
    vec = L.TextVectorization(max_tokens=20, output_sequence_length=5)
    vec.adapt(["a b c", "b c d"])
    h = L.LSTM(2)(L.Embedding(20, 3)(vec(x)))
    keras3.Model(x, h).save(tmp_path / "text.keras")
    with pytest.raises(
        ValueError,
        match=r"TextVectorization 'text_vectorization.*': takes a string input, not ported \(string preprocessing",
    ):
        load_keras_model(tmp_path / "text.keras")
