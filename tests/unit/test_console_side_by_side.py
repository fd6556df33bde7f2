"""Two revisions' files side by side: changed, removed and added lines paired, unchanged files left out."""

from __future__ import annotations

from saleshub.console.pages_mappings import side_by_side


def test_lines_are_paired_by_what_changed() -> None:
    old = {"a.csv": "h\nx\ny\nz\n", "same.yaml": "k: 1\n", "gone.csv": "h\n"}
    new = {"a.csv": "h\nX\nz\nw\n", "same.yaml": "k: 1\n", "new.csv": "h\n"}
    files = {f.path: f.rows for f in side_by_side(old, new)}
    assert sorted(files) == ["a.csv", "gone.csv", "new.csv"]
    rows = [(r.old_no, r.old, r.new_no, r.new, r.kind) for r in files["a.csv"]]
    assert rows == [
        (1, "h", 1, "h", "equal"),
        (2, "x", 2, "X", "replace"),
        (3, "y", None, "", "replace"),
        (4, "z", 3, "z", "equal"),
        (None, "", 4, "w", "insert"),
    ]
    assert [(r.old, r.new, r.kind) for r in files["gone.csv"]] == [("h", "", "delete")]
    assert [(r.old, r.new, r.kind) for r in files["new.csv"]] == [("", "h", "insert")]
