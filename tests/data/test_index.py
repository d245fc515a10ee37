"""Index: layout variants, ego and cooperator choice, problems, and the JSON cache."""

import json
import os
import time

import pytest

from coopmap.data.index import CACHE_VERSION, build_index, cache_path
from coopmap.data.samples import choose_egos, cooperators, opencood_agent_order, select_samples
from coopmap.errors import DataError

SCEN = "2021_08_16_22_26_54"


def test_layout_variants(make_stub_tree):
    """Negative RSU ids, 5- and 6-digit timestamps, 'additional' skipped, all splits found."""
    root = make_stub_tree({
        "train": {SCEN: {1732: (["000068", "000070"], (0, 0)), 650: (["000068", "000070"], (10, 0)),
                         -3: (["000068", "000070"], (5, 5))}},
        "test_culvercity": {"2021_09_03_09_32_17": {41: (["00120", "00122", "01000"], (0, 0))}},
    })
    (root / "additional" / "x").mkdir(parents=True)
    (root / "train" / SCEN / "additional").mkdir()
    index = build_index(root, use_cache=False, progress=False)
    assert index.splits == ["test_culvercity", "train"]
    scen = index.scenario("train", SCEN)
    assert scen.agents == ["-3", "1732", "650"]
    assert scen.timestamps == ["000068", "000070"]
    assert index.scenario("test_culvercity", "2021_09_03_09_32_17").timestamps == ["00120", "00122", "01000"]
    assert index.problems == []


def test_ego_is_first_cav_in_string_order_never_an_rsu():
    assert choose_egos(["650", "1732", "-3"]) == ["1732"]  # "1732" < "650" as strings
    assert choose_egos(["650", "1732", "-3"], "all") == ["1732", "650"]
    assert choose_egos(["-1", "-2"]) == []
    with pytest.raises(ValueError):
        choose_egos(["1"], "random")


def test_cooperators_range_and_max_cav():
    pos = {"1": [0, 0, 0], "2": [69.9, 0, 5], "3": [70.1, 0, 0], "40": [0, 10, 0], "-5": [3, 4, 0]}
    assert cooperators("1", pos, 70.0, 7) == ["-5", "2", "40"]  # string order, RSU allowed, 70.1 m excluded
    assert cooperators("1", pos, 70.0, 3) == ["-5", "40"]  # the nearest two
    assert cooperators("1", pos, 70.0, 1) == []


def test_select_samples_modes(make_stub_tree):
    root = make_stub_tree({"train": {SCEN: {10: (["000002", "000004"], (0, 0)), 20: (["000002", "000004"], (30, 0)),
                                            30: (["000002", "000004"], (200, 0))}}})
    index = build_index(root, use_cache=False, progress=False)
    coop = select_samples(index, "train", "coop")
    assert [(k.timestamp, k.agent_ids) for k in coop] == [("000002", ("10", "20")), ("000004", ("10", "20"))]
    assert coop[0].n_views == 8
    single = select_samples(index, "train", "single", "all")
    assert [k.agent_ids for k in single] == [("10",), ("20",), ("30",)] * 2
    mixed = select_samples(index, "train", "mixed", "all")
    assert [k.mode for k in mixed[:4]] == ["single", "coop", "single", "coop"]
    assert sum(k.mode == "coop" for k in mixed) == 4  # agent 30 has no cooperator: single only
    assert select_samples(index, "validate", "coop") == []


def test_opencood_agent_order_moves_only_the_first_rsu_and_truncates_by_list_order():
    """OpenCOOD / HEAL (evaluation): sorted folder names; only a negative FIRST id goes to the end."""
    assert opencood_agent_order(["650", "1732", "-3"], 5) == ["1732", "650", "-3"]
    # two RSUs: "-1" moves, "-2" stays first: the ego is an RSU
    assert opencood_agent_order(["650", "1732", "-1", "-2"], 5) == ["-2", "1732", "650", "-1"]
    assert opencood_agent_order(["650", "1732", "-1", "-2"], 2) == ["-2", "1732"]
    assert opencood_agent_order(["30", "20", "10"], 2) == ["10", "20"]


def test_select_samples_opencood_policy_differs_where_opencood_does(make_stub_tree):
    """The recorded OpenCOOD behaviour on a 2-RSU scenario: the ego is the RSU "-2"; the agent beyond max_cav in
    list order (40, though 1 m away) never cooperates; one inside the list (20, 200 m away) is dropped by range."""
    stamps = ["000002", "000004"]
    root = make_stub_tree({"train": {SCEN: {-1: (stamps, (5, 0)), -2: (stamps, (0, 0)), 10: (stamps, (60, 0)),
                                            20: (stamps, (200, 0)), 40: (stamps, (1, 0))}}})
    index = build_index(root, use_cache=False, progress=False)
    oc = select_samples(index, "train", "coop", "opencood", 70.0, 3)
    assert [(k.ego_id, k.agent_ids) for k in oc] == [("-2", ("-2", "10"))] * 2  # list -2, 10, 20 (max_cav 3)
    oc5 = select_samples(index, "train", "coop", "opencood", 70.0, 5)
    assert oc5[0].agent_ids == ("-2", "10", "40", "-1")  # list -2, 10, 20, 40, -1 (list order kept)
    ours = select_samples(index, "train", "coop", "first", 70.0, 3)
    assert ours[0].agent_ids == ("10", "-1", "40")  # first CAV; the two nearest in range (55 m, 59 m; -2 at 60 m)
    with pytest.raises(ValueError, match="opencood"):
        select_samples(index, "train", "coop", "random")


