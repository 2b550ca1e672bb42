"""The model file: its metadata (``ModelMeta``), read and written in one place (ONNX metadata props, the
TensorRT engine's sidecar), the threshold written back into it, and the family of files one export writes
(``uolrps.model.files``). Imports only ``uolrps.core``.
"""
