"""The TensorRT fake's names and values against the real compiled bindings (10.3.0, 11.4.0.106), imported with a
stub libnvinfer whose factories return NULL as the real ones do without a GPU. Needs the bindings fetched by
``sh scripts/trt_bindings.sh DIR`` and ``UOLRPS_TRT_BINDINGS=DIR``."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from fake_tensorrt import make_trt

ROOT = Path(os.environ.get("UOLRPS_TRT_BINDINGS", "/nonexistent"))
DUMP = """
import json, tensorrt_bindings as trt
enums = {e: {k: int(v) for k, v in getattr(trt, e).__members__.items()} for e in
         ("BuilderFlag", "NetworkDefinitionCreationFlag", "DataType", "MemoryPoolType", "DeviceType", "TensorIOMode")}
errors = {}
logger = trt.Logger(trt.Logger.WARNING)
for name in ("Builder", "Runtime"):
    try:
        getattr(trt, name)(logger)
    except Exception as e:
        errors[name] = f"{type(e).__name__}: {e}"
parser = [m for m in ("supports_model_v2", "num_subgraphs", "is_subgraph_supported", "get_subgraph_nodes",
                      "parse_from_file", "num_errors", "get_error", "clear_errors") if hasattr(trt.OnnxParser, m)]
print(json.dumps({"version": trt.__version__, "enums": enums, "errors": errors, "parser": parser,
                  "host_memory": sorted(m for m in dir(trt.IHostMemory) if not m.startswith("_"))}))
"""


@pytest.mark.parametrize("version", ["10.3.0", "11.4.0.106"])
def test_fakes_match_real_bindings(version):
    if not (ROOT / version / "tensorrt_bindings").is_dir():
        pytest.skip("needs the real bindings: sh scripts/trt_bindings.sh DIR, then UOLRPS_TRT_BINDINGS=DIR")
    env = dict(os.environ, PYTHONPATH=str(ROOT / version), LD_LIBRARY_PATH=str(ROOT / "stub"))
    real = json.loads(subprocess.run([sys.executable, "-c", DUMP], env=env, capture_output=True, text=True,
                                     check=True, timeout=60).stdout)
    fake = make_trt(version, gpu=False)
    assert real["version"] == fake.__version__
    for name, members in real["enums"].items():
        assert {k: int(v) for k, v in getattr(fake, name).__members__.items()} == members, name
    for name, error in real["errors"].items():
        with pytest.raises(TypeError) as e:
            getattr(fake, name)(fake.Logger(fake.Logger.WARNING))
        assert f"TypeError: {e.value}" == error
    assert all(hasattr(fake.OnnxParser, m) for m in real["parser"])
    assert real["host_memory"] == ["dtype", "nbytes"]
