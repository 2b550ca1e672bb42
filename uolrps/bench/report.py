"""The `uolrps bench` table for the terminal."""

from __future__ import annotations


def _f(v, fmt) -> str:
    return "-" if v is None else format(v, fmt)


def table(report) -> str:
    head = ["target", "ran on", "batch", "infer p50/p95/p99 ms", "img/s", "full p50/p95/p99 ms", "img/s",
            "max|diff|", "IoU>=0.9"]
    def batch(r) -> str:
        fixed = r.model_batch
        return f"{r.batch}*" if fixed and r.batch != fixed else str(r.batch)

    rows = [[r.label, r.provider, batch(r),
             f"{r.infer.p50_ms:.2f}/{r.infer.p95_ms:.2f}/{r.infer.p99_ms:.2f}", f"{r.infer.images_per_s:.1f}",
             f"{r.full.p50_ms:.2f}/{r.full.p95_ms:.2f}/{r.full.p99_ms:.2f}", f"{r.full.images_per_s:.1f}",
             _f(r.max_abs_diff, ".2e"), "-" if r.box_agreement is None else f"{r.box_agreement:.0%}"]
            for r in report.rows]
    widths = [max(len(x) for x in col) for col in zip(head, *rows)]
    lines = [f"uolrps bench {report.model} on {report.images}; agreement against "
             f"{report.reference or 'nothing (no FP32 model.onnx beside MODEL)'}"]
    lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in [head, *rows]]
    fixed = sorted({(r.batch, r.model_batch) for r in report.rows if r.model_batch
                    and r.batch != r.model_batch})
    for b, m in fixed:
        lines.append(f"* batch {b}: the model has a fixed batch of {m}, so a batch of {b} runs as "
                     f"{-(-b // m)} calls of {m} (to measure a real batch, export with `uolrps export --dynamic-batch ...` "
                     f"or `uolrps export --batch {b} ...`)")
    if report.skipped:
        lines.append("not measured here:")
        lines += [f"  {s.label}: {s.reason}" for s in report.skipped]
    return "\n".join(lines)
