"""Untrusted files: nothing we read can run code, and nothing we write lands outside the folder asked for.

- checkpoints load with ``torch.load(weights_only=True)`` (a pickled payload is refused: here and in the corpus);
- YAML only through safe loaders, ``.npy`` / ``.npz`` with ``allow_pickle=False``, caches and manifests as JSON;
- no ``eval`` / ``exec`` / pickle anywhere in the package (checked on its syntax tree and by grep);
- output paths are built from names checked to stay under the requested folder.
"""

from __future__ import annotations

import ast
import json
import os
import re
import shutil
import tokenize
from pathlib import Path

import numpy as np
import pytest
import torch

from coopmap.config import compose
from coopmap.data.index import build_index, cache_path
from coopmap.errors import CheckpointError, DataError
from coopmap.evaluation.outputs import points_path
from coopmap.evaluation.runner import evaluate
from coopmap.models.checkpoint import read_checkpoint
from coopmap.models.teacher_cache import TeacherCache, TeacherCacheWriter
from coopmap.train.checkpoint import load_checkpoint

PACKAGE = Path(__file__).resolve().parents[2] / "src" / "coopmap"
SOURCES = sorted(PACKAGE.rglob("*.py"))
# _NumpySafeLoader: SAFE_LOADER plus a constructor that decodes numpy-scalar dumps from their text (yaml_io)
SAFE_YAML_LOADERS = {"SAFE_LOADER", "CSafeLoader", "SafeLoader", "_NodeLoader", "_NumpySafeLoader"}
FORBIDDEN_MODULES = {"pickle", "cPickle", "dill", "marshal", "shelve", "joblib", "cloudpickle"}


class _Payload:
    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def _calls(tree: ast.AST):
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            yield node


def _name(func: ast.expr) -> str:
    if isinstance(func, ast.Name):
        return func.id
    if isinstance(func, ast.Attribute):
        return f"{_name(func.value)}.{func.attr}"
    return ""


def _kw(call: ast.Call, key: str):
    for k in call.keywords:
        if k.arg == key:
            return k.value
    return None


def _violations(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    out = []
    where = lambda n: f"{path.relative_to(PACKAGE.parent)}:{n.lineno}"  # noqa: E731
    for node in ast.walk(tree):
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            mods = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module or ""]
            if any(m.split(".")[0] in FORBIDDEN_MODULES for m in mods):
                out.append(f"{where(node)}: imports {mods}")
    for call in _calls(tree):
        name = _name(call.func)
        if name in ("eval", "exec", "compile", "__import__", "builtins.eval", "builtins.exec"):
            out.append(f"{where(call)}: {name}()")
        elif name in ("torch.load",):
            wo = _kw(call, "weights_only")
            if not (isinstance(wo, ast.Constant) and wo.value is True):
                out.append(f"{where(call)}: torch.load without weights_only=True")
        elif name.endswith("np.load") or name == "numpy.load":
            ap = _kw(call, "allow_pickle")
            if not (isinstance(ap, ast.Constant) and ap.value is False):
                out.append(f"{where(call)}: np.load without allow_pickle=False")
        elif name in ("yaml.load", "yaml.load_all", "yaml.compose", "yaml.compose_all", "yaml.parse"):
            loader = _kw(call, "Loader")
            if loader is None or _name(loader).split(".")[-1] not in SAFE_YAML_LOADERS:
                out.append(f"{where(call)}: {name} without a safe Loader")
        elif name in ("yaml.unsafe_load", "yaml.full_load", "yaml.unsafe_load_all", "yaml.full_load_all"):
            out.append(f"{where(call)}: {name}")
        elif name in ("hydra.utils.instantiate", "instantiate", "hydra.utils.call", "hydra.utils.get_method"):
            out.append(f"{where(call)}: {name} (objects built from config strings)")
    return out


def test_the_package_never_evals_unpickles_or_loads_yaml_unsafely():
    assert len(SOURCES) > 50
    problems = [v for path in SOURCES for v in _violations(path)]
    assert problems == []


def _code_lines(path: Path) -> dict[int, str]:
    """The source's code tokens per line: strings, docstrings and comments removed."""
    lines: dict[int, str] = {}
    with open(path, "rb") as f:
        for tok in tokenize.tokenize(f.readline):
            if tok.type in (tokenize.NAME, tokenize.OP, tokenize.NUMBER):
                lines[tok.start[0]] = lines.get(tok.start[0], "") + tok.string
    return lines


