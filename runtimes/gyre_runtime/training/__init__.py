"""The built-in trainer: algorithms, data preparation, metrics and ONNX export."""
