"""Where results go, one module per kind: an annotated video (:mod:`.video`), annotated images
(:mod:`.images`), a JSONL file (:mod:`.jsonl`), a window (:mod:`.window`), the FPS meter (:mod:`.meter`)
and the progress bar (:mod:`.progress`).

Each output is checked when it is created (before the model loads), writes one frame at a time, and is
finalised by ``close()``, which the run calls on every exit path, Ctrl-C included.
"""

from uolrps.runtime.outputs.images import ImageFolderOutput
from uolrps.runtime.outputs.jsonl import JsonlOutput
from uolrps.runtime.outputs.meter import FpsMeter
from uolrps.runtime.outputs.progress import Progress
from uolrps.runtime.outputs.video import FOURCC, VideoOutput, letterbox
from uolrps.runtime.outputs.window import WindowOutput

__all__ = ["FOURCC", "FpsMeter", "ImageFolderOutput", "JsonlOutput", "Progress", "VideoOutput", "WindowOutput",
           "letterbox"]
