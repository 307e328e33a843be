"""Recurrent Keras models written by others, rebuilt from their sources and ported.

Usage: python scripts/real_models.py OUTDIR   (from the worktree root; one process)

Each builder below rebuilds a model's architecture as its source writes it (cited in a
comment; sizes shrunk where the source's are large, same layers and options). Weights are
random uniform(-0.5, 0.5) (moving variances uniform(0.5, 1.5)). Each model is saved as a
Keras 3 ``.keras`` and ``.h5`` and, for Keras 2-era sources, as a tf_keras ``.h5``; Keras's
predict on fitting random inputs is compared with the torch port of each file. One line per
model and format: OK with the max |a-b|/max(1,|b|), REFUSED with the refusal, WRONG (above
1e-5), CRASH (a traceback that is not a refusal: printed in full), or SAVE-FAIL (Keras
itself cannot save the model in that format).
"""

from __future__ import annotations

import os
import sys
import traceback
import warnings
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras
import numpy as np
import tensorflow as tf
import tf_keras
import torch

from torch_rnnsin.common.errors import Refused
from torch_rnnsin.port.model import load_keras_model, save_keras_model

TOL = 1e-5
T_FREE = 7  # time steps where the source leaves the length free
MODELS: list = []  # (name, source, keras2_era, builder)


def model(name: str, source: str, keras2: bool = False):
    def deco(fn):
        MODELS.append((name, source, keras2, fn))
        return fn

    return deco


# Each builder: K (keras or tf_keras) -> (model, hints); hints maps an input index to
# ("ids", vocab, padding) with padding "pre", "post" or None, or ("mask",) for a bool mask.


@model("lstm_seq2seq (training)", "keras-io examples/nlp/lstm_seq2seq.py", keras2=True)
def seq2seq_train(K):
    # keras-team/keras-io examples/nlp/lstm_seq2seq.py (Keras 2: keras examples/lstm_seq2seq.py)
    L, enc_tokens, dec_tokens, latent = K.layers, 11, 13, 16
    encoder_inputs = K.Input(shape=(None, enc_tokens))
    encoder = L.LSTM(latent, return_state=True)
    encoder_outputs, state_h, state_c = encoder(encoder_inputs)  # noqa: RUF059 (as the source)
    encoder_states = [state_h, state_c]
    decoder_inputs = K.Input(shape=(None, dec_tokens))
    decoder_lstm = L.LSTM(latent, return_sequences=True, return_state=True)
    decoder_outputs, _, _ = decoder_lstm(decoder_inputs, initial_state=encoder_states)
    decoder_dense = L.Dense(dec_tokens, activation="softmax")
    decoder_outputs = decoder_dense(decoder_outputs)
    return K.Model([encoder_inputs, decoder_inputs], decoder_outputs), {}


@model("lstm_seq2seq (inference decoder)", "keras-io examples/nlp/lstm_seq2seq.py", keras2=True)
def seq2seq_decoder(K):
    # same source: the sampling decoder model, its states as inputs and outputs
    L, dec_tokens, latent = K.layers, 13, 16
    decoder_inputs = K.Input(shape=(None, dec_tokens))
    decoder_state_input_h = K.Input(shape=(latent,))
    decoder_state_input_c = K.Input(shape=(latent,))
    states_in = [decoder_state_input_h, decoder_state_input_c]
    decoder_lstm = L.LSTM(latent, return_sequences=True, return_state=True)
    decoder_outputs, state_h_dec, state_c_dec = decoder_lstm(
        decoder_inputs, initial_state=states_in
    )
    decoder_outputs = L.Dense(dec_tokens, activation="softmax")(decoder_outputs)
    outs = [decoder_outputs, state_h_dec, state_c_dec]
    return K.Model([decoder_inputs, *states_in], outs), {}


@model("bidirectional_lstm_imdb", "keras-io examples/nlp/bidirectional_lstm_imdb.py")
def bilstm_imdb(K):
    # keras-team/keras-io examples/nlp/bidirectional_lstm_imdb.py (pad_sequences: pre-padded)
    L, max_features = K.layers, 200
    inputs = K.Input(shape=(None,), dtype="int32")
    x = L.Embedding(max_features, 16)(inputs)
    x = L.Bidirectional(L.LSTM(8, return_sequences=True))(x)
    x = L.Bidirectional(L.LSTM(8))(x)
    outputs = L.Dense(1, activation="sigmoid")(x)
    return K.Model(inputs, outputs), {0: ("ids", max_features, "pre")}