def test_grep_finds_no_eval_exec_or_unsafe_loader_in_the_package():
    pattern = re.compile(r"(?<![\w.])(eval|exec)\(|yaml\.(unsafe_load|full_load)|FullLoader|UnsafeLoader|"
                         r"yaml\.Loader\b|pickle\.loads?\(")
    hits = [f"{p.relative_to(PACKAGE.parent)}:{i}: {code}" for p in SOURCES
            for i, code in _code_lines(p).items() if pattern.search(code)]
    assert hits == []


def test_the_ast_check_catches_each_unsafe_pattern(tmp_path, monkeypatch):
    bad = tmp_path / "coopmap" / "bad.py"
    bad.parent.mkdir()
    bad.write_text("import pickle\nimport yaml, torch, numpy as np\nx = eval('1')\nexec('y=1')\n"
                   "yaml.load(s, Loader=yaml.FullLoader)\nyaml.unsafe_load(s)\ntorch.load(p)\n"
                   "torch.load(p, weights_only=False)\nnp.load(p)\nnp.load(p, allow_pickle=True)\n"
                   "model.eval()\ntorch.load(p, weights_only=True)\nnp.load(p, allow_pickle=False)\n")
    monkeypatch.setattr(__import__(__name__), "PACKAGE", tmp_path / "coopmap")
    found = _violations(bad)
    assert len(found) == 9, found


def test_pickled_payloads_are_refused_by_every_checkpoint_reader(tmp_path):
    marker = tmp_path / "PWNED"
    path = tmp_path / "evil.pt"
    torch.save({"model": {"w": torch.zeros(2)}, "step": 3, "extra": _Payload(marker)}, path)
    with pytest.raises(CheckpointError, match="weights_only=True"):
        read_checkpoint(path)
    with pytest.raises(CheckpointError, match="not a loadable checkpoint"):
        load_checkpoint(path)
    assert not marker.exists()


def test_a_teacher_cache_entry_holding_a_pickled_object_is_refused(tmp_path):
    marker = tmp_path / "PWNED"
    cache = tmp_path / "cache"
    TeacherCacheWriter(str(cache), {"name": "oracle"}, {"root": "r"}).finish()
    entry = cache / "samples" / "single" / "scen" / "000001" / "7.npz"
    entry.parent.mkdir(parents=True)
    with open(entry, "wb") as f:
        np.savez(f, instances=np.array(["scen/000001/7/camera0"]), cam_quats=np.zeros((1, 4), np.float32),
                 payload=np.array([_Payload(marker)], dtype=object))
    views = [{"instance": ["scen/000001/7/camera0"], "img": torch.zeros(1, 3, 2, 2),
              "agent_index": torch.zeros(1, dtype=torch.int64)}]
    with pytest.raises(CheckpointError, match="unreadable teacher-cache entry"):
        TeacherCache(str(cache)).lookup(views)
    assert not marker.exists()


@pytest.mark.parametrize("key", [("../../escape", "000001", "7", "single"), ("s", "000001", "7", ".."),
                                 ("s", "0/../../x", "7", "single"), ("s", "000001", "", "coop")])
def test_points_paths_refuse_names_that_leave_the_output_folder(tmp_path, key):
    with pytest.raises(DataError, match="refusing a frame key part"):
        points_path(tmp_path, key)


def test_odd_but_plain_scenario_names_stay_under_out_dir(tmp_path):
    for name in ("..scen", "a b", "-1", "x..y"):
        p = points_path(tmp_path, (name, "000001", "7", "single")).resolve()
        assert p.is_relative_to(tmp_path.resolve())


def test_a_tampered_index_cache_cannot_send_outputs_outside_out_dir(pristine, tmp_path):
    root = tmp_path / "tree"
    shutil.copytree(pristine, root, ignore=shutil.ignore_patterns(".coopmap_index.json"))
    build_index(root, progress=False)
    cache = cache_path(root)
    doc = json.loads(cache.read_text())
    real = doc["scenarios"][0]["name"]
    doc["scenarios"][0]["name"] = "../../../escaped"
    cache.write_text(json.dumps(doc))
    index = build_index(root, progress=False)
    assert not index.from_cache and index.scenarios[0].name == real  # the damaged cache was rebuilt
    out = tmp_path / "run" / "eval"
    evaluate(compose("eval", [f"data.root={root}", "data.split=test", "model=oracle", "data.resolution=[56,42]",
                              f"out_dir={out}", "eval.progress=false", "eval.save_points=true",
                              "eval.modes=[single]", "eval.max_frames=1"]))
    written = [p for p in tmp_path.rglob("*") if p.is_file() and not p.is_relative_to(root)]
    assert written and all(p.resolve().is_relative_to(out.resolve()) for p in written), written
