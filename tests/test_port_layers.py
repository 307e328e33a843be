"""Each Keras layer kind and option against its equations in NumPy; the tables both ways;
every refusal names the layer class, its name and the option."""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from port_helpers import (
    NP_ACTIVATIONS,
    keras_arrays,
    layer,
    np_layer,
    sequential,
)

from torch_rnnsin.port import tables
from torch_rnnsin.port.kinds.recurrent import rnn_rows
from torch_rnnsin.port.model import build_model

B, T, F = 3, 6, 2


def run(model, x):
    with torch.no_grad():
        y = model(torch.from_numpy(x.astype(np.float32)))
    return [t.numpy() for t in y] if isinstance(y, list | tuple) else y.numpy()


@pytest.fixture
def x():
    return np.random.default_rng(7).normal(size=(B, T, F)).astype(np.float32)


RECURRENT_CASES = [
    ("SimpleRNN", {}),
    ("SimpleRNN", {"activation": "relu"}),
    ("SimpleRNN", {"use_bias": False}),
    ("SimpleRNN", {"return_sequences": True, "go_backwards": True}),
    ("LSTM", {}),
    ("LSTM", {"use_bias": False, "return_sequences": True}),
    ("LSTM", {"go_backwards": True}),
    ("GRU", {}),
    ("GRU", {"return_sequences": True, "go_backwards": True}),
    ("GRU", {"use_bias": False}),
    ("GRU", {"reset_after": False}),
    ("GRU", {"reset_after": False, "return_sequences": True}),
    ("GRU", {"reset_after": False, "use_bias": False, "go_backwards": True}),
]


@pytest.mark.parametrize(("kind", "opts"), RECURRENT_CASES)
def test_recurrent_layer_matches_its_equations(kind, opts, x):
    H = 3
    rng = np.random.default_rng(len(kind) + len(opts))
    arrays = keras_arrays(
        kind, F, H, rng, opts.get("use_bias", True), opts.get("reset_after", True)
    )
    model = build_model(sequential(F, layer(kind, "rec", units=H, **opts)), {"rec": arrays})
    want = np_layer(
        kind,
        x.astype(np.float64),
        arrays,
        H,
        **{k: v for k, v in opts.items() if k not in ("reset_after", "use_bias")},
        reset_after=opts.get("reset_after", True),
        use_bias=opts.get("use_bias", True),
    )
    assert np.abs(run(model, x) - want).max() < 1e-5
    rnn = model.layers[0].rnn
    fused = {"SimpleRNN": "RNN"}.get(kind, kind)  # torch's own module wherever the maths is its
    assert type(rnn).__name__ == ("OwnRNN" if opts.get("reset_after") is False else fused)


@pytest.mark.parametrize("merge_mode", ["concat", "sum", "mul", "ave", None])
@pytest.mark.parametrize("return_sequences", [True, False])
@pytest.mark.parametrize("kind", ["LSTM", "GRU"])
def test_bidirectional_merges_like_keras_equations(kind, merge_mode, return_sequences, x):
    H = 2
    rng = np.random.default_rng(3)
    fw, bw = keras_arrays(kind, F, H, rng), keras_arrays(kind, F, H, rng)
    inner = layer(kind, "inner", units=H, return_sequences=return_sequences)
    cfg = sequential(F, layer("Bidirectional", "bi", layer=inner, merge_mode=merge_mode))
    model = build_model(cfg, {"bi": fw + bw})
    x64 = x.astype(np.float64)
    f = np_layer(kind, x64, fw, H, return_sequences=return_sequences)
    b = np_layer(kind, x64, bw, H, return_sequences=return_sequences, go_backwards=True)
    if return_sequences:
        b = b[:, ::-1]  # re-aligned in time
    want = {
        "concat": lambda: np.concatenate([f, b], -1),
        "sum": lambda: f + b,
        "mul": lambda: f * b,
        "ave": lambda: (f + b) / 2,
        None: lambda: [f, b],
    }[merge_mode]()
    got = run(model, x)
    if merge_mode is None:
        assert len(got) == 2
        assert max(np.abs(g - w).max() for g, w in zip(got, want, strict=True)) < 1e-5
    else:
        assert np.abs(got - want).max() < 1e-5


