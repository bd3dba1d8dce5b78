"""The report's files: ``write_report(folder)`` writes ``folder/report/``.

``index.html`` (one self-contained page from the Jinja2 template ``templates/report.html``,
:func:`render_page`), ``pareto.png``, ``trials.csv`` and ``pareto.csv``.

Design: docs/design.md#nasreportpage
"""

from __future__ import annotations

import json
import math
import os
import pathlib
from collections import Counter
from typing import Any

import jinja2
import plotly
import plotly.graph_objects as go
from markupsafe import Markup, escape

from softshare.checkpoint import atomic_write_bytes

from ..schema import REPORT_DIR, counts_text
from ..storage import shown_url
from .data import ReportData, report_data, table_columns, trial_table
from .figures import (
    curves_figure,
    hypervolume_figure,
    pareto_figure,
    pareto_png,
    plan_text,
    projection_figure,
    sharing_figure,
    similarity_figure,
    templates_text,
)
from .results import HV_REFERENCE_FACTOR, fidelity_text
from .text import fidelity_line, noise_line, retrained_text
from .verdict import accuracy_text, fewer_text

__all__ = ["KNEE_RULE", "render_page", "write_report"]

KNEE_RULE = (
    "The knee (best trade-off) is the front's point farthest from the straight line through the front's "
    "two extremes, with accuracy and log10(parameters) each scaled to [0, 1] over the front."
)
PLOT_CONFIG = {"displaylogo": False, "responsive": True}


def _multi_layer(banks: list[dict[str, Any]] | None) -> list[dict[str, Any]]:
    """The banks shared by several layers (the only ones with a similarity to show)."""
    return [b for b in banks or [] if len(b["layers"]) > 1]


_ENV = jinja2.Environment(
    loader=jinja2.PackageLoader("nas.report", "templates"),
    autoescape=True,
    undefined=jinja2.StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)
_ENV.filters.update(fmt=format, json=json.dumps, multi_layer=_multi_layer)
_ENV.globals.update(
    accuracy_text=accuracy_text,
    fewer_text=fewer_text,
    fidelity_text=fidelity_text,
    plan_text=plan_text,
    retrained_text=retrained_text,
    templates_text=templates_text,
    log10=math.log10,
    hv_factor=HV_REFERENCE_FACTOR,
)


def _div(fig: go.Figure, div_id: str) -> Markup:
    return Markup(
        fig.to_html(full_html=False, include_plotlyjs=False, div_id=div_id, config=PLOT_CONFIG)
    )


def _figures(data: ReportData) -> dict[str, Any]:
    """The page's plotly figures as HTML fragments, by place."""
    v = data.verdict
    return {
        "pareto": _div(pareto_figure(data), "pareto"),
        "sharing": _div(sharing_figure(data), "sharing") if v.baselines else None,
        "hypervolume": _div(hypervolume_figure(data), "hypervolume"),
        "curves": _div(curves_figure(data), "curves"),
        "similarity": {
            trial: _div(similarity_figure(multi), f"similarity-{trial}")
            for trial, banks in data.similarity.items()
            if (multi := _multi_layer(banks))
        },
        "projection": {  # the id escaped as before: a parent's name is the study's text
            name: _div(projection_figure(groups), f"projection-{escape(name)}")
            for name, groups in data.projection.items()
        },
    }


def _cards(data: ReportData) -> list[tuple[str, str, str]]:
    knee, counts, hv = data.knee, Counter(data.counts), data.hypervolume[-1].value
    return [
        ("trials", f"{len(data.rows)}", counts_text(counts)),
        (
            "Pareto front",
            f"{len(data.front)} models",
            f"{data.front[0]['params']:,} to {data.front[-1]['params']:,} params",
        ),
        (
            "knee (best trade-off)",
            f"trial {knee['trial']}",
            f"{knee['val_acc']:.2%} · {knee['params']:,} params · {plan_text(knee)}",
        ),
        ("hypervolume", f"{hv:.4f}", "accuracy x log10 params, see below"),
    ]


