"""uolrps model served through Triton's Python backend: ONNX Runtime on model.onnx (written by uolrps).

Shipped as package data: `uolrps triton-repo --platform python` copies this file to <entry>/1/model.py. It runs
inside Triton's Python backend (which provides triton_python_backend_utils), never inside uolrps. All the
requests the dynamic batcher hands over in one execute() call run as one batch; each gets its own slice back.
"""

import json
import os

import numpy as np
import onnxruntime as ort
import triton_python_backend_utils as pb_utils


class TritonPythonModel:
    def initialize(self, args):
        config = json.loads(args["model_config"])
        self.input = config["input"][0]["name"]
        self.output = config["output"][0]["name"]
        path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "model.onnx")
        options = ort.SessionOptions()
        threads = config.get("parameters", {}).get("ort_threads", {}).get("string_value", "")
        if threads:
            options.intra_op_num_threads = int(threads)
        self.session = ort.InferenceSession(path, sess_options=options, providers=["CPUExecutionProvider"])

    def execute(self, requests):
        arrays = [pb_utils.get_input_tensor_by_name(r, self.input).as_numpy() for r in requests]
        out = self.session.run([self.output], {self.input: np.concatenate(arrays, axis=0)})[0]
        responses, start = [], 0
        for a in arrays:
            part = out[start:start + len(a)]
            start += len(a)
            responses.append(pb_utils.InferenceResponse(output_tensors=[pb_utils.Tensor(self.output, part)]))
        return responses