@pytest.mark.parametrize("activation", list(NP_ACTIVATIONS))
@pytest.mark.parametrize("wrapper", ["Dense", "TimeDistributed", "Activation"])
def test_dense_heads_and_activations(activation, wrapper, x):
    rng = np.random.default_rng(11)
    kernel, bias = rng.uniform(-1.5, 1.5, (F, 4)).astype(np.float32), rng.uniform(-1, 1, 4)
    dense = layer("Dense", "d", units=4, activation=activation)
    if wrapper == "TimeDistributed":
        cfg = sequential(F, layer("TimeDistributed", "td", layer=dense))
        weights = {"td": [kernel, bias.astype(np.float32)]}
    elif wrapper == "Activation":
        cfg = sequential(
            F,
            layer("Dense", "d", units=4),
            layer("Dropout", "drop", rate=0.5),
            layer("Activation", "act", activation=activation),
        )
        weights = {"d": [kernel, bias.astype(np.float32)]}
    else:
        cfg = sequential(F, dense)
        weights = {"d": [kernel, bias.astype(np.float32)]}
    want = NP_ACTIVATIONS[activation](x.astype(np.float64) @ kernel + bias.astype(np.float32))
    model = build_model(cfg, weights)
    assert np.abs(run(model, x) - want).max() < 1e-5 * max(1.0, np.abs(want).max())


def test_identity_layers_do_nothing(x):
    names = ["Dropout", "SpatialDropout1D", "GaussianNoise", "GaussianDropout", "AlphaDropout"]
    opts = {
        "Dropout": {"rate": 0.5},
        "SpatialDropout1D": {"rate": 0.2, "noise_shape": None},  # as Keras 2 writes it
        "GaussianNoise": {"stddev": 1.0},
    }
    cfg = sequential(
        F,
        *(layer(n, f"l{i}", **opts.get(n, {})) for i, n in enumerate(names)),
        layer("ActivityRegularization", "reg", l1=0.1),
    )
    model = build_model(cfg, {})
    model.train()  # identity even in training mode: the port is inference
    assert np.array_equal(run(model, x), x)
    spatial = model.keras_config()["config"]["layers"][2]
    assert spatial["class_name"] == "SpatialDropout1D"
    assert spatial["config"] == {"name": "l1", "rate": 0.2}  # Keras 3 takes no noise_shape


# --- the tables ------------------------------------------------------------------------------


@st.composite
def layer_cases(draw):
    kind = draw(st.sampled_from(["SimpleRNN", "LSTM", "GRU", "Dense"]))
    reset_after = draw(st.booleans())
    use_bias = draw(st.booleans())
    F, H = draw(st.integers(1, 4)), draw(st.integers(1, 5))
    seed = draw(st.integers(0, 2**16))
    return kind, F, H, use_bias, reset_after, seed


@settings(max_examples=40, deadline=None, derandomize=True)
@given(layer_cases())
def test_keras_torch_keras_is_exact(case):
    kind, F_, H, use_bias, reset_after, seed = case
    arrays = keras_arrays(kind, F_, H, np.random.default_rng(seed), use_bias, reset_after)
    if kind == "Dense":
        cfg = sequential(F_, layer("Dense", "k", units=H, use_bias=use_bias))
    else:
        opts = {"reset_after": reset_after} if kind == "GRU" else {}
        cfg = sequential(F_, layer(kind, "k", units=H, use_bias=use_bias, **opts))
    model = build_model(cfg, {"k": arrays})
    back = [a for group in model.keras_weights()["k"].values() for a in group]
    assert len(back) == len(arrays)
    for a, b in zip(back, arrays, strict=True):
        assert a.shape == b.shape
        assert np.array_equal(a, b)