@model("imdb_bidirectional_lstm", "keras examples/imdb_bidirectional_lstm.py (Keras 2)", True)
def imdb_bilstm_k2(K):
    # keras-team/keras (2.x) examples/imdb_bidirectional_lstm.py; input_length=maxlen -> shape
    L, max_features, maxlen = K.layers, 200, 10
    return K.Sequential(
        [
            K.Input(shape=(maxlen,)),
            L.Embedding(max_features, 16),
            L.Bidirectional(L.LSTM(8)),
            L.Dropout(0.5),
            L.Dense(1, activation="sigmoid"),
        ]
    ), {0: ("ids", max_features, "pre")}


@model("addition_rnn", "keras-io examples/nlp/addition_rnn.py", keras2=True)
def addition_rnn(K):
    # keras-team/keras-io examples/nlp/addition_rnn.py (Keras 2: examples/addition_rnn.py
    # has TimeDistributed(Dense) at the end; keras-io a plain Dense)
    L, maxlen, chars, digits = K.layers, 7, 12, 3
    return K.Sequential(
        [
            K.Input((maxlen, chars)),
            L.LSTM(16),
            L.RepeatVector(digits + 1),
            L.LSTM(16, return_sequences=True),
            L.Dense(chars, activation="softmax"),
        ]
    ), {}


@model("conv_lstm next-frame", "keras-io examples/vision/conv_lstm.py")
def conv_lstm(K):
    # keras-team/keras-io examples/vision/conv_lstm.py (frames 64x64 -> 12x12, 64 -> 4 filters)
    L = K.layers
    inp = L.Input(shape=(None, 12, 12, 1))
    x = L.ConvLSTM2D(4, (5, 5), padding="same", return_sequences=True, activation="relu")(inp)
    x = L.BatchNormalization()(x)
    x = L.ConvLSTM2D(4, (3, 3), padding="same", return_sequences=True, activation="relu")(x)
    x = L.BatchNormalization()(x)
    x = L.ConvLSTM2D(4, (1, 1), padding="same", return_sequences=True, activation="relu")(x)
    x = L.Conv3D(filters=1, kernel_size=(3, 3, 3), activation="sigmoid", padding="same")(x)
    return K.Model(inp, x), {}


@model("conv_lstm (Keras 2)", "keras examples/conv_lstm.py (Keras 2)", keras2=True)
def conv_lstm_k2(K):
    # keras-team/keras (2.x) examples/conv_lstm.py (40x40 -> 10x10, 40 -> 4 filters)
    L, seq = K.layers, K.Sequential()
    seq.add(K.Input(shape=(None, 10, 10, 1)))
    for _ in range(4):
        seq.add(L.ConvLSTM2D(filters=4, kernel_size=(3, 3), padding="same", return_sequences=True))
        seq.add(L.BatchNormalization())
    seq.add(
        L.Conv3D(
            filters=1,
            kernel_size=(3, 3, 3),
            activation="sigmoid",
            padding="same",
            data_format="channels_last",
        )
    )
    return seq, {}


