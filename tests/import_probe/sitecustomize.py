"""Put on PYTHONPATH by tests/test_gpu_check.py: in every Python process of a run (subprocesses
and spawned workers too), hide the top-level packages named in $IMPORT_PROBE_HIDE (as if not
installed), and at exit append "module<TAB>file" for each top-level module imported to
$IMPORT_PROBE_LOG, so the test can tell what the GPU check would need on a bare machine."""

import atexit
import importlib.machinery
import os
import sys

_HIDE = {name for name in os.environ.get("IMPORT_PROBE_HIDE", "").split(",") if name}
_LOG = os.environ.get("IMPORT_PROBE_LOG")


class _Hiding(importlib.machinery.PathFinder):
    @classmethod
    def find_spec(cls, name, path=None, target=None):
        if name.partition(".")[0] in _HIDE:
            return None
        return super().find_spec(name, path, target)


if _HIDE:
    sys.meta_path[:] = [
        _Hiding if f is importlib.machinery.PathFinder else f for f in sys.meta_path
    ]


def _write() -> None:
    lines = []
    for name, module in list(sys.modules.items()):
        if "." not in name:
            lines.append(f"{name}\t{getattr(module, '__file__', None) or ''}\n")
    with open(_LOG, "a") as f:
        f.write("".join(lines))


if _LOG:
    atexit.register(_write)
