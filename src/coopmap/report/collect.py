"""Find out what each report input is and read it into plain data classes.

Inputs (auto-detected per folder, several may be given):

- a **run folder** (``coopmap train``): ``train_log.csv`` (and ``val_log.csv`` when validation ran);
- an **eval folder** (``coopmap eval``): ``coop_metrics.csv``, ``config.yaml``, optionally ``points/``;
- a **filter folder** (``coopmap filter``): ``filter_metrics.csv`` and the filtered clouds;
- an **ablation folder** (``coopmap ablate``): ``ablation.csv``, ``verdicts.json``, ``runs/<variant>/``,
  ``eval/<variant>/``, ``filter/<variant>/`` (each part may be missing).
"""

from __future__ import annotations

import json
import math
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from omegaconf import OmegaConf

from coopmap.csvio import AppendCsv
from coopmap.errors import DataError
from coopmap.report.columns import to_float

KEY_COLUMNS = ("scenario", "timestamp", "ego_id", "mode")
Key = tuple[str, str, str, str]  # scenario, timestamp, ego_id, mode


@dataclass
class RunLog:
    """A training run: every column of train_log.csv (and val_log.csv) as float arrays (NaN where blank)."""

    name: str
    path: Path
    train: dict[str, np.ndarray]
    val: dict[str, np.ndarray] = field(default_factory=dict)


@dataclass
class FilterOut:
    """A ``coopmap filter`` output folder: its filter_metrics.csv rows (strings, as written)."""

    name: str
    path: Path
    rows: list[dict[str, str]]

    def keys(self) -> set[Key]:
        return {row_key(r) for r in self.rows}


@dataclass
class EvalOut:
    """A ``coopmap eval`` output folder: coop_metrics.csv rows, its resolved config (None if missing) and the
    filter output of its clouds, when one was given or found."""

    name: str
    path: Path
    rows: list[dict[str, str]]
    config: dict | None
    filter: FilterOut | None = None

    def keys(self) -> set[Key]:
        return {row_key(r) for r in self.rows}


@dataclass
class MetricRow:
    """One line of the metric table: a variant (or eval folder) in one mode."""

    variant: str
    mode: str
    values: dict[str, float]  # column -> value (for eval folders: the mean over the mode's ok frames)
    deltas: dict[str, float] = field(default_factory=dict)  # column -> difference to the baseline (d_<column>)
    source: str = ""


@dataclass
class Verdict:
    """An improvement judged against its predecessor on the metric it targets (from verdicts.json)."""

    variant: str
    targets: str
    mode: str
    baseline: float
    value: float
    better: bool | None
    text: str
    #: win | loss | no evidence | inconclusive (coopmap ablate); "" in files that only give ``better``
    verdict: str = ""
    predecessor: str = ""


@dataclass
class ReportInputs:
    sources: list[tuple[str, Path]] = field(default_factory=list)  # (kind, folder) as given
    runs: list[RunLog] = field(default_factory=list)
    evals: list[EvalOut] = field(default_factory=list)
    filters: list[FilterOut] = field(default_factory=list)  # filter folders not matched to an eval folder
    table: list[MetricRow] = field(default_factory=list)
    verdicts: list[Verdict] = field(default_factory=list)
    baseline: str | None = None
    notes: list[str] = field(default_factory=list)


def row_key(row: dict) -> Key:
    return tuple(str(row.get(k, "")) for k in KEY_COLUMNS)  # type: ignore[return-value]


def detect_kind(path: str | Path) -> str:
    """'ablation' | 'eval' | 'run' | 'filter' for a folder; DataError naming the folder otherwise."""
    p = Path(path)
    if not p.is_dir():
        raise DataError(p, "not a folder (expected a run, eval, filter or ablation folder)")
    if (p / "ablation.csv").is_file() or (p / "verdicts.json").is_file() or (p / "runs").is_dir() \
            or (p / "eval").is_dir():
        return "ablation"
    for name, kind in (("coop_metrics.csv", "eval"), ("train_log.csv", "run"), ("filter_metrics.csv", "filter")):
        if (p / name).is_file():
            return kind
    raise DataError(p, "not a report input: expected train_log.csv (run folder), coop_metrics.csv (eval folder), "
                       "filter_metrics.csv (filter folder) or ablation.csv / runs/ / eval/ (ablation folder)")


