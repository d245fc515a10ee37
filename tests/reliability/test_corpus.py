"""The corpus of malformed inputs (reliability_corpus.py) through the ``coopmap`` command line.

Every case either skips with its reason recorded and goes on, or stops with exactly one line naming the file and
the problem; no traceback reaches the user (``--debug`` shows it). The default suite calls the CLI's ``main`` in
this process (the same code path as ``python -m coopmap``, without ~5 s of interpreter start per case); the slow
suite runs every case in a real subprocess.
"""

from __future__ import annotations

import io
import re
import subprocess
import sys
import traceback
from contextlib import redirect_stderr, redirect_stdout
from dataclasses import dataclass
from pathlib import Path

import pytest
from reliability_corpus import CASES, PWNED, SPLIT, Case, Made

from coopmap.cli import main as cli_main
from coopmap.csvio import AppendCsv
from coopmap.train.checkpoint import load_checkpoint

RES = "data.resolution=[56,42]"
#: training cases use a smaller tiny model (2 steps in ~1 s on a loaded CPU)
SMALL_MODEL = ["model.embed_dim=32", "model.num_heads=2", "model.depth=2"]
DOC = Path(__file__).resolve().parents[2] / "docs" / "reliability.md"


@dataclass
class Result:
    rc: int | str | None
    out: str
    err: str


def argv_for(case: Case, root: Path, work: Path, made: Made) -> list[str]:
    """The command line (after ``coopmap``) of a case."""
    if case.command == "index":
        return ["index", str(root), "--no-cache", "--frames", "0"]
    if case.command == "eval":
        model = [] if any(a.startswith("model=") for a in made.args) else ["model=oracle"]
        return ["eval", f"data.root={root}", f"data.split={SPLIT}", *model, RES, f"out_dir={work / 'out'}",
                "eval.progress=false", f"eval.modes=[{case.mode}]", *made.args]
    if case.command == "train":
        return ["train", f"data.root={root}", f"data.split={SPLIT}", RES, *SMALL_MODEL, "trainer.max_steps=2",
                "trainer.progress=false", "trainer.warmup_steps=0", f"out_dir={work / 'run'}", *made.args]
    if case.command == "filter":
        return ["filter", "--pred", str(work / "eval"), "--out", str(work / "out"), "--no-progress", *made.args]
    raise AssertionError(f"unknown command {case.command}")


def run_in_process(argv: list[str]) -> Result:
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        try:
            rc: int | str | None = cli_main(argv)
        except SystemExit as exc:  # argparse
            rc = exc.code
        except BaseException:  # what would reach the user as a traceback
            traceback.print_exc()
            rc = "crash"
    return Result(rc, out.getvalue(), err.getvalue())


def run_subprocess(argv: list[str]) -> Result:
    proc = subprocess.run([sys.executable, "-m", "coopmap", *argv], capture_output=True, text=True, timeout=600)
    return Result(proc.returncode, proc.stdout, proc.stderr)


