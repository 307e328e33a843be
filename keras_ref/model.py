"""The lesson in idiomatic Keras 3: define, fit, predict stateless and stateful."""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")  # TF's C++ start-up chatter

import keras
import numpy as np

from torch_rnnsin.lesson.config import TrainConfig

DEFAULT = TrainConfig()  # the lesson's reference run: every default below comes from it


def define_model(
    seq_len: int | None,
    batch_size: int | None = None,
    stateful: bool = False,
    hidden: int = DEFAULT.hidden,
    return_sequences: bool = False,
    with_hidden: bool = False,
    lr: float = DEFAULT.lr,
) -> keras.Model:
    """``Input(batch_shape) -> SimpleRNN(hidden, name="RNN") -> Dense(1, name="dense")``,
    compiled with MSE and Keras's RMSprop at learning rate ``lr`` (its other settings
    Keras's defaults). ``with_hidden`` adds the RNN's output as a first output (for
    reading hidden states)."""
    inp = keras.Input(batch_shape=(batch_size, seq_len, 1))
    h = keras.layers.SimpleRNN(
        hidden, stateful=stateful, return_sequences=return_sequences, name="RNN"
    )(inp)
    out = keras.layers.Dense(1, name="dense")(h)
    model = keras.Model(inp, [h, out] if with_hidden else out)
    if not with_hidden:
        model.compile(
            loss="mean_squared_error", optimizer=keras.optimizers.RMSprop(learning_rate=lr)
        )
    return model


def _hidden_size(model: keras.Model) -> int:
    return model.get_layer("RNN").units


class ResetStatesEachEpoch(keras.callbacks.Callback):
    """Keras 3 has no ``Model.reset_states()``: reset each RNN layer."""

    def on_epoch_begin(self, epoch, logs=None):
        for layer in self.model.layers:
            if isinstance(layer, keras.layers.RNN):
                layer.reset_state()


def train(
    X: np.ndarray,
    y: np.ndarray,
    validation_data: tuple[np.ndarray, np.ndarray] | None = None,
    *,
    hidden: int = DEFAULT.hidden,
    batch_size: int = DEFAULT.batch_size,
    epochs: int = DEFAULT.epochs,
    shuffle: bool = DEFAULT.shuffle,
    lr: float = DEFAULT.lr,
    initial_weights: list[np.ndarray] | None = None,
    seed: int | None = None,
    verbose: int = 0,
) -> tuple[keras.Model, dict[str, list[float]]]:
    """The lesson's ``fit``: windows (N, L, 1) -> (N, 1); returns the model and its history."""
    if seed is not None:
        keras.utils.set_random_seed(seed)
    model = define_model(X.shape[1], hidden=hidden, lr=lr)
    if initial_weights is not None:
        model.set_weights([np.asarray(w, np.float32) for w in initial_weights])
    hist = model.fit(
        X,
        y,
        batch_size=batch_size,
        epochs=epochs,
        validation_data=validation_data,
        shuffle=shuffle,
        verbose=verbose,
    )
    return model, hist.history


def train_stateful(
    X: np.ndarray,
    y: np.ndarray,
    *,
    hidden: int = DEFAULT.hidden,
    epochs: int = DEFAULT.epochs,
    lr: float = DEFAULT.lr,
    initial_weights: list[np.ndarray] | None = None,
    seed: int | None = None,
    verbose: int = 0,
) -> tuple[keras.Model, dict[str, list[float]]]:
    """``stateful=True`` training (truncated BPTT) on chunks from
    ``torch_rnnsin.lesson.data.make_stream_chunks``: X (K, B, L, 1), y (K, B, 1) or
    (K, B, L, 1). Batch k is chunk k of every stream; the state is carried
    between batches, reset at the start of every epoch; never shuffled."""
    if seed is not None:
        keras.utils.set_random_seed(seed)
    K, B, L, _ = X.shape
    seq_targets = y.ndim == 4
    model = define_model(
        L, batch_size=B, stateful=True, hidden=hidden, return_sequences=seq_targets, lr=lr
    )
    if initial_weights is not None:
        model.set_weights([np.asarray(w, np.float32) for w in initial_weights])
    hist = model.fit(
        X.reshape(K * B, L, 1),
        y.reshape(K * B, *y.shape[2:]),
        batch_size=B,
        epochs=epochs,
        shuffle=False,
        callbacks=[ResetStatesEachEpoch()],
        verbose=verbose,
    )
    return model, hist.history


def predict_stateless(
    model: keras.Model, values: np.ndarray, seq_len: int
) -> tuple[np.ndarray, np.ndarray]:
    """``predict`` on every window of ``values``, each from the zero state.

    Returns (pred (n,), hidden (n, H)), NaN before index ``seq_len``."""
    values = np.asarray(values, np.float32)
    n = len(values)
    X = np.lib.stride_tricks.sliding_window_view(values, seq_len)[: n - seq_len, :, None]
    probe = define_model(seq_len, hidden=_hidden_size(model), with_hidden=True)
    probe.set_weights(model.get_weights())
    h, y = probe.predict(X, batch_size=max(1, len(X)), verbose=0)
    pred = np.full(n, np.nan, np.float32)
    hidden = np.full((n, h.shape[1]), np.nan, np.float32)
    pred[seq_len:] = y[:, 0]
    hidden[seq_len:] = h
    return pred, hidden


def predict_stateful(model: keras.Model, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The lesson's stateful prediction: a batch-1, length-1 stateful copy, reset
    once, fed one point at a time with ``predict_on_batch``.

    Returns (pred (n,), hidden (n, H)); pred[0] = x_0, hidden[0] = 0."""
    values = np.asarray(values, np.float32)
    n = len(values)
    probe = define_model(
        1, batch_size=1, stateful=True, hidden=_hidden_size(model), with_hidden=True
    )
    probe.set_weights(model.get_weights())
    probe.get_layer("RNN").reset_state()
    pred = np.empty(n, np.float32)
    hidden = np.zeros((n, _hidden_size(model)), np.float32)
    pred[0] = values[0]
    for t in range(n - 1):
        h, y = probe.predict_on_batch(values[t].reshape(1, 1, 1))
        hidden[t + 1] = h[0]
        pred[t + 1] = y[0, 0]
    return pred, hidden
