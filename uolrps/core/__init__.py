"""The foundation every layer stands on: errors, option checks, paths and atomic writes, digests, images,
maps and boxes, batching, progress, annotations and drawing, GPU and OpenCV probes.

Numpy, OpenCV and the standard library only; nothing here imports from another uolrps package.
"""
