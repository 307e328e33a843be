import numpy as np
import pytest
import torch

from torch_rnnsin.lesson.model import SinRNN


def test_five_trainable_weights_like_keras():
    m = SinRNN(1)
    assert m.num_trainable() == 5
    assert not m.rnn.bias_hh_l0.requires_grad
    assert torch.all(m.rnn.bias_hh_l0 == 0)
    H = 3
    assert SinRNN(H).num_trainable() == H + H * H + H + H + 1


def test_keras_default_init():
    torch.manual_seed(0)
    m = SinRNN(4)
    assert torch.all(m.rnn.bias_ih_l0 == 0)
    assert torch.all(m.dense.bias == 0)
    assert m.rnn.weight_ih_l0.abs().max() <= np.sqrt(6 / 5)
    assert m.dense.weight.abs().max() <= np.sqrt(6 / 5)
    w = m.rnn.weight_hh_l0
    torch.testing.assert_close(w @ w.T, torch.eye(4), atol=1e-5, rtol=0)  # orthogonal
    assert abs(SinRNN(1).rnn.weight_hh_l0.item()) == pytest.approx(1.0)


def test_forward_shapes_and_state():
    m = SinRNN(3)
    x = torch.randn(5, 4, 1)
    y, h = m(x)
    assert y.shape == (5, 1)
    assert h.shape == (5, 3)
    # carrying the state over two halves equals one pass
    _y1, h1 = m(x[:, :2])
    _y2, h2 = m(x[:, 2:], h1)
    torch.testing.assert_close(h2, h)
    seq, states, _last = m.forward_sequence(x)
    assert seq.shape == (5, 4, 1)
    assert states.shape == (5, 4, 3)
    torch.testing.assert_close(seq[:, -1], y)


def test_bad_hidden_size():
    with pytest.raises(ValueError, match="hidden_size"):
        SinRNN(0)
