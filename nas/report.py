"""A study's report: which sharing patterns give the most accuracy per parameter, and which to retrain.

``write_report(folder)`` writes ``folder/report/``: ``index.html`` (one self-contained page with
plotly.js inline: it opens offline, from a file), ``pareto.png`` (static, for papers and slides),
``trials.csv`` and ``pareto.csv``. Everything is read from the study's Optuna storage and folder,
so the report works on a study that is still running and on either backend's studies. Nothing
is written unless the whole report could be built, and every file is replaced atomically.
"""

from __future__ import annotations

import datetime
import html
import io
import json
import math
import os
import pathlib
import platform
import shlex
import string
import tempfile
from collections import Counter

import optuna
import pandas as pd
import plotly
import plotly.graph_objects as go
import torch
from matplotlib.figure import Figure
from matplotlib.ticker import EngFormatter, LogLocator
from plotly.subplots import make_subplots

from softshare.analysis import layer_similarity

from .results import HV_REFERENCE_ACC, format_table, front_rows, hypervolume, knee_row, trial_rows
from .study import open_existing

__all__ = ["write_report", "report_data", "terminal_summary", "retrain_command", "REPORT_DIR", "KNEE_RULE"]

REPORT_DIR = "report"
TEMPLATE = pathlib.Path(__file__).with_name("report_template.html")
HV_REFERENCE_FACTOR = 10  # reference parameters: 10x the largest model of the study
KNEE_RULE = ("The knee (best trade-off) is the front's point farthest from the straight line through the front's "
             "two extremes, with accuracy and log10(parameters) each scaled to [0, 1] over the front.")
SHARED, PLAIN, MUTED = "#2563eb", "#ea580c", "#9ca3af"
STRIP_SYMBOLS = {"failed": ("x", "#dc2626"), "over-budget": ("x-thin-open", "#6b7280"), "running": ("hourglass", MUTED)}
FONT = "system-ui, -apple-system, Segoe UI, Roboto, Helvetica Neue, Arial, sans-serif"
PLOT_CONFIG = {"displaylogo": False, "responsive": True}


def retrain_command(study_folder: str | os.PathLike, trial: int) -> str:
    return f"python search.py retrain {shlex.quote(str(study_folder))} --pick trial:{trial}"


# --- data --------------------------------------------------------------------------------------


def report_data(study_folder: str | os.PathLike) -> dict:
    """Everything the report shows, read from the study; one-line errors for a non-study or an empty one.

    Keys: name, folder, config (study.json), resolved (with preset defaults), rows (one per trial,
    from nas.results.trial_rows plus ``accuracy`` (val acc, or best seen for pruned trials),
    ``on_front``, ``knee``, ``retrain``), front, knee, reference ({accuracy, params}), hypervolume
    (one entry per trial: trial, seconds (cumulative training), value), similarity ({trial:
    [{bank, layers, templates, similarity}] or None when no coefficients.json}), counts,
    running, environment.
    """
    folder = pathlib.Path(study_folder)
    cfg, study = open_existing(folder)
    rows = trial_rows(study)
    front = front_rows(rows)
    counts = Counter(r["state"] for r in rows)
    if not front:
        raise ValueError(f"study {cfg.name!r} in {folder} has no completed trial yet "
                         f"({_counts_text(counts)}); the report needs at least one.")
    knee = knee_row(front)  # = knee_row(rows): the front's front is itself, and O(front^2), not O(trials^2)
    on_front = {r["trial"] for r in front}
    for r in rows:
        r["accuracy"] = r["val_acc"] if r["state"] == "complete" else (
            r["best_val_acc_seen"] if r["state"] == "pruned" else None)
        r["on_front"], r["knee"] = r["trial"] in on_front, r["trial"] == knee["trial"]
        r["retrain"] = retrain_command(folder, r["trial"]) if r["on_front"] else ""
    max_params = max(r["params"] for r in rows if r["params"])
    reference = {"accuracy": HV_REFERENCE_ACC, "params": HV_REFERENCE_FACTOR * max_params}
    return {"name": cfg.name, "folder": str(folder), "config": cfg.to_dict(), "resolved": cfg.resolved(),
            "rows": rows, "front": front, "knee": knee, "reference": reference,
            "hypervolume": _hypervolume_series(rows, reference["params"]),
            "similarity": {r["trial"]: _similarity(folder, r["trial"]) for r in front},
            "counts": dict(counts), "running": counts["running"] + counts["waiting"] > 0
            or counts["complete"] + counts["pruned"] < cfg.n_trials,
            "environment": _environment(cfg, rows)}


