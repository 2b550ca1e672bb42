#!/bin/sh
# Fetch the compiled TensorRT Python bindings (10.3.0 and 11.4.0.106, no GPU libraries) and a stub
# libnvinfer so they import on a machine without TensorRT, for tests/test_fake_tensorrt_real.py:
#   sh scripts/trt_bindings.sh /tmp/trt-bindings && UOLRPS_TRT_BINDINGS=/tmp/trt-bindings pytest tests/test_fake_tensorrt_real.py
# The stub's factories return NULL, as the real ones do without a GPU. Needs pip, unzip-free Python and cc.
set -eu
DIR=${1:?usage: trt_bindings.sh DIR}
PY=${PYTHON:-python3}
mkdir -p "$DIR/stub"
for v in 10.3.0 11.4.0.106; do
  "$PY" -m pip download -q --no-deps "tensorrt_cu12_bindings==$v" -d "$DIR/wheels"
  "$PY" -c "import sys, zipfile, glob; zipfile.ZipFile(glob.glob(sys.argv[1])[0]).extractall(sys.argv[2])" \
    "$DIR/wheels/tensorrt_cu12_bindings-$v-*.whl" "$DIR/$v"
done
cat > "$DIR/stub/stub.c" <<'C'
#include <stddef.h>
void *createInferBuilder_INTERNAL(void *logger, int v) { return NULL; }
void *createInferRefitter_INTERNAL(void *e, void *l, int v) { return NULL; }
void *createInferRuntime_INTERNAL(void *l, int v) { return NULL; }
void *createNvOnnxParserRefitter_INTERNAL(void *r, void *l, int v) { return NULL; }
void *createNvOnnxParser_INTERNAL(void *n, void *l, int v) { return NULL; }
void *getBuilderPluginRegistry(int c) { return NULL; }
int getNvOnnxParserVersion(void) { return 0; }
void *getPluginRegistry(void) { return NULL; }
int initLibNvInferPlugins(void *l, const char *ns) { return 0; }
C
cc -shared -fPIC -o "$DIR/stub/libstub.so" "$DIR/stub/stub.c"
for m in 10 11; do for l in libnvinfer libnvonnxparser libnvinfer_plugin; do ln -sf libstub.so "$DIR/stub/$l.so.$m"; done; done
echo "bindings ready in $DIR"
