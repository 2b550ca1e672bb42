"""The Triton packager: a model repository entry (config.pbtxt and the model) for an exported model
(`uolrps triton-repo`, `uolrps export --triton-repo`, ``export_model(..., triton_repo=...)``)."""
