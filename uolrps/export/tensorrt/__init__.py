"""The TensorRT stage: an engine and its sidecar from the exported ONNX file, on the machine that runs it
(`uolrps build`). TensorRT itself is imported only inside the functions that need it."""