def _counts_text(counts: Counter) -> str:
    return ", ".join(f"{n} {state}" for state, n in sorted(counts.items())) or "no trials"


def _hypervolume_series(rows: list[dict], reference_params: float) -> list[dict]:
    """Hypervolume after each trial (trial order) and the training seconds spent up to it."""
    series, front, seconds = [], [], 0.0
    for r in rows:
        if r["status"] != "duplicate":  # a duplicate re-uses a result: no compute spent
            seconds += r["train_seconds"] or 0.0
        if r["state"] == "complete" and r["status"] != "duplicate":  # others cannot change the front
            front = front_rows(front + [r])  # the front of all trials so far
        series.append({"trial": r["trial"], "seconds": seconds, "value": hypervolume(front, reference_params)})
    return series


def _similarity(folder: pathlib.Path, trial: int) -> list[dict] | None:
    """|cos| between the layers of each bank, recomputed from the recorded coefficient vectors."""
    path = folder / "trials" / f"{trial:04d}" / "coefficients.json"
    try:
        return [{"bank": b["bank"], "layers": b["layers"], "templates": b["templates"],
                 "similarity": layer_similarity(torch.tensor(b["coefficients"], dtype=torch.float64)).tolist()}
                for b in json.loads(path.read_text())]
    except (OSError, ValueError, KeyError, TypeError):  # absent (not trained yet, plain net) or unreadable
        return None


