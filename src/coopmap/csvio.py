"""Append-only CSV files that survive being killed at any moment.

Every row is written whole with one ``write`` call and fsync'ed, so a crash leaves at most a partial *last* line,
which readers drop and the next append removes (it would otherwise glue the new row onto it). Rewrites (truncation on resume, merges) go through a temp file and an atomic rename.
"""

from __future__ import annotations

import csv
import io
import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return repr(value)  # the shortest text that reads back as exactly this float
    return str(value)


def _line(values: Sequence[Any]) -> str:
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerow([_fmt(v) for v in values])
    return buf.getvalue()


class AppendCsv:
    """A CSV whose columns are fixed by its header (given, or from the first row written)."""

    def __init__(self, path: str | os.PathLike[str], columns: Sequence[str] | None = None):
        self.path = Path(path)
        existing = self._read_header()
        if existing and columns and list(columns) != existing:
            # keep the file's own columns; new keys are dropped from later rows rather than shifting columns
            columns = existing
        self.columns: list[str] | None = existing or (list(columns) if columns else None)

    def _read_header(self) -> list[str] | None:
        if not self.path.exists() or self.path.stat().st_size == 0:
            return None
        with open(self.path, newline="") as f:
            first = f.readline()
        if not first.endswith("\n"):
            return None
        return next(csv.reader([first]))

    def rows(self) -> list[dict[str, str]]:
        """Every complete row (a trailing partial line from an interrupted write is ignored)."""
        if self.columns is None or not self.path.exists():
            return []
        with open(self.path, newline="") as f:
            text = f.read()
        if not text.endswith("\n"):
            text = text[: text.rfind("\n") + 1]
        reader = csv.reader(io.StringIO(text))
        next(reader, None)
        return [dict(zip(self.columns, r)) for r in reader if len(r) == len(self.columns)]

    def append(self, row: dict[str, Any]) -> None:
        if self.columns is None:
            self.columns = list(row)
        if not self.path.exists() or self.path.stat().st_size == 0:
            self.rewrite([])
        else:
            self._drop_partial_line()
        self._write(_line([row.get(c, "") for c in self.columns]), mode="a")

    def _drop_partial_line(self) -> None:
        """After an interrupted write, rewrite the complete rows (atomically) so the next row starts a line."""
        with open(self.path, "rb") as f:
            f.seek(-1, os.SEEK_END)
            if f.read(1) == b"\n":
                return
        self.rewrite(self.rows())

    def rewrite(self, rows: Iterable[dict[str, Any]]) -> None:
        """Replace the file's rows atomically (header kept)."""
        assert self.columns is not None
        text = _line(self.columns) + "".join(_line([r.get(c, "") for c in self.columns]) for r in rows)
        tmp = self.path.with_name(f".{self.path.name}.tmp")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(tmp, "w", newline="") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.path)

    def _write(self, text: str, mode: str) -> None:
        with open(self.path, mode, newline="") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