def test_gru_gate_reorder_and_bias_rows():
    H = 2
    k = np.arange(3 * 3 * H, dtype=np.float32).reshape(3, 3 * H)  # columns z z r r h h
    u = np.zeros((H, 3 * H), np.float32)
    b = np.stack([np.arange(3 * H), 100 + np.arange(3 * H)]).astype(np.float32)
    model = build_model(sequential(3, layer("GRU", "g", units=H)), {"g": [k, u, b]})
    gru = model.layers[0].rnn
    z, r, h = k[:, :H].T, k[:, H : 2 * H].T, k[:, 2 * H :].T
    assert np.array_equal(gru.weight_ih_l0.detach().numpy(), np.concatenate([r, z, h]))
    assert np.array_equal(gru.bias_ih_l0.detach().numpy(), [2, 3, 0, 1, 4, 5])
    assert np.array_equal(gru.bias_hh_l0.detach().numpy(), [102, 103, 100, 101, 104, 105])


def test_single_keras_bias_frozen_and_parameter_count_is_keras():
    H, F_ = 3, 2
    for kind, k in (("SimpleRNN", 1), ("LSTM", 4)):
        arrays = keras_arrays(kind, F_, H, np.random.default_rng(0))
        model = build_model(sequential(F_, layer(kind, "r", units=H)), {"r": arrays})
        rnn = model.layers[0].rnn
        assert not rnn.bias_hh_l0.requires_grad
        assert torch.all(rnn.bias_hh_l0 == 0)
        trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
        assert trainable == sum(a.size for a in arrays) == k * H * (F_ + H + 1)
        with torch.no_grad():  # a bias_hh trained in torch is folded back into Keras's bias
            rnn.bias_hh_l0.fill_(0.5)
        back = model.keras_weights()["r"]["cell"][2]
        assert np.allclose(back, arrays[2] + 0.5)


def test_every_shape_checked_before_copying():
    H = 3
    arrays = keras_arrays("LSTM", F, H, np.random.default_rng(1))
    model = build_model(sequential(F, layer("LSTM", "lstm", units=H)), {"lstm": arrays})
    before = {k: v.clone() for k, v in model.state_dict().items()}
    bad = [arrays[0], arrays[1], np.zeros(4 * H + 1, np.float32)]
    part = tables.Part("cell", model.layers[0].rnn, rnn_rows("LSTM", True, True, own=False))
    with pytest.raises(ValueError, match=r"LSTM 'lstm' bias: expected shape \(12,\), got \(13,\)"):
        tables.keras_to_torch(part, bad, "LSTM 'lstm'")
    for k, v in model.state_dict().items():
        assert torch.equal(v, before[k]), k  # the kernels were not copied either
    with pytest.raises(ValueError, match=r"LSTM 'lstm'.*expected 3 arrays.*got 2"):
        build_model(sequential(F, layer("LSTM", "lstm", units=H)), {"lstm": arrays[:2]})
    with pytest.raises(ValueError, match=r"recurrent_kernel: expected shape \(3, 12\), got"):
        build_model(
            sequential(F, layer("LSTM", "lstm", units=H)),
            {"lstm": [arrays[0], arrays[1][:2], arrays[2]]},
        )


@pytest.mark.parametrize(
    ("array", "match"),
    [
        (np.array([1e39, 0.0]), r"finite float32.*1e\+39"),
        (np.array([np.nan, 0.0]), "finite float32"),
        (np.array([1 + 1j, 0]), "real numbers, got dtype complex128"),
        (np.array(["a", "b"]), "real numbers, got dtype <U1"),
    ],
)
def test_arrays_beyond_float32_or_not_real_are_refused(array, match):
    with pytest.raises(ValueError, match=match):
        tables.as_float32("Dense 'd' bias", array)
    with pytest.raises(ValueError, match=match):
        build_model(
            sequential(1, layer("Dense", "d", units=2)),
            {"d": [np.ones((1, 2), np.float32), array]},
        )


# --- refusals: class, layer name, option ----------------------------------------------------

