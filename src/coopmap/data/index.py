"""Index of an OPV2V tree: splits, scenarios, agents, complete frames, LiDAR positions, problems (spec 1).

Each agent has a camera list: the cameras ``k`` of which it has any ``TTTTTT_cameraK.png`` (OPV2V's
2021_09_09_13_20_58 has no camera3 images at all). A frame of an agent is *complete* when its ``TTTTTT.yaml``,
``TTTTTT.pcd`` and a PNG of every camera of its list exist and the yaml's ``lidar_pose`` is 6 finite numbers; anything else is recorded as a :class:`Problem` (file and
reason) and skipped, never raised. The scan reads only ``lidar_pose`` of each yaml (for the ego / cooperator
choice) and is cached as JSON (never pickle), keyed by a fingerprint of the (path, mtime_ns, size) of every
split, scenario and agent folder: adding, removing or renaming a file changes its folder's mtime and so
invalidates the cache. The cache lives at ``<root>/.coopmap_index.json`` when the root is writable, else under
``~/.cache/coopmap/`` (``COOPMAP_CACHE_DIR`` overrides).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path

from tqdm import tqdm

from coopmap.data.yaml_io import load_yaml, read_lidar_pose
from coopmap.errors import DataError

__all__ = ["CAMERAS", "DatasetIndex", "Problem", "ScenarioIndex", "build_index", "is_rsu", "timestamp_order"]

CAMERAS = (0, 1, 2, 3)
CACHE_NAME = ".coopmap_index.json"
CACHE_VERSION = 3
_FRAME_FILE = re.compile(r"^(\d+)(\.yaml|\.pcd|_camera(\d+)\.png)$")
_AGENT_DIR = re.compile(r"^-?\d+$")


@dataclass(frozen=True)
class Problem:
    """Something wrong in the tree: the file or folder, and what is wrong (and what was skipped)."""

    path: str
    reason: str

    def __str__(self) -> str:
        return f"{self.path}: {self.reason}"


@dataclass
class ScenarioIndex:
    """One scenario folder.

    agents: agent folder names (CARLA ids as strings, negative = RSU) in string order.
    frames: timestamp -> {agent: LiDAR position (x, y, z) in the CARLA world} for the complete agent frames.
    synthetic: written by ``coopmap synth`` (``data_protocol.yaml`` has a ``synthetic`` block).
    cameras: agent -> its camera indices (those with images), for agents whose list is not camera0..3.
    """

    split: str
    name: str
    path: str
    agents: list[str]
    frames: dict[str, dict[str, list[float]]]
    synthetic: bool = False
    cameras: dict[str, list[int]] = field(default_factory=dict)

    @property
    def timestamps(self) -> list[str]:
        return sorted(self.frames, key=timestamp_order)

    def agent_cameras(self, agent: str) -> tuple[int, ...]:
        """The camera indices of ``agent`` (camera0..3 unless it has fewer cameras)."""
        return tuple(self.cameras.get(agent, CAMERAS))


@dataclass
class DatasetIndex:
    """All scenarios under a root, in (split, name) order, and every problem found while scanning."""

    root: str
    scenarios: list[ScenarioIndex] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    from_cache: bool = False

    @property
    def splits(self) -> list[str]:
        return sorted({s.split for s in self.scenarios})

    def scenario(self, split: str, name: str) -> ScenarioIndex:
        for s in self.scenarios:
            if s.split == split and s.name == name:
                return s
        raise KeyError(f"no scenario {split}/{name} in {self.root}")


def is_rsu(agent_id: str | int) -> bool:
    """Roadside units have negative ids (V2XSet); they are never the ego."""
    return int(agent_id) < 0


def timestamp_order(ts: str) -> tuple[int, str]:
    """Sort key of timestamp strings of any digit count (numeric order)."""
    return (int(ts), ts)


def _subdirs(path: Path) -> list[os.DirEntry]:
    with os.scandir(path) as it:
        return sorted((e for e in it if e.is_dir() and not e.name.startswith(".")), key=lambda e: e.name)


def _walk(root: Path) -> list[tuple[str, list[tuple[str, list[os.DirEntry]]]]]:
    """[(split, [(scenario, [agent DirEntry...])...])...]; skips hidden folders and any 'additional'."""
    out = []
    for split in _subdirs(root):
        if "additional" in split.name:
            continue
        scenarios = []
        for scen in _subdirs(Path(split.path)):
            if "additional" in scen.name:
                continue
            scenarios.append((scen.name, [a for a in _subdirs(Path(scen.path)) if "additional" not in a.name]))
        out.append((split.name, scenarios))
    return out


def _fingerprint(root: Path, tree) -> str:
    """sha256 over (relative path, mtime_ns, size) of every split, scenario and agent folder."""
    h = hashlib.sha256()
    for split, scenarios in tree:
        for rel in [split] + [f"{split}/{s}" for s, _ in scenarios]:
            st = (root / rel).stat()
            h.update(f"{rel}|{st.st_mtime_ns}|{st.st_size}\n".encode())
        for scen, agents in scenarios:
            for a in agents:
                st = a.stat()
                h.update(f"{split}/{scen}/{a.name}|{st.st_mtime_ns}|{st.st_size}\n".encode())
    return h.hexdigest()


def cache_path(root: str | os.PathLike[str]) -> Path:
    """Where the index cache of ``root`` lives (see module doc)."""
    root = Path(root).resolve()
    override = os.environ.get("COOPMAP_CACHE_DIR")
    if override is None and os.access(root, os.W_OK):
        return root / CACHE_NAME
    base = Path(override) if override else Path.home() / ".cache" / "coopmap"
    return base / f"index-{hashlib.sha1(str(root).encode()).hexdigest()[:16]}.json"


def _scan_agent(agent_dir: Path, problems: list[Problem]) -> tuple[dict[str, list[float]], list[int]]:
    """(timestamp -> LiDAR xyz for the complete frames, camera list) of one agent folder."""
    files: dict[str, set[str]] = {}
    cameras: set[int] = set()
    with os.scandir(agent_dir) as it:
        for e in it:
            m = _FRAME_FILE.match(e.name)
            if m:
                files.setdefault(m.group(1), set()).add(m.group(2))
                if m.group(3) is not None:
                    cameras.add(int(m.group(3)))
    if not files:
        problems.append(Problem(str(agent_dir), "empty agent folder (no TTTTTT.yaml/.pcd/_cameraK.png), skipped"))
        return {}, []
    if not cameras:
        problems.append(Problem(str(agent_dir), "no camera images (TTTTTT_cameraK.png) in the agent folder, skipped"))
        return {}, []
    cams = sorted(cameras)
    need = [".yaml", ".pcd"] + [f"_camera{k}.png" for k in cams]
    out = {}
    for ts in sorted(files, key=timestamp_order):
        missing = [n for n in need if n not in files[ts]]
        if missing:
            problems.append(Problem(str(agent_dir / f"{ts}{missing[0]}"),
                                    f"missing {', '.join(ts + n for n in missing)}; frame skipped for this agent"))
            continue
        try:
            out[ts] = read_lidar_pose(agent_dir / f"{ts}.yaml")[:3].tolist()
        except DataError as err:
            problems.append(Problem(err.path, f"{err.reason}; frame skipped for this agent"))
    return out, cams


def _is_synthetic(scen_dir: Path, problems: list[Problem]) -> bool:
    proto = scen_dir / "data_protocol.yaml"
    if not proto.exists():
        return False
    try:
        return "synthetic" in load_yaml(proto, keys=("synthetic",))
    except DataError as err:
        problems.append(Problem(err.path, err.reason))
        return False


def _scan_scenario(split: str, scen_dir: Path, agents: list[os.DirEntry],
                   problems: list[Problem]) -> ScenarioIndex | None:
    ids = []
    for a in agents:
        if _AGENT_DIR.match(a.name):
            ids.append(a.name)
        else:
            problems.append(Problem(a.path, "not an agent folder (name is not an integer CARLA id), skipped"))
    if not ids:
        problems.append(Problem(str(scen_dir), "no agent folders, scenario skipped"))
        return None
    scanned = {a: _scan_agent(scen_dir / a, problems) for a in ids}
    per_agent = {a: frames_of for a, (frames_of, _) in scanned.items()}
    cameras = {a: cams for a, (_, cams) in scanned.items() if cams and tuple(cams) != CAMERAS}
    frames: dict[str, dict[str, list[float]]] = {}
    for a, by_ts in per_agent.items():
        for ts, xyz in by_ts.items():
            frames.setdefault(ts, {})[a] = xyz
    for a, by_ts in per_agent.items():
        lacking = [ts for ts in frames if ts not in by_ts]
        if by_ts and lacking:
            lacking.sort(key=timestamp_order)
            problems.append(Problem(str(scen_dir / a), f"mismatched timestamps: {len(lacking)} frame(s) of other "
                                    f"agents have no complete data here (first {lacking[0]}); used without it"))
    if not frames:
        problems.append(Problem(str(scen_dir), "no complete frame in any agent folder, scenario skipped"))
        return None
    if all(is_rsu(a) for a in ids):
        problems.append(Problem(str(scen_dir), f"only roadside units ({', '.join(sorted(ids))}): no CAV can be "
                                               "the ego, scenario skipped"))
        return None
    frames = {ts: dict(sorted(frames[ts].items())) for ts in sorted(frames, key=timestamp_order)}
    return ScenarioIndex(split, scen_dir.name, str(scen_dir), sorted(ids), frames,
                         _is_synthetic(scen_dir, problems), cameras)


def _to_json(index: DatasetIndex, fingerprint: str) -> dict:
    return {"version": CACHE_VERSION, "root": index.root, "fingerprint": fingerprint,
            "scenarios": [asdict(s) for s in index.scenarios], "problems": [asdict(p) for p in index.problems]}


def _plain_name(name: object) -> str:
    """A folder name as scanned (no path separator, not '.' / '..'); anything else marks a tampered cache."""
    if not isinstance(name, str) or not name or "/" in name or "\\" in name or "\0" in name or name in (".", ".."):
        raise ValueError(f"not a plain folder name: {name!r}")
    return name


def _from_json(doc: dict) -> DatasetIndex:
    scenarios = [ScenarioIndex(**s) for s in doc["scenarios"]]
    for s in scenarios:  # names become parts of output paths (eval's points/, the teacher cache): keep them plain
        for name in (s.split, s.name, *s.agents, *(ts for ts in s.frames), *(a for f in s.frames.values() for a in f)):
            _plain_name(name)
        if Path(s.path) != Path(doc["root"]) / s.split / s.name:
            raise ValueError(f"scenario path {s.path!r} is not under the root")
    return DatasetIndex(doc["root"], scenarios, [Problem(**p) for p in doc["problems"]], from_cache=True)


def _load_cache(path: Path, root: str, fingerprint: str) -> DatasetIndex | None:
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
        if doc.get("version") == CACHE_VERSION and doc.get("root") == root and doc.get("fingerprint") == fingerprint:
            return _from_json(doc)
    except (OSError, ValueError, TypeError, KeyError):
        pass  # a missing, stale or damaged cache is rebuilt
    return None


def _save_cache(path: Path, index: DatasetIndex, fingerprint: str) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps(_to_json(index, fingerprint), separators=(",", ":")), encoding="utf-8")
        os.replace(tmp, path)
    except OSError:
        pass  # a read-only place: the index still works, only uncached


def build_index(root: str | os.PathLike[str], use_cache: bool = True, progress: bool = True) -> DatasetIndex:
    """Scan (or load from cache) the OPV2V tree at ``root`` = the folder holding the split folders.

    Raises:
        DataError: the root does not exist or holds no split folder. Everything else becomes a Problem.
    """
    root_path = Path(root).resolve()
    if not root_path.is_dir():
        raise DataError(root_path, "dataset root is not a folder")
    tree = _walk(root_path)
    if not tree:
        raise DataError(root_path, "no split folder (expected train/, validate/, test/ ...)")
    for split, scenarios in tree:
        if (root_path / split / "data_protocol.yaml").exists() or any(_AGENT_DIR.match(s) for s, _ in scenarios):
            raise DataError(root_path, f"'{split}' looks like a scenario, not a split: pass the folder that holds "
                                       "the split folders (train/, validate/ ...)")
    fingerprint = _fingerprint(root_path, tree)
    cpath = cache_path(root_path)
    if use_cache:
        cached = _load_cache(cpath, str(root_path), fingerprint)
        if cached is not None:
            return cached
    index = DatasetIndex(str(root_path))
    total = sum(len(s) for _, s in tree)
    with tqdm(total=total, desc="index", unit="scenario", delay=1.0, disable=not progress) as bar:
        for split, scenarios in tree:
            if not scenarios:
                index.problems.append(Problem(str(root_path / split), "empty split folder"))
            for name, agents in scenarios:
                scen = _scan_scenario(split, root_path / split / name, agents, index.problems)
                if scen is not None:
                    index.scenarios.append(scen)
                bar.update(1)
    if use_cache:
        _save_cache(cpath, index, fingerprint)
    return index
