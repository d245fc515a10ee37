"""Benchmark: the time the training losses add, on a MapAnything-sized output and in a ``tiny`` training step.

    python benchmarks/bench_losses.py [--views 12] [--height 392] [--width 518] [--coverage 0.03] [--repeat 10]
                                      [--tiny-views 8] [--tiny-height 98] [--tiny-width 126] [--tiny-repeat 30]
                                      [--skip-big] [--skip-tiny]

Part (a) times forward + backward of each loss section alone and of the criterion with the base loss only and
with every improvement on (``loss=stage2``), on one synthetic coop sample (B = 1, 3 agents x 4 cameras at
518x392 by default, ~3 % LiDAR-labelled pixels, 20 GT boxes), float32 on CPU.
Part (b), when ``coopmap.models.tiny`` is importable, times a full training step of the tiny model (forward, loss,
backward, AdamW step) with the base loss only and with ``loss=stage2`` and prints the overhead ratio.
All times are the best of ``--repeat`` (part (b): ``--tiny-repeat``) runs after one warm-up, in milliseconds: wall clock and process CPU time
(``--threads 1`` by default, so CPU times stay comparable on a busy machine). In (b) the overhead of the new terms
is measured two ways: the new terms alone (forward + backward on the tiny model's outputs) over the step time, and
the difference of two full steps (stage2 minus the mask-aware base; noisier).
"""

from __future__ import annotations

import argparse
import math
import time

import torch

from coopmap.geometry import (
    depthmap_to_pts_cam,
    first_box_map,
    invert_pose,
    pose_to_quat_trans,
    ray_directions,
    transform_points,
)
from coopmap.losses import build_criterion, load_loss_config

R_VEH_FROM_CV = torch.tensor([[0.0, 0.0, 1.0], [-1.0, 0.0, 0.0], [0.0, -1.0, 0.0]])


def _pose(yaw: float, t) -> torch.Tensor:
    c, s = math.cos(yaw), math.sin(yaw)
    T = torch.eye(4)
    T[:3, :3] = torch.tensor([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])
    T[:3, 3] = torch.as_tensor(t, dtype=torch.float32)
    return T


