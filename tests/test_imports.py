"""Import directions: the library never imports the search (softshare -> torch/torchvision only), and
nothing but ``--backend ray`` needs Ray (an extra)."""

import ast
import pathlib
import subprocess
import sys

import pytest

import search

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


# --- Ray is an extra (pip install -e '.[ray]'): nothing but --backend ray may need it ---------------

# Prepended to a `python -c` script: makes `import ray` fail as it does where Ray is not installed.
NO_RAY = """
import sys

class _NoRay:
    def find_spec(self, name, path=None, target=None):
        if name == "ray" or name.startswith("ray."):
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None

sys.meta_path.insert(0, _NoRay())
"""


def _python(code: str, *args: str, timeout: float = 300):
    return subprocess.run(
        [sys.executable, "-c", code, *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def test_nas_and_search_import_without_ray():
    done = _python(
        "import sys, nas, search\n"
        "args = search.build_parser().parse_args(['study', 'x'])\n"
        "from nas.cli.commands import _ray_options\n"
        "assert _ray_options(args) is None\n"
        "ray = sorted(m for m in sys.modules if m == 'ray' or m.startswith('ray.'))\n"
        "assert not ray, ray\n"
    )
    assert done.returncode == 0, done.stderr


@pytest.mark.slow
def test_a_study_on_the_default_backend_runs_without_ray(tmp_path):
    """Every nas module but the Ray backend's two, then a real one-trial study, with Ray unimportable."""
    done = _python(
        NO_RAY + "import importlib, pkgutil, nas, search\n"
        "for m in pkgutil.iter_modules(nas.__path__):\n"
        "    if m.name not in ('ray_backend', 'ray_search'):\n"
        "        importlib.import_module('nas.' + m.name)\n"
        "code = search.main(sys.argv[1:])\n"
        "assert code == 0, code\n"
        "ray = sorted(m for m in sys.modules if m == 'ray' or m.startswith('ray.'))\n"
        "assert not ray, ray\n",
        *("study", "noray", "--results-dir", str(tmp_path), "--n-trials", "1", "--epochs", "1"),
        *("--dataset", "synthetic", "--train-subset", "64", "--image-size", "8"),
        *("--device", "cpu", "--baselines", "none", "--quiet"),
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert (tmp_path / "noray" / "journal.log").is_file()


@pytest.mark.slow
def test_backend_ray_without_ray_says_what_to_install(tmp_path):
    done = _python(
        NO_RAY
        + "import runpy\nsys.argv = sys.argv[1:]\nrunpy.run_path(sys.argv[0], run_name='__main__')\n",
        *(
            str(ROOT / "search.py"),
            "study",
            "x",
            "--backend",
            "ray",
            "--results-dir",
            str(tmp_path),
        ),
    )
    assert done.returncode != 0
    assert done.stderr.strip().splitlines() == [
        "search.py study: error: --backend ray needs Ray: pip install -e '.[ray]'"
    ], done.stderr
    assert not (tmp_path / "x").exists()


def test_backend_ray_without_ray_in_process(monkeypatch, capsys):
    """The same refusal through search.main, Ray made unimportable in this process."""
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` raises ModuleNotFoundError
    for name in ("nas.ray_backend", "nas.ray_search"):
        monkeypatch.delitem(sys.modules, name, raising=False)
    assert search.main(["study", "x", "--backend", "ray", "--results-dir", "/nonexistent"]) == 2
    assert capsys.readouterr().err.strip().splitlines() == [
        "search.py study: error: --backend ray needs Ray: pip install -e '.[ray]'"
    ]