def _columns(path: Path) -> dict[str, np.ndarray]:
    rows = AppendCsv(path).rows()
    names = list(rows[0]) if rows else []
    return {c: np.array([to_float(r.get(c)) for r in rows], dtype=np.float64) for c in names}


def read_run(path: str | Path, name: str | None = None) -> RunLog:
    p = Path(path)
    if not (p / "train_log.csv").is_file():
        raise DataError(p / "train_log.csv", "missing (not a training run folder)")
    val = _columns(p / "val_log.csv") if (p / "val_log.csv").is_file() else {}
    return RunLog(name or p.name, p, _columns(p / "train_log.csv"), val)


def read_eval(path: str | Path, name: str | None = None) -> EvalOut:
    p = Path(path)
    if not (p / "coop_metrics.csv").is_file():
        raise DataError(p / "coop_metrics.csv", "missing (not a coopmap eval output folder)")
    config = None
    if (p / "config.yaml").is_file():
        try:
            config = OmegaConf.to_container(OmegaConf.load(p / "config.yaml"), resolve=False)
        except Exception as err:  # a broken config only costs the camera pictures
            raise DataError(p / "config.yaml", f"unreadable ({err})") from None
    return EvalOut(name or p.name, p, AppendCsv(p / "coop_metrics.csv").rows(), config)


def read_filter(path: str | Path, name: str | None = None) -> FilterOut:
    p = Path(path)
    if not (p / "filter_metrics.csv").is_file():
        raise DataError(p / "filter_metrics.csv", "missing (not a coopmap filter output folder)")
    return FilterOut(name or p.name, p, AppendCsv(p / "filter_metrics.csv").rows())


def mode_means(rows: list[dict[str, str]]) -> dict[str, dict[str, float]]:
    """Per mode (first-seen order): n_frames (ok rows), n_skipped and the mean of every other column over the ok
    rows, NaN values left out (as ``coopmap eval``'s summary.json); NaN for a column without a finite value."""
    out = {}
    for mode in dict.fromkeys(r.get("mode", "") for r in rows):
        these = [r for r in rows if r.get("mode", "") == mode]
        ok = [r for r in these if r.get("status", "ok") == "ok"]
        values: dict[str, float] = {"n_frames": float(len(ok)), "n_skipped": float(len(these) - len(ok))}
        for col in these[0]:
            if col in KEY_COLUMNS or col == "status":
                continue
            x = np.array([to_float(r.get(col)) for r in ok], dtype=np.float64)
            x = x[np.isfinite(x)]
            values[col] = float(x.mean()) if x.size else math.nan
        out[mode] = values
    return out


def eval_means(ev: EvalOut) -> list[MetricRow]:
    """The metric-table rows of an eval folder: one per mode, the means of :func:`mode_means`."""
    return [MetricRow(ev.name, mode, values, source=str(ev.path / "coop_metrics.csv"))
            for mode, values in mode_means(ev.rows).items()]


def read_ablation_table(path: Path) -> list[MetricRow]:
    """ablation.csv: one row per variant x mode; ``d_<metric>`` columns become the row's deltas."""
    rows = AppendCsv(path).rows()
    if rows and not {"variant", "mode"} <= set(rows[0]):
        raise DataError(path, f"expected columns 'variant' and 'mode', found {', '.join(rows[0])}")
    out = []
    for r in rows:
        values = {c: to_float(v) for c, v in r.items() if c not in ("variant", "mode") and not c.startswith("d_")}
        deltas = {c[2:]: to_float(v) for c, v in r.items() if c.startswith("d_")}
        out.append(MetricRow(r["variant"], r["mode"], values, deltas, source=str(path)))
    return out


