"""A study's report: which sharing patterns give the most accuracy per parameter, and which to retrain.

Modules: :mod:`~nas.report.results` (a study's trials as typed rows, its front, the hypervolume
and its reference point), :mod:`~nas.report.verdict` (does sharing pay?),
:mod:`~nas.report.data` (:class:`ReportData`: everything the report shows),
:mod:`~nas.report.figures`, :mod:`~nas.report.page` (the Jinja2 page and the report's files),
:mod:`~nas.report.text` (the sentences and the terminal summary) and
:mod:`~nas.report.progress` (live lines while a study runs).

The names below are imported on first use: ``nas.report.results`` is read by the search itself
(nas.replicates, nas.retrain) and must not pull in plotly, matplotlib or the report's data.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .data import ReportData, report_data, trials_dataframe
    from .page import write_report
    from .text import terminal_summary

__all__ = ["ReportData", "report_data", "terminal_summary", "trials_dataframe", "write_report"]

_HOMES = {
    "ReportData": "nas.report.data",
    "report_data": "nas.report.data",
    "trials_dataframe": "nas.report.data",
    "write_report": "nas.report.page",
    "terminal_summary": "nas.report.text",
}


def __getattr__(name: str) -> object:
    if name in _HOMES:
        return getattr(importlib.import_module(_HOMES[name]), name)
    raise AttributeError(f"module 'nas.report' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
