"""The sine-wave lesson: a 5-weight SimpleRNN + Dense learns a sine wave, trained with
Lightning exactly as Keras trains it; stateless against stateful prediction; the study.

It may use the porter (``torch_rnnsin.port``); the porter never uses it.
"""
