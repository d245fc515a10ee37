"""Feeding their training script: our views in their dataset API's form (types their check accepts), the dataset
class on a fake BaseDataset, and our criterion called their way."""

import sys
import types

import numpy as np
import pytest
import torch
from fake_views import MEAN, STD, make_views

from coopmap.config import compose
from coopmap.errors import ConfigError
from coopmap.losses.build import build_criterion
from coopmap.models.mapanything import MapAnythingAdapter
from coopmap.models.mapanything_feed import DERIVED_BY_THEM, THEIR_DTYPES, CoopmapCriterion, their_view
from fake_mapanything import FakeMapAnything, install_fake_package


def _unbatched_identity_view(view: dict) -> dict:
    out = {k: (v[0] if isinstance(v, (torch.Tensor, list)) and not (isinstance(v, torch.Tensor) and v.dim() == 0)
               else v) for k, v in view.items()}
    out["img"] = out["img"] * torch.tensor(STD, dtype=torch.float32)[:, None, None] + \
        torch.tensor(MEAN, dtype=torch.float32)[:, None, None]
    out["box_index"] = torch.full(out["depthmap"].shape[:2], -1, dtype=torch.int16)  # an int16 key: converted
    return out


def test_their_view_has_their_form_and_types():
    view = _unbatched_identity_view(make_views("single", batch=1)[0])
    out = their_view(view, max_boxes=8)
    assert out["img"].size == (56, 42) and out["img"].mode == "RGB"
    rgb = np.asarray(out["img"]).astype(np.float32) / 255
    np.testing.assert_allclose(rgb, view["img"].permute(1, 2, 0).numpy(), atol=0.5 / 255 + 1e-6)
    assert out["depthmap"].shape == (42, 56) and out["depthmap"].dtype == np.float32
    np.testing.assert_array_equal(out["depthmap"], view["depthmap"][..., 0].numpy().astype(np.float32))
    assert not set(out) & set(DERIVED_BY_THEM)  # their BaseDataset computes these (and refuses pts3d/valid_mask)
    for key, value in out.items():
        if key == "img" or isinstance(value, str):
            continue
        assert isinstance(value, np.ndarray) and value.dtype in THEIR_DTYPES, (key, getattr(value, "dtype", None))
    assert out["box_index"].dtype == np.int32
    assert out["boxes_pose"].shape == (8, 4, 4) and out["boxes_id"].shape == (8,)
    n = int(view["boxes_count"])
    np.testing.assert_array_equal(out["boxes_id"][n:], -1)
    np.testing.assert_array_equal(out["boxes_pose"][n:], np.broadcast_to(np.eye(4), (8 - n, 4, 4)))
    with pytest.raises(ConfigError, match="norm_type=identity"):
        their_view(make_views("single")[0] | {"img": view["img"][None] * 5}, 8)


@pytest.fixture
def fake_base_dataset(monkeypatch):
    """Their BaseDataset reduced to what the subclass relies on (constructor and _get_views contract)."""
    install_fake_package(monkeypatch)

    class BaseDataset:
        def __init__(self, num_views, split=None, resolution=None, data_norm_type=None, transform=None,
                     variable_num_views=False, **kw):
            self.num_views = list(range(2, num_views + 1)) if variable_num_views else num_views
            self.split, self._resolutions = split, [resolution]

    for name in ("mapanything.datasets", "mapanything.datasets.base", "mapanything.datasets.base.base_dataset"):
        monkeypatch.setitem(sys.modules, name, types.ModuleType(name))
    sys.modules["mapanything.datasets.base.base_dataset"].BaseDataset = BaseDataset
    import coopmap.models.mapanything_feed as feed

    monkeypatch.setattr(feed, "_classes", {})
    return feed


def test_dataset_class_serves_samples_in_their_api(synth_tree, fake_base_dataset):
    ds = fake_base_dataset.OPV2VViews(root=str(synth_tree), split="train", mode="coop", num_views=8,
                                      resolution=(56, 42), variable_num_views=True, max_boxes=64)
    assert ds.num_views == [2, 3, 4, 5, 6, 7, 8] and ds.is_metric_scale and not ds.is_synthetic
    assert len(ds) == sum(n >= 8 for n in ds.views.n_views) > 0
    views = ds._get_views(0, 5, (56, 42))
    assert len(views) == 5 and all(v["instance"].endswith(f"camera{i % 4}") for i, v in enumerate(views))
    assert views[0]["img"].size == (56, 42) and views[0]["boxes_pose"].shape == (64, 4, 4)
    np.testing.assert_allclose(views[0]["camera_pose"], np.eye(4), atol=1e-6)  # view 0 is the world
    with pytest.raises(ValueError, match=r"serves \(56, 42\) \(W, H\), asked for \(64, 48\)"):
        ds._get_views(0, 4, (64, 48))


def test_criterion_called_their_way_equals_ours():
    torch.manual_seed(0)
    views = make_views("coop", batch=2)
    preds = MapAnythingAdapter(FakeMapAnything())(views)
    theirs = CoopmapCriterion("default")
    assert isinstance(theirs, torch.nn.Module) and theirs.to("cpu") is theirs  # their loop calls .to(device)
    loss, details = theirs(views, [{k: v.to(torch.bfloat16) if v.is_floating_point() else v for k, v in p.items()}
                                   for p in preds])
    ours, ours_details = build_criterion(compose("train", ["data.root=x"]).loss)(views, preds)
    torch.testing.assert_close(loss, ours, rtol=2e-2, atol=0)  # bf16 predictions (their autocast) made float32
    assert set(details) == set(ours_details) and all(type(v) is float for v in details.values())
    exact, _ = theirs(views, preds)
    assert torch.equal(exact, ours)
    with pytest.raises(ConfigError, match="teacher targets"):
        CoopmapCriterion("stage2", {"scale_distill_weight": 1.0})
