"""``coopmap report``: an HTML page of training curves, metric tables, verdicts and worst frames (docs/report.md)."""
