import pytest

from coopmap.config import compose, to_plain
from coopmap.errors import ConfigError


def test_compose_applies_overrides_and_validates_types():
    cfg = compose("teacher_cache", ["data.root=/tmp/x", "data.resolution=[224,168]", "model=oracle", "model.scale=1.25"])
    assert cfg.data.root == "/tmp/x"
    assert list(cfg.data.resolution) == [224, 168]
    assert cfg.model.name == "oracle" and cfg.model.scale == 1.25
    assert to_plain(cfg)["data"]["root"] == "/tmp/x"


def test_misspelt_override_names_the_key():
    with pytest.raises(ConfigError, match="resolutoin"):
        compose("teacher_cache", ["data.root=/tmp/x", "data.resolutoin=[1,2]"])


def test_wrong_type_names_the_key():
    with pytest.raises(ConfigError, match="max_cav"):
        compose("teacher_cache", ["data.root=/tmp/x", "data.max_cav=lots"])


def test_missing_root_is_reported():
    with pytest.raises(ConfigError, match="data.root"):
        compose("teacher_cache", [])
