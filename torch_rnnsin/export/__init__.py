"""Export to other runtimes: ``onnx`` (ONNX with the recurrent state as graph inputs and
outputs). Part of the porter: it never imports the lesson."""

DEFAULT_OPSET = 17
OPSETS = range(14, 21)  # 14: ONNX's RNN ops as torch writes them; 20: the exporter's newest
