"""`coopmap eval` under torchrun: each rank evaluates a shard, rank 0 merges into the single-process CSV."""

import os
import subprocess
import sys

from coopmap.config import compose
from coopmap.evaluation.runner import evaluate

ARGS = ["data.split=test", "model=oracle", "data.resolution=[56,42]", "eval.progress=false", "eval.pc_metrics=false"]


def test_two_ranks_write_the_same_csv_as_one_process(synth_tree, tmp_path):
    evaluate(compose("eval", [f"data.root={synth_tree}", f"out_dir={tmp_path / 'one'}", *ARGS]))
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port",
                    str(30500 + os.getpid() % 1000), "-m", "coopmap", "eval", f"data.root={synth_tree}",
                    f"out_dir={tmp_path / 'two'}", *ARGS, "eval.device=cpu"], check=True, capture_output=True, env=env)
    one = (tmp_path / "one" / "coop_metrics.csv").read_text()
    assert one.count("\n") == 1 + 6  # header + 3 frames x 2 modes
    assert (tmp_path / "two" / "coop_metrics.csv").read_text() == one
    assert not list((tmp_path / "two").glob(".coop_metrics.rank*"))  # the shards were merged and removed
