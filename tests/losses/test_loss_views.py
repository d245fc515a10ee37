import pytest
import torch
from loss_scenes import make_views, random_rigid

from coopmap.errors import ShapeError
from coopmap.geometry import invert_pose, transform_points
from coopmap.losses.views import (
    PixelSet,
    agent_layout,
    check_keys,
    transform_rows,
    view_mean,
)


def _poses(n, seed=0):
    gen = torch.Generator().manual_seed(seed)
    return torch.stack([random_rigid(gen) for _ in range(n)])


def test_invert_pose_is_exact_and_gradchecks():
    T = _poses(6).reshape(2, 3, 4, 4)
    eye = torch.eye(4, dtype=T.dtype).expand_as(T)
    torch.testing.assert_close(invert_pose(T) @ T, eye, atol=1e-12, rtol=0)
    assert torch.autograd.gradcheck(invert_pose, (T.clone().requires_grad_(),))


@pytest.mark.parametrize("B", [1, 3])
def test_transform_rows_matches_transform_points(B):
    T = _poses(B, seed=1)
    rows = torch.randn(7, 3, dtype=torch.float64)
    index = torch.randint(0, B, (7,))
    expected = torch.stack([transform_points(T[i], rows[n:n + 1])[0] for n, i in enumerate(index.tolist())])
    torch.testing.assert_close(transform_rows(T, rows, index), expected, atol=1e-12, rtol=0)


def test_pixel_set_gathers_rows_and_segments():
    masks = [torch.tensor([[[True, False], [False, True]]]).repeat(2, 1, 1), torch.zeros(2, 2, 2, dtype=torch.bool)]
    masks[1][1, 0, 1] = True
    pix = PixelSet.from_masks(masks)
    values = [{"x": torch.arange(8.0).reshape(2, 2, 2, 1)}, {"x": 10 + torch.arange(8.0).reshape(2, 2, 2, 1)}]
    assert pix.gather(values, "x")[:, 0].tolist() == [0.0, 3.0, 4.0, 7.0, 15.0]
    assert pix.segment.tolist() == [0, 0, 2, 2, 3] and pix.sample.tolist() == [0, 0, 1, 1, 1]
    assert pix.counts().tolist() == [2, 0, 2, 1]
    sums = pix.segment_sum(torch.ones(5))
    mean, empty = view_mean(sums * torch.tensor([1.0, 2.0, 3.0, 4.0]), pix.counts())
    assert mean.item() == pytest.approx((1 + 3 + 4) / 3) and empty.item() == 1


def test_check_keys_names_what_is_wrong():
    views = make_views(n_agents=1, n_cams=2, B=2)
    check_keys(views, "views", {"depthmap": ("B", "H", "W", 1), "camera_pose": ("B", 4, 4)})
    with pytest.raises(ShapeError, match=r"views\[0\] lacks key 'nope'"):
        check_keys(views, "views", {"nope": ("B",)})
    with pytest.raises(ShapeError, match=r"views\[0\]\['camera_pose'\]: expected shape \(\?, 3, 3\)"):
        check_keys(views, "views", {"camera_pose": ("B", 3, 3)})
    views[1]["depthmap"] = views[1]["depthmap"][:1]
    with pytest.raises(ShapeError, match="B = 1 but another tensor has B = 2"):
        check_keys(views, "views", {"depthmap": ("B", "H", "W", 1)})


def test_agent_layout_reference_views_and_errors():
    views = make_views(n_agents=3, n_cams=2)
    layout = agent_layout(views)
    assert layout.agent_of_view == (0, 0, 1, 1, 2, 2) and layout.ref_view == (0, 2, 4) and layout.n_agents == 3
    views[2]["agent_index"] = torch.tensor([5])
    with pytest.raises(ShapeError, match="0..n-1"):
        agent_layout(views)