@model("captcha OCR CRNN (prediction model)", "keras-io examples/vision/captcha_ocr.py")
def captcha_ocr(K):
    # keras-team/keras-io examples/vision/captcha_ocr.py: the prediction model
    # (image -> dense2); the CTCLayer of the training model is custom. 200x50 -> 40x16.
    L, w, h, classes = K.layers, 40, 16, 20
    input_img = L.Input(shape=(w, h, 1), name="image", dtype="float32")
    x = L.Conv2D(8, (3, 3), activation="relu", kernel_initializer="he_normal", padding="same")(
        input_img
    )
    x = L.MaxPooling2D((2, 2), name="pool1")(x)
    x = L.Conv2D(8, (3, 3), activation="relu", kernel_initializer="he_normal", padding="same")(x)
    x = L.MaxPooling2D((2, 2), name="pool2")(x)
    x = L.Reshape(target_shape=((w // 4), (h // 4) * 8), name="reshape")(x)
    x = L.Dense(16, activation="relu", name="dense1")(x)
    x = L.Dropout(0.2)(x)
    x = L.Bidirectional(L.LSTM(16, return_sequences=True, dropout=0.25))(x)
    x = L.Bidirectional(L.LSTM(8, return_sequences=True, dropout=0.25))(x)
    x = L.Dense(classes + 1, activation="softmax", name="dense2")(x)
    return K.Model(input_img, x), {}


@model("text_classification_rnn (stacked)", "tensorflow/docs text/text_classification_rnn")
def tf_text_rnn(K):
    # tensorflow/text docs/tutorials/text_classification_rnn.ipynb, the stacked model, after its
    # TextVectorization encoder (token ids, padded at the end); vocab 1000 -> 300
    L, vocab = K.layers, 300
    return K.Sequential(
        [
            K.Input(shape=(None,), dtype="int64"),
            L.Embedding(vocab, 16, mask_zero=True),
            L.Bidirectional(L.LSTM(16, return_sequences=True)),
            L.Bidirectional(L.LSTM(8)),
            L.Dense(16, activation="relu"),
            L.Dropout(0.5),
            L.Dense(1),
        ]
    ), {0: ("ids", vocab, "post")}


@model("text_classification_rnn (with TextVectorization)", "tensorflow/docs same tutorial")
def tf_text_rnn_tv(K):
    # the same tutorial's first model as written, the string encoder included
    L = K.layers
    encoder = L.TextVectorization(max_tokens=50)
    encoder.adapt(np.array(["the cat sat on the mat", "a dog ran in the park today"]))
    return K.Sequential(
        [
            K.Input(shape=(1,), dtype="string"),
            encoder,
            L.Embedding(len(encoder.get_vocabulary()), 8, mask_zero=True),
            L.Bidirectional(L.LSTM(8)),
            L.Dense(8, activation="relu"),
            L.Dense(1),
        ]
    ), {0: ("text",)}


@model(
    "timeseries_weather_forecasting",
    "keras-io examples/timeseries/timeseries_weather_forecasting.py",
)
def weather(K):
    # keras-team/keras-io examples/timeseries/timeseries_weather_forecasting.py (120 steps, 7 features)
    inputs = K.layers.Input(shape=(120, 7))
    lstm_out = K.layers.LSTM(32)(inputs)
    outputs = K.layers.Dense(1)(lstm_out)
    return K.Model(inputs=inputs, outputs=outputs), {}


@model(
    "time_series multi_lstm_model",
    "tensorflow/docs site/en/tutorials/structured_data/time_series.ipynb",
)
def tf_multi_lstm(K):
    # tensorflow/docs time_series.ipynb: multi-step LSTM, Dense(zeros) + Reshape([OUT_STEPS, F])
    L, out_steps, nf = K.layers, 24, 19
    return K.Sequential(
        [
            K.Input((24, nf)),
            L.LSTM(32, return_sequences=False),
            L.Dense(out_steps * nf, kernel_initializer="zeros"),
            L.Reshape([out_steps, nf]),
        ]
    ), {}


@model(
    "time_series lstm_model", "tensorflow/docs site/en/tutorials/structured_data/time_series.ipynb"
)
def tf_lstm(K):
    # tensorflow/docs time_series.ipynb: single-step LSTM over wide windows
    return K.Sequential(
        [K.Input((24, 19)), K.layers.LSTM(32, return_sequences=True), K.layers.Dense(units=1)]
    ), {}


@model("lstm_stateful", "keras examples/lstm_stateful.py (Keras 2)", keras2=True)
def lstm_stateful(K):
    # keras-team/keras (2.x) examples/lstm_stateful.py: batch_size=1, lahead=1, stateful
    L = K.layers
    return K.Sequential(
        [
            K.Input(shape=(1, 1), batch_size=1),
            L.LSTM(20, return_sequences=False, stateful=True),
            L.Dense(1),
        ]
    ), {}


@model("imdb_cnn_lstm", "keras examples/imdb_cnn_lstm.py (Keras 2)", keras2=True)
def imdb_cnn_lstm(K):
    # keras-team/keras (2.x) examples/imdb_cnn_lstm.py (maxlen 100 -> 30)
    L, max_features, maxlen = K.layers, 200, 30
    return K.Sequential(
        [
            K.Input(shape=(maxlen,)),
            L.Embedding(max_features, 16),
            L.Dropout(0.25),
            L.Conv1D(8, 5, padding="valid", activation="relu", strides=1),
            L.MaxPooling1D(pool_size=4),
            L.LSTM(10),
            L.Dense(1),
            L.Activation("sigmoid"),
        ]
    ), {0: ("ids", max_features, "pre")}


@model("imdb_lstm", "keras examples/imdb_lstm.py (Keras 2)", keras2=True)
def imdb_lstm(K):
    # keras-team/keras (2.x) examples/imdb_lstm.py
    L, max_features = K.layers, 200
    return K.Sequential(
        [
            K.Input(shape=(12,)),
            L.Embedding(max_features, 16),
            L.LSTM(16, dropout=0.2, recurrent_dropout=0.2),
            L.Dense(1, activation="sigmoid"),
        ]
    ), {0: ("ids", max_features, "pre")}


@model("babi_rnn", "keras examples/babi_rnn.py (Keras 2)", keras2=True)
def babi_rnn(K):
    # keras-team/keras (2.x) examples/babi_rnn.py (RNN = recurrent.LSTM; sizes 50/100/100 -> 8/12/10)
    L, vocab, story_maxlen, query_maxlen = K.layers, 22, 15, 5
    sentence = L.Input(shape=(story_maxlen,), dtype="int32")
    encoded_sentence = L.Embedding(vocab, 8)(sentence)
    encoded_sentence = L.LSTM(12)(encoded_sentence)
    question = L.Input(shape=(query_maxlen,), dtype="int32")
    encoded_question = L.Embedding(vocab, 8)(question)
    encoded_question = L.LSTM(10)(encoded_question)
    merged = L.concatenate([encoded_sentence, encoded_question])
    preds = L.Dense(vocab, activation="softmax")(merged)
    return K.Model([sentence, question], preds), {
        0: ("ids", vocab, "pre"),
        1: ("ids", vocab, "pre"),
    }


@model("babi_memnn", "keras examples/babi_memnn.py (Keras 2)", keras2=True)
def babi_memnn(K):
    # keras-team/keras (2.x) examples/babi_memnn.py: nested Sequential encoders, dot, Permute
    L, vocab, story_maxlen, query_maxlen = K.layers, 22, 15, 4
    input_sequence = L.Input((story_maxlen,))
    question = L.Input((query_maxlen,))
    input_encoder_m = K.Sequential([L.Embedding(vocab, 16), L.Dropout(0.3)])
    input_encoder_c = K.Sequential([L.Embedding(vocab, query_maxlen), L.Dropout(0.3)])
    question_encoder = K.Sequential([L.Embedding(vocab, 16), L.Dropout(0.3)])
    input_encoded_m = input_encoder_m(input_sequence)
    input_encoded_c = input_encoder_c(input_sequence)
    question_encoded = question_encoder(question)
    match = L.dot([input_encoded_m, question_encoded], axes=(2, 2))
    match = L.Activation("softmax")(match)
    response = L.add([match, input_encoded_c])
    response = L.Permute((2, 1))(response)
    answer = L.concatenate([response, question_encoded])
    answer = L.LSTM(8)(answer)
    answer = L.Dropout(0.3)(answer)
    answer = L.Dense(vocab)(answer)
    answer = L.Activation("softmax")(answer)
    return K.Model([input_sequence, question], answer), {
        0: ("ids", vocab, "pre"),
        1: ("ids", vocab, "pre"),
    }


@model("RNN guide: MNIST LSTM + BatchNormalization", "keras-io guides/working_with_rnns.py")
def guide_mnist(K):
    # keras-team/keras-io guides/working_with_rnns.py, build_model(allow_cudnn_kernel=True)
    L = K.layers
    return K.Sequential([K.Input((None, 28)), L.LSTM(16), L.BatchNormalization(), L.Dense(10)]), {}


@model("RNN guide: MNIST RNN(LSTMCell)", "keras-io guides/working_with_rnns.py")
def guide_mnist_cell(K):
    # same guide, build_model(allow_cudnn_kernel=False): RNN(LSTMCell(units))
    L = K.layers
    return K.Sequential(
        [K.Input((None, 28)), L.RNN(L.LSTMCell(16)), L.BatchNormalization(), L.Dense(10)]
    ), {}


@model("RNN guide: encoder-decoder with Embeddings", "keras-io guides/working_with_rnns.py")
def guide_encdec(K):
    # same guide: encoder LSTM return_state -> decoder LSTM initial_state (vocab 1000/2000)
    L, ev, dv = K.layers, 100, 200
    encoder_input = L.Input(shape=(None,))
    encoder_embedded = L.Embedding(input_dim=ev, output_dim=16)(encoder_input)
    output, state_h, state_c = L.LSTM(16, return_state=True, name="encoder")(encoder_embedded)  # noqa: RUF059
    decoder_input = L.Input(shape=(None,))
    decoder_embedded = L.Embedding(input_dim=dv, output_dim=16)(decoder_input)
    decoder_output = L.LSTM(16, name="decoder")(decoder_embedded, initial_state=[state_h, state_c])
    out = L.Dense(10)(decoder_output)
    return K.Model([encoder_input, decoder_input], out), {
        0: ("ids", ev, None),
        1: ("ids", dv, None),
    }


@model("RNN guide: GRU + SimpleRNN", "keras-io guides/working_with_rnns.py")
def guide_gru_simple(K):
    # same guide: Embedding -> GRU(256, return_sequences) -> SimpleRNN(128) -> Dense(10)
    L = K.layers
    return K.Sequential(
        [
            K.Input((None,)),
            L.Embedding(input_dim=100, output_dim=16),
            L.GRU(16, return_sequences=True),
            L.SimpleRNN(12),
            L.Dense(10),
        ]
    ), {0: ("ids", 100, None)}


@model(
    "crypto RNN (LSTM + BatchNormalization)",
    "pythonprogramming.net crypto-rnn-model (sentdex)",
    True,
)
def crypto(K):
    # pythonprogramming.net/crypto-rnn-model-deep-learning-python-tensorflow-keras/ (128 -> 16 units)
    L = K.layers
    return K.Sequential(
        [
            K.Input((60, 8)),
            L.LSTM(16, return_sequences=True),
            L.Dropout(0.2),
            L.BatchNormalization(),
            L.LSTM(16, return_sequences=True),
            L.Dropout(0.1),
            L.BatchNormalization(),
            L.LSTM(16),
            L.Dropout(0.2),
            L.BatchNormalization(),
            L.Dense(32, activation="relu"),
            L.Dropout(0.2),
            L.Dense(2, activation="softmax"),
        ]
    ), {}


@model("stock predictor (stacked LSTM + LeakyReLU)", "GitHub stock-LSTM pattern (see docs)", True)
def stock_leaky(K):
    # the common stock-price LSTM: 3 stacked LSTM(50) + Dropout(0.2) (e.g. the widely copied
    # "Stock Price Prediction using LSTM" notebooks), here with the BatchNormalization +
    # LeakyReLU head several GitHub predictors add
    L = K.layers
    leaky = L.LeakyReLU(alpha=0.1) if K is tf_keras else L.LeakyReLU(negative_slope=0.1)
    return K.Sequential(
        [
            K.Input((60, 1)),
            L.LSTM(12, return_sequences=True),
            L.Dropout(0.2),
            L.LSTM(12, return_sequences=True),
            L.Dropout(0.2),
            L.LSTM(12),
            L.Dropout(0.2),
            L.Dense(16),
            L.BatchNormalization(),
            leaky,
            L.Dense(1),
        ]
    ), {}


@model("LSTM autoencoder (relu)", "machinelearningmastery.com/lstm-autoencoders/", keras2=True)
def lstm_ae(K):
    # machinelearningmastery.com/lstm-autoencoders/ reconstruction autoencoder (100 -> 16 units)
    L, n_in = K.layers, 9
    return K.Sequential(
        [
            K.Input((n_in, 1)),
            L.LSTM(16, activation="relu"),
            L.RepeatVector(n_in),
            L.LSTM(16, activation="relu", return_sequences=True),
            L.TimeDistributed(L.Dense(1)),
        ]
    ), {}


@model(
    "LSTM autoencoder composite (2 outputs)", "machinelearningmastery.com/lstm-autoencoders/", True
)
def lstm_ae_composite(K):
    # same source: composite reconstruction + prediction autoencoder, two decoders
    L, n_in = K.layers, 9
    n_out = n_in - 1
    visible = L.Input(shape=(n_in, 1))
    encoder = L.LSTM(16, activation="relu")(visible)
    decoder1 = L.RepeatVector(n_in)(encoder)
    decoder1 = L.LSTM(16, activation="relu", return_sequences=True)(decoder1)
    decoder1 = L.TimeDistributed(L.Dense(1))(decoder1)
    decoder2 = L.RepeatVector(n_out)(encoder)
    decoder2 = L.LSTM(16, activation="relu", return_sequences=True)(decoder2)
    decoder2 = L.TimeDistributed(L.Dense(1))(decoder2)
    return K.Model(inputs=visible, outputs=[decoder1, decoder2]), {}


@model(
    "CNN-LSTM activity recognition",
    "machinelearningmastery.com/how-to-develop-rnn-models-for-human-activity-recognition-time-series-classification/",
    True,
)
def cnn_lstm_har(K):
    # machinelearningmastery.com HAR CNN-LSTM (n_steps 4, n_length 32, 9 features; 64 -> 8 filters)
    L, n_length, n_features = K.layers, 32, 9
    return K.Sequential(
        [
            K.Input((None, n_length, n_features)),
            L.TimeDistributed(L.Conv1D(filters=8, kernel_size=3, activation="relu")),
            L.TimeDistributed(L.Conv1D(filters=8, kernel_size=3, activation="relu")),
            L.TimeDistributed(L.Dropout(0.5)),
            L.TimeDistributed(L.MaxPooling1D(pool_size=2)),
            L.TimeDistributed(L.Flatten()),
            L.LSTM(16),
            L.Dropout(0.5),
            L.Dense(16, activation="relu"),
            L.Dense(6, activation="softmax"),
        ]
    ), {}


@model("ConvLSTM activity recognition", "machinelearningmastery.com (same HAR tutorial)", True)
def convlstm_har(K):
    # same tutorial: ConvLSTM2D(64, (1, 3), relu) over (n_steps, 1, n_length, n_features)
    L = K.layers
    return K.Sequential(
        [
            K.Input((4, 1, 32, 9)),
            L.ConvLSTM2D(filters=8, kernel_size=(1, 3), activation="relu"),
            L.Dropout(0.5),
            L.Flatten(),
            L.Dense(16, activation="relu"),
            L.Dense(6, activation="softmax"),
        ]
    ), {}


@model(
    "video_classification (GRU + mask input)", "keras-io examples/vision/video_classification.py"
)
def video_gru(K):
    # keras-team/keras-io examples/vision/video_classification.py sequence model (2048 -> 32 features)
    L, T, F = K.layers, 20, 32
    frame_features_input = K.Input((T, F))
    mask_input = K.Input((T,), dtype="bool")
    x = L.GRU(16, return_sequences=True)(frame_features_input, mask=mask_input)
    x = L.GRU(8)(x)
    x = L.Dropout(0.4)(x)
    x = L.Dense(8, activation="relu")(x)
    output = L.Dense(5, activation="softmax")(x)
    return K.Model([frame_features_input, mask_input], output), {1: ("mask",)}


@model("lstm_text_generation", "keras examples/lstm_text_generation.py (Keras 2)", keras2=True)
def text_gen(K):
    # keras-team/keras (2.x) examples/lstm_text_generation.py (and keras-io's successor)
    L, maxlen, chars = K.layers, 40, 30
    return K.Sequential(
        [K.Input((maxlen, chars)), L.LSTM(32), L.Dense(chars, activation="softmax")]
    ), {}


@model("mnist_irnn", "keras examples/mnist_irnn.py (Keras 2)", keras2=True)
def mnist_irnn(K):
    # keras-team/keras (2.x) examples/mnist_irnn.py: relu SimpleRNN, identity recurrent init
    L = K.layers
    return K.Sequential(
        [
            K.Input((6, 1)),  # 784 pixel steps -> 6 (a relu recurrence this long saturates)
            L.SimpleRNN(
                8,
                kernel_initializer=K.initializers.RandomNormal(stddev=0.001),
                recurrent_initializer=K.initializers.Identity(gain=1.0),
                activation="relu",
            ),
            L.Dense(10),
            L.Activation("softmax"),
        ]
    ), {}


@model("mnist_hierarchical_rnn", "keras examples/mnist_hierarchical_rnn.py (Keras 2)", True)
def mnist_hrnn(K):
    # keras-team/keras (2.x) examples/mnist_hierarchical_rnn.py: TimeDistributed(LSTM) over rows
    L = K.layers
    x = L.Input(shape=(12, 12, 1))
    encoded_rows = L.TimeDistributed(L.LSTM(8))(x)
    encoded_columns = L.LSTM(8)(encoded_rows)
    prediction = L.Dense(10, activation="softmax")(encoded_columns)
    return K.Model(x, prediction), {}


@model("lesson stateful predictor", "this project's lesson (keras_ref)", keras2=True)
def lesson_stateful(K):
    # the sine lesson's stateful prediction model: SimpleRNN(1) with batch_shape (1, 1, 1)
    L = K.layers
    return K.Sequential(
        [K.Input(shape=(1, 1), batch_size=1), L.SimpleRNN(1, stateful=True), L.Dense(1)]
    ), {}


@model("Attention over LSTM (GlobalAveragePooling)", "keras Attention docstring, LSTM encoder")
def attention_lstm(K):
    # keras.layers.Attention docstring (query/value encoders, shared Embedding, pooled and
    # concatenated) with the CNN encoder replaced by an LSTM, as attention-over-LSTM repos do
    L = K.layers
    query_input = K.Input(shape=(None,), dtype="int32")
    value_input = K.Input(shape=(None,), dtype="int32")
    token_embedding = L.Embedding(input_dim=100, output_dim=16)
    query_embeddings = token_embedding(query_input)
    value_embeddings = token_embedding(value_input)
    enc = L.LSTM(12, return_sequences=True)
    query_seq_encoding = enc(query_embeddings)
    value_seq_encoding = enc(value_embeddings)
    attn = L.Attention()([query_seq_encoding, value_seq_encoding])
    query_encoding = L.GlobalAveragePooling1D()(query_seq_encoding)
    query_value_attention = L.GlobalAveragePooling1D()(attn)
    input_layer = L.Concatenate()([query_encoding, query_value_attention])
    out = L.Dense(1)(input_layer)
    return K.Model([query_input, value_input], out), {0: ("ids", 100, None), 1: ("ids", 100, None)}


@model(
    "Bidirectional docstring (custom backward_layer)",
    "keras layers/rnn/bidirectional.py docstring",
    True,
)
def bidir_doc(K):
    # keras-team/keras keras/src/layers/rnn/bidirectional.py docstring, both examples
    L = K.layers
    forward_layer = L.LSTM(10, return_sequences=True)
    backward_layer = L.LSTM(10, activation="relu", return_sequences=True, go_backwards=True)
    return K.Sequential(
        [
            K.Input(shape=(5, 10)),
            L.Bidirectional(forward_layer, backward_layer=backward_layer),
            L.Bidirectional(L.LSTM(10)),
            L.Dense(5),
            L.Activation("softmax"),
        ]
    ), {}


@model("GRU docstring (return_sequences + return_state)", "keras layers/rnn/gru.py docstring", True)
def gru_doc(K):
    # keras-team/keras keras/src/layers/rnn/gru.py docstring: whole_sequence_output, final_state
    inputs = K.Input((10, 8))
    whole_sequence_output, final_state = K.layers.GRU(4, return_sequences=True, return_state=True)(
        inputs
    )
    return K.Model(inputs, [whole_sequence_output, final_state]), {}


@model("Masking docstring", "keras layers/core/masking.py docstring", True)
def masking_doc(K):
    # keras-team/keras keras/src/layers/core/masking.py docstring (timesteps 10, features 8)
    L = K.layers
    return K.Sequential([K.Input((10, 8)), L.Masking(mask_value=0.0), L.LSTM(32)]), {0: ("masked",)}


@model(
    "Keras 2.2-era defaults (hard_sigmoid LSTM, GRU reset_after=False)",
    "keras 2.2.4 keras/layers/recurrent.py defaults",
    True,
)
def keras22_defaults(K):
    # keras-team/keras 2.2.4 keras/layers/recurrent.py: LSTM/GRU default
    # recurrent_activation='hard_sigmoid', GRU reset_after=False, as files of that era hold
    L = K.layers
    return K.Sequential(
        [
            K.Input((12, 5)),
            L.LSTM(8, recurrent_activation="hard_sigmoid", return_sequences=True),
            L.GRU(8, recurrent_activation="hard_sigmoid", reset_after=False),
            L.Dense(3, activation="softmax"),
        ]
    ), {}


# --- running -----------------------------------------------------------------------------------


def randomize(m, rng) -> None:
    for layer in _all_layers(m):
        ws = layer.get_weights()
        if not ws:
            continue
        names = [w.name for w in layer.weights]
        new = []
        for name, w in zip(names, ws, strict=True):
            lo, hi = (0.5, 1.5) if "variance" in name else (-0.5, 0.5)
            new.append(rng.uniform(lo, hi, size=w.shape).astype(w.dtype))
        layer.set_weights(new)


def _all_layers(m):
    for layer in m.layers:
        if hasattr(layer, "layers") and not hasattr(layer, "cell"):
            yield from _all_layers(layer)
        else:
            yield layer


def make_inputs(m, hints: dict, rng) -> list[np.ndarray]:
    xs = []
    for i, t in enumerate(m.inputs):
        shape = list(t.shape)
        b = shape[0] or 3
        shape = [b] + [d if d is not None else T_FREE for d in shape[1:]]
        hint = hints.get(i)
        dtype = getattr(t.dtype, "name", str(t.dtype))
        if hint and hint[0] == "ids":
            _, vocab, pad = hint
            x = rng.integers(1, vocab, size=shape)
            if pad is not None:  # lengths from 2 to full, zero padding
                for r in range(b):
                    n = int(rng.integers(2, shape[1] + 1))
                    if pad == "pre":
                        x[r, : shape[1] - n] = 0
                    else:
                        x[r, n:] = 0
            xs.append(x.astype(dtype if "int" in dtype else "float32"))
        elif hint and hint[0] == "mask":
            x = np.zeros(shape, bool)
            for r in range(b):
                x[r, : int(rng.integers(2, shape[1] + 1))] = True
            xs.append(x)
        elif hint and hint[0] == "text":
            words = [["the cat ran"], ["a dog sat on the mat"], ["park"]][:b]
            xs.append(tf.constant(words))  # Keras's predict takes strings as a tf tensor
        elif hint and hint[0] == "masked":  # trailing all-zero steps (Masking's mask_value)
            x = rng.uniform(-1, 1, size=shape).astype("float32")
            for r in range(b):
                x[r, int(rng.integers(2, shape[1] + 1)) :] = 0.0
            xs.append(x)
        else:
            xs.append(rng.uniform(-1, 1, size=shape).astype("float32"))
    return xs


def to_torch(x) -> torch.Tensor:
    if isinstance(x, tf.Tensor):
        raise TypeError("a string input has no torch tensor: the porter should have refused")
    if x.dtype.kind in "iu":
        return torch.from_numpy(x.astype(np.int64))
    return torch.from_numpy(x)


def compare(path: Path, xs, ref: list[np.ndarray]) -> str:
    try:
        pm = load_keras_model(path)
        with torch.no_grad():
            out = pm(*[to_torch(x) for x in xs])
    except Refused as e:
        return f"REFUSED  {e}"
    except Exception:
        return "CRASH\n" + traceback.format_exc()
    outs = list(out) if isinstance(out, (tuple, list)) else [out]
    if len(outs) != len(ref):
        return f"WRONG  {len(outs)} outputs, Keras gives {len(ref)}"
    worst = 0.0
    for a, b in zip(outs, ref, strict=True):
        a = a.detach().numpy()
        if a.shape != b.shape:
            return f"WRONG  shape {a.shape}, Keras {b.shape}"
        worst = max(worst, float(np.max(np.abs(a - b) / np.maximum(1.0, np.abs(b)))))
    if not np.isfinite(worst) or worst > TOL:
        return f"WRONG  max rel diff {worst:.3e}"
    return f"OK  max rel diff {worst:.1e}; {onnx_check(pm, path, xs, ref)}; {back_check(pm, path, xs, ref)}"


def rel(outs, ref) -> float:
    if len(outs) != len(ref) or any(
        np.shape(a) != np.shape(b) for a, b in zip(outs, ref, strict=True)
    ):
        return float("inf")
    return max(
        float(np.max(np.abs(a - b) / np.maximum(1.0, np.abs(b)), initial=0))
        for a, b in zip(outs, ref, strict=True)
    )


def onnx_check(pm, path: Path, xs, ref) -> str:
    """The ported model through export_onnx and onnxruntime, against Keras's predict."""
    import onnxruntime as ort

    from torch_rnnsin.export.onnx import export_onnx, streaming

    onnx_path = path.with_suffix(path.suffix + ".onnx")
    onnx_path.unlink(missing_ok=True)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            export_onnx(pm, onnx_path)
    except Refused as e:
        return f"ONNX refused ({e})"
    sess = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    g = streaming(pm)
    types = {i.name: i.type for i in sess.get_inputs()}
    np_type = {"tensor(int32)": np.int32, "tensor(int64)": np.int64, "tensor(bool)": np.bool_}
    feed = {
        n: np.asarray(x).astype(np_type.get(types[n], np.float32))
        for n, x in zip(g.names, xs, strict=True)
    }
    feed |= {
        f"state_in_{k}": np.zeros((np.asarray(xs[0]).shape[0], *shape), np.float32)
        for k, shape in enumerate(g.shapes)
    }
    got = sess.run(None, feed)[: len(ref)]
    d = rel(got, ref)
    return f"ONNX {'OK' if d <= TOL else 'WRONG'} {d:.1e}"


def back_check(pm, path: Path, xs, ref) -> str:
    """Written back as .keras, loaded and run by Keras 3."""
    back = path.with_suffix(path.suffix + ".back.keras")
    back.unlink(missing_ok=True)
    try:
        save_keras_model(pm, back)
    except Refused as e:
        return f"back refused ({e})"
    y = keras.models.load_model(back).predict(xs if len(xs) > 1 else xs[0], verbose=0)
    d = rel([np.asarray(a) for a in (y if isinstance(y, list | tuple) else [y])], ref)
    return f"back {'OK' if d <= TOL else 'WRONG'} {d:.1e}"


def run_one(name, keras2, fn, K, out: Path, tag: str) -> list[tuple[str, str]]:
    rng = np.random.default_rng(0)
    K.utils.set_random_seed(0)
    try:
        m, hints = fn(K)
        randomize(m, rng)
        xs = make_inputs(m, hints, rng)
        bs = m.inputs[0].shape[0] or 3
        ref = m.predict(xs if len(xs) > 1 else xs[0], batch_size=bs, verbose=0)
    except Exception as e:
        return [(tag, f"BUILD-FAIL  {type(e).__name__}: {str(e).splitlines()[0][:150]}")]
    ref = [np.asarray(r) for r in ref] if isinstance(ref, (list, tuple)) else [np.asarray(ref)]
    stem = "".join(c if c.isalnum() else "_" for c in name).strip("_")
    exts = [".h5"] if K is tf_keras else [".keras", ".h5"]
    rows = []
    for ext in exts:
        path = out / f"{stem}_{tag}{ext}"
        try:
            m.save(path)
        except Exception as e:
            rows.append(
                (f"{tag}{ext}", f"SAVE-FAIL  {type(e).__name__}: {str(e).splitlines()[0][:150]}")
            )
            continue
        rows.append((f"{tag}{ext}", compare(path, xs, ref)))
    return rows


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print(__doc__.strip().splitlines()[2], file=sys.stderr)
        return 2
    out = Path(argv[0])
    out.mkdir(parents=True, exist_ok=True)
    counts: dict[str, int] = {}
    for name, _source, keras2, fn in MODELS:
        rows = run_one(name, keras2, fn, keras, out, "k3")
        if keras2:
            rows += run_one(name, keras2, fn, tf_keras, out, "k2")
        for fmt, line in rows:
            print(f"{name} [{fmt}]: {line}", flush=True)
            kind = line.split()[0]
            counts[kind] = counts.get(kind, 0) + 1
            for extra in (
                "ONNX WRONG",
                "back WRONG",
                "ONNX OK",
                "back OK",
                "ONNX refused",
                "back refused",
            ):
                if extra in line:
                    counts[extra] = counts.get(extra, 0) + 1
    print("summary:", ", ".join(f"{k} {v}" for k, v in sorted(counts.items())))
    bad = ("WRONG", "CRASH", "ONNX WRONG", "back WRONG")
    return 1 if any(counts.get(k) for k in bad) else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
