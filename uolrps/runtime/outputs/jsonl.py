"""``--jsonl``: one JSON line per result, written line by line, so the file is valid after Ctrl-C, and holds only
whole lines after a full disk (:class:`uolrps.core.checked_io.LineFile`)."""

from __future__ import annotations

import json
from pathlib import Path

from uolrps.core.checked_io import LineFile
from uolrps.core.errors import OptionError
from uolrps.core.paths import check_output_path
from uolrps.runtime.result import LocalizationResult


class JsonlOutput:
    """One JSON object per line and frame, flushed line by line, so the file is valid after Ctrl-C.

    ``{"stream": "cam0", "frame": 0, "t": 0.0, "boxes": [[x1, y1, x2, y2]], "scores": [0.71], "ms": {...},
    "latency_ms": 12.3}`` (see :meth:`LocalizationResult.to_record`); ``path`` is added for file-based sources,
    ``labels`` when the model has several classes. Several streams share one file (each line names its stream).
    """

    def __init__(self, path: str | Path, labels: bool = False, inputs=()) -> None:
        self.path = check_output_path(path, "jsonl", inputs=inputs)
        self.labels = labels
        self._file = None  # opened at the first line, so a run that fails before it leaves an old file as it was
        self.lines = 0

    def _open(self) -> None:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._file = LineFile(self.path, "jsonl")
        except OSError as e:
            raise OptionError(f"jsonl {str(self.path)!r}: cannot write ({e.strerror})", "jsonl") from None

    def write(self, result: LocalizationResult) -> None:
        if self._file is None:
            self._open()
        self._file.write(json.dumps(result.to_record(labels=self.labels)) + "\n")  # OutputError: whole lines kept
        self.lines += 1

    def finish(self) -> None:
        """The run ended normally: a run of zero frames still leaves an (empty) file."""
        if self._file is None:
            self._open()

    def close(self) -> None:
        if self._file is not None and not self._file.closed:
            self._file.close()