def test_problems_are_reported_not_raised(make_stub_tree):
    stamps = ["000010", "000012", "000014"]
    root = make_stub_tree({"train": {SCEN: {1: (stamps, (0, 0)), 2: (stamps[:2], (1, 0)), 3: (stamps, (2, 0))}},
                           "validate": {}})
    a1 = root / "train" / SCEN / "1"
    (a1 / "000012_camera2.png").unlink()  # missing camera image
    (root / "train" / SCEN / "3" / "000014.yaml").write_text("lidar_pose: [1, 2, .nan, 0, 0, 0]\n")
    (root / "train" / SCEN / "4").mkdir()  # empty agent folder
    (root / "train" / SCEN / "notes").mkdir()  # not an agent
    (root / "train" / "2021_01_01_00_00_00").mkdir()  # empty scenario
    (root / "train" / SCEN / "2" / "000010.yaml").write_text("true_ego_pos: [0, 0, 0, 0, 0, 0]\n")
    index = build_index(root, use_cache=False, progress=False)
    text = "\n".join(str(p) for p in index.problems)
    assert "000012_camera2.png: missing 000012_camera2.png; frame skipped" in text
    assert "000014.yaml: 'lidar_pose' has a non-finite value" in text
    assert "000010.yaml: missing key 'lidar_pose'" in text
    assert f"{SCEN}/4: empty agent folder" in text
    assert "notes: not an agent folder" in text
    assert "2021_01_01_00_00_00: no agent folders" in text
    assert "validate: empty split folder" in text
    assert f"{SCEN}/2: mismatched timestamps: 2 frame(s)" in text
    scen = index.scenario("train", SCEN)
    assert scen.frames["000010"].keys() == {"1", "3"}
    assert scen.frames["000012"].keys() == {"2", "3"}
    assert scen.frames["000014"].keys() == {"1"}


def test_root_errors(tmp_path, make_stub_tree):
    with pytest.raises(DataError, match="not a folder"):
        build_index(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="no split folder"):
        build_index(tmp_path / "empty")
    root = make_stub_tree({"train": {SCEN: {1: (["000001"], (0, 0))}}})
    with pytest.raises(DataError, match="looks like a scenario"):
        build_index(root / "train", use_cache=False)


def test_cache_is_json_reused_and_invalidated(make_stub_tree, stub_agent_writer):
    root = make_stub_tree({"train": {SCEN: {1: (["000001", "000003"], (0, 0)), 2: (["000001"], (5, 0))}}})
    first = build_index(root, progress=False)
    assert not first.from_cache
    path = cache_path(root)
    doc = json.loads(path.read_text())  # plain JSON, no pickle
    assert doc["version"] == CACHE_VERSION and doc["scenarios"][0]["name"] == SCEN
    second = build_index(root, progress=False)
    assert second.from_cache and second.scenarios[0].frames == first.scenarios[0].frames
    stub_agent_writer(root / "train" / SCEN / "2", ["000003"], lambda ts: (5, 0))  # adds files: mtime changes
    third = build_index(root, progress=False)
    assert not third.from_cache and third.scenario("train", SCEN).frames["000003"].keys() == {"1", "2"}
    path.write_text("{ damaged")
    assert not build_index(root, progress=False).from_cache


def test_cached_open_is_fast(make_stub_tree):
    """40 scenarios x 3 agents x 20 frames (2,400 agent-frames): a second open well under a second."""
    scens = {f"2021_08_{i:02d}_00_00_00": {a: ([f"{2 * t:06d}" for t in range(20)], (a, 0)) for a in (1, 2, 3)}
             for i in range(40)}
    root = make_stub_tree({"train": scens})
    build_index(root, progress=False)
    start = time.perf_counter()
    index = build_index(root, progress=False)
    took = time.perf_counter() - start
    assert index.from_cache and len(index.scenarios) == 40
    assert took < 0.5, f"cached open took {took:.3f} s"


def test_cache_falls_back_to_home_when_root_is_read_only(tmp_path, monkeypatch, make_stub_tree):
    root = make_stub_tree({"train": {SCEN: {1: (["000001"], (0, 0))}}})
    monkeypatch.delenv("COOPMAP_CACHE_DIR")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert cache_path(root) == root.resolve() / ".coopmap_index.json"
    if os.geteuid() != 0:  # root ignores permissions
        os.chmod(root, 0o555)
        try:
            assert str(cache_path(root)).startswith(str(tmp_path / "home" / ".cache" / "coopmap"))
        finally:
            os.chmod(root, 0o755)