def _environment(cfg, rows: list[dict]) -> dict:
    started = [r["started"] for r in rows if r["started"]]
    finished = [r["finished"] for r in rows if r["finished"]]
    return {"devices": sorted({r["device"] for r in rows if r["device"]}),
            "versions": cfg.versions | {"python (report)": platform.python_version(),
                                        "optuna (report)": optuna.__version__, "plotly (report)": plotly.__version__,
                                        "pandas (report)": pd.__version__},
            "created": cfg.created, "first trial started": min(started, default=""),
            "last trial finished": max(finished, default=""),
            "report written": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")}


# --- text helpers ------------------------------------------------------------------------------


def _templates_text(templates) -> str:
    """[[3], [3, 3], [None, 1]] -> '3 | 3,3 | -,1' (per stage, per group; '-' = unshared)."""
    if not templates or all(t is None for stage in templates for t in stage):
        return "none shared"
    return " | ".join(",".join("-" if t is None else str(t) for t in stage) or "none" for stage in templates)


def _plan_text(r: dict) -> str:
    named = r["shared"] and r["plan"] and r["plan_name"] != r["plan"]  # SWRN-d-k-s: the text says more
    return f"{r['plan_name']} ({r['plan']})" if named else r["plan_name"] or r["plan"]


def _hover(r: dict) -> str:
    tags = [r["status"]] + ["on the Pareto front"] * r["on_front"] + ["knee"] * r["knee"]
    lines = [f"<b>trial {r['trial']}</b> · {' · '.join(tags)}", _plan_text(r),
             f"depth {r['depth']} · width {r['width']} · templates {_templates_text(r['templates'])}",
             f"{r['params'] or 0:,} params · {(r['macs'] or 0) / 1e6:,.2f} M mult-adds"]
    if r["state"] == "complete":
        lines.append(f"val acc {r['accuracy']:.2%} after {r['epochs']} epochs")
    elif r["accuracy"] is not None:
        lines.append(f"best val acc before it was stopped: {r['accuracy']:.2%} (epoch {r['epochs']} of the budget)")
    elif r["best_val_acc_seen"] is not None:  # still running
        lines.append(f"best val acc so far: {r['best_val_acc_seen']:.2%} after {r['epochs']} epochs")
    if r["duplicate_of"] is not None:
        lines.append(f"same architecture as trial {r['duplicate_of']}")
    if r["reason"]:
        lines.append(html.escape(r["reason"][:120]))
    return "<br>".join(lines)


# --- figures -----------------------------------------------------------------------------------


def _style(fig: go.Figure, height: int) -> go.Figure:
    fig.update_layout(template="plotly_white", height=height, font={"family": FONT, "size": 13},
                      margin={"l": 64, "r": 24, "t": 48, "b": 56}, hoverlabel={"font_family": FONT},
                      legend={"orientation": "h", "y": -0.16, "yanchor": "top", "x": 0})
    return fig


def _pareto_figure(data: dict) -> go.Figure:
    rows = [r for r in data["rows"] if r["params"]]
    strip = [r for r in rows if r["accuracy"] is None]
    fig = make_subplots(rows=2 if strip else 1, cols=1, shared_xaxes=True, vertical_spacing=0.04,
                        row_heights=[0.85, 0.15] if strip else [1.0])
    for shared, color, symbol, label in ((True, SHARED, "circle", "shared"), (False, PLAIN, "square", "plain WRN")):
        for state, suffix, opacity in (("complete", "", 0.85), ("pruned", "-open", 0.7)):
            pts = [r for r in rows if r["accuracy"] is not None and bool(r["shared"]) == shared and r["state"] == state]
            if pts:
                fig.add_trace(go.Scatter(
                    x=[r["params"] for r in pts], y=[r["accuracy"] for r in pts], mode="markers", meta="trial",
                    name=f"{label}, {'complete' if state == 'complete' else 'stopped early (best seen)'}",
                    hovertext=[_hover(r) for r in pts], hoverinfo="text", opacity=opacity,
                    marker={"symbol": symbol + suffix, "color": color, "size": 9, "line": {"width": 1.2}}),
                    row=1, col=1)
    front, knee = data["front"], data["knee"]  # drawn over the trials: visible among 1,000 of them
    fig.add_trace(go.Scatter(x=[r["params"] for r in front], y=[r["accuracy"] for r in front], mode="lines",
                             line={"color": "#111827", "width": 1.5, "shape": "hv"}, name="Pareto front",
                             hoverinfo="skip", meta="front"), row=1, col=1)
    fig.add_trace(go.Scatter(x=[knee["params"]], y=[knee["accuracy"]], mode="markers", meta="knee",
                             name=f"knee: trial {knee['trial']}", hovertext=[_hover(knee)], hoverinfo="text",
                             marker={"symbol": "star", "size": 20, "color": "#f59e0b",
                                     "line": {"color": "#78350f", "width": 1}}), row=1, col=1)
    for status in sorted({r["status"] for r in strip}):
        pts = [r for r in strip if r["status"] == status]
        symbol, color = STRIP_SYMBOLS.get(status, ("x", MUTED))
        fig.add_trace(go.Scatter(x=[r["params"] for r in pts], y=[status] * len(pts), mode="markers", meta="trial",
                                 name=f"{status} (no accuracy)", hovertext=[_hover(r) for r in pts], hoverinfo="text",
                                 marker={"symbol": symbol, "color": color, "size": 9, "line": {"width": 1.5}}),
                      row=2, col=1)
    fig.update_xaxes(type="log")
    fig.update_xaxes(title_text="parameters (log scale)", row=2 if strip else 1, col=1)
    fig.update_yaxes(title_text="validation accuracy", tickformat=".0%", row=1, col=1)
    return _style(fig, 600 if strip else 540).update_layout(margin={"b": 110})


def _hypervolume_figure(data: dict) -> go.Figure:
    series = data["hypervolume"]
    total = series[-1]["seconds"]
    unit, scale = ("s", 1) if total < 600 else ("min", 60) if total < 3 * 3600 else ("h", 3600)
    fig = make_subplots(rows=1, cols=2, horizontal_spacing=0.1, subplot_titles=(
        "against trials", f"against compute time ({unit} of training)"))
    hover = [f"trial {s['trial']}<br>hypervolume {s['value']:.4f}" for s in series]
    for col, x in ((1, [s["trial"] for s in series]), (2, [s["seconds"] / scale for s in series])):
        fig.add_trace(go.Scatter(x=x, y=[s["value"] for s in series], mode="lines", showlegend=False,
                                 line={"shape": "hv", "color": SHARED, "width": 2}, hovertext=hover,
                                 hoverinfo="text"), row=1, col=col)
    fig.update_xaxes(title_text="trial", row=1, col=1)
    fig.update_xaxes(title_text=f"cumulative training time ({unit})", row=1, col=2)
    fig.update_yaxes(title_text="hypervolume", row=1, col=1)
    return _style(fig, 340)


def _curves_figure(data: dict) -> go.Figure:
    fig = go.Figure()
    stopped = [r for r in data["rows"] if r["state"] == "pruned" and r["curve"]]
    xs, ys = [], []
    for r in stopped:  # one trace for all stopped curves, broken by None: light for 1,000 trials
        xs += list(range(1, len(r["curve"]) + 1)) + [None]
        ys += r["curve"] + [None]
    if stopped:
        fig.add_trace(go.Scatter(x=xs, y=ys, mode="lines", line={"color": "#d1d5db", "width": 1},
                                 name="stopped early", hoverinfo="skip"))
        fig.add_trace(go.Scatter(x=[len(r["curve"]) for r in stopped], y=[r["curve"][-1] for r in stopped],
                                 mode="markers", name="where it was stopped", hoverinfo="text",
                                 hovertext=[f"trial {r['trial']} stopped after epoch {len(r['curve'])}<br>"
                                            f"{html.escape(r['reason'])}" for r in stopped],
                                 marker={"symbol": "x", "color": MUTED, "size": 7}))
    palette = plotly.colors.qualitative.D3
    for i, r in enumerate(data["front"]):
        fig.add_trace(go.Scatter(x=list(range(1, len(r["curve"]) + 1)), y=r["curve"], mode="lines+markers",
                                 name=f"trial {r['trial']}" + (" (knee)" if r["knee"] else ""),
                                 line={"color": palette[i % len(palette)], "width": 3 if r["knee"] else 2},
                                 hovertemplate=f"trial {r['trial']} · {html.escape(r['plan_name'])}"
                                               "<br>epoch %{x}: %{y:.2%}<extra></extra>"))
    fig.update_xaxes(title_text="epoch", dtick=1 if max(len(r["curve"]) for r in data["rows"]) <= 12 else None)
    fig.update_yaxes(title_text="validation accuracy", tickformat=".0%")
    return _style(fig, 420).update_layout(legend={"orientation": "v", "x": 1.02, "y": 1, "yanchor": "top"})


def _similarity_figure(banks: list[dict]) -> go.Figure:
    cols = min(len(banks), 3)
    fig = make_subplots(rows=math.ceil(len(banks) / cols), cols=cols, horizontal_spacing=0.12, vertical_spacing=0.2,
                        subplot_titles=[f"{b['layers'][0].split('.')[0]} bank · {len(b['layers'])} layers · "
                                        f"{b['templates']} templates" for b in banks])
    for i, b in enumerate(banks):
        labels = [name.replace("stage", "s") for name in b["layers"]]
        fig.add_trace(go.Heatmap(z=b["similarity"], x=labels, y=labels, coloraxis="coloraxis",
                                 texttemplate="%{z:.2f}" if len(labels) <= 8 else None,
                                 hovertemplate="%{y} vs %{x}<br>|cos| %{z:.3f}<extra></extra>"),
                      row=i // cols + 1, col=i % cols + 1)
    fig.update_yaxes(autorange="reversed")
    fig.update_layout(coloraxis={"cmin": 0, "cmax": 1, "colorscale": "Blues", "colorbar": {"title": {"text": "|cos|"}}})
    # Square-ish cells: fixed width for one or two banks; three per row fill the page's column.
    fig = _style(fig, 330 * math.ceil(len(banks) / cols) + 20)
    return fig.update_layout(width=340 * cols + 140 if cols < 3 else None)


# --- page parts --------------------------------------------------------------------------------


def _div(fig: go.Figure, div_id: str) -> str:
    return fig.to_html(full_html=False, include_plotlyjs=False, div_id=div_id, config=PLOT_CONFIG)


def _similarity_html(data: dict) -> str:
    parts = []
    for r in data["front"]:
        banks = data["similarity"][r["trial"]]
        multi = [b for b in banks or [] if len(b["layers"]) > 1]
        head = f"<h3>Trial {r['trial']} · {html.escape(_plan_text(r))}</h3>"
        if banks is None:
            parts.append(head + '<p class="note">No coefficients recorded for this trial.</p>')
        elif not banks:
            parts.append(head + '<p class="note">A plain Wide ResNet: no shared banks.</p>')
        elif not multi:
            parts.append(head + f'<p class="note">All {len(banks)} banks serve a single layer: nothing to compare.</p>')
        else:
            single = len(banks) - len(multi)
            note = f'<p class="note">{single} single-layer bank(s) not shown.</p>' if single else ""
            parts.append(head + note + _div(_similarity_figure(multi), f"similarity-{r['trial']}"))
    return "\n".join(parts)


def _table_html(data: dict) -> str:
    head = ("<tr><th>trial</th><th>plan</th><th>depth</th><th>width</th><th>templates per group</th>"
            "<th>params</th><th>mult-adds</th><th>epochs</th><th>val acc</th></tr>")
    body = []
    for r in data["front"]:
        kind = '<span class="shared">shared</span>' if r["shared"] else '<span class="plain">plain WRN</span>'
        badge = '<span class="badge">knee</span>' if r["knee"] else ""
        body.append(
            f'<tr class="main{" knee" if r["knee"] else ""}"><td class="num">{r["trial"]}{badge}</td>'
            f'<td>{html.escape(_plan_text(r))}<br><small>{kind}</small></td><td class="num">{r["depth"]}</td>'
            f'<td class="num">{r["width"]}</td><td><code>{_templates_text(r["templates"])}</code></td>'
            f'<td class="num">{r["params"]:,}</td><td class="num">{(r["macs"] or 0) / 1e6:,.2f} M</td>'
            f'<td class="num">{r["epochs"]}</td><td class="num">{r["val_acc"]:.2%}</td></tr>'
            f'<tr class="cmd{" knee" if r["knee"] else ""}"><td></td><td colspan="8">'
            f'<code class="cmd">{html.escape(r["retrain"])}</code></td></tr>')
    return f"<table>{head}{''.join(body)}</table>"


def _settings_html(data: dict) -> str:
    res, env, cfg = data["resolved"], data["environment"], data["config"]
    items = [("study", f"{data['name']} · {data['folder']}"), ("preset · sampler · seed",
             f"{res['preset']} · {res['sampler']} · {res['seed']}"),
             ("trials", f"{_counts_text(Counter(data['counts']))} (of {res['n_trials']} planned)"),
             ("parameter budget", f"{res['max_params']:,}" if res["max_params"] else "none"),
             ("workers · storage", f"{res['workers']} · {res['storage'] or 'journal.log in the study folder'}"),
             ("device(s)", ", ".join(env["devices"]) or cfg["device"]), ("dataset", res["data"]),
             ("search space", res["space"]), ("recipe per trial", res["recipe"]),
             ("early stopping", res["early_stopping"]), ("versions", env["versions"])]
    items += [(key, env[key] or "-") for key in ("created", "first trial started", "last trial finished",
                                                 "report written")]
    cells = [f"<tr><td>{html.escape(k)}</td><td>{_value_html(v)}</td></tr>" for k, v in items]
    return f'<table class="settings">{"".join(cells)}</table>'


def _value_html(value) -> str:
    """A dict as 'key value' pairs that wrap like text; anything else as text."""
    if not isinstance(value, dict):
        return html.escape(str(value))
    return " ".join(f'<span class="kv"><b>{html.escape(str(k))}</b> {html.escape(json.dumps(v))}</span>'
                    for k, v in sorted(value.items()))


def _cards_html(data: dict) -> str:
    knee, counts, hv = data["knee"], Counter(data["counts"]), data["hypervolume"][-1]["value"]
    cards = [("trials", f"{len(data['rows'])}", _counts_text(counts)),
             ("Pareto front", f"{len(data['front'])} models",
              f"{data['front'][0]['params']:,} to {data['front'][-1]['params']:,} params"),
             ("knee (best trade-off)", f"trial {knee['trial']}",
              f"{knee['val_acc']:.2%} · {knee['params']:,} params · {_plan_text(knee)}"),
             ("hypervolume", f"{hv:.4f}", "accuracy x log10 params, see below")]
    return "".join(f'<div class="card"><div class="label">{html.escape(a)}</div><div class="value">{html.escape(b)}'
                   f'</div><div class="detail">{html.escape(c)}</div></div>' for a, b, c in cards)


def _page(data: dict) -> str:
    ref = data["reference"]
    no_params = [r["trial"] for r in data["rows"] if not r["params"]]
    unplaced = (f'<p class="note">Not yet described (no parameter count), so not plotted: trial(s) '
                f'{", ".join(map(str, no_params))}.</p>') if no_params else ""
    counts = Counter(data["counts"])
    banner = (f'<p class="banner">This study has not finished ({counts["complete"] + counts["pruned"]} of '
              f'{data["resolved"]["n_trials"]} trials done, {counts["running"]} running): this page is a snapshot, '
              f'refreshed as trials finish.</p>') if data["running"] else ""
    return string.Template(TEMPLATE.read_text()).substitute(
        title=html.escape(f"Study {data['name']}: sharing patterns, accuracy and parameters"),
        plotlyjs=plotly.offline.get_plotlyjs(), banner=banner, cards=_cards_html(data),
        pareto=_div(_pareto_figure(data), "pareto"), unplaced=unplaced, knee_rule=html.escape(KNEE_RULE),
        table=_table_html(data), hypervolume=_div(_hypervolume_figure(data), "hypervolume"),
        reference=(f"(accuracy {ref['accuracy']:g}, parameters {ref['params']:,} = {HV_REFERENCE_FACTOR}x the largest "
                   f"model of the study; log<sub>10</sub> {math.log10(ref['params']):.3f})"),
        curves=_div(_curves_figure(data), "curves"), similarity=_similarity_html(data),
        settings=_settings_html(data),
        footer=html.escape(f"written {data['environment']['report written']} from {data['folder']}"))


def _pareto_png(data: dict) -> bytes:
    fig = Figure(figsize=(7, 4.4), dpi=150, layout="constrained")
    ax = fig.add_subplot()
    for shared, color, marker, label in ((True, SHARED, "o", "shared"), (False, PLAIN, "s", "plain WRN")):
        for state, filled in (("complete", True), ("pruned", False)):
            pts = [r for r in data["rows"] if r["accuracy"] is not None and r["params"]
                   and bool(r["shared"]) == shared and r["state"] == state]
            if pts:
                ax.scatter([r["params"] for r in pts], [r["accuracy"] for r in pts], s=28, marker=marker,
                           facecolors=color if filled else "none", edgecolors=color, alpha=0.85 if filled else 0.6,
                           label=f"{label}{'' if filled else ', stopped early'}")
    front, knee = data["front"], data["knee"]
    ax.step([r["params"] for r in front], [r["accuracy"] for r in front], where="post", color="#111827", lw=1.2,
            zorder=4, label="Pareto front")
    ax.scatter([knee["params"]], [knee["accuracy"]], marker="*", s=220, color="#f59e0b", edgecolors="#78350f",
               zorder=5, label=f"knee: trial {knee['trial']}")
    ax.set(xscale="log", xlabel="parameters (log scale)", ylabel="validation accuracy",
           title=f"Study {data['name']}: accuracy against parameters")
    ax.yaxis.set_major_formatter(lambda v, _: f"{v:.0%}")
    ax.xaxis.set_major_formatter(EngFormatter(sep=""))
    if ax.get_xlim()[1] / ax.get_xlim()[0] < 100:  # under two decades: label 2x and 5x too
        ax.xaxis.set_minor_locator(LogLocator(subs=(2, 5)))
        ax.xaxis.set_minor_formatter(EngFormatter(sep=""))
    ax.grid(True, which="major", color="#e5e7eb", lw=0.6)
    ax.legend(fontsize=8, frameon=False)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    return buffer.getvalue()


def _csv(rows: list[dict]) -> str:
    encode = lambda v: json.dumps(v) if isinstance(v, (list, dict)) else v  # noqa: E731 - one cell per field
    return pd.DataFrame([{k: encode(v) for k, v in r.items()} for r in rows]).to_csv(index=False)


def _atomic_write_bytes(path: pathlib.Path, payload: bytes) -> None:
    # Temp file beside the target, then rename: a reader (or a second worker refreshing the
    # report) sees the old file or the new one, never half of one.
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(payload)
        # mkstemp makes 0600; a report is for sharing: take the folder's mode (made under the umask)
        os.chmod(tmp, path.parent.stat().st_mode & 0o666)
        os.replace(tmp, path)
    except BaseException:
        pathlib.Path(tmp).unlink(missing_ok=True)
        raise


def write_report(study_folder: str | os.PathLike, data: dict | None = None) -> pathlib.Path:
    """Write ``study_folder/report/`` and return the path of its ``index.html``.

    ``data`` is :func:`report_data`'s result when the caller already has it. Raises
    FileNotFoundError / ValueError (one line) for a folder that is not a study or a study with no
    completed trial, before anything is written.
    """
    data = report_data(study_folder) if data is None else data
    files = {"index.html": _page(data), "pareto.png": _pareto_png(data), "trials.csv": _csv(data["rows"]),
             "pareto.csv": _csv(data["front"])}
    out = pathlib.Path(study_folder) / REPORT_DIR
    out.mkdir(exist_ok=True)
    for name, payload in files.items():
        _atomic_write_bytes(out / name, payload if isinstance(payload, bytes) else payload.encode())
    return out / "index.html"


def terminal_summary(data: dict, page: str | os.PathLike | None = None) -> str:
    """The front as a table, the knee's retrain command and the page's path, for the terminal."""
    knee = data["knee"]
    lines = ["Pareto front (validation accuracy vs parameters):", format_table(data["front"], knee),
             f"knee (best trade-off): trial {knee['trial']}; retrain it with: {knee['retrain']}"]
    if page is not None:
        lines.append(f"report: {page}")
    return "\n".join(lines)
