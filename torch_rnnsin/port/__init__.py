"""Porting Keras recurrent models to PyTorch and back (no Keras, no Lightning needed).

io/           Keras / torch model files <-> (config, arrays), one module per format
graph.py      a Keras model config -> one chain of layer entries (or a refusal)
layers.py     per layer kind: its options, and its arrays <-> torch parameters (tables)
modules.py    the torch blocks (nn.RNN / nn.LSTM / nn.GRU, GRUResetBefore, heads)
model.py      PortedModel, load_keras_model, save_keras_model, the inspect table
check.py      port --check: Keras (in its own process) against torch
commands.py   the port and inspect sub-commands
trace/        a torch module (torch.fx) -> a Keras 3 / Keras 2 file: save_torch_as_keras
"""