REFUSED_OPTIONS = [
    ("SimpleRNN", {"activation": "no_such"}, "activation='no_such'"),
    (
        "LSTM",
        {"recurrent_activation": {"class_name": "function", "config": "mine"}},
        "recurrent_activation=",
    ),
    ("LSTM", {"time_major": True}, "time_major=True"),
    ("LSTM", {"dtype": "float16"}, "dtype='float16'"),
    (
        "GRU",
        {"dtype": {"class_name": "DTypePolicy", "config": {"name": "mixed_float16"}}},
        "dtype=",
    ),
    ("SimpleRNN", {"units": 0}, "units=0"),
    ("SimpleRNN", {"units": True}, "units=True"),
    ("LSTM", {"go_backwards": "yes"}, "go_backwards='yes'"),
    ("LSTM", {"cell_clip": 3.0}, "cell_clip=3.0"),
    ("Dense", {"activation": "no_such"}, "activation='no_such'"),
    ("Dense", {"activation": {"class_name": "function", "config": "mine"}}, "activation="),
    ("Dense", {"quantization_config": {"mode": "int8"}}, "quantization_config="),
    ("Dense", {"lora_rank": 4}, "lora_rank=4"),
]


@pytest.mark.parametrize(("cls", "opts", "option"), REFUSED_OPTIONS)
def test_unmapped_option_refused_naming_class_layer_option(cls, opts, option):
    cfg = sequential(F, layer(cls, "my_layer", **{"units": 2, **opts}))
    with pytest.raises(ValueError, match="^" + re.escape(f"{cls} 'my_layer': {option}")) as e:
        build_model(cfg)
    msg = str(e.value)
    assert msg.startswith(f"{cls} 'my_layer': {option}"), msg
    assert "\n" not in msg
    assert "supported" in msg or "ported" in msg


@pytest.mark.parametrize(
    ("entry", "start"),
    [
        (layer("StringLookup", "look"), "StringLookup 'look': layer class StringLookup"),
        (layer("Lambda", "lam", function="x"), "Lambda 'lam': layer class Lambda"),
        (layer("Dropout", "drop", rate=0.1, unknown=1), "Dropout 'drop': unknown=1"),
        (layer("Activation", "a", activation="no_such"), "Activation 'a': activation="),
        (
            layer("TimeDistributed", "td", layer=layer("LSTM", "l", units=2)),
            "LSTM 'l': needs a (batch, time, features) input",
        ),
        (
            layer("Bidirectional", "bi", layer=layer("LSTM", "l", units=2), merge_mode="max"),
            "Bidirectional 'bi': merge_mode='max'",
        ),
        (
            layer("Bidirectional", "bi", layer=layer("Dense", "l", units=2)),
            "Bidirectional 'bi': layer='Dense'",
        ),
        (
            {"class_name": "Sequential", "config": {"name": "inner", "layers": []}},
            "Sequential model config: no layers",
        ),
        (
            {**layer("LSTM", "mine", units=2), "module": "my_pkg", "registered_name": "X>LSTM"},
            "LSTM 'mine': custom layer",
        ),
        (
            {**layer("LSTM", "mine", units=2), "module": "keras_mine"},
            "LSTM 'mine': custom layer",
        ),
    ],
)
def test_unsupported_layers_refused(entry, start):
    with pytest.raises(ValueError, match="^" + re.escape(start)) as e:
        build_model(sequential(F, entry))
    assert str(e.value).startswith(start), str(e.value)
    assert "\n" not in str(e.value)


def test_recurrent_layer_after_a_flat_output_is_refused():
    cfg = sequential(F, layer("LSTM", "a", units=2), layer("GRU", "b", units=2))
    with pytest.raises(ValueError, match=r"GRU 'b': needs a \(batch, time, features\) input"):
        build_model(cfg)


def test_options_without_effect_are_accepted():
    noise = {
        "trainable": False,
        "kernel_initializer": {"class_name": "Zeros"},
        "kernel_regularizer": {"class_name": "L2"},
        "dropout": 0.3,
        "recurrent_dropout": 0.2,
        "unroll": True,
        "stateful": True,
        "implementation": 1,
        "time_major": False,
        "return_state": False,
        "dtype": "float32",
    }
    model = build_model(sequential(F, layer("LSTM", "l", units=2, **noise)))
    assert model.layers[0].rnn.hidden_size == 2


# --- Functional graphs: one chain only --------------------------------------------------------


def node(*sources, **kwargs):
    """A Keras 3 inbound node calling the layer on ``sources`` (layer names)."""
    tensors = [
        {"class_name": "__keras_tensor__", "config": {"keras_history": [s, 0, 0]}} for s in sources
    ]
    return {"args": tensors, "kwargs": kwargs}


