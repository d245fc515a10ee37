"""File checks behind ``coopmap index``: every file of every complete agent frame, cheaply or ``deep``.

Cheap (always): each yaml's poses and cameras are parsed and validated (``vehicles`` must exist), each PNG's
signature, IHDR size (against its camera's intrinsics: CARLA's principal point is the image centre) and final
IEND chunk are read without decoding, each ``.pcd``'s header and size are checked against its point count.
``deep``: every yaml is read completely (vehicles included), every PNG decoded, every ``.pcd`` parsed. Every bad
file becomes one :class:`~coopmap.data.index.Problem` naming it.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from tqdm import tqdm

from coopmap.data.dense_depth import check_depth_png, find_dense_depth, read_depth_png
from coopmap.data.images import check_png, read_image
from coopmap.data.index import CAMERAS, DatasetIndex, Problem, ScenarioIndex
from coopmap.data.pcd_io import check_pcd, read_pcd
from coopmap.data.views import PRINCIPAL_POINT_TOL
from coopmap.data.yaml_io import CameraYaml, check_agent_yaml
from coopmap.errors import DataError

__all__ = ["check_camera_image", "check_agent_frame", "check_tree", "dense_depth_report"]


def check_camera_image(png: Path, cam: CameraYaml | None, deep: bool = False) -> tuple[int, int]:
    """Check one camera PNG (cheap, or decoded when ``deep``) against its yaml camera; returns (W, H).

    Raises:
        DataError: naming the PNG.
    """
    W, H, _, _ = check_png(png)
    if cam is not None:
        cx, cy = cam.intrinsic[0, 2], cam.intrinsic[1, 2]
        if abs(cx / W - 0.5) > PRINCIPAL_POINT_TOL or abs(cy / H - 0.5) > PRINCIPAL_POINT_TOL:
            raise DataError(png, f"image is {W}x{H} but its yaml intrinsic puts the principal point at "
                                 f"({cx:g}, {cy:g}), i.e. an image of about {2 * cx:.0f}x{2 * cy:.0f} "
                                 "(a resized or swapped image?)")
    if deep:
        read_image(png, (W, H))
    return W, H


def check_agent_frame(agent_dir: Path, ts: str, cameras=CAMERAS, deep: bool = False) -> list[Problem]:
    """Every file of one agent frame: yaml, pcd, camera PNGs; one Problem per bad file."""
    problems = []
    cams: dict[int, CameraYaml] = {}
    yml = agent_dir / f"{ts}.yaml"
    try:
        cams = check_agent_yaml(yml, cameras, deep)
    except DataError as err:
        problems.append(Problem(str(err.path), err.reason))
    pcd = agent_dir / f"{ts}.pcd"
    try:
        read_pcd(pcd, with_intensity=True) if deep else check_pcd(pcd)
    except DataError as err:
        problems.append(Problem(str(err.path), err.reason))
    for k in cameras:
        try:
            check_camera_image(agent_dir / f"{ts}_camera{k}.png", cams.get(k), deep)
        except DataError as err:
            problems.append(Problem(str(err.path), err.reason))
    return problems


def _agent_frames(index: DatasetIndex) -> Iterator[tuple[ScenarioIndex, str, str]]:
    for scen in index.scenarios:
        for ts in scen.timestamps:
            for agent in scen.frames[ts]:
                yield scen, ts, agent


def check_tree(index: DatasetIndex, deep: bool = False, progress: bool = True) -> list[Problem]:
    """Check the files of every complete agent frame of the index (see module doc)."""
    total = sum(len(f) for s in index.scenarios for f in s.frames.values())
    problems: list[Problem] = []
    with tqdm(total=total, desc="check" + (" --deep" if deep else ""), unit="agent-frame", delay=1.0,
              disable=not progress) as bar:
        for scen, ts, agent in _agent_frames(index):
            problems.extend(check_agent_frame(Path(scen.path) / agent, ts, scen.agent_cameras(agent), deep))
            bar.update(1)
    return problems


def dense_depth_report(index: DatasetIndex, deep: bool = False) -> tuple[dict[str, dict[str, int]], list[Problem]]:
    """Dense depth GT of every camera image of the complete agent frames (:mod:`coopmap.data.dense_depth`).

    Returns:
        per split ``{"images": n, "npy": n, "png": n}`` (files found), and one Problem per bad depth PNG (cheap:
        PNG header, 8-bit grey, the camera image's size; ``deep``: decoded).
    """
    counts: dict[str, dict[str, int]] = {}
    problems: list[Problem] = []
    for scen, ts, agent in _agent_frames(index):
        c = counts.setdefault(scen.split, {"images": 0, "npy": 0, "png": 0})
        agent_dir = Path(scen.path) / agent
        root = Path(scen.path).parent.parent
        for k in scen.agent_cameras(agent):
            c["images"] += 1
            path = find_dense_depth(root, agent_dir, ts, k, scen.synthetic)
            if path is None:
                continue
            c[path.suffix[1:]] += 1
            if path.suffix == ".png":
                try:
                    W, H, _, _ = check_png(agent_dir / f"{ts}_camera{k}.png")
                    (read_depth_png if deep else check_depth_png)(path, (W, H))
                except DataError as err:
                    problems.append(Problem(str(err.path), err.reason))
    return counts, problems
