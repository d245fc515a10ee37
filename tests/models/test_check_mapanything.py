"""coopmap check-mapanything on the fake package: every step runs and is reported as a table row; a failing step
is a FAIL row with a one-line reason (exit 1), never a traceback."""

from coopmap.cli import main as cli_main
from fake_mapanything import FakeMapAnything, install_fake_package

STEPS = ["import", "build model", "synthetic sample", "forward", "check_outputs", "train step, our criterion",
         "train step, their criterion", "checkpoint out", "checkpoint in"]


def _rows(out: str) -> dict[str, str]:
    rows = {}
    for line in out.splitlines():
        for step in STEPS:
            if line.startswith(step + "  "):
                rows[step] = line[len(step):].split()[0]
    return rows


def test_every_step_passes_on_the_fake(monkeypatch, capsys):
    install_fake_package(monkeypatch)
    assert cli_main(["check-mapanything", "model.pretrained=facebook/map-anything"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("coopmap check-mapanything: mapanything ? (commit unknown: not a git checkout, ")
    assert _rows(out) == {step: "ok" for step in STEPS}
    assert "their strict load_state_dict: all equal" in out
    n = len(FakeMapAnything().state_dict())  # dense_head.* listed besides the dpt heads they share
    assert f"their layout (pickled OmegaConf args) as model.checkpoint: {n}/{n} tensors equal" in out
    assert out.rstrip().endswith("check-mapanything: 9 of 9 steps passed")


def test_a_failing_step_is_a_row_and_exit_1(monkeypatch, capsys):
    install_fake_package(monkeypatch, with_losses=False)
    assert cli_main(["check-mapanything"]) == 1
    out = capsys.readouterr().out
    rows = _rows(out)
    assert rows.pop("train step, their criterion") == "FAIL"
    assert set(rows.values()) == {"ok"}
    assert "AttributeError: module 'mapanything.train.losses' has no attribute" in out
    assert out.rstrip().endswith("8 of 9 steps passed; failed: train step, their criterion")


def test_small_without_their_configs_says_where_to_point(monkeypatch, capsys, tmp_path):
    install_fake_package(monkeypatch)
    assert cli_main(["check-mapanything", "--small"]) == 1
    out = capsys.readouterr().out
    assert "ConfigError: --small needs MapAnything's configs folder; none beside the installed package" in out
    assert "skipped: an earlier step failed (model)" in out