def functional(entries, outputs, inputs=("in",)):
    first = {**layer("InputLayer", "in", batch_shape=[None, None, F]), "inbound_nodes": []}
    return {
        "class_name": "Functional",
        "config": {
            "name": "f",
            "layers": [first, *entries],
            "input_layers": [[i, 0, 0] for i in inputs],
            "output_layers": [[o, 0, 0] for o in outputs],
        },
    }


def called(entry, *nodes):
    return {**entry, "inbound_nodes": list(nodes)}


def test_functional_chain_is_ported(x):
    rng = np.random.default_rng(2)
    w = {"l": keras_arrays("LSTM", F, 3, rng), "d": keras_arrays("Dense", 3, 1, rng)}
    cfg = functional(
        [
            called(layer("LSTM", "l", units=3), node("in", training=False, mask=None)),
            called(layer("Dense", "d", units=1), node("l")),
        ],
        ["d"],
    )
    model = build_model(cfg, w)
    want = np_layer("LSTM", x.astype(np.float64), w["l"], 3) @ w["d"][0] + w["d"][1]
    assert np.abs(run(model, x) - want).max() < 1e-5


def test_branches_merges_and_shared_layers(x):
    """One LSTM feeding two heads, an Add of the input and a sequence, a Dense called twice."""
    rng = np.random.default_rng(5)
    w = {
        "trunk": keras_arrays("LSTM", F, F, rng),
        "a": keras_arrays("Dense", F, 1, rng),
        "b": keras_arrays("Dense", F, 2, rng),
    }
    entries = [
        called(layer("LSTM", "trunk", units=F, return_sequences=True), node("in")),
        called(layer("Add", "add"), {"args": [[_t("in"), _t("trunk")]], "kwargs": {}}),
        called(layer("Dense", "a", units=1), node("add")),
        called(layer("Dense", "b", units=2), node("trunk"), node("add")),
    ]
    cfg = functional(entries, ["a", "b"])
    cfg["config"]["output_layers"] = [["a", 0, 0], ["b", 0, 0], ["b", 1, 0]]
    model = build_model(cfg, w)
    seq = np_layer("LSTM", x.astype(np.float64), w["trunk"], F, return_sequences=True)
    added = x + seq
    want = [
        added @ w["a"][0] + w["a"][1],
        seq @ w["b"][0] + w["b"][1],
        added @ w["b"][0] + w["b"][1],
    ]
    got = run(model, x)
    assert len(got) == 3
    assert max(np.abs(g - v).max() for g, v in zip(got, want, strict=True)) < 1e-5
    assert [b.keras_name for b in model.layers] == ["trunk", "add", "a", "b"]  # b once: shared


def _t(name, index=0):
    return {"class_name": "__keras_tensor__", "config": {"keras_history": [name, 0, index]}}


def test_initial_state_from_another_input_continues_the_sequence(x):
    """GRU(initial_state=[h]) with h an input == the same GRU carrying h as its state."""
    w = {"g": keras_arrays("GRU", F, 2, np.random.default_rng(9))}
    h_in = {**layer("InputLayer", "h", batch_shape=[None, 2]), "inbound_nodes": []}
    entries = [
        h_in,
        called(
            layer("GRU", "g", units=2), {"args": [_t("in")], "kwargs": {"initial_state": [_t("h")]}}
        ),
    ]
    cfg = functional(entries, ["g"], inputs=("in", "h"))
    model = build_model(cfg, w)
    plain = build_model(sequential(F, layer("GRU", "g", units=2)), w)
    h = torch.randn(B, 2)
    xt = torch.from_numpy(x)
    with torch.no_grad():
        assert torch.allclose(model(xt, h), plain(xt, state=[h]), atol=1e-6)
        assert not torch.allclose(model(xt, h), plain(xt), atol=1e-3)
    assert [i.name for i in model.inputs] == ["in", "h"]
    assert not model.streamable  # its state comes from another layer


