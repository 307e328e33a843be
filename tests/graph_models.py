"""Keras models with graphs, token inputs, masks and state between layers, for the porting
tests: each built by Keras itself (Keras 3, and Keras 2 through tf_keras), given random
non-trivial weights, run by Keras's own predict (eagerly, as ``port --check`` runs it: tracing a
graph costs about a second a model and computes the same), and saved (Keras 3: .keras and .h5; Keras 2:
.h5). One process builds them all; the tests read the folder.

    python tests/graph_models.py build OUT [API]  every case (of one API): OUT/<case>.<ext>,
                                                OUT/<case>.npz, OUT/cases.json (cases_API.json)
    python tests/graph_models.py predict DIR    Keras 3 predicts DIR/*.keras on the inputs of
                                                DIR/<case>.npz (the ported models written back)
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import numpy as np

from keras_ref.port_check import predict_all

B, T, V = 4, 6, 20  # batch, steps, vocabulary


def token_ids(rng, padding: str) -> np.ndarray:
    """Token ids with zeros as pad_sequences writes them ("pre", its default, or "post") or
    holes in the middle ("holes")."""
    ids = rng.integers(1, V, (B, T)).astype("int32")
    if padding == "pre":
        ids[0, :3], ids[1, :1], ids[3, :5] = 0, 0, 0
    elif padding == "post":
        ids[0, 3:], ids[1, 5:], ids[3, 1:] = 0, 0, 0
    else:
        ids[0, 2], ids[1, 4], ids[2, 1:3] = 0, 0, 0
    return ids


def floats_with_masked_steps(rng, F: int = 3) -> np.ndarray:
    x = rng.normal(size=(B, T, F)).astype("float32")
    x[0, :2], x[1, 4:], x[2, 3] = 0, 0, 0
    return x


def cases(K, api: str, rng) -> dict:
    """name -> (model, inputs list). K: keras (3) or tf_keras (2)."""
    L = K.layers
    out = {}
    xf = floats_with_masked_steps(rng)
    for kind, pad in (("SimpleRNN", "pre"), ("LSTM", "post"), ("GRU", "holes")):
        R = getattr(L, kind)
        x = K.Input((None,), dtype="int32")
        h = L.Embedding(V, 5, mask_zero=True)(x)
        h = L.Bidirectional(R(3, return_sequences=True))(h)
        h = R(3, go_backwards=True)(h)
        out[f"emb_mask_{kind}_{pad}"] = (K.Model(x, L.Dense(2)(h)), [token_ids(rng, pad)])
        x = K.Input((T, 3))
        h = L.Masking(0.0)(x)
        h = R(4, return_sequences=True)(h)
        h = L.TimeDistributed(L.Dense(2))(h)
        out[f"masking_{kind}"] = (K.Model(x, h), [xf])
        x = K.Input((T, 3))
        _, *states = R(4, return_state=True)(x)
        y, *states2 = R(4, return_sequences=True, return_state=True)(x, initial_state=states)
        out[f"state_between_{kind}"] = (K.Model(x, [y, *states2]), [xf])
    # the seq2seq family (keras-io lstm_seq2seq): training model, encoder and decoder models
    enc_in, dec_in = K.Input((None, 3)), K.Input((None, 4))
    enc = L.LSTM(5, return_state=True)
    _, h, c = enc(enc_in)
    dec = L.LSTM(5, return_sequences=True, return_state=True)
    dense = L.Dense(4, activation="softmax")
    d_out, _, _ = dec(dec_in, initial_state=[h, c])
    xd = rng.normal(size=(B, 5, 4)).astype("float32")
    out["seq2seq_train"] = (K.Model([enc_in, dec_in], dense(d_out)), [xf, xd])
    out["seq2seq_encoder"] = (K.Model(enc_in, [h, c]), [xf])
    h_in, c_in = K.Input((5,)), K.Input((5,))
    d2, h2, c2 = dec(dec_in, initial_state=[h_in, c_in])
    hs = rng.normal(size=(B, 5)).astype("float32")
    out["seq2seq_decoder"] = (K.Model([dec_in, h_in, c_in], [dense(d2), h2, c2]), [xd, hs, -hs])
    # Embedding + Bidirectional LSTM text classifier with mask_zero (keras-io)
    x = K.Input((None,), dtype="int32")
    h = L.Embedding(V, 6, mask_zero=True)(x)
    h = L.Bidirectional(L.LSTM(4, return_sequences=True))(h)
    h = L.Bidirectional(L.LSTM(3))(h)
    out["text_classifier"] = (
        K.Model(x, L.Dense(1, activation="sigmoid")(h)),
        [token_ids(rng, "pre")],
    )
    # bAbI-style two inputs (story, question), merged
    story, question = K.Input((T,), dtype="int32"), K.Input((3,), dtype="int32")
    emb = L.Embedding(V, 5)
    s = L.LSTM(4)(emb(story))
    q = L.LSTM(4)(emb(question))
    h = L.Concatenate()([s, q])
    q_ids = rng.integers(0, V, (B, 3)).astype("int32")
    out["babi_two_inputs"] = (
        K.Model([story, question], L.Dense(V, activation="softmax")(h)),
        [token_ids(rng, "post"), q_ids],
    )
    # video + boolean mask input (a mask= call argument fed from an input)
    frames, mask = K.Input((T, 3)), K.Input((T,), dtype="bool")
    h = L.GRU(4, return_sequences=True)(frames, mask=mask)
    h = L.LSTM(3)(h)
    m = rng.random((B, T)) > 0.3
    m[:, 0] = True
    out["video_bool_mask"] = (
        K.Model([frames, mask], h),
        [rng.normal(size=(B, T, 3)).astype("float32"), m],
    )
    # relu recurrences (stock predictors, LSTM autoencoders), other activations, hard_sigmoid
    x = K.Input((T, 3))
    h = L.LSTM(4, activation="relu", return_sequences=True)(x)
    h = L.GRU(3, activation="relu", recurrent_activation="hard_sigmoid")(h)
    out["relu_hard_sigmoid"] = (K.Model(x, L.Dense(2)(h)), [xf])
    x = K.Input((T, 3))
    h = L.SimpleRNN(3, activation="elu", return_sequences=True)(x)
    h = L.GRU(3, reset_after=False, activation="selu", recurrent_activation="hard_sigmoid")(h)
    out["elu_selu_reset_before"] = (K.Model(x, h), [xf])
    # generic RNN over built-in cells
    x = K.Input((T, 3))
    h = L.RNN(L.LSTMCell(4), return_sequences=True)(x)
    h = L.RNN([L.GRUCell(3), L.SimpleRNNCell(2)])(h)
    out["rnn_cells"] = (K.Model(x, h), [xf])
    # merges, Dot, shared layers, nested models
    x = K.Input((T, 3))
    a = L.LSTM(4, return_sequences=True)(x)
    b = L.GRU(4, return_sequences=True)(x)
    merged = [L.Add()([a, b]), L.Subtract()([a, b]), L.Multiply()([a, b]), L.Average()([a, b])]
    merged += [L.Maximum()([a, b]), L.Minimum()([a, b]), L.Concatenate(axis=1)([a, b])]
    merged += [L.Dot(axes=2)([a, b]), L.Dot(axes=(1, 1), normalize=True)([a, b])]
    out["merges"] = (K.Model(x, merged), [xf])
    x1, x2 = K.Input((T, 3)), K.Input((T, 3))
    shared = L.LSTM(4)
    out["shared_layer"] = (
        K.Model([x1, x2], L.Subtract()([shared(x1), shared(x2)])),
        [xf, xf[::-1].copy()],
    )
    inner = K.Sequential([K.Input((T, 3)), L.LSTM(4, return_sequences=True), L.Dense(2)])
    x = K.Input((T, 3))
    out["nested"] = (
        K.Model(x, [L.Concatenate()([inner(x), x]), L.Add()([inner(x), inner(x)])]),
        [xf],
    )
    # hierarchical RNN (Keras 2 examples/mnist_hierarchical_rnn): an LSTM over rows, per frame
    x = K.Input((3, T, 2))
    h = L.TimeDistributed(L.LSTM(4))(x)
    out["hierarchical_td_lstm"] = (
        K.Model(x, L.LSTM(3)(h)),
        [rng.normal(size=(B, 3, T, 2)).astype("float32")],
    )
    if api == "k2":  # Keras 2 files people have: stateful fixed batch, float token ids
        m = K.Sequential([L.SimpleRNN(3, stateful=True, batch_input_shape=(B, T, 3)), L.Dense(1)])
        out["stateful_fixed_batch"] = (m, [xf])
        x = K.Input((None,))
        h = L.Embedding(V, 5, mask_zero=True)(x)
        a, b = L.LSTM(3, return_sequences=True)(h), L.GRU(3, return_sequences=True)(h)
        y = L.LSTM(2)(L.Concatenate()([a, b]))
        out["float_ids_masks_merged"] = (
            K.Model(x, [y, L.GRU(2)(L.Add()([a, b]))]),
            [token_ids(rng, "holes").astype("float32")],
        )
    return out


SHARING = ("seq2seq_encoder", "seq2seq_decoder")  # their layers are the training model's


def cudnn(K, rng, out: Path) -> tuple[list, list]:
    """Keras 2's CuDNNLSTM + CuDNNGRU saved as Keras wrote them; their predictions from Keras's
    own CPU equivalent (LSTM with the two biases summed, GRU(reset_after=True) with them
    stacked), which Keras documents and converts to itself, since cuDNN needs a GPU."""
    from tf_keras.src.layers.rnn.cudnn_gru import CuDNNGRU
    from tf_keras.src.layers.rnn.cudnn_lstm import CuDNNLSTM

    L, H = K.layers, 4
    x = K.Input((T, 3))
    m = K.Model(x, CuDNNGRU(H)(CuDNNLSTM(H, return_sequences=True)(x)))
    w = [rng.uniform(-0.8, 0.8, a.shape).astype("float32") for a in m.get_weights()]
    m.set_weights(w)
    m.save(out / "k2_cudnn.h5")
    twin = K.Model(x, L.GRU(H, reset_after=True)(L.LSTM(H, return_sequences=True)(x)))
    twin.set_weights(
        [w[0], w[1], w[2][: 4 * H] + w[2][4 * H :], w[3], w[4], w[5].reshape(2, 3 * H)]
    )
    xs = [rng.normal(size=(B, T, 3)).astype("float32")]
    return xs, predict_all(twin, xs, layers=False)[0]


def randomize(model, rng) -> None:
    model.set_weights(
        [rng.uniform(-0.8, 0.8, w.shape).astype("float32") for w in model.get_weights()]
    )


def as_list(y) -> list:
    return [np.asarray(a) for a in y] if isinstance(y, list | tuple) else [np.asarray(y)]


def build(out: Path, apis: tuple[str, ...] = ("k3", "k2")) -> None:
    """Every case of ``apis`` into ``out``; the manifest: ``cases.json`` for both APIs,
    ``cases_<api>.json`` for one (the test session builds the halves side by side)."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    out.mkdir(parents=True, exist_ok=True)
    manifest = {}
    for api in apis:
        if api == "k3":
            import keras as K
        else:
            import tf_keras as K
        rng = np.random.default_rng(1 if api == "k3" else 2)
        for name, (model, xs) in cases(K, api, rng).items():
            if name not in SHARING:
                randomize(model, rng)
            want = predict_all(model, xs, layers=False)[0]
            files = []
            for ext in (".keras", ".h5") if api == "k3" else (".h5",):
                path = out / f"{api}_{name}{ext}"
                model.save(path)
                files.append(path.name)
            arrays = {f"x{i}": x for i, x in enumerate(xs)} | {
                f"y{i}": y for i, y in enumerate(want)
            }
            np.savez(out / f"{api}_{name}.npz", **arrays)
            manifest[f"{api}_{name}"] = {"files": files, "inputs": len(xs), "outputs": len(want)}
        if api == "k2":
            xs, want = cudnn(K, np.random.default_rng(3), out)
            np.savez(out / "k2_cudnn.npz", x0=xs[0], y0=want[0])
            manifest["k2_cudnn"] = {"files": ["k2_cudnn.h5"], "inputs": 1, "outputs": 1}
    name = "cases.json" if len(apis) == 2 else f"cases_{apis[0]}.json"
    (out / name).write_text(json.dumps(manifest, indent=1))


def predict(folder: Path) -> None:
    """Keras 3 loads every DIR/<case>.keras and predicts DIR/<case>.npz's inputs -> <case>.out.npz."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import keras

    for path in sorted(folder.glob("*.keras")):
        with np.load(path.with_suffix(".npz")) as z:
            xs = [z[f"x{i}"] for i in range(len([k for k in z.files if k.startswith("x")]))]
        # each file as a user loads it, in a fresh session (without its gc.collect: 0.2 s)
        keras.backend.clear_session(free_memory=False)
        try:
            model = keras.models.load_model(path)
            y = predict_all(model, xs, layers=False)[0]
        except Exception as e:  # one case's failure is reported by its test, not all of them
            path.with_suffix(".out.error").write_text(f"Keras: {type(e).__name__}: {e}"[:2000])
            continue
        np.savez(path.with_suffix(".out.npz"), **{f"y{i}": a for i, a in enumerate(y)})


if __name__ == "__main__":
    if sys.argv[1] == "build":
        build(Path(sys.argv[2]), tuple(sys.argv[3:]) or ("k3", "k2"))
    else:
        predict(Path(sys.argv[2]))
