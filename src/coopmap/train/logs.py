"""Training logs: an append-only CSV (rows written and flushed whole) and TensorBoard scalars (rank 0 only)."""

from __future__ import annotations

import math
import os
from typing import Any

from coopmap.csvio import AppendCsv


class CsvLog:
    """``train_log.csv``: one row per logged step (an :class:`~coopmap.csvio.AppendCsv`).

    On resume, :meth:`truncate_after` drops rows of steps the checkpoint did not reach (and a partial last line),
    so a resumed log has each step exactly once.
    """

    def __init__(self, path: str | os.PathLike[str]):
        self.csv = AppendCsv(path)

    def truncate_after(self, step: int) -> None:
        if self.csv.columns is not None:
            self.csv.rewrite(r for r in self.csv.rows() if _row_step(r) <= step)

    def write(self, row: dict[str, Any]) -> None:
        self.csv.append(row)


def _row_step(row: dict[str, str]) -> float:
    try:
        return float(row.get("step", "inf"))
    except ValueError:
        return math.inf


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
