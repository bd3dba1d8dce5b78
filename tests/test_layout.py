"""The shape of ``nas``: a core plus one module per backend, no import cycle, one public API."""

import ast
import pathlib

import nas

ROOT = pathlib.Path(__file__).resolve().parents[1]
BACKENDS = {"optuna_backend", "ray_search", "ray_backend"}


def _nas_imports(path: pathlib.Path) -> set[str]:
    """The nas modules ``path`` imports at module level (not inside functions)."""
    out = set()
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.ImportFrom):
            if node.level == 1 and node.module:
                out.add(node.module.split(".")[0])
            elif node.level == 1:
                out |= {alias.name for alias in node.names}
            elif node.module and node.module.startswith("nas."):
                out.add(node.module.split(".")[1])
        elif isinstance(node, ast.Import):
            out |= {a.name.split(".")[1] for a in node.names if a.name.startswith("nas.")}
    return out


def _graph() -> dict[str, set[str]]:
    return {p.stem: _nas_imports(p) for p in (ROOT / "nas").glob("*.py") if p.stem != "__init__"}


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}

    def visit(node: str, path: list[str]) -> list[str] | None:
        state[node] = 1
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return path + [node, nxt]
            if nxt not in state and (found := visit(nxt, path + [node])):
                return found
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (found := visit(node, [])):
            return found
    return None


def test_nas_has_no_import_cycle():
    graph = _graph()
    assert {"study", "trial", "schema", "optuna_backend", "ray_search", "ray_backend"} <= set(
        graph
    )
    assert "objective" not in graph
    assert _cycle(graph) is None, " -> ".join(_cycle(graph))


def test_the_cycle_finder_would_find_one():
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) is not None
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": set()}) is None


def test_the_core_imports_no_backend():
    graph = _graph()
    for module, imports in graph.items():
        if module not in BACKENDS and module != "report":
            assert not imports & BACKENDS, f"nas/{module}.py imports backend {imports & BACKENDS}"
    assert not graph["optuna_backend"] & {"ray_search", "ray_backend"}


def test_public_api_is_reexported():
    from nas.config import StudyConfig
    from nas.optuna_backend import run_study

    assert nas.StudyConfig is StudyConfig and nas.run_study is run_study
    assert set(nas.__all__) == {
        "StudyConfig",
        "SearchSpace",
        "StopRule",
        "run_study",
        "write_report",
        "retrain",
        "trials_dataframe",
    }
    for name in nas.__all__:
        assert getattr(nas, name) is not None
