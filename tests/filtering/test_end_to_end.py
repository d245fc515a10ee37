"""End to end: `coopmap eval` with the noisy oracle on the synthetic tree, floaters planted, then `run_filter`.

Filtering must improve Chamfer, F-score and floating_ratio and lower vehicle_recall by at most 0.02 per frame.
"""

import numpy as np
import pytest

from coopmap.config import compose
from coopmap.csvio import AppendCsv
from coopmap.evaluation.outputs import save_points
from coopmap.evaluation.runner import evaluate
from coopmap.filtering import FilterConfig, run_filter


def _plant_floaters(path, rng, n_sky: int, n_band: int) -> None:
    """Add sky floaters (5-15 m above the ground) and isolated in-band ones (0.5-3.5 m) over the x, y range."""
    with np.load(path, allow_pickle=False) as d:
        arrays = {k: d[k] for k in d.files}
    T_L_from_E = np.linalg.inv(arrays["T_ego_from_egolidar"])
    h = np.r_[rng.uniform(5.0, 15.0, n_sky), rng.uniform(0.5, 3.5, n_band)]
    pts_E = np.c_[rng.uniform(-45, 45, len(h)), rng.uniform(-45, 45, len(h)), h]
    pts_L = pts_E @ T_L_from_E[:3, :3].T + T_L_from_E[:3, 3]
    arrays["pred_points"] = np.concatenate([arrays["pred_points"], pts_L.astype(np.float32)])
    arrays["pred_conf"] = np.concatenate([arrays["pred_conf"], np.full(len(h), arrays["pred_conf"].max())])
    arrays["pred_view"] = np.concatenate([arrays["pred_view"], np.zeros(len(h), np.int16)])
    save_points(path, **arrays)


@pytest.fixture(scope="module")
def noisy_eval(synth_tree, tmp_path_factory):
    out = tmp_path_factory.mktemp("eval_noisy")
    cfg = compose("eval", [f"data.root={synth_tree}", "data.split=test", "model=oracle", "model.depth_noise_m=0.3",
                           "data.resolution=[112,84]", "eval.save_points=true", f"out_dir={out}",
                           "eval.progress=false", "eval.modes=[coop]"])
    assert evaluate(cfg)["ok"] == 3
    rng = np.random.default_rng(0)
    for path in sorted((out / "points" / "coop").glob("*.npz")):
        _plant_floaters(path, rng, n_sky=2000, n_band=2000)
    return out


def test_filtering_improves_the_cloud_and_keeps_the_vehicles(noisy_eval, tmp_path):
    result = run_filter(noisy_eval, tmp_path, FilterConfig(progress=False, formats=["kitti"]))
    rows = AppendCsv(tmp_path / "filter_metrics.csv").rows()
    assert result["ok"] == 3 and [r["n_history"] for r in rows] == ["0", "1", "2"]
    for r in rows:
        v = {k: float(x) for k, x in r.items() if k.endswith(("_before", "_after"))}
        assert v["chamfer_after"] < v["chamfer_before"] - 0.05
        assert v["fscore_after"] > v["fscore_before"] + 0.02
        assert v["floating_ratio_before"] > 0.2 and v["floating_ratio_after"] == 0.0
        assert v["vehicle_recall_after"] >= v["vehicle_recall_before"] - 0.02
        assert v["n_points_after"] < 0.75 * v["n_points_before"]
    assert (tmp_path / "coop").is_dir()