def read_verdicts(path: Path) -> list[Verdict]:
    """verdicts.json: a list of {variant, targets, mode, baseline, value, better, text[, verdict, predecessor]}."""
    try:
        items = json.loads(path.read_text())
    except (OSError, ValueError) as err:
        raise DataError(path, f"unreadable verdicts ({err})") from None
    if not isinstance(items, list) or not all(isinstance(v, dict) for v in items):
        raise DataError(path, f"expected a JSON list of objects, got {type(items).__name__}")
    out = []
    for i, v in enumerate(items):
        if "variant" not in v:
            raise DataError(path, f"entry {i} has no 'variant'")
        better = v.get("better")
        out.append(Verdict(str(v["variant"]), str(v.get("targets", "")), str(v.get("mode", "")),
                           to_float(v.get("baseline")), to_float(v.get("value")),
                           better if isinstance(better, bool) else None, str(v.get("text", "")),
                           str(v.get("verdict", "")), str(v.get("predecessor", ""))))
    return out


def _subfolders(path: Path, marker: str) -> list[Path]:
    return sorted(p for p in path.glob("*") if p.is_dir() and (p / marker).is_file()) if path.is_dir() else []


def _seeded_subfolders(path: Path, marker: str) -> list[Path]:
    """Folders ``path/<name>`` and, for variants trained with several seeds, ``path/<name>/s<seed>``."""
    direct = _subfolders(path, marker)
    nested = [d for p in (path.glob("*") if path.is_dir() else []) if p.is_dir() for d in _subfolders(p, marker)]
    return sorted(direct + nested)


def _seeded_name(folder: Path, root: Path) -> str:
    return folder.relative_to(root).as_posix()


def read_ablation(path: str | Path) -> ReportInputs:
    """Everything of an ablation folder that exists; missing parts are listed in ``notes``."""
    p = Path(path)
    inp = ReportInputs(sources=[("ablation", p)])
    if (p / "ablation.csv").is_file():
        inp.table = read_ablation_table(p / "ablation.csv")
    else:
        inp.notes.append(f"{p}: no ablation.csv (the table is computed from the eval folders)")
    if (p / "verdicts.json").is_file():
        inp.verdicts = read_verdicts(p / "verdicts.json")
    else:
        inp.notes.append(f"{p}: no verdicts.json: no variant is judged against the baseline")
    inp.runs = [read_run(d, _seeded_name(d, p / "runs")) for d in _seeded_subfolders(p / "runs", "train_log.csv")]
    inp.evals = [read_eval(d, _seeded_name(d, p / "eval"))
                 for d in _seeded_subfolders(p / "eval", "coop_metrics.csv")]
    by_name = {e.name: e for e in inp.evals}
    for d in _seeded_subfolders(p / "filter", "filter_metrics.csv"):
        f = read_filter(d, _seeded_name(d, p / "filter"))
        if f.name in by_name:
            by_name[f.name].filter = f
        else:
            inp.filters.append(f)
    if not inp.table:
        inp.table = [row for e in inp.evals for row in eval_means(e)]
    order = {v: i for i, v in enumerate(dict.fromkeys(r.variant for r in inp.table))}
    inp.runs.sort(key=lambda r: (order.get(r.name, len(order)), r.name))
    inp.evals.sort(key=lambda e: (order.get(e.name, len(order)), e.name))
    inp.baseline = infer_baseline(inp.table)
    inp.notes += check_verdicts(inp.verdicts, inp.table, p / "verdicts.json")
    return inp


def infer_baseline(table: list[MetricRow]) -> str | None:
    """The variant every ``d_<metric>`` is measured against: the one whose deltas are all 0 (``coopmap ablate``
    uses ``stage2``, which is the fallback when the deltas do not tell)."""
    zero = [v for v in dict.fromkeys(r.variant for r in table)
            if all(r.deltas and all(d == 0 or math.isnan(d) for d in r.deltas.values())
                   for r in table if r.variant == v)]
    if len(zero) == 1:
        return zero[0]
    return "stage2" if any(r.variant == "stage2" for r in table) else None


