"""A fake ``mapanything`` package for CI (the real one is not installable here): the same top-level submodule names
as MapAnything (spec section 8), ``dense_head`` sharing its tensors with the ``dpt_*`` heads, a ``scale_token``
parameter, and a ``forward`` whose outputs honour the contract (so losses and a training step run on it).
"""

from __future__ import annotations

import sys
import types

import torch
from omegaconf import OmegaConf
from torch import nn

from coopmap.models.contract import assemble_outputs

#: MapAnything's top-level names that hold parameters in the fake (the real model has more encoders, spec 8).
FAKE_TOP_LEVEL = ("encoder", "info_sharing", "dpt_feature_head", "dpt_regressor_head", "pose_head", "scale_head",
                  "scale_token")


class FakeMapAnything(nn.Module):
    """Stands in for ``mapanything.models.MapAnything``."""

    #: the encoder's patch size (their DINOv2: 14, CroCo: 16); images must be multiples of it.
    PATCH = 14

    def __init__(self, tag: str = "built", hidden: int = 256):
        super().__init__()
        self.encoder = nn.Linear(3, 8)
        self.encoder.data_norm_type = "dust3r"
        self.encoder.patch_size = self.PATCH
        self.encoder.name = f"fake_patch{self.PATCH}"
        self.info_sharing = nn.Linear(8, 8)
        self.dpt_feature_head = nn.Linear(8, hidden)
        self.dpt_regressor_head = nn.Linear(hidden, 8)
        self.dense_head = nn.Sequential(self.dpt_feature_head, nn.GELU(), self.dpt_regressor_head)  # shared tensors
        self.pose_head = nn.Linear(8, 7)
        self.scale_head = nn.Linear(8, 1)
        self.scale_token = nn.Parameter(torch.zeros(8))
        with torch.no_grad():
            for lin in (self.encoder, self.info_sharing, self.dpt_regressor_head, self.pose_head, self.scale_head):
                lin.weight.mul_(0.1)
                lin.bias.zero_()
        self.tag = tag
        self.inputs: list = []

    @classmethod
    def from_pretrained(cls, id_or_dir):
        return cls(tag=f"pretrained:{id_or_dir}")

    def forward(self, views):
        self.inputs.append(views)
        feats = []
        for v in views:
            f = self.encoder(v["img"].permute(0, 2, 3, 1))
            feats.append(f + self.info_sharing(f))
        pooled = torch.stack([f.mean(dim=(1, 2)) for f in feats]).mean(0)  # (B, 8): one s per sample
        s = torch.exp(self.scale_head(pooled + self.scale_token)) * 5.0
        out = []
        for i, f in enumerate(feats):
            d = self.dense_head(f)
            rays = torch.cat([0.3 * torch.tanh(d[..., :2]), torch.ones_like(d[..., :1])], dim=-1)
            pose = self.pose_head(f.mean(dim=(1, 2)))
            quats = pose[:, 3:] + torch.tensor([0.0, 0.0, 0.0, 1.0])
            trans = pose[:, :3] + float(i)
            out.append(assemble_outputs(rays, torch.exp(d[..., 2:3]), quats, trans, s, 1.0 + torch.exp(d[..., 3]),
                                        d[..., 4]))
        return out

    def infer(self, *args, **kwargs):
        raise AssertionError("training must call forward, not infer()")


class FakeLoss:
    """Their loss API in miniature (spec section 5): ``loss(batch, preds) -> (scalar, details)``, ``+`` and ``w *``."""

    def __init__(self, *args, weight: float = 1.0, parts=None, **kwargs):
        self.weight, self.parts = weight, parts

    def __call__(self, batch, preds):
        if self.parts:
            losses = [p(batch, preds) for p in self.parts]
            return self.weight * sum(x for x, _ in losses), {k: v for _, d in losses for k, v in d.items()}
        loss = self.weight * sum((p["pts3d"] - b["pts3d"]).abs().mean() for b, p in zip(batch, preds))
        return loss, {"fake_pts3d": loss.item()}

    def __add__(self, other):
        return FakeLoss(parts=[self, other])

    def __rmul__(self, weight):
        return FakeLoss(weight=weight, parts=[self])


def install_fake_package(monkeypatch, with_losses: bool = True) -> dict:
    """Put a fake ``mapanything`` (with ``mapanything.models``) in ``sys.modules``; returns the calls it records."""
    calls: dict = {}

    def init_model(model_str, model_config):
        calls["init_model"] = (model_str, OmegaConf.to_container(model_config, resolve=True))
        return FakeMapAnything(tag="hydra")

    pkg = types.ModuleType("mapanything")
    pkg.__version__ = "0.0-fake"
    pkg.__file__ = "/nonexistent/fake/mapanything/__init__.py"
    models = types.ModuleType("mapanything.models")
    models.MapAnything, models.init_model = FakeMapAnything, init_model
    pkg.models = models
    monkeypatch.setitem(sys.modules, "mapanything", pkg)
    monkeypatch.setitem(sys.modules, "mapanything.models", models)
    train = types.ModuleType("mapanything.train")
    losses = types.ModuleType("mapanything.train.losses")
    if with_losses:
        for name in ("FactoredGeometryScaleRegr3DPlusNormalGMLoss", "RobustRegressionLoss",
                     "ConfAndExcludeTopNPercentPixelLoss", "NonAmbiguousMaskLoss", "BCELoss"):
            setattr(losses, name, FakeLoss)
    monkeypatch.setitem(sys.modules, "mapanything.train", train)
    monkeypatch.setitem(sys.modules, "mapanything.train.losses", losses)
    return calls
