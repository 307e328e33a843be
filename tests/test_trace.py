"""torch -> Keras (issue 20): Keras's own load_model(...).predict equals the torch module."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import trace_models as tm
from conftest import needs_keras
from port_helpers import keras_predict
from torch import nn

from torch_rnnsin.common.errors import Refused
from torch_rnnsin.lesson.model import SinRNN
from torch_rnnsin.port.trace import save_torch_as_keras

TOL = {"rtol": 1e-5, "atol": 1e-5}
KINDS = {
    "rnn_tanh": lambda *a, **k: nn.RNN(*a, nonlinearity="tanh", **k),
    "rnn_relu": lambda *a, **k: nn.RNN(*a, nonlinearity="relu", **k),
    "lstm": nn.LSTM,
    "gru": nn.GRU,
}
# (num_layers, bidirectional, batch_first, bias): every option both ways, 1..3 layers.
SHAPES = [
    (1, False, True, True),
    (2, True, True, False),
    (3, False, False, True),
    (2, True, False, True),
]


@pytest.fixture(scope="session")
def tf_keras():
    needs_keras("tf_keras", "tensorflow")
    import tf_keras

    return tf_keras


def seeded(seed: int) -> torch.Generator:
    torch.manual_seed(seed)
    return torch.Generator().manual_seed(seed)


def as_list(p) -> list[np.ndarray]:
    return [np.asarray(a) for a in (p if isinstance(p, (list, tuple)) else [p])]


def check_keras(keras, module, inputs: tuple, path, keras2: bool = False) -> list[np.ndarray]:
    """Save, load with Keras, predict; every Keras output equals torch's within 1e-5."""
    module.eval()
    sig = save_torch_as_keras(module, path, inputs, keras2=keras2)
    ins = sig.keras_inputs(*inputs)
    with torch.no_grad():
        want = sig.keras_outputs(module(*inputs))
    got = as_list(keras_predict(keras.models.load_model(path), ins if len(ins) > 1 else ins[0]))
    assert [g.shape for g in got] == [w.shape for w in want]
    for g, w in zip(got, want, strict=True):
        np.testing.assert_allclose(g, w, **TOL)
    # and back through the porter (no Keras): the same numbers again
    from torch_rnnsin import load_keras_model

    back = load_keras_model(path)
    with torch.no_grad():
        again = back(*[torch.from_numpy(np.asarray(x)) for x in ins])
    again = [t.numpy() for t in (again if isinstance(again, tuple) else (again,))]
    for g, w in zip(again, want, strict=True):
        np.testing.assert_allclose(g, w, **TOL)
    return got


@pytest.mark.parametrize("kind", sorted(KINDS))
@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "L{}-bi{:d}-bf{:d}-bias{:d}".format(*s))
def test_recurrent_module_configurations(keras3, tmp_path, kind, shape):
    layers, bi, batch_first, bias = shape
    seeded(layers)
    rnn = KINDS[kind](3, 4, num_layers=layers, bidirectional=bi, batch_first=batch_first, bias=bias)
    with torch.no_grad():
        for p in rnn.parameters():
            p.uniform_(-0.6, 0.6)  # both biases non-zero: their sum must reach Keras
    x = torch.randn((2, 6, 3) if batch_first else (6, 2, 3))
    got = check_keras(keras3, tm.Recurrent(rnn), (x,), tmp_path / "m.keras")
    n_states = (2 if kind == "lstm" else 1) * layers * (2 if bi else 1)
    assert len(got) == 1 + n_states


