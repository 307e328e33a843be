import numpy as np
import pytest
import torch

from torch_rnnsin.optim import KerasRMSprop


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
    with pytest.raises(ValueError):
        KerasRMSprop([torch.nn.Parameter(torch.ones(1))], **kw)