def check_verdicts(verdicts: list[Verdict], table: list[MetricRow], path: Path) -> list[str]:
    """Notes for verdicts whose numbers disagree with the table (both come from the ablation's own files)."""
    notes = []
    values = {(r.variant, r.mode): r.values for r in table}
    for v in verdicts:
        row = values.get((v.variant, v.mode))
        if row is None:
            notes.append(f"{path}: verdict for {v.variant} ({v.mode}) has no row in the table")
            continue
        got = row.get(v.targets, math.nan)
        if math.isfinite(got) and math.isfinite(v.value) and not math.isclose(got, v.value, rel_tol=1e-6,
                                                                                abs_tol=1e-12):
            notes.append(f"{path}: verdict for {v.variant} says {v.targets} = {v.value!r}, the table has {got!r}")
    return notes


def _unique_name(name: str, path: Path, taken: set[str]) -> str:
    if name not in taken:
        return name
    name = f"{path.parent.name}/{path.name}"
    i = 2
    while name in taken:
        name, i = f"{path.parent.name}/{path.name} ({i})", i + 1
    return name


def pair_filters(evals: list[EvalOut], filters: list[FilterOut]) -> tuple[list[FilterOut], list[str]]:
    """Attach each filter output to the eval folder whose frames it filtered: the only eval folder holding all its
    frames (the same folder name breaks ties). Returns the unmatched filter outputs and notes about them."""
    left, notes = [], []
    for f in filters:
        keys = f.keys()
        cands = [e for e in evals if e.filter is None and keys <= e.keys()]
        if len(cands) > 1:
            cands = [e for e in cands if _same_clouds(f, e)] or cands
        if len(cands) > 1:
            cands = [e for e in cands if e.name == f.name] or cands
        if len(cands) == 1:
            cands[0].filter = f
        else:
            left.append(f)
            why = "no eval folder holds all its frames" if not cands else \
                f"{len(cands)} eval folders hold its frames ({', '.join(e.name for e in cands)})"
            notes.append(f"{f.path}: filter output not matched to an eval folder ({why}); shown as a table only "
                         "(pass it with its eval folder alone, or give both folders the same name)")
    return left, notes


def points_file(eval_dir: Path, key: Key) -> Path:
    """Where ``coopmap eval`` saved a frame's clouds (``eval.save_points=true``)."""
    scenario, timestamp, ego_id, mode = key
    return Path(eval_dir) / "points" / mode / f"{scenario}_{timestamp}_{ego_id}.npz"


def _same_clouds(f: FilterOut, ev: EvalOut) -> bool:
    """Whether the first ok frame of the filter output started from this eval folder's saved cloud (its
    n_points_before equals the number of saved predicted points)."""
    row = next((r for r in f.rows if r.get("status") == "ok" and "n_points_before" in r), None)
    path = points_file(ev.path, row_key(row)) if row else None
    if path is None or not path.is_file():
        return False
    try:
        with np.load(path, allow_pickle=False) as z:
            return len(z["pred_points"]) == to_float(row["n_points_before"])
    except (OSError, ValueError, KeyError, zipfile.BadZipFile):
        return False


def collect(paths) -> ReportInputs:
    """Read every input folder (kinds auto-detected) into one :class:`ReportInputs`."""
    if not paths:
        raise DataError(".", "no input folder given")
    out = ReportInputs()
    filters: list[FilterOut] = []
    for path in map(Path, paths):
        kind = detect_kind(path)
        if kind == "ablation":
            abl = read_ablation(path)
            out.sources += abl.sources
            out.table += abl.table
            out.verdicts += abl.verdicts
            out.notes += abl.notes
            out.runs += abl.runs
            out.evals += abl.evals
            filters += abl.filters
            out.baseline = out.baseline or abl.baseline
            continue
        out.sources.append((kind, path))
        if kind == "run":
            out.runs.append(read_run(path, _unique_name(path.name, path, {r.name for r in out.runs})))
        elif kind == "eval":
            ev = read_eval(path, _unique_name(path.name, path, {e.name for e in out.evals}))
            out.evals.append(ev)
            out.table += eval_means(ev)
        else:
            filters.append(read_filter(path))
    out.filters, notes = pair_filters(out.evals, filters)
    out.notes += notes
    return out
