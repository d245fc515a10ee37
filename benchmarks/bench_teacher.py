"""Benchmark: a training step with an online teacher vs a cached teacher vs no teacher (tiny model, CPU).

    python benchmarks/bench_teacher.py [--batch 2] [--agents 3] [--width 126] [--height 98] [--steps 10]
                                       [--threads 1]

Setup (untimed): a synthetic OPV2V tree (``coopmap.synth``, 1 scenario, ``--agents`` CAVs, ``--batch`` frames)
gives one coop batch (B = ``--batch`` samples x 4 x agents views) read by the dataset; a ``tiny`` model with the
packaged sizes (tiny.yaml) is saved as the "pretrained" checkpoint, and ``coopmap teacher-cache`` runs it once over
the split. Each mode then runs in its **own process** (so memory peaks do not mix), on the same batch:

- ``none``: student forward + L1 point loss + backward + AdamW step;
- ``online``: the frozen teacher (a copy of the checkpoint) runs on the batch under ``no_grad`` first, and a
  distillation term (|log s - log s_t| + |t - t_t|) is added;
- ``cached``: the same targets are read from the teacher cache instead.

Reported per mode: the best step time (wall and process CPU, ms) of ``--steps`` steps after 2 warm-up steps (best,
not median: the machine may be shared); the peak of live tensor memory during one step (torch profiler,
allocations minus frees, above what was live before the step); the resident size after warm-up (weights, optimizer
state, teacher, allocator caches) and the peak resident size during the steps (``VmHWM`` reset through
``/proc/self/clear_refs`` after warm-up; Linux); the teacher's parameter bytes. Ratios are against ``none``.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

MODES = ("none", "online", "cached")


def _status_kb(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"{field} not in /proc/self/status")


def _overrides(a) -> list[str]:
    return [f"data.root={a.root}", "data.mode=coop", f"data.resolution=[{a.width},{a.height}]",
            f"data.batch_size={a.batch}", "model=tiny", f"model.checkpoint={a.ckpt}", "device=cpu"]


def _setup(a) -> None:
    """Synthetic tree, the pretrained tiny checkpoint and the teacher cache (in a.root's parent)."""
    from coopmap.config import compose
    from coopmap.models.cli_teacher_cache import build_teacher_cache
    from coopmap.models.factory import build_model
    from coopmap.synth import generate

    generate(a.root, split="train", scenarios=1, agents=a.agents, frames=a.batch, seed=0, image_size=(400, 300),
             progress=False)
    torch.manual_seed(0)
    cfg = compose("teacher_cache", [f"data.root={a.root}", "model=tiny"])
    torch.save({"model": build_model(cfg.model).state_dict()}, a.ckpt)
    build_teacher_cache(compose("teacher_cache", _overrides(a) + [f"out_dir={a.cache}"]), progress=False)


def _loss(views, preds, distill: bool):
    total = 0.0
    for view, pred in zip(views, preds):
        m = view["valid_mask"]
        total = total + (pred["pts3d"][m] - view["pts3d"][m]).abs().mean()
        if distill:
            log_ratio = torch.log(pred["metric_scaling_factor"]) - torch.log(view["teacher_metric_scale"])
            total = total + log_ratio.abs().mean() + (pred["cam_trans"] - view["teacher_cam_trans"]).abs().mean()
    return total / len(views)


def _tensor_peak_mb(step) -> float:
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        step()
    live = peak = 0
    for event in sorted(prof.events(), key=lambda e: e.time_range.start):
        live += event.self_cpu_memory_usage
        peak = max(peak, live)
    return peak / 2**20


def _worker(a) -> dict:
    from coopmap.config import compose
    from coopmap.data.dataset import make_loader
    from coopmap.models.factory import build_model
    from coopmap.models.teacher import CachedTeacherSource, OnlineTeacherSource, Teacher
    from coopmap.models.teacher_cache import TeacherCache

    cfg = compose("teacher_cache", _overrides(a))
    batch = next(iter(make_loader(cfg.data, "train", shuffle=False, seed=0)))
    student = build_model(cfg.model).train()
    opt = torch.optim.AdamW(student.parameters(), lr=1e-4)
    source, teacher_mb = None, 0.0
    if a.worker == "online":
        source = OnlineTeacherSource(Teacher.from_config(cfg.model))
        teacher_mb = sum(p.numel() * p.element_size() for p in source.teacher.parameters()) / 2**20
    elif a.worker == "cached":
        source = CachedTeacherSource(TeacherCache(a.cache, model_cfg=cfg.model, data_cfg=cfg.data))

    def step():
        views = [dict(v) for v in batch]
        if source is not None:
            source.attach(views, "coop")
        loss = _loss(views, student(views), distill=source is not None)
        opt.zero_grad()
        loss.backward()
        opt.step()

    for _ in range(2):
        step()
    rss_setup = _status_kb("VmRSS") / 1024
    Path("/proc/self/clear_refs").write_text("5")
    wall, cpu = [], []
    for _ in range(a.steps):
        w0, c0 = time.perf_counter(), time.process_time()
        step()
        wall.append(1e3 * (time.perf_counter() - w0))
        cpu.append(1e3 * (time.process_time() - c0))
    rss_peak = _status_kb("VmHWM") / 1024
    return {"mode": a.worker, "views": len(batch), "B": int(batch[0]["img"].shape[0]),
            "wall_ms": min(wall), "cpu_ms": min(cpu), "rss_peak_mb": rss_peak,
            "tensor_peak_mb": _tensor_peak_mb(step), "rss_setup_mb": rss_setup, "teacher_params_mb": teacher_mb}


def _table(rows: list[dict]) -> str:
    base = rows[0]
    head = (f"{'mode':<8}{'step wall ms':>14}{'x':>7}{'step cpu ms':>13}{'x':>7}{'tensor peak MB':>16}{'x':>7}"
            f"{'RSS setup MB':>14}{'RSS peak MB':>13}{'teacher MB':>12}")
    lines = [head, "-" * len(head)]
    for r in rows:
        lines.append(
            f"{r['mode']:<8}{r['wall_ms']:>14.1f}{r['wall_ms'] / base['wall_ms']:>7.2f}{r['cpu_ms']:>13.1f}"
            f"{r['cpu_ms'] / base['cpu_ms']:>7.2f}{r['tensor_peak_mb']:>16.1f}"
            f"{r['tensor_peak_mb'] / base['tensor_peak_mb']:>7.2f}{r['rss_setup_mb']:>14.1f}{r['rss_peak_mb']:>13.1f}"
            f"{r['teacher_params_mb']:>12.2f}"
        )
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--batch", type=int, default=2)
    p.add_argument("--agents", type=int, default=3)
    p.add_argument("--width", type=int, default=126)
    p.add_argument("--height", type=int, default=98)
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--worker", choices=MODES, help="internal: run one mode in this process")
    p.add_argument("--root", help="internal")
    p.add_argument("--ckpt", help="internal")
    p.add_argument("--cache", help="internal")
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    if a.worker:
        print(json.dumps(_worker(a)))
        return
    with tempfile.TemporaryDirectory() as tmp:
        a.root, a.ckpt, a.cache = f"{tmp}/synth", f"{tmp}/teacher.pt", f"{tmp}/cache"
        _setup(a)
        rows = []
        for mode in MODES:
            args = [sys.executable, __file__, "--worker", mode, "--root", a.root, "--ckpt", a.ckpt, "--cache", a.cache,
                    *(f"--{k}={getattr(a, k)}" for k in ("batch", "agents", "width", "height", "steps", "threads"))]
            out = subprocess.run(args, check=True, capture_output=True, text=True).stdout
            rows.append(json.loads(out.strip().splitlines()[-1]))
    r = rows[0]
    print(f"tiny (tiny.yaml sizes), one coop batch: B={r['B']} x {r['views']} views at {a.width}x{a.height}, "
          f"CPU, {a.threads} thread(s), best of {a.steps} steps")
    print(_table(rows))


if __name__ == "__main__":
    main()
