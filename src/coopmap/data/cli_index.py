"""``coopmap index DIR``: scan an OPV2V tree and report what it holds and every problem found.

Prints per split: scenarios, agents (CAVs / RSUs), frames, complete agent-frames and camera images; checks every
file of every complete agent frame (cheaply, or completely with ``--deep``: coopmap.data.check); the dense depth
files found (HEAL's OPV2V-H depth PNGs, synthetic .npy) per split; the sparse
LiDAR depth coverage (own LiDAR, native resolution) of the cameras of a few frames, which also reads those
frames' files completely; then every problem (file and reason). Exit status 0 when no problem was found, 1
otherwise (2 for an unusable root, through the CLI's error handling).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from coopmap.data.check import check_tree, dense_depth_report
from coopmap.data.depth_gt import points_to_camera, zbuffer_depth
from coopmap.data.images import read_image
from coopmap.data.index import CAMERAS, DatasetIndex, Problem, ScenarioIndex, build_index, is_rsu
from coopmap.data.pcd_io import read_pcd
from coopmap.data.yaml_io import read_agent_yaml
from coopmap.errors import DataError
from coopmap.geometry import camera_pose_rh, points_lh_to_rh, sensor_pose_rh


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="coopmap index", description=__doc__.split("\n\n")[0])
    p.add_argument("root", help="the folder holding the split folders (train/, validate/, test/ ...)")
    p.add_argument("--frames", type=int, default=3, help="frames whose depth coverage is measured (default 3)")
    p.add_argument("--no-cache", action="store_true", help="rescan even if a valid cached index exists")
    p.add_argument("--deep", action="store_true",
                   help="decode every image and parse every yaml and point cloud completely (default: cheap checks "
                        "of every file: yaml poses and cameras, PNG header/size/end, pcd header/size)")
    return p


def _split_table(index: DatasetIndex) -> list[str]:
    head = f"{'split':<18}{'scenarios':>10}{'CAVs':>7}{'RSUs':>6}{'frames':>8}{'agent-frames':>14}{'images':>9}"
    lines = [head, "-" * len(head)]
    for split in index.splits:
        scens = [s for s in index.scenarios if s.split == split]
        agents = {(s.name, a) for s in scens for a in s.agents}
        rsus = sum(is_rsu(a) for _, a in agents)
        frames = sum(len(s.frames) for s in scens)
        agent_frames = sum(len(f) for s in scens for f in s.frames.values())
        images = sum(len(s.agent_cameras(a)) for s in scens for f in s.frames.values() for a in f)
        lines.append(f"{split:<18}{len(scens):>10}{len(agents) - rsus:>7}{rsus:>6}{frames:>8}{agent_frames:>14}"
                     f"{images:>9}")
    return lines


def _camera_lines(index: DatasetIndex) -> list[str]:
    """Agents whose camera list is not camera0..3 (their samples have fewer views)."""
    lines = []
    for scen in index.scenarios:
        for agent, cams in sorted(scen.cameras.items()):
            missing = [k for k in CAMERAS if k not in cams]
            lines.append(f"  {scen.split}/{scen.name}/{agent}: cameras {','.join(map(str, cams))}"
                         + (f" (no camera{','.join(map(str, missing))} images)" if missing else ""))
    return lines


def frame_coverage(scen: ScenarioIndex, ts: str, agent: str) -> dict[int, float]:
    """Fraction of pixels with an own-LiDAR return, per camera of the agent, at the native image resolution."""
    folder = Path(scen.path) / agent
    cams = scen.agent_cameras(agent)
    y = read_agent_yaml(folder / f"{ts}.yaml", cams)
    T_world_from_lidar = sensor_pose_rh(y.lidar_pose)
    pts = points_lh_to_rh(read_pcd(folder / f"{ts}.pcd", with_intensity=False).points.astype(np.float64))
    out = {}
    for k in cams:
        rgb = read_image(folder / f"{ts}_camera{k}.png")
        H, W = rgb.shape[:2]
        T = np.linalg.inv(camera_pose_rh(y.cameras[k].cords)) @ T_world_from_lidar
        depth = zbuffer_depth(points_to_camera(T, pts), y.cameras[k].K, (W, H))
        out[k] = float(np.count_nonzero(depth)) / depth.size
    return out


def _coverage(index: DatasetIndex, n_frames: int, problems: list[Problem]) -> list[str]:
    picks: list[tuple[ScenarioIndex, str, str]] = []
    for scen in index.scenarios:
        for ts in scen.timestamps:
            picks.extend((scen, ts, a) for a in scen.frames[ts])
    step = max(1, len(picks) // max(1, n_frames))
    lines = []
    for scen, ts, agent in picks[::step][:n_frames]:
        name = f"{scen.split}/{scen.name}/{agent}/{ts}"
        try:
            cov = frame_coverage(scen, ts, agent)
        except DataError as err:
            problems.append(Problem(err.path, err.reason))
            lines.append(f"  {name}: unreadable (see problems)")
            continue
        lines.append(f"  {name}: " + "  ".join(f"camera{k} {100 * c:5.2f}%" for k, c in cov.items()))
    return lines


def main(argv: list[str]) -> int:
    args = _parser().parse_args(argv)
    start = time.perf_counter()
    index = build_index(args.root, use_cache=not args.no_cache, progress=True)
    took = time.perf_counter() - start
    print(f"root: {index.root}  ({'cached index' if index.from_cache else 'scanned'} in {took:.2f} s)")
    for line in _split_table(index):
        print(line)
    cam_lines = _camera_lines(index)
    if cam_lines:
        print(f"\nagents with fewer than {len(CAMERAS)} cameras (their samples have fewer views): {len(cam_lines)}")
        for line in cam_lines:
            print(line)
    problems = list(index.problems)
    checked = check_tree(index, deep=args.deep, progress=True)
    bad = {p.path for p in checked}
    print(f"\nfiles checked ({'deep: decoded and parsed' if args.deep else 'cheap: headers, sizes, stream ends'}): "
          f"{len(bad)} bad file(s)")
    problems.extend(checked)
    depth_counts, depth_problems = dense_depth_report(index, deep=args.deep)
    problems.extend(depth_problems)
    print("\ndense depth GT (TTTTTT_depthK: HEAL OPV2V-H .png, synthetic .npy; optional):")
    for split, c in sorted(depth_counts.items()):
        n = c["npy"] + c["png"]
        print(f"  {split:<18}{n:>8} of {c['images']} images ({100 * n / max(1, c['images']):.1f} %): "
              f"{c['png']} png, {c['npy']} npy")
    if args.frames > 0 and index.scenarios:
        print(f"\nsparse LiDAR depth coverage (own LiDAR, native resolution), {args.frames} frame(s):")
        for line in _coverage(index, args.frames, problems):
            print(line)
    problems = list(dict.fromkeys(problems))  # a coverage frame's bad file is also a checked file
    print(f"\nproblems: {len(problems)}")
    for p in problems:
        print(f"  {p}")
    return 1 if problems else 0
