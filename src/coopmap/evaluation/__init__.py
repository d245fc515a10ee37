"""``coopmap eval``: per-frame metrics of a model on an OPV2V(-format) split, resumable, with summaries."""