@pytest.mark.parametrize(
    ("entries", "outputs", "start"),
    [
        (  # a layer fed from nowhere
            [
                called(layer("GRU", "g", units=2), node("in")),
                called(layer("Dense", "lost", units=2), node("nowhere")),
            ],
            ["g"],
            "Dense 'lost': takes tensor 'nowhere', which no layer of the model gives",
        ),
        (  # an Add of one tensor
            [called(layer("Add", "add"), node("in"))],
            ["add"],
            "Add 'add': takes at least 2 inputs, got 1",
        ),
    ],
)
def test_broken_graphs_refused(entries, outputs, start):
    with pytest.raises(ValueError, match="^" + re.escape(start)) as e:
        build_model(functional(entries, outputs))
    assert str(e.value).startswith(start), str(e.value)


def test_an_input_that_is_not_an_input_layer_refused():
    entries = [called(layer("Dense", "d", units=1), node("in"))]
    with pytest.raises(ValueError, match="input 'in2' is not an InputLayer"):
        build_model(functional(entries, ["d"], inputs=("in", "in2")))


def test_merge_mode_none_inside_a_sequential_only_last():
    bi = layer("Bidirectional", "bi", layer=layer("GRU", "g", units=2), merge_mode=None)
    with pytest.raises(
        ValueError, match=r"Dense 'd': follows Bidirectional 'bi' with 2 outputs \(merge_mode=None"
    ):
        build_model(sequential(F, bi, layer("Dense", "d", units=1)))
    assert len(build_model(sequential(F, bi)).outputs) == 2


@pytest.mark.parametrize("shape", [[None, 5, 0], [None, "t", 2], [None, 5, True]])
def test_input_shape_must_be_sizes(shape):
    cfg = sequential(F, layer("Dense", "d", units=1))
    cfg["config"]["layers"][0]["config"]["batch_shape"] = shape
    with pytest.raises(
        ValueError, match=r"InputLayer 'input_layer': batch_shape=.*a list of sizes"
    ):
        build_model(cfg)


# --- sizes and depth checked before anything is built --------------------------------------------


@pytest.mark.parametrize(
    ("entry", "match"),
    [
        (
            layer("LSTM", "big", units=10**9),
            r"LSTM 'big': units=1000000000 is not supported \(a positive integer up to",
        ),
        (
            layer("Dense", "wide", units=10**5 * 10**5),
            r"Dense 'wide': units=10000000000 is not supported",
        ),
    ],
)
def test_absurd_sizes_refused_before_any_module_is_built(entry, match):
    with pytest.raises(ValueError, match=match):
        build_model(sequential(F, entry))


def test_input_of_a_billion_features_refused():
    with pytest.raises(
        ValueError, match=r"InputLayer 'input_layer': batch_shape=\[None, None, 1000000000\]"
    ):
        build_model(sequential(10**9, layer("Dense", "d", units=1)))


def test_a_config_bigger_than_its_arrays_allocates_nothing():
    """LSTM(12000) over 12 stored values: refused on the shapes, before 2.5 GB is allocated."""
    import resource

    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    arrays = [np.zeros((1, 4), np.float32), np.zeros((1, 4), np.float32), np.zeros(4, np.float32)]
    with pytest.raises(
        ValueError, match=r"LSTM 'l' kernel: expected shape \(2, 48000\), got \(1, 4\)"
    ):
        build_model(sequential(F, layer("LSTM", "l", units=12000)), {"l": arrays})
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before < 200_000  # KiB


def test_wrapping_depth_bounded():
    inner = layer("Dense", "d", units=2)
    for i in range(40):
        inner = layer("TimeDistributed", f"t{i}", layer=inner)
    cfg = sequential(F, inner, T=5)
    cfg["config"]["layers"][0]["config"]["batch_shape"] = [None, *([2] * 41), F]
    with pytest.raises(ValueError, match="wrapped more than 32 deep"):
        build_model(cfg)


@pytest.mark.parametrize(
    "module", ["keras_mine", "keras_evil; import os", "kerasx.layers", "keras.src.layers.x y"]
)
def test_built_ins_recognised_by_exact_module(module):
    entry = {**layer("SimpleRNN", "s", units=2), "module": module}
    with pytest.raises(ValueError, match=r"SimpleRNN 's': custom layer \(module="):
        build_model(sequential(F, entry))