def check(case: Case, res: Result, root: Path, work: Path, made: Made) -> str:
    """Assert the case's behaviour; returns the recorded reason or the error line."""
    both = res.out + res.err
    assert "Traceback" not in both, both[-3000:]
    assert not (work / PWNED).exists(), "untrusted input ran code"
    name = str(made.path)
    if case.expect == "stop":
        assert res.rc == 2, both[-3000:]
        lines = res.err.strip().splitlines()
        # one error line, last; before it only one-line notices of samples skipped on the way (train)
        assert lines[-1].startswith(f"coopmap {case.command}: error: "), res.err
        assert all(line.startswith(f"coopmap {case.command}: skipped sample ") for line in lines[:-1]), res.err
        assert name in lines[-1] and re.search(case.reason, lines[-1]), (name, case.reason, lines[-1])
        return lines[-1]
    if case.command == "index":
        assert res.rc == 1, both[-3000:]  # index: exit 1 = problems found (listed)
        hits = [line.strip() for line in res.out.splitlines() if name in line and re.search(case.reason, line)]
        assert hits, res.out
        return hits[0]
    assert res.rc == 0, both[-3000:]
    if case.command == "eval":
        rows = AppendCsv(work / "out" / "coop_metrics.csv").rows()
        assert rows and all(r["mode"] == case.mode for r in rows)
        if case.expect == "accept":
            assert all(r["status"] == "ok" for r in rows), [r["status"] for r in rows]
            return "ok"
        skipped = [r["status"] for r in rows if r["status"].startswith("skipped: ")]
        hits = [s for s in skipped if name in s and re.search(case.reason, s)]
        assert hits, (name, case.reason, skipped)
        if not name.startswith("non-finite"):
            assert any(r["status"] == "ok" for r in rows), "the evaluation did not go on past the bad frame"
        return hits[0]
    if case.command == "filter":
        rows = AppendCsv(work / "out" / "filter_metrics.csv").rows()
        assert rows and not (work / "out" / "single" / "../../../../escaped").resolve().exists(), \
            "an output left the --out folder"
        if case.expect == "accept":
            assert all(r["status"] == "ok" for r in rows), [r["status"] for r in rows]
            return "ok"
        hits = [r["status"] for r in rows if name in r["status"] and re.search(case.reason, r["status"])]
        assert hits, (name, case.reason, [r["status"] for r in rows])
        assert any(r["status"] == "ok" for r in rows), "the filter did not go on past the bad frame"
        return hits[0]
    if case.command == "train":
        rows = AppendCsv(work / "run" / "skipped_samples.csv").rows()
        hits = [r for r in rows if r["path"] == name and re.search(case.reason, r["reason"])]
        assert hits, rows
        assert load_checkpoint(work / "run" / "last.pt")["step"] == 2  # the run went on
        return f"{hits[0]['path']}: {hits[0]['reason']}"
    raise AssertionError(case.command)


def _setup(case: Case, fresh_tree: Path, tmp_path: Path) -> tuple[Path, Path, Made]:
    root = fresh_tree.resolve()
    work = (tmp_path / "work").resolve()
    work.mkdir()
    return root, work, case.make(root, work)


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_case(case, fresh_tree, tmp_path):
    root, work, made = _setup(case, fresh_tree, tmp_path)
    check(case, run_in_process(argv_for(case, root, work, made)), root, work, made)


@pytest.mark.slow
@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_case_in_a_subprocess(case, fresh_tree, tmp_path):
    root, work, made = _setup(case, fresh_tree, tmp_path)
    check(case, run_subprocess(argv_for(case, root, work, made)), root, work, made)


def test_a_stop_case_in_a_subprocess_is_one_line_and_debug_shows_the_traceback(fresh_tree, tmp_path):
    case = next(c for c in CASES if c.name == "checkpoint_pickled_payload")
    root, work, made = _setup(case, fresh_tree, tmp_path)
    argv = argv_for(case, root, work, made)
    line = check(case, run_subprocess(argv), root, work, made)
    assert line.startswith(f"coopmap eval: error: {made.path}: holds Python objects")
    debug = run_in_process(["--debug", *argv])
    assert debug.rc == 2 and "Traceback (most recent call last)" in debug.err
    assert debug.err.strip().splitlines()[-1] == line and not (work / PWNED).exists()


def _doc_rows() -> list[list[str]]:
    text = DOC.read_text()
    section = text.split("## The corpus of malformed inputs", 1)[1].split("\n## ", 1)[0]
    rows = [[c.strip() for c in line.strip().strip("|").split("|")] for line in section.splitlines()
            if line.startswith("| `")]
    return rows


def test_the_docs_table_lists_every_case_with_its_tested_behaviour():
    rows = _doc_rows()
    assert [r[0].strip("`") for r in rows] == [c.name for c in CASES]
    for row, case in zip(rows, CASES):
        assert row[1] == case.what, case.name
        assert row[2] == f"`{case.command}`", case.name
        assert row[3] == case.expect, case.name
    assert len(CASES) >= 25
    counts = {e: sum(c.expect == e for c in CASES) for e in ("skip", "stop", "accept")}
    text = DOC.read_text()
    assert f"holds {len(CASES)} cases" in text
    assert f"Counts: {counts['skip']} skip, {counts['stop']} stop, {counts['accept']} accept." in text
