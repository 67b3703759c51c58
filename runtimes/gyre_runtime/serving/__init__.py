"""The inference server: the Open Inference Protocol over HTTP, metrics and the request log."""
