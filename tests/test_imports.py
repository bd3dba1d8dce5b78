"""The library never imports the search: softshare -> torch/torchvision only."""

import ast
import pathlib

ROOT = pathlib.Path(__file__).resolve().parents[1]
FORBIDDEN = {"optuna", "ray", "nas", "pandas", "plotly", "matplotlib", "search"}


def _imported_roots(path: pathlib.Path) -> set[str]:
    roots = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            roots |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            roots.add(node.module.split(".")[0])
    return roots


def test_softshare_imports_no_search_code():
    files = sorted((ROOT / "softshare").rglob("*.py"))
    assert files, "softshare has no modules"
    for path in files:
        bad = _imported_roots(path) & FORBIDDEN
        assert not bad, f"{path.relative_to(ROOT)} imports {sorted(bad)}"


def test_scanner_would_catch_a_forbidden_import(tmp_path):
    sample = tmp_path / "x.py"
    sample.write_text("import os\nfrom optuna.trial import Trial\nimport ray.tune as tune\n")
    assert _imported_roots(sample) & FORBIDDEN == {"optuna", "ray"}