def _settings(data: ReportData) -> list[tuple[str, Any]]:
    """The settings table: (name, text or a dict shown as key-value pairs)."""
    res, env, cfg = data.resolved, data.environment, data.config
    items = [
        ("study", f"{data.name} · {data.folder}"),
        ("preset · sampler · seed", f"{res['preset']} · {res['sampler']} · {res['seed']}"),
        ("trials", f"{counts_text(Counter(data.counts))} (of {res['n_trials']} planned)"),
        ("parameter budget", f"{res['max_params']:,}" if res["max_params"] else "none"),
        (
            "workers · storage",
            f"{res['workers']} · "
            f"{shown_url(res['storage']) if res['storage'] else 'journal.log in the study folder'}",
        ),
        ("device(s)", ", ".join(env["devices"]) or cfg["device"]),
        ("dataset", res["data"]),
        ("search space", res["space"]),
        ("fidelity", fidelity_line(data).removeprefix("accuracies: ")),
        ("seed noise · replicates", noise_line(data) or "no plan trained with several seeds"),
        ("recipe per trial", res["recipe"]),
        ("early stopping", res["early_stopping"]),
        ("versions", env["versions"]),
    ]
    return items + [
        (key, env[key] or "-")
        for key in ("created", "first trial started", "last trial finished", "report written")
    ]


def _learned(data: ReportData) -> list[tuple[dict[str, Any], str]]:
    """The learned plans, each with its validation accuracy ('-' until it has one)."""
    by_plan = {r["plan"]: r for r in data.rows}
    out = []
    for p in data.learned:
        row = by_plan.get(p["plan"])
        acc = f"{row['accuracy']:.2%}" if row and row.get("accuracy") is not None else "-"
        out.append((p, acc))
    return out


def render_page(data: ReportData) -> str:
    """The report page, ``index.html``."""
    counts = Counter(data.counts)  # 0 for a status no trial has
    return _ENV.get_template("report.html").render(
        data=data,
        title=f"Study {data.name}: sharing patterns, accuracy and parameters",
        plotlyjs=Markup(plotly.offline.get_plotlyjs()),
        counts=counts,
        cards=_cards(data),
        figures=_figures(data),
        no_params=[r["trial"] for r in data.rows if not r["params"]],
        knee_rule=KNEE_RULE,
        learned=_learned(data),
        settings=_settings(data),
    )


def _csv(rows: list[dict[str, Any]]) -> str:
    import pandas as pd  # heavy: imported when a report is written

    def encode(v: Any) -> Any:  # one cell per field
        return json.dumps(v) if isinstance(v, (list, dict)) else v

    return pd.DataFrame([{k: encode(v) for k, v in r.items()} for r in rows]).to_csv(index=False)


def _frame_csv(table: list[dict[str, Any]], columns: list[str]) -> str:
    """A CSV of ``table`` with ``columns`` (lists and dicts as JSON cells)."""
    return _csv([{k: r.get(k) for k in columns} for r in table])


def write_report(study_folder: str | os.PathLike, data: ReportData | None = None) -> pathlib.Path:
    """Write ``study_folder/report/`` and return the path of its ``index.html``.

    ``data`` is :func:`report_data`'s result when the caller already has it. Raises
    FileNotFoundError / ValueError (one line) for a folder that is not a study or a study with no
    completed trial, before anything is written.
    """
    data = report_data(study_folder) if data is None else data
    table = trial_table(data)
    columns = table_columns(table)  # trials.csv and pareto.csv: the same columns
    front = [
        dict(r) | {"plan_val_acc": r["val_acc"], "plan_val_se": r["val_se"]} for r in data.front
    ]
    files: dict[str, str | bytes] = {
        "index.html": render_page(data),
        "pareto.png": pareto_png(data),
        "trials.csv": _frame_csv(table, columns),
        "pareto.csv": _frame_csv(front, columns),
    }
    out = pathlib.Path(study_folder) / REPORT_DIR
    out.mkdir(exist_ok=True)
    for name, payload in files.items():
        atomic_write_bytes(out / name, payload if isinstance(payload, bytes) else payload.encode())
    return out / "index.html"
