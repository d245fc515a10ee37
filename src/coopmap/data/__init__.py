"""OPV2V data: index, readers, sparse depth GT and MapAnything-format views."""
