"""The Keras 3 (TensorFlow backend) reference: the lesson's model, its training and
both prediction modes. The only package of the project that imports Keras."""

from .model import (
    define_model,
    predict_stateful,
    predict_stateless,
    train,
    train_stateful,
)

__all__ = ["define_model", "predict_stateful", "predict_stateless", "train", "train_stateful"]
