"""The run's summary as a sink: ``summary_json`` (``uolrps run --summary-json``) gets the run's statistics
(:meth:`uolrps.runtime.stats.RunStats.summary`) as one JSON file.

It writes nothing per frame: it is written in :meth:`Sink.report`, on every exit path (the end, Ctrl-C, a
second signal, a full disk), after every other output is closed and the statistics are final, so it says
how the others ended (``interrupted``, ``output_error``). The file is replaced whole (``write_atomic``: a
crash leaves the old one or the new one) and refused before it is begun when it cannot fit.
"""

from __future__ import annotations

import json
from pathlib import Path

from uolrps.core.paths import check_output_path, write_atomic
from uolrps.runtime.sink import Sink, run_inputs

LABEL = "--summary-json"  # how a write failure names it (the words uolrps run has always used)


class SummarySink(Sink):
    """``summary_json``: the run's summary as JSON, written once after everything else."""

    close_rank = 2

    @classmethod
    def check(cls, config, specs, names, single):
        if config.summary_json is not None:
            check_output_path(config.summary_json, "summary_json", inputs=run_inputs(config, specs))

    @classmethod
    def create(cls, config, annotator, labels, single):
        return cls(Path(config.summary_json)) if config.summary_json is not None else None

    def __init__(self, path: Path) -> None:
        self.path = path

    def report(self, stats) -> None:
        text = json.dumps(stats.summary(), indent=1) + "\n"
        write_atomic(self.path, lambda tmp: tmp.write_text(text, encoding="utf-8"), LABEL,
                     size=len(text.encode("utf-8")))
