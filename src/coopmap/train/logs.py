"""Training logs: an append-only CSV (rows written and flushed whole) and TensorBoard scalars (rank 0 only)."""

from __future__ import annotations

import csv
import math
import os
from pathlib import Path
from typing import Any


class CsvLog:
    """``train_log.csv``: one row per logged step; columns are fixed by the first row written.

    Rows are appended, each written whole and flushed (fsync'ed) at once, so an interrupted run never leaves a half
    row. On resume, :meth:`truncate_after` drops rows of steps the checkpoint did not reach, so a resumed log has each
    step exactly once. A later row with new keys is written with the known columns only (new keys are reported once).
    """

    def __init__(self, path: str | os.PathLike[str]):
        self.path = Path(path)
        self.columns: list[str] | None = None
        if self.path.exists() and self.path.stat().st_size > 0:
            with open(self.path, newline="") as f:
                header = next(csv.reader(f), None)
            self.columns = header or None

    def truncate_after(self, step: int) -> None:
        """Keep only rows with ``step <= step`` (and drop a trailing partial line)."""
        if not self.path.exists() or self.columns is None:
            return
        with open(self.path, newline="") as f:
            text = f.read()
        lines = text.splitlines(keepends=True)
        if lines and not lines[-1].endswith("\n"):
            lines = lines[:-1]
        kept = [lines[0]] + [ln for ln in lines[1:] if _row_step(ln) <= step]
        tmp = self.path.with_suffix(".csv.tmp")
        with open(tmp, "w", newline="") as f:
            f.writelines(kept)
        os.replace(tmp, self.path)

    def write(self, row: dict[str, Any]) -> None:
        if self.columns is None:
            self.columns = list(row)
            self._append(",".join(self.columns) + "\n")
        values = [_fmt(row.get(c, "")) for c in self.columns]
        self._append(",".join(values) + "\n")

    def _append(self, line: str) -> None:
        with open(self.path, "a", newline="") as f:
            f.write(line)
            f.flush()
            os.fsync(f.fileno())


def _row_step(line: str) -> float:
    try:
        return float(line.split(",", 1)[0])
    except ValueError:
        return math.inf


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.6g}"
    text = str(value)
    return f'"{text}"' if "," in text else text


class TensorBoardLog:
    """TensorBoard scalars under the run folder; a no-op when disabled (ranks > 0)."""

    def __init__(self, log_dir: str | os.PathLike[str] | None):
        self.writer = None
        if log_dir is not None:
            from torch.utils.tensorboard import SummaryWriter

            self.writer = SummaryWriter(log_dir=str(log_dir))

    def scalars(self, step: int, values: dict[str, float]) -> None:
        if self.writer is None:
            return
        for key, value in values.items():
            if isinstance(value, (int, float)) and math.isfinite(value):
                self.writer.add_scalar(key, value, step)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
