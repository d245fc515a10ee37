import math

from coopmap.csvio import AppendCsv


def test_partial_last_line_is_ignored_and_values_round_trip(tmp_path):
    path = tmp_path / "m.csv"
    csv = AppendCsv(path, ["key", "value", "status"])
    csv.append({"key": "a", "value": 0.1 + 0.2, "status": "ok"})
    csv.append({"key": "b", "value": math.nan, "status": "skipped: bad, file"})
    with open(path, "a") as f:
        f.write("c,0.5")  # killed mid-row
    rows = AppendCsv(path).rows()
    assert [r["key"] for r in rows] == ["a", "b"]
    assert float(rows[0]["value"]) == 0.1 + 0.2  # 9 significant digits would lose this; repr-exact is kept
    assert math.isnan(float(rows[1]["value"])) and rows[1]["status"] == "skipped: bad, file"


def test_rewrite_is_atomic_and_keeps_header(tmp_path):
    path = tmp_path / "m.csv"
    csv = AppendCsv(path, ["k"])
    for i in range(3):
        csv.append({"k": i})
    csv.rewrite([{"k": 9}])
    assert path.read_text() == "k\n9\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.csv"]