def make_batch(n_views: int, H: int, W: int, coverage: float, n_boxes: int = 20, seed: int = 0):
    """(views, preds): a B = 1 coop sample of ``n_views`` (4 cameras per agent) with every key the losses read,
    teacher targets included; predictions = GT plus noise, leaf tensors that require grad."""
    g = torch.Generator().manual_seed(seed)
    n_agents = max(1, n_views // 4)
    agents = [_pose(0.0, (0, 0, 0))] + [_pose(float(torch.rand(1, generator=g)) * 6.28, (20.0 * a, 5.0 * a, 0))
                                        for a in range(1, n_agents)]
    cams = [_pose(math.radians(y), m) @ _pose(0, (0, 0, 0)) for y, m in
            zip((0, 100, -100, 180), ((2.5, 0, 1), (0, -0.3, 1.8), (0, 0.3, 1.8), (-2, 0, 1.5)))]
    for c in cams:
        c[:3, :3] = c[:3, :3] @ R_VEH_FROM_CV
    K = torch.tensor([[W / 2.4, 0, (W - 1) / 2], [0, W / 2.4, (H - 1) / 2], [0, 0, 1.0]])
    ref_from_world = torch.linalg.inv(agents[0] @ cams[0])
    views, preds = [], []
    for v in range(n_views):
        a, c = v // 4, v % 4
        valid = torch.rand(1, H, W, generator=g) < coverage
        depth = (2 + 58 * torch.rand(1, H, W, generator=g)) * valid
        pose = (ref_from_world @ agents[a] @ cams[c])[None]
        pts_cam = depthmap_to_pts_cam(depth, K[None])
        pts = transform_points(pose, pts_cam.reshape(1, -1, 3)).reshape(1, H, W, 3) * valid[..., None]
        q, t = pose_to_quat_trans(pose)
        views.append({
            "camera_pose": pose, "depthmap": depth[..., None], "pts3d": pts, "valid_mask": valid,
            "depth_along_ray": pts_cam.norm(dim=-1, keepdim=True), "ray_directions_cam": ray_directions(K[None], H, W),
            "non_ambiguous_mask": torch.ones(1, H, W, dtype=torch.bool), "is_metric_scale": torch.tensor([True]),
            "agent_index": torch.tensor([a]), "camera_index": torch.tensor([c]), "T_agent_from_cam": cams[c][None],
            "T_ego_from_cam": (torch.linalg.inv(agents[0]) @ agents[a] @ cams[c])[None],
            "agent_pose": (ref_from_world @ agents[a])[None],
            "teacher_cam_quats": q, "teacher_cam_trans": t, "teacher_metric_scale": torch.ones(1, 1),
            "teacher_scene_scale": torch.full((1, 1), 10.0),
        })
        noise = lambda x, s: (x + s * torch.randn(x.shape, generator=g)).requires_grad_()  # noqa: E731
        preds.append({"pts3d": noise(pts, 0.1), "pts3d_cam": noise(pts_cam, 0.1),
                      "depth_along_ray": noise(views[-1]["depth_along_ray"], 0.1),
                      "ray_directions": noise(views[-1]["ray_directions_cam"], 0.01), "cam_quats": noise(q, 0.01),
                      "cam_trans": noise(t, 0.05), "metric_scaling_factor": (torch.ones(1, 1) * 1.1).requires_grad_()})
    all_pts = torch.cat([v["pts3d"][0][v["valid_mask"][0]] for v in views])
    centres = all_pts[torch.randperm(all_pts.shape[0], generator=g)[:n_boxes]]
    box_pose = torch.eye(4).repeat(1, n_boxes, 1, 1)
    box_pose[0, :, :3, 3] = centres
    half = torch.tensor([2.3, 1.0, 0.8]).repeat(1, n_boxes, 1)
    for v in views:
        v.update(boxes_pose=box_pose, boxes_half_extent=half, boxes_count=torch.tensor([n_boxes]),
                 boxes_id=torch.arange(n_boxes)[None])
        # as the dataset writes it
        v["box_index"] = first_box_map(v["pts3d"], v["valid_mask"], invert_pose(box_pose[0]), half[0])
    return views, preds


def best_ms(fns: dict, repeat: int) -> dict[str, tuple[float, float]]:
    """Best-of-``repeat`` (wall, process CPU) milliseconds of every ``fns[name]()``, after one warm-up call each.
    The functions are interleaved round by round, so a busy spell of the machine hits them all alike."""
    wall = {k: math.inf for k in fns}
    cpu = {k: math.inf for k in fns}
    for f in fns.values():
        f()
    for _ in range(repeat):
        for k, f in fns.items():
            t0, c0 = time.perf_counter(), time.process_time()
            f()
            wall[k] = min(wall[k], time.perf_counter() - t0)
            cpu[k] = min(cpu[k], time.process_time() - c0)
    return {k: (1000 * wall[k], 1000 * cpu[k]) for k in fns}


#: criteria timed alone: name -> overrides of configs/loss/default.yaml (None = loss=stage2).
LOSS_ROWS = {
    "base, naive (default)": [],
    "base, mask-aware": ["loss.depth.mask_aware=true"],
    "depth/main (mask-aware) only": ["loss.base.weight=0", "loss.depth.depth_weight=1", "loss.depth.mask_aware=true"],
    "height prior only": ["loss.base.weight=0", "loss.depth.height_weight=1"],
    "distill only": ["loss.base.weight=0", "loss.scale_distill_weight=1"],
    "coop (pair + rig + box) only": ["loss.base.weight=0", "loss.coop_consistency_weight=1"],
    "all new terms, no base": ["loss.base.weight=0", "loss.depth.mask_aware=true", "loss.depth.depth_weight=1",
                               "loss.depth.height_weight=0.1", "loss.scale_distill_weight=1",
                               "loss.coop_consistency_weight=1"],
    "base + all new terms (stage2)": None,
}


def _criterion(overrides):
    return build_criterion(load_loss_config([], preset="stage2") if overrides is None else load_loss_config(overrides))


def time_losses(views, preds, rows, repeat: int) -> dict[str, tuple[float, float]]:
    """Forward + backward time of each criterion on fixed predictions (leaf tensors)."""
    leaves = [x for p in preds for x in p.values() if x.requires_grad]

    def make_step(crit):
        def step():
            for x in leaves:
                x.grad = None
            crit(views, preds)[0].backward()
        return step

    return best_ms({name: make_step(_criterion(overrides)) for name, overrides in rows.items()}, repeat)


def print_rows(results: dict[str, tuple[float, float]], ref: float) -> None:
    for name, (wall, cpu) in results.items():
        print(f"  {name:34s} {wall:9.1f} ms wall {cpu:9.1f} ms cpu   {100 * cpu / ref:6.1f} %")


def loss_table(args) -> None:
    views, preds = make_batch(args.views, args.height, args.width, args.coverage)
    print(f"(a) losses alone, forward + backward: B=1, V={args.views}, {args.width}x{args.height}, "
          f"{torch.get_num_threads()} thread(s); % = cpu time / the naive base's")
    results = time_losses(views, preds, LOSS_ROWS, args.repeat)
    print_rows(results, results["base, naive (default)"][1])


def tiny_table(args) -> None:
    try:
        from coopmap.models.config import ModelConfig
        from coopmap.models.tiny import TinyMapAnything
    except ImportError as err:
        print(f"(b) skipped: coopmap.models.tiny is not importable ({err})")
        return
    torch.manual_seed(0)
    model = TinyMapAnything(ModelConfig())
    opt = torch.optim.AdamW(model.parameters(), lr=1e-5)
    views, _ = make_batch(args.tiny_views, args.tiny_height, args.tiny_width, args.coverage)
    g = torch.Generator().manual_seed(1)
    for v in views:
        v["img"] = torch.randn(1, 3, args.tiny_height, args.tiny_width, generator=g)
        v["data_norm_type"] = ["dinov2"]
    print(f"(b) tiny training step (forward, loss, backward, AdamW): B=1, V={args.tiny_views}, "
          f"{args.tiny_width}x{args.tiny_height}, {torch.get_num_threads()} thread(s); % = cpu time / step's")
    def make_step(crit):
        def step():
            opt.zero_grad(set_to_none=True)
            crit(views, model(views))[0].backward()
            opt.step()
        return step

    steps = best_ms({name: make_step(_criterion(overrides)) for name, overrides in (
        ("step, base naive (default)", []), ("step, base mask-aware", ["loss.depth.mask_aware=true"]),
        ("step, stage2 (base + all new)", None))}, args.tiny_repeat)
    ref = steps["step, base naive (default)"][1]
    print_rows(steps, ref)
    with torch.no_grad():
        preds = [{k: x.detach().clone().requires_grad_(x.is_floating_point()) for k, x in p.items()}
                 for p in model(views)]
    names = ("base, naive (default)", "base, mask-aware", "all new terms, no base", "base + all new terms (stage2)")
    alone = time_losses(views, preds, {k: LOSS_ROWS[k] for k in names}, args.tiny_repeat)
    print_rows({f"loss only: {k}": v for k, v in alone.items()}, ref)
    marginal = alone["base + all new terms (stage2)"][1] - alone["base, mask-aware"][1]
    extra = steps["step, stage2 (base + all new)"][1] - steps["step, base mask-aware"][1]
    print(f"  the new terms add {100 * marginal / ref:.1f} % of a tiny step (loss only: stage2 - mask-aware base; "
          f"{100 * alone['all new terms, no base'][1] / ref:.1f} % without the base sharing their inputs; "
          f"{100 * extra / ref:+.1f} % as a difference of whole steps, noisier); target < 5 %")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--views", type=int, default=12)
    ap.add_argument("--height", type=int, default=392)
    ap.add_argument("--width", type=int, default=518)
    ap.add_argument("--coverage", type=float, default=0.03, help="share of LiDAR-labelled pixels")
    ap.add_argument("--repeat", type=int, default=10)
    ap.add_argument("--threads", type=int, default=1, help="torch threads (1: stable CPU times on a shared machine)")
    ap.add_argument("--tiny-repeat", type=int, default=30, help="rounds for part (b) (whole steps are noisier)")
    ap.add_argument("--tiny-views", type=int, default=8, help="8 = 2 agents; the demo's coop samples have 12")
    ap.add_argument("--tiny-height", type=int, default=98)
    ap.add_argument("--tiny-width", type=int, default=126)
    ap.add_argument("--skip-tiny", action="store_true")
    ap.add_argument("--skip-big", action="store_true", help="skip part (a)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    if not args.skip_big:
        loss_table(args)
    if not args.skip_tiny:
        tiny_table(args)


if __name__ == "__main__":
    main()