@pytest.mark.parametrize("kind", ["lstm", "gru", "rnn_relu"])
@pytest.mark.parametrize("bi", [False, True])
def test_last_step_round_trip(keras3, tmp_path, kind, bi):
    """Keras predicts the same, and load_keras_model brings the file back to torch."""
    from torch_rnnsin import load_keras_model

    seeded(7)
    module = tm.LastStep(KINDS[kind](3, 5, num_layers=2, bidirectional=bi, batch_first=True))
    x = torch.randn(3, 7, 3)
    check_keras(keras3, module, (x,), tmp_path / "m.keras")
    try:
        back, refused = load_keras_model(tmp_path / "m.keras"), ""
    except ValueError as e:  # out[:, -1] of a Bidirectional: Cropping1D, not read (yet)
        back, refused = None, str(e)
    if refused:
        assert bi, refused
        assert "Cropping1D" in refused
        return
    with torch.no_grad():
        np.testing.assert_allclose(back(x).numpy(), module(x).numpy(), **TOL)


def test_bigru_classifier(keras3, tmp_path):
    seeded(1)
    got = check_keras(keras3, tm.BiGRUClassifier(), (torch.randn(4, 9, 5),), tmp_path / "c.keras")
    np.testing.assert_allclose(got[0].sum(axis=1), 1.0, **TOL)


def test_language_model_with_state(keras3, tmp_path):
    """(h0, c0) become Keras Inputs feeding initial_state; the state comes back out."""
    seeded(2)
    module = tm.LanguageModel()
    tokens = torch.randint(0, 20, (3, 8))
    h0, c0 = torch.randn(2, 3, 7), torch.randn(2, 3, 7)
    got = check_keras(keras3, module, (tokens, h0, c0), tmp_path / "lm.keras")
    assert len(got) == 1 + 2 + 2  # logits, h per layer, c per layer


def test_language_model_streams_in_keras(keras3, tmp_path):
    """Two chunks through Keras, the state carried, equal one pass through torch."""
    seeded(3)
    module = tm.LanguageModel().eval()
    tokens = torch.randint(0, 20, (2, 10))
    zeros = torch.zeros(2, 2, 7)
    sig = save_torch_as_keras(module, tmp_path / "lm.keras", (tokens[:, :5], zeros, zeros))
    model = keras3.models.load_model(tmp_path / "lm.keras")
    y1, h1a, h1b, c1a, c1b = keras_predict(model, sig.keras_inputs(tokens[:, :5], zeros, zeros))
    y2 = keras_predict(model, [tokens[:, 5:].numpy(), h1a, h1b, c1a, c1b])[0]
    with torch.no_grad():
        want = module(tokens, zeros, zeros)[0].numpy()
    np.testing.assert_allclose(np.concatenate([y1, y2], axis=1), want, **TOL)


def test_cnn_lstm(keras3, tmp_path):
    seeded(4)
    module = tm.CNNLSTM()
    with torch.no_grad():  # running statistics that are not 0 / 1
        module.bn.running_mean.uniform_(-0.5, 0.5)
        module.bn.running_var.uniform_(0.5, 2.0)
    check_keras(keras3, module, (torch.randn(3, 10, 4),), tmp_path / "cnn.keras")


def test_time_major_with_zero_state(keras3, tmp_path):
    seeded(5)
    check_keras(keras3, tm.TimeMajor(), (torch.randn(4, 6, 3),), tmp_path / "t.keras")


def test_per_step_heads(keras3, tmp_path):
    seeded(11)
    check_keras(keras3, tm.Heads(), (torch.randn(2, 5, 3),), tmp_path / "h.keras")


def test_keras_takes_other_lengths(keras3, tmp_path):
    """The time axis is left open: Keras predicts a longer sequence the same as torch."""
    seeded(12)
    module = tm.Recurrent(nn.GRU(3, 4, num_layers=2, batch_first=True)).eval()
    sig = save_torch_as_keras(module, tmp_path / "g.keras", (torch.randn(2, 4, 3),))
    x = torch.randn(2, 11, 3)
    got = as_list(keras_predict(keras3.models.load_model(tmp_path / "g.keras"), x.numpy()))
    with torch.no_grad():
        want = sig.keras_outputs(module(x))
    for g, w in zip(got, want, strict=True):
        np.testing.assert_allclose(g, w, **TOL)


