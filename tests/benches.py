"""The bench/ scripts as modules, for tests of their pieces (they are scripts, not a package)."""

from __future__ import annotations

import importlib.util
import pathlib
import subprocess
import sys
from types import ModuleType

BENCH = pathlib.Path(__file__).resolve().parents[1] / "bench"


def load_bench(name: str) -> ModuleType:
    """bench/NAME.py imported by path (bench/ on sys.path first, for its ``_common``)."""
    if str(BENCH) not in sys.path:
        sys.path.insert(0, str(BENCH))
    spec = importlib.util.spec_from_file_location(name, BENCH / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def run_bench(name: str, *args: str, timeout: float = 600) -> subprocess.CompletedProcess:
    """``python bench/NAME.py ARGS`` in a fresh process run from bench/, output captured."""
    return subprocess.run(
        [sys.executable, str(BENCH / f"{name}.py"), *args],
        cwd=BENCH,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
