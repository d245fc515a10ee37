"""Print the corpus table of docs/reliability.md: runs every case (in process) and shows what the user sees.

    python tests/reliability/doc_table.py > /tmp/table.md     # then paste it into docs/reliability.md

Paths are shortened to ``<root>`` (the damaged tree) and ``<work>`` (the case's folder); long messages are cut.
test_corpus.py checks that the docs' rows name the same cases, inputs, commands and behaviours.
"""

from __future__ import annotations

import shutil
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

import test_corpus as tc  # noqa: E402
from reliability_corpus import CASES  # noqa: E402

from conftest import PRISTINE  # noqa: E402
from coopmap.synth import generate  # noqa: E402

MAX_MESSAGE = 150


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        pristine = Path(tmp) / "pristine"
        generate(pristine, progress=False, **PRISTINE)
        print("| case | damaged input | command | behaviour | what the user sees |")
        print("|---|---|---|---|---|")
        for case in CASES:
            d = Path(tempfile.mkdtemp(dir=tmp))
            root, work = d / "tree", d / "work"
            shutil.copytree(pristine, root)
            work.mkdir()
            made = case.make(root, work)
            res = tc.run_in_process(tc.argv_for(case, root, work, made))
            try:
                msg = tc.check(case, res, root, work, made)
            except AssertionError as err:
                msg = f"FAILED: {err}"
            msg = msg.replace(str(root), "<root>").replace(str(work), "<work>").replace("|", "\\|").replace("`", "'")
            msg = msg if len(msg) <= MAX_MESSAGE else msg[: MAX_MESSAGE - 3] + "..."
            print(f"| `{case.name}` | {case.what} | `{case.command}` | {case.expect} | `{msg}` |")
            shutil.rmtree(d)


if __name__ == "__main__":
    main()
