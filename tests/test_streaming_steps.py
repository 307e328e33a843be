"""Streaming is only exact when every layer that sees the time axis computes each step from the
same step: each registered layer kind declares it (``Block.per_step`` / ``mixes_steps`` /
``timed_outputs``), and this file holds every declaration to what the block computes.

A probe perturbs one input step and looks at which output steps move, and rolls the input
along time: a kind declared step by step must move that step only and roll along (the same
function at every step); a kind declared to mix steps must move others, change the number of
steps, or depend on the step's position. Recurrent kinds must give, in two chunks with the state handed on, what one
call gives. The blocks themselves are held to Keras in the kind tests; the model-level rule
(``PortedModel.streamable``) is held to Keras in test_port_graphs / port --check.
"""

from __future__ import annotations

import pytest
import torch

from torch_rnnsin.port.kinds import build
from torch_rnnsin.port.kinds.base import KINDS, Layer, Spec

T = 6
DENSE = {"class_name": "Dense", "config": {"units": 2}}
LSTM = {"class_name": "LSTM", "config": {"units": 3, "return_sequences": True}}
CELL = {"class_name": "GRUCell", "config": {"units": 3}}

# id: (class, config, input shape without batch (None: the free time axis), inputs, expected)
# expected: "step" (each step alone), "mixes", "carry" (recurrent, state carried),
# "backwards" (recurrent, reads the sequence from its end: never streamed), "refused" (declared
# to mix though it does not: channels_first pooling keeps channels apart, but its axis 1, the
# streamed one, is channels, not time)
CASES = {
    "Activation-tanh": ("Activation", {"activation": "tanh"}, (None, 4), 1, "step"),
    "Activation-softmax": ("Activation", {"activation": "softmax"}, (None, 4), 1, "step"),
    "Activation-softmax-rank2": ("Activation", {"activation": "softmax"}, (None,), 1, "mixes"),
    "ActivityRegularization": ("ActivityRegularization", {}, (None, 4), 1, "step"),
    "AlphaDropout": ("AlphaDropout", {"rate": 0.1}, (None, 4), 1, "step"),
    "Dropout": ("Dropout", {"rate": 0.5}, (None, 4), 1, "step"),
    "GaussianDropout": ("GaussianDropout", {"rate": 0.1}, (None, 4), 1, "step"),
    "GaussianNoise": ("GaussianNoise", {"stddev": 0.1}, (None, 4), 1, "step"),
    "SpatialDropout1D": ("SpatialDropout1D", {"rate": 0.1}, (None, 4), 1, "step"),
    "SpatialDropout2D": ("SpatialDropout2D", {"rate": 0.1}, (None, 3, 4), 1, "step"),
    "SpatialDropout3D": ("SpatialDropout3D", {"rate": 0.1}, (None, 3, 3, 4), 1, "step"),
    **{m: (m, {}, (None, 4), 2, "step") for m in ("Add", "Subtract", "Multiply", "Average")},
    **{m: (m, {}, (None, 4), 2, "step") for m in ("Maximum", "Minimum")},
    "Concatenate-features": ("Concatenate", {"axis": -1}, (None, 4), 2, "step"),
    "Concatenate-time": ("Concatenate", {"axis": 1}, (None, 4), 2, "mixes"),
    "Dot": ("Dot", {"axes": 2}, (None, 4), 2, "mixes"),
    "Attention": ("Attention", {}, (None, 4), 2, "mixes"),
    "AdditiveAttention": ("AdditiveAttention", {}, (None, 4), 2, "mixes"),
    "MultiHeadAttention": ("MultiHeadAttention", {"num_heads": 2, "key_dim": 3}, (None, 4), 2, "mixes"),
    "MaxPooling1D": ("MaxPooling1D", {"pool_size": 2}, (None, 4), 1, "mixes"),
    "MaxPooling1D-1": ("MaxPooling1D", {"pool_size": 1, "strides": 1}, (None, 4), 1, "step"),
    "AveragePooling1D": ("AveragePooling1D", {"pool_size": 3, "strides": 1, "padding": "same"}, (None, 4), 1, "mixes"),
    "AveragePooling1D-cf": ("AveragePooling1D", {"pool_size": 1, "data_format": "channels_first"}, (4, None), 1, "refused"),
    "MaxPooling2D": ("MaxPooling2D", {"pool_size": [2, 2]}, (None, 4, 3), 1, "mixes"),
    "AveragePooling2D-1x2": ("AveragePooling2D", {"pool_size": [1, 2]}, (None, 4, 3), 1, "step"),
    "MaxPooling3D": ("MaxPooling3D", {"pool_size": [2, 2, 2]}, (None, 4, 4, 2), 1, "mixes"),
    "AveragePooling3D": ("AveragePooling3D", {"pool_size": [1, 2, 2]}, (None, 4, 4, 2), 1, "step"),
    **{
        f"Global{op}Pooling{n}D": (f"Global{op}Pooling{n}D", {}, shape, 1, "mixes")
        for op in ("Max", "Average")
        for n, shape in ((1, (None, 4)), (2, (None, 4, 3)), (3, (None, 3, 3, 2)))
    },
    "BatchNormalization": ("BatchNormalization", {}, (None, 4), 1, "step"),
    "LayerNormalization": ("LayerNormalization", {}, (None, 4), 1, "step"),
    "LayerNormalization-time": ("LayerNormalization", {"axis": [1, 2]}, (T, 4), 1, "mixes"),
    "GroupNormalization": ("GroupNormalization", {"groups": 2}, (None, 4), 1, "mixes"),
    "RMSNormalization": ("RMSNormalization", {}, (None, 4), 1, "step"),
    "UnitNormalization": ("UnitNormalization", {}, (None, 4), 1, "step"),
    "UnitNormalization-time": ("UnitNormalization", {"axis": 1}, (T, 4), 1, "mixes"),
    "Conv1D": ("Conv1D", {"filters": 3, "kernel_size": 3, "padding": "causal"}, (None, 4), 1, "mixes"),
    "Conv1D-1": ("Conv1D", {"filters": 3, "kernel_size": 1}, (None, 4), 1, "step"),
    "Conv1D-1-stride2": ("Conv1D", {"filters": 3, "kernel_size": 1, "strides": 2}, (None, 4), 1, "mixes"),
    "Conv1D-cf": ("Conv1D", {"filters": 3, "kernel_size": 1, "data_format": "channels_first"}, (4, None), 1, "mixes"),
    "Conv2D-1x3": ("Conv2D", {"filters": 2, "kernel_size": [1, 3], "padding": "same"}, (None, 5, 3), 1, "step"),
    "Conv2D-3x3": ("Conv2D", {"filters": 2, "kernel_size": [3, 3], "padding": "same"}, (None, 5, 3), 1, "mixes"),
    "Conv3D-1x2x2": ("Conv3D", {"filters": 2, "kernel_size": [1, 2, 2]}, (None, 4, 4, 2), 1, "step"),
    "Conv1DTranspose": ("Conv1DTranspose", {"filters": 2, "kernel_size": 3}, (None, 4), 1, "mixes"),
    "DepthwiseConv1D": ("DepthwiseConv1D", {"kernel_size": 3, "padding": "same"}, (None, 4), 1, "mixes"),
    "DepthwiseConv1D-1": ("DepthwiseConv1D", {"kernel_size": 1}, (None, 4), 1, "step"),
    "DepthwiseConv2D": ("DepthwiseConv2D", {"kernel_size": [1, 3]}, (None, 5, 3), 1, "step"),
    "SeparableConv1D": ("SeparableConv1D", {"filters": 2, "kernel_size": 2}, (None, 4), 1, "mixes"),
    "SeparableConv2D": ("SeparableConv2D", {"filters": 2, "kernel_size": [1, 2]}, (None, 5, 3), 1, "step"),
    "Cropping1D": ("Cropping1D", {"cropping": [1, 1]}, (None, 4), 1, "mixes"),
    "Cropping2D": ("Cropping2D", {"cropping": [[1, 0], [0, 1]]}, (None, 5, 3), 1, "mixes"),
    "Cropping3D": ("Cropping3D", {"cropping": 1}, (None, 4, 4, 2), 1, "mixes"),
    "ZeroPadding1D": ("ZeroPadding1D", {"padding": 1}, (None, 4), 1, "mixes"),
    "ZeroPadding2D": ("ZeroPadding2D", {"padding": 1}, (None, 5, 3), 1, "mixes"),
    "ZeroPadding3D": ("ZeroPadding3D", {"padding": 1}, (None, 3, 3, 2), 1, "mixes"),
    "UpSampling1D": ("UpSampling1D", {"size": 2}, (None, 4), 1, "mixes"),
    "UpSampling2D": ("UpSampling2D", {"size": [2, 2]}, (None, 5, 3), 1, "mixes"),
    "UpSampling3D": ("UpSampling3D", {"size": [2, 1, 1]}, (None, 3, 3, 2), 1, "mixes"),
    "Dense": ("Dense", {"units": 3, "activation": "softmax"}, (None, 4), 1, "step"),
    "Dense-rank2": ("Dense", {"units": 3}, (4,), 1, "mixes"),
    "ELU": ("ELU", {}, (None, 4), 1, "step"),
    "LeakyReLU": ("LeakyReLU", {}, (None, 4), 1, "step"),
    "ReLU": ("ReLU", {"max_value": 0.5, "threshold": 0.1}, (None, 4), 1, "step"),
    "ThresholdedReLU": ("ThresholdedReLU", {}, (None, 4), 1, "step"),
    "Rescaling": ("Rescaling", {"scale": 2.0, "offset": 0.5}, (None, 4), 1, "step"),
    "PReLU-shared": ("PReLU", {"shared_axes": [1]}, (None, 4), 1, "step"),
    "PReLU-per-step": ("PReLU", {}, (T, 4), 1, "mixes"),
    "Softmax": ("Softmax", {}, (None, 4), 1, "step"),
    "Softmax-time": ("Softmax", {"axis": 1}, (T, 4), 1, "mixes"),
    "Embedding": ("Embedding", {"input_dim": 10, "output_dim": 3}, (None,), 1, "step"),
    "Masking": ("Masking", {"mask_value": 0.0}, (None, 4), 1, "step"),
    "Flatten": ("Flatten", {}, (T, 4), 1, "mixes"),
    "Reshape": ("Reshape", {"target_shape": [-1, 2]}, (None, 4), 1, "mixes"),
    "Reshape-per-step": ("Reshape", {"target_shape": [-1, 2, 2]}, (None, 4), 1, "step"),
    "Reshape-fixed-length": ("Reshape", {"target_shape": [T, -1]}, (T, 2, 2), 1, "step"),
    "Reshape-fixed-across": ("Reshape", {"target_shape": [T // 2, -1]}, (T, 4), 1, "mixes"),
    "Permute-keeps-time": ("Permute", {"dims": [1, 3, 2]}, (None, 3, 4), 1, "step"),
    "Permute-moves-time": ("Permute", {"dims": [2, 1]}, (T, 4), 1, "mixes"),
    "RepeatVector": ("RepeatVector", {"n": 3}, (4,), 1, "mixes"),
    "Any": ("Any", {"axis": -1}, (None, 4), 1, "step"),
    "All-time": ("All", {"axis": 1}, (None, 4), 1, "mixes"),
    **{
        op: (op, {}, (None, 4), 2, "step")
        for op in ("Equal", "NotEqual", "Greater", "GreaterEqual", "Less", "LessEqual")
    },
    "LogicalAnd": ("LogicalAnd", {}, (None, 4), 2, "step"),
    "LogicalOr": ("LogicalOr", {}, (None, 4), 2, "step"),
    "TimeDistributed": ("TimeDistributed", {"layer": DENSE}, (None, 4), 1, "step"),
    **{k: (k, {"units": 3, "return_sequences": True}, (None, 4), 1, "carry") for k in ("SimpleRNN", "LSTM", "GRU")},
    "GRU-backwards": ("GRU", {"units": 3, "return_sequences": True, "go_backwards": True}, (None, 4), 1, "backwards"),
    "RNN": ("RNN", {"cell": CELL, "return_sequences": True}, (None, 4), 1, "carry"),
    "CuDNNLSTM": ("CuDNNLSTM", {"units": 3, "return_sequences": True}, (None, 4), 1, "carry"),
    "CuDNNGRU": ("CuDNNGRU", {"units": 3, "return_sequences": True}, (None, 4), 1, "carry"),
    "Bidirectional": ("Bidirectional", {"layer": LSTM}, (None, 4), 1, "backwards"),
    "ConvLSTM1D": ("ConvLSTM1D", {"filters": 2, "kernel_size": 3, "padding": "same", "return_sequences": True}, (None, 5, 2), 1, "carry"),
    "ConvLSTM2D": ("ConvLSTM2D", {"filters": 2, "kernel_size": 2, "return_sequences": True}, (None, 3, 3, 2), 1, "carry"),
}  # fmt: skip


def block_of(case: str):
    cls, cfg, shape, n, _ = CASES[case]
    dtype = "int32" if cls == "Embedding" else "float32"
    spec = Spec(shape, dtype)
    b = build(Layer(cls, case.lower(), dict(cfg), keras=3), [spec] * n).eval()
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for p in b.parameters():
            p.copy_(torch.rand(p.shape, generator=g) - 0.5)
        for name, buf in b.named_buffers():
            if name.endswith("running_var"):
                buf.copy_(torch.rand(buf.shape, generator=g) + 0.5)
    return b, spec, n


def inputs(spec: Spec, n: int, seed: int = 1) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    shape = (2, *(T if d is None else d for d in spec.shape))
    if spec.dtype == "int32":
        return [torch.randint(0, 10, shape, generator=g) for _ in range(n)]
    return [torch.randn(shape, generator=g) for _ in range(n)]


def run(b, xs: list[torch.Tensor], state=None):
    with torch.no_grad():
        outs, _, final = b.apply(list(xs), [None] * len(xs), {}, state)
    return outs, final


def moved_steps(b, xs: list[torch.Tensor], j: int) -> tuple[set[int], bool]:
    """(output steps that move when input step j moves, whether the length changed)."""
    y = run(b, xs)[0][0]
    bumped = []
    for x in xs:
        x = x.clone()
        x[:, j] = x[:, j] + 1 if x.dtype.is_floating_point else (x[:, j] + 3) % 10
        bumped.append(x)
    z = run(b, bumped)[0][0]
    if y.dim() < 2 or y.shape[1] != xs[0].shape[1]:
        return set(), True
    diff = (y.float() - z.float()).abs().reshape(y.shape[0], y.shape[1], -1).amax(dim=(0, 2))
    return {t for t in range(y.shape[1]) if diff[t] > 0}, False


def rolls_along(b, xs: list[torch.Tensor]) -> bool:
    """The same function at every step: rolling the input steps rolls the output's."""
    y = run(b, xs)[0][0]
    z = run(b, [x.roll(1, dims=1) for x in xs])[0][0]
    return y.shape == z.shape and torch.equal(y.roll(1, dims=1), z)


def test_every_registered_kind_is_probed():
    assert {c[0] for c in CASES.values()} == set(KINDS)


@pytest.mark.parametrize("case", sorted(CASES))
def test_declared_steps_match_what_the_block_computes(case):
    b, spec, n = block_of(case)
    expected = CASES[case][4]
    xs = inputs(spec, n)
    declared = b.timed_outputs([True] * n)
    steps = (0, 2, xs[0].shape[1] - 1)  # axis 1: the streamed one
    if expected == "step":
        assert b.timed_outputs([False] * n) == [False] * len(b.output_specs)
        assert declared == [True] * len(b.output_specs), declared
        for j in steps:
            moved, resized = moved_steps(b, xs, j)
            assert not resized, j
            assert moved <= {j}, (j, moved)
        assert rolls_along(b, xs)
    elif expected in ("mixes", "refused"):
        assert isinstance(declared, str), declared
        assert declared
        if expected == "refused":
            return
        probes = [moved_steps(b, xs, j) for j in steps]
        mixed = any(
            resized or moved - {j} for j, (moved, resized) in zip(steps, probes, strict=True)
        )
        assert mixed or not rolls_along(b, xs)
    elif expected == "backwards":
        assert not b.streamable
        assert b.not_streamable
    else:  # carry: two chunks with the state handed on = one call
        assert b.streamable
        assert declared[0] is True
        assert b.state_sizes
        whole, _ = run(b, xs)
        first, state = run(b, [x[:, :2] for x in xs])
        second, _ = run(b, [x[:, 2:] for x in xs], state)
        torch.testing.assert_close(torch.cat([first[0], second[0]], 1), whole[0])
