"""Helpers shared by the report tests (imported by conftest.py and the test modules)."""

from __future__ import annotations

import math
from html.parser import HTMLParser

import numpy as np

from coopmap.csvio import AppendCsv


def csv_mean(eval_dir, mode: str, metric: str) -> float:
    """Mean of a coop_metrics.csv column over the mode's ok rows (NaN left out), computed independently."""
    rows = [r for r in AppendCsv(eval_dir / "coop_metrics.csv").rows() if r["mode"] == mode and r["status"] == "ok"]
    x = np.array([float(r[metric]) if r[metric] not in ("", "nan") else math.nan for r in rows])
    x = x[np.isfinite(x)]
    return float(x.mean()) if x.size else math.nan


class Page(HTMLParser):
    """The parts of the report page the tests check: image sources, and every cell of the metric tables as
    (mode, variant, column header) -> exact value (``data-value``)."""

    def __init__(self, text: str):
        super().__init__()
        self.images: list[str] = []
        self.cells: dict[tuple[str, str, str], float] = {}
        self._heading, self._mode, self._in_h3 = "", "", False
        self._table = False
        self._headers: list[str] = []
        self._row: list = []
        self._text = ""
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "img":
            self.images.append(a["src"])
        elif tag == "h3":
            self._in_h3, self._heading = True, ""
        elif tag == "table" and "metrics" in (a.get("class") or ""):
            self._table, self._headers = True, []
        elif self._table and tag in ("th", "td"):
            self._text = ""
            if tag == "td" and self._row is not None:
                self._row.append(a.get("data-value"))
        elif self._table and tag == "tr":
            self._row = []

    def handle_endtag(self, tag):
        if tag == "h3":
            self._in_h3 = False
            if self._heading.startswith("mode: "):
                self._mode = self._heading[len("mode: "):]
        elif tag == "table":
            self._table = False
        elif self._table and tag == "th":
            self._headers.append(self._text.strip())
        elif self._table and tag == "td" and len(self._row) == 1:
            self._row[0] = self._text.split("(")[0].strip()  # the variant name
        elif self._table and tag == "tr" and self._row:
            for header, value in zip(self._headers[1:], self._row[1:]):
                self.cells[(self._mode, self._row[0], header.split(" [")[0])] = float(value)
            self._row = []

    def handle_data(self, data):
        self._text += data
        if self._in_h3:
            self._heading += data