@pytest.mark.parametrize("with_state", [False, True])
def test_sinrnn(keras3, tmp_path, with_state):
    """The lesson's own model: prediction and state, with or without h0."""
    seeded(6)
    model = SinRNN(hidden_size=3)
    x, h0 = torch.randn(5, 4, 1), torch.randn(5, 3)
    got = check_keras(keras3, model, (x, h0) if with_state else (x,), tmp_path / "s.keras")
    assert [g.shape for g in got] == [(5, 1), (5, 3)]


def test_sinrnn_weights_h5(keras3, tmp_path):
    """.weights.h5 loads into the same architecture built in Keras."""
    seeded(8)
    model = SinRNN(hidden_size=2).eval()
    x = torch.randn(4, 3, 1)
    save_torch_as_keras(model, tmp_path / "s.keras", (x,))
    save_torch_as_keras(model, tmp_path / "s.weights.h5", (x,))
    k = keras3.models.load_model(tmp_path / "s.keras")
    for w in k.weights:
        w.assign(np.zeros(w.shape, "float32"))
    k.load_weights(tmp_path / "s.weights.h5")
    np.testing.assert_allclose(keras_predict(k, x.numpy())[0], model(x)[0].detach().numpy(), **TOL)


def test_sinrnn_round_trip_through_porter(tmp_path):
    """load_keras_model reads the file back (no Keras needed): the same prediction."""
    from torch_rnnsin import load_keras_model

    seeded(9)
    model = tm.LastStep(nn.RNN(1, 3, batch_first=True)).eval()
    x = torch.randn(4, 5, 1)
    save_torch_as_keras(model, tmp_path / "s.keras", (x,))
    back = load_keras_model(tmp_path / "s.keras")
    np.testing.assert_allclose(back(x).detach().numpy(), model(x).detach().numpy(), **TOL)


@pytest.mark.parametrize(
    "make",
    [
        tm.BiGRUClassifier,
        tm.LanguageModel,
        tm.CNNLSTM,
        lambda: nn.LSTM(3, 4, 2),
    ],  # a bare nn.LSTM too
)
def test_keras2_h5(tf_keras, tmp_path, make):
    seeded(10)
    module = make()
    inputs = {
        tm.BiGRUClassifier: (torch.randn(3, 6, 5),),
        tm.LanguageModel: (
            torch.randint(0, 20, (3, 5)),
            torch.randn(2, 3, 7),
            torch.randn(2, 3, 7),
        ),
        tm.CNNLSTM: (torch.randn(3, 8, 4),),
    }.get(type(module), (torch.randn(6, 3, 3),))
    check_keras(tf_keras, module, inputs, tmp_path / "m.h5", keras2=True)


def refusal(module, *inputs) -> str:
    with pytest.raises(Refused) as e:
        save_torch_as_keras(module, "unused.keras", inputs)
    msg = str(e.value)
    assert "\n" not in msg
    return msg


@pytest.mark.filterwarnings("ignore:LSTM with projections")
def test_refuses_proj_size():
    msg = refusal(tm.Projected(), torch.randn(2, 4, 3))
    assert "nn.LSTM 'lstm': proj_size=2 is not supported" in msg


def test_refuses_unsupported_op_naming_the_line():
    msg = refusal(tm.Sorting(), torch.randn(2, 4, 3))
    assert "torch.sort is not supported" in msg
    assert "trace_models.py:" in msg
    assert "torch.sort(out, dim=1)" in msg


def test_refuses_data_dependent_control_flow():
    msg = refusal(tm.Branching(), torch.randn(2, 4, 3))
    assert msg.startswith("torch.fx cannot trace the forward pass")
    assert "if out.mean() > 0:" in msg


def test_refuses_keras2_flag_with_keras_extension(tmp_path):
    with pytest.raises(Refused, match="keras2=True"):
        save_torch_as_keras(SinRNN(), tmp_path / "m.h5", (torch.randn(2, 3, 1),))


def test_refuses_inputs_the_module_fails_on():
    msg = refusal(tm.Recurrent(nn.GRU(3, 4, batch_first=True)), torch.randn(2, 4, 5))
    assert msg.startswith("the module fails on the example inputs")
