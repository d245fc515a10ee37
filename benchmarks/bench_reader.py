"""Reader benchmark: YAML, ascii PCD and full sample assembly, ours against the usual baselines, in one run.

    python benchmarks/bench_reader.py                 # generates a synthetic 800x600 tree in a temp folder
    python benchmarks/bench_reader.py --root DIR      # or any OPV2V(-format) tree

Prints one table: per-file CPU times (best of ``--repeat`` passes over the files; CPU time so that a busy shared
machine does not skew the ratios) and our speed-up over
- YAML: PyYAML's pure-Python ``SafeLoader`` (and, for reference, PyYAML's libyaml ``CSafeLoader`` full load);
- ascii ``.pcd``: Open3D's ``read_point_cloud`` (skipped if Open3D does not import) and ``numpy.loadtxt``;
- sample assembly from raw files at 518x392, ``single`` and ``coop``: views/s of wall time and per CPU second
  (``time.process_time``, one thread), i.e. per core.
Targets (docs/data.md): YAML >= 10x pure-Python PyYAML, ascii pcd >= 3x Open3D, >= 15 views/s per core.
"""

from __future__ import annotations

import os

# one BLAS/OpenMP thread, set before numpy loads OpenBLAS: otherwise its idle worker threads spin on every small
# matmul (a (N, 3) @ (3, 3) transform) and double the CPU time of a single-core measurement
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import yaml  # noqa: E402


def _best(fn, items, repeat: int, clock=time.process_time) -> float:
    """Best-of-``repeat`` mean seconds per item of ``fn(item)`` over ``items``; CPU time of this process by default
    (robust to other processes on a shared machine; every reader here runs on one thread)."""
    best = float("inf")
    for _ in range(repeat):
        t0 = clock()
        for it in items:
            fn(it)
        best = min(best, (clock() - t0) / len(items))
    return best


def _open3d():
    try:
        import open3d  # noqa: F401

        return open3d, ""
    except Exception as err:  # any import failure (missing optional deps, missing libusb) means "skip"
        return None, f"{type(err).__name__}: {err}"


def bench_yaml(files: list[Path], repeat: int) -> list[tuple[str, float, str]]:
    from coopmap.data.yaml_io import read_agent_yaml

    texts = {f: f.read_bytes() for f in files}
    ours = _best(read_agent_yaml, files, repeat)
    pure = _best(lambda f: yaml.load(f.read_bytes(), Loader=yaml.SafeLoader), files, max(1, repeat // 2))  # noqa: S506
    c_full = _best(lambda f: yaml.load(f.read_bytes(), Loader=yaml.CSafeLoader), files, repeat)  # noqa: S506
    kb = np.mean([len(t) for t in texts.values()]) / 1024
    return [(f"yaml ({kb:.0f} KB): ours read_agent_yaml", ours, "1.0x"),
            ("yaml: PyYAML SafeLoader (pure Python)", pure, f"ours {pure / ours:.1f}x faster"),
            ("yaml: PyYAML CSafeLoader, full document", c_full, f"ours {c_full / ours:.1f}x faster")]


def _header_lines(path: Path) -> int:
    with open(path, "rb") as f:
        for i, line in enumerate(f):
            if line.startswith(b"DATA"):
                return i + 1
    raise ValueError(f"{path}: no DATA line")


def bench_pcd(files: list[Path], repeat: int) -> list[tuple[str, float, str]]:
    from coopmap.data.pcd_io import read_pcd

    n = read_pcd(files[0]).points.shape[0]
    ours = _best(read_pcd, files, repeat)
    xyz = _best(lambda f: read_pcd(f, with_intensity=False), files, repeat)
    odd = [f.with_suffix(".odd.pcd") for f in files]  # the same data with tabs between values: the strict path
    for f, g in zip(files, odd):
        raw = f.read_bytes()
        start = raw.index(b"DATA ascii\n") + len(b"DATA ascii\n")
        g.write_bytes(raw[:start] + raw[start:].replace(b" ", b"\t"))
    strict = _best(read_pcd, odd, max(1, repeat // 2))
    for g in odd:
        g.unlink()
    rows = [(f"ascii pcd ({n} points): ours read_pcd", ours, "1.0x"),
            ("ascii pcd: ours, x y z only (what depth GT reads)", xyz, f"{ours / xyz:.1f}x faster than full"),
            ("ascii pcd: ours, strict path (tabs, nan tokens, ...)", strict, f"{strict / ours:.1f}x slower")]
    o3d, why = _open3d()
    if o3d is not None:
        t = _best(lambda f: (np.asarray(o3d.io.read_point_cloud(str(f)).points)), files, repeat)
        rows.append((f"ascii pcd: Open3D {o3d.__version__} read_point_cloud", t, f"ours {t / ours:.1f}x faster"))
    else:
        rows.append(("ascii pcd: Open3D", float("nan"), f"skipped ({why[:60]})"))
    t = _best(lambda f: np.loadtxt(f, skiprows=_header_lines(f), dtype=np.float32), files, max(1, repeat // 2))
    rows.append(("ascii pcd: numpy.loadtxt", t, f"ours {t / ours:.1f}x faster"))
    return rows


def bench_views(root: Path, repeat: int, samples: int) -> list[tuple[str, float, str]]:
    import torch

    from coopmap.data.config import DataConfig
    from coopmap.data.dataset import ViewsDataset

    torch.set_num_threads(1)
    rows = []
    for mode in ("single", "coop"):
        ds = ViewsDataset(DataConfig(root=str(root), resolution=[518, 392], mode=mode, cache_index=False))
        idx = list(range(min(samples, len(ds))))
        ds[idx[0]]  # warm-up (imports, memoised rays)
        n_views = sum(ds.keys[i].n_views for i in idx) / len(idx)
        wall = _best(lambda i, ds=ds: ds[i], idx, repeat, clock=time.perf_counter)
        cpu = _best(lambda i, ds=ds: ds[i], idx, repeat)
        rows.append((f"views {mode} 518x392 ({n_views:.0f} views/sample)", wall / n_views,
                     f"{n_views / wall:.1f} views/s wall, {n_views / cpu:.1f} views/s per CPU-s"))
    return rows


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--root", help="an OPV2V-format tree (default: generate a synthetic one)")
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--samples", type=int, default=2, help="samples per mode for the assembly benchmark")
    args = p.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(args.root) if args.root else Path(tmp)
        if not args.root:
            from coopmap.synth import generate

            print("generating a synthetic tree (1 scenario, 3 CAVs, 2 frames, 800x600) ...", file=sys.stderr)
            generate(root, split="train", scenarios=1, agents=3, frames=2, seed=1, image_size=(800, 600),
                     progress=False)
        split = next(d for d in sorted(root.iterdir()) if d.is_dir() and not d.name.startswith("."))
        yamls = sorted(split.glob("*/*/*.yaml"))[:12]
        pcds = sorted(split.glob("*/*/*.pcd"))[:6]
        rows = bench_yaml(yamls, args.repeat) + bench_pcd(pcds, args.repeat) + bench_views(root, args.repeat,
                                                                                          args.samples)
    width = max(len(r[0]) for r in rows)
    print(f"{'benchmark':<{width}}  {'ms':>9}  comparison")
    for name, sec, note in rows:
        print(f"{name:<{width}}  {sec * 1e3:9.2f}  {note}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
