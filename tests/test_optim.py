import numpy as np
import pytest
import torch

from torch_rnnsin.lesson.optim import KerasRMSprop


def test_matches_keras_formula_eps_inside_sqrt():
    w0 = np.array([0.5, -1.0, 2.0], np.float64)
    grads = [np.array([0.1, -0.2, 1e-4]), np.array([0.3, 0.0, -2e-4]), np.array([-0.5, 0.1, 3e-4])]
    p = torch.nn.Parameter(torch.tensor(w0, dtype=torch.float64))
    opt = KerasRMSprop([p], lr=0.01, rho=0.9, eps=1e-7)
    w, v = w0.copy(), np.zeros(3)
    for g in grads:
        p.grad = torch.tensor(g)
        opt.step()
        v = 0.9 * v + 0.1 * g**2
        w = w - 0.01 * g / np.sqrt(v + 1e-7)
    np.testing.assert_allclose(p.detach().numpy(), w, rtol=1e-12)


def test_differs_from_torch_rmsprop_for_small_gradients():
    a = torch.nn.Parameter(torch.zeros(1, dtype=torch.float64))
    b = torch.nn.Parameter(torch.zeros(1, dtype=torch.float64))
    ka = KerasRMSprop([a], lr=0.001)
    tb = torch.optim.RMSprop([b], lr=0.001, alpha=0.9, eps=1e-7)
    for opt, p in ((ka, a), (tb, b)):
        p.grad = torch.tensor([1e-4], dtype=torch.float64)
        opt.step()
    assert abs(a.item() - b.item()) > 1e-5  # eps inside vs outside the sqrt


def test_state_dict_round_trip():
    p = torch.nn.Parameter(torch.ones(2))
    opt = KerasRMSprop([p])
    p.grad = torch.ones(2)
    opt.step()
    opt2 = KerasRMSprop([p])
    opt2.load_state_dict(opt.state_dict())
    assert torch.equal(opt2.state[p]["velocity"], opt.state[p]["velocity"])


@pytest.mark.parametrize("kw", [{"lr": 0}, {"lr": float("nan")}, {"rho": 1.0}, {"eps": -1}])
def test_bad_settings(kw):
    (option,) = kw
    with pytest.raises(ValueError, match=f"^{option} must be"):
        KerasRMSprop([torch.nn.Parameter(torch.ones(1))], **kw)


def _train_steps(opt_factory, steps=30):
    torch.manual_seed(0)
    from torch_rnnsin.lesson.model import SinRNN

    m = SinRNN(3)
    opt = opt_factory([p for p in m.parameters() if p.requires_grad])
    x, y = torch.randn(16, 4, 1), torch.randn(16, 1)
    for _ in range(steps):
        opt.zero_grad()
        torch.nn.functional.mse_loss(m(x)[0], y).backward()
        opt.step()
    return m, opt


def test_flat_cpu_buffers_equal_the_per_tensor_update():
    flat_model, flat = _train_steps(lambda ps: KerasRMSprop(ps, lr=0.01))
    assert flat._flat is not None
    # one param group per tensor: the per-tensor (_foreach) path
    per_model, per = _train_steps(lambda ps: KerasRMSprop([{"params": [p]} for p in ps], lr=0.01))
    assert per._flat is None
    for a, b in zip(flat_model.parameters(), per_model.parameters(), strict=True):
        assert torch.equal(a, b)


def test_flat_buffers_survive_state_loading_and_replaced_grads():
    m, opt = _train_steps(lambda ps: KerasRMSprop(ps, lr=0.01), steps=5)
    saved = {k: v.clone() for k, v in m.state_dict().items()}
    opt2 = KerasRMSprop([p for p in m.parameters() if p.requires_grad], lr=0.01)
    opt2.load_state_dict(opt.state_dict())
    assert opt2._flat_intact()
    for p in m.parameters():
        if p.requires_grad:
            p.grad = torch.ones_like(p)  # a new tensor replaces the view
    opt2.step()  # re-packs, then updates every weight
    assert opt2._flat_intact()
    changed = [
        not torch.equal(saved[k], v) for k, v in m.state_dict().items() if k != "rnn.bias_hh_l0"
    ]
    assert all(changed)
