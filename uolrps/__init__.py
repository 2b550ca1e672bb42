"""uolrps: unsupervised object localization with representer point selection, on the edge."""

__version__ = "0.1.0"
