"""The report's figures: plotly for the page, matplotlib for the static PNG.

Each builder takes :class:`nas.report.data.ReportData` (or a part of it) and returns a figure
(or PNG bytes);
nothing here reads the study or writes files.
"""

from __future__ import annotations

import io
import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, cast

import plotly
import plotly.graph_objects as go
from markupsafe import escape
from matplotlib.figure import Figure
from matplotlib.ticker import EngFormatter, LogLocator
from plotly.subplots import make_subplots

from ..noise import binomial_se
from .results import PlanRow, ReportRow, TrialRow
from .verdict import accuracy_text

if TYPE_CHECKING:
    from .data import ReportData

__all__ = [
    "curves_figure",
    "fallen_rows",
    "hypervolume_figure",
    "pareto_figure",
    "pareto_png",
    "plan_text",
    "sharing_figure",
    "similarity_figure",
    "projection_figure",
    "templates_text",
]

SHARED, PLAIN, MUTED, INK = "#2563eb", "#ea580c", "#9ca3af", "#111827"
STRIP_SYMBOLS = {
    "failed": ("x", "#dc2626"),
    "over-budget": ("x-thin-open", "#6b7280"),
    "running": ("hourglass", MUTED),
}
FONT = "system-ui, -apple-system, Segoe UI, Roboto, Helvetica Neue, Arial, sans-serif"


# --- text helpers ------------------------------------------------------------------------------


def templates_text(templates: list[list[int | None]] | None) -> str:
    """[[3], [3, 3], [None, 1]] -> '3 | 3,3 | -,1' (per stage, per group; '-' = unshared)."""
    if not templates or all(t is None for stage in templates for t in stage):
        return "none shared"
    return " | ".join(
        ",".join("-" if t is None else str(t) for t in stage) or "none" for stage in templates
    )


def _escape(text: str) -> str:
    """Text for plotly's hover labels, which read HTML."""
    return str(escape(text))


def plan_text(r: TrialRow) -> str:
    named = (
        r["shared"] and r["plan"] and r["plan_name"] != r["plan"]
    )  # SWRN-d-k-s: the text says more
    return f"{r['plan_name']} ({r['plan']})" if named else r["plan_name"] or r["plan"]


def accuracy_se(r: ReportRow) -> float:
    """Standard error of the accuracy a row is drawn at: a plan's, from its seeds and the
    validation set (nas.replicates.plan_rows), else binomial (val acc, or best seen before it
    was stopped) from its validation-set size; 0.0 when unknown."""
    if r["accuracy"] is None:
        return 0.0
    if r.get("n_runs") and r.get("val_se") is not None:
        return r["val_se"]
    return binomial_se(r["accuracy"], r["val_images"])


def seeds_text(r: PlanRow) -> str:
    """'mean of 3 seeds: 55.1%, 56.0%, 54.2%', or '' for a plan trained once."""
    seeds = r.get("seeds") or []
    if len(seeds) < 2:
        return ""
    return f"mean of {len(seeds)} seeds: " + ", ".join(f"{s['val_acc']:.1%}" for s in seeds)


def _hover(r: ReportRow) -> str:
    tags = (
        [r["status"]]
        + ["baseline"] * r["baseline"]
        + ["on the Pareto front"] * r["on_front"]
        + ["knee"] * r["knee"]
    )
    lines = [
        f"<b>trial {r['trial']}</b> · {' · '.join(tags)}",
        plan_text(r),
        f"depth {r['depth']} · width {r['width']} · templates {templates_text(r['templates'])}",
        f"{r['params'] or 0:,} params · {(r['macs'] or 0) / 1e6:,.2f} M mult-adds",
    ]
    if r["state"] == "complete":
        lines.append(
            f"val acc {accuracy_text(r['accuracy'], accuracy_se(r))} after {r['epochs']} epochs"
        )
    elif r["accuracy"] is not None:
        lines.append(
            f"best val acc before it was stopped: {r['accuracy']:.2%} (epoch {r['epochs']} of the budget)"
        )
    elif r["best_val_acc_seen"] is not None:  # still running
        lines.append(
            f"best val acc so far: {r['best_val_acc_seen']:.2%} after {r['epochs']} epochs"
        )
    if seeds := seeds_text(r):
        lines.append(seeds)
    if r.get("held_up") is False:
        lines.append("did not hold up on fresh seeds: off the front of the means")
    if r["duplicate_of"] is not None:
        lines.append(f"same architecture as trial {r['duplicate_of']}")
    if r["reason"]:
        lines.append(_escape(r["reason"][:120]))
    return "<br>".join(lines)


# --- figures -----------------------------------------------------------------------------------


def _error_y(rows: Sequence[ReportRow], color: str) -> dict[str, Any]:
    """Error bars of one standard error (accuracy_se); hidden when no row knows its validation-set size."""
    se = [accuracy_se(r) for r in rows]
    if not any(se):
        return {"visible": False}
    return {
        "type": "data",
        "array": se,
        "visible": True,
        "color": color,
        "thickness": 1,
        "width": 0,
    }


def _style(fig: go.Figure, height: int) -> go.Figure:
    fig.update_layout(
        template="plotly_white",
        height=height,
        font={"family": FONT, "size": 13},
        margin={"l": 64, "r": 24, "t": 48, "b": 56},
        hoverlabel={"font_family": FONT},
        legend={"orientation": "h", "y": -0.16, "yanchor": "top", "x": 0},
    )
    return fig


def _trial_traces(rows: Sequence[ReportRow]) -> list[go.Scatter]:
    """One trace per (baseline, shared, complete/stopped) group of placed trials, each with error bars.
    Baselines get a larger marker with a dark outline; every point is one trial (meta "trial")."""
    traces = []
    for baseline in (False, True):
        for shared, color, symbol, label in (
            (True, SHARED, "circle", "shared"),
            (False, PLAIN, "square", "plain WRN"),
        ):
            for state, suffix, opacity in (("complete", "", 0.85), ("pruned", "-open", 0.7)):
                pts = [
                    r
                    for r in rows
                    if r["baseline"] == baseline
                    and bool(r["shared"]) == shared
                    and r["state"] == state
                ]
                if not pts:
                    continue
                kind = (
                    f"baseline ({'uniform SWRN' if shared else 'plain WRN'})"
                    if baseline
                    else label
                )
                outline = {"width": 2, "color": INK} if baseline else {"width": 1.2}
                traces.append(
                    go.Scatter(
                        x=[r["params"] for r in pts],
                        y=[r["accuracy"] for r in pts],
                        mode="markers",
                        meta="trial",
                        name=f"{kind}, {'complete' if state == 'complete' else 'stopped early (best seen)'}",
                        hovertext=[_hover(r) for r in pts],
                        hoverinfo="text",
                        opacity=opacity,
                        error_y=_error_y(pts, color),
                        marker={
                            "symbol": symbol + suffix,
                            "color": color,
                            "size": 12 if baseline else 9,
                            "line": outline,
                        },
                    )
                )
    return traces


def _several_seeds(rows: Sequence[ReportRow]) -> list[ReportRow]:
    """Plans trained with several seeds: each one's runs are drawn behind its point."""
    return [r for r in rows if len(r.get("seeds") or []) > 1 and r["params"]]


def fallen_rows(rows: Sequence[ReportRow]) -> list[ReportRow]:
    """Plans that were on the front the search saw and fell off it on fresh seeds."""
    return [r for r in rows if r.get("held_up") is False]


def _seed_traces(rows: Sequence[ReportRow]) -> list[go.Scatter]:
    """The runs behind each plan trained with several seeds (small dots at its size), and a
    cross on each plan that did not hold up on fresh seeds."""
    several = _several_seeds(rows)
    traces = []
    if several:
        traces.append(
            go.Scatter(
                x=[r["params"] for r in several for _ in r["seeds"]],
                y=[s["val_acc"] for r in several for s in r["seeds"]],
                mode="markers",
                meta="seeds",
                name="one seed's run",
                hovertext=[
                    f"trial {s['trial']} · seed {s['seed']} · {s['val_acc']:.2%}"
                    for r in several
                    for s in r["seeds"]
                ],
                hoverinfo="text",
                marker={"size": 5, "color": MUTED, "opacity": 0.8},
            )
        )
    fallen = fallen_rows(rows)
    if fallen:
        traces.append(
            go.Scatter(
                x=[r["params"] for r in fallen],
                y=[r["accuracy"] for r in fallen],
                mode="markers",
                meta="fallen",
                name="did not hold up on fresh seeds",
                hovertext=[_hover(r) for r in fallen],
                hoverinfo="text",
                marker={"symbol": "x-thin-open", "size": 16, "color": "#b91c1c"},
            )
        )
    return traces


def pareto_figure(data: ReportData) -> go.Figure:
    rows = [r for r in data.rows if r["params"]]
    strip = [r for r in rows if r["accuracy"] is None]
    fig = make_subplots(
        rows=2 if strip else 1,
        cols=1,
        shared_xaxes=True,
        vertical_spacing=0.04,
        row_heights=[0.85, 0.15] if strip else [1.0],
    )
    for trace in _trial_traces([r for r in rows if r["accuracy"] is not None]):
        fig.add_trace(trace, row=1, col=1)
    for trace in _seed_traces(rows):
        fig.add_trace(trace, row=1, col=1)
    front, knee = data.front, data.knee  # drawn over the trials: visible among 1,000 of them
    fig.add_trace(
        go.Scatter(
            x=[r["params"] for r in front],
            y=[r["accuracy"] for r in front],
            mode="lines",
            line={"color": "#111827", "width": 1.5, "shape": "hv"},
            name="Pareto front",
            hoverinfo="skip",
            meta="front",
        ),
        row=1,
        col=1,
    )
    fig.add_trace(
        go.Scatter(
            x=[knee["params"]],
            y=[knee["accuracy"]],
            mode="markers",
            meta="knee",
            name=f"knee: trial {knee['trial']}",
            hovertext=[_hover(knee)],
            hoverinfo="text",
            marker={
                "symbol": "star",
                "size": 20,
                "color": "#f59e0b",
                "line": {"color": "#78350f", "width": 1},
            },
        ),
        row=1,
        col=1,
    )
    for status in sorted({r["status"] for r in strip}):
        pts = [r for r in strip if r["status"] == status]
        symbol, color = STRIP_SYMBOLS.get(status, ("x", MUTED))
        fig.add_trace(
            go.Scatter(
                x=[r["params"] for r in pts],
                y=[status] * len(pts),
                mode="markers",
                meta="trial",
                name=f"{status} (no accuracy)",
                hovertext=[_hover(r) for r in pts],
                hoverinfo="text",
                marker={"symbol": symbol, "color": color, "size": 9, "line": {"width": 1.5}},
            ),
            row=2,
            col=1,
        )
    fig.update_xaxes(type="log")
    fig.update_xaxes(title_text="parameters (log scale)", row=2 if strip else 1, col=1)
    fig.update_yaxes(title_text="validation accuracy", tickformat=".0%", row=1, col=1)
    return _style(fig, 600 if strip else 540).update_layout(margin={"b": 110})


def _plans_trace(
    rows: Sequence[ReportRow], name: str, color: str, meta: str, labels: bool, front: bool
) -> go.Scatter:
    """One kind's plans on the sharing plot: its front (a line, labels above) or the others."""
    style: dict[str, Any] = (
        {
            "mode": "lines+markers",
            "line": {"color": color, "width": 2, "shape": "hv"},
            "marker": {"color": color, "size": 10, "line": {"width": 1, "color": "#fff"}},
        }
        if front
        else {
            "mode": "markers",
            "opacity": 0.6,
            "marker": {"color": color, "size": 8, "symbol": "circle-open" if labels else "circle"},
        }
    )
    return go.Scatter(
        x=[r["params"] for r in rows],
        y=[r["accuracy"] for r in rows],
        name=name,
        meta=meta,
        **style | {"mode": style["mode"] + ("+text" if labels else "")},
        text=[r["plan_name"] for r in rows] if labels else None,
        textposition="top center" if front else "bottom center",
        error_y=_error_y(rows, color),
        hovertext=[_hover(r) for r in rows],
        hoverinfo="text",
    )


def sharing_figure(data: ReportData) -> go.Figure:
    """'Does sharing pay?': the baselines' Pareto front and the searched plans' front on one plot, each
    point with its standard error, the hypervolume of each front (one shared reference) in the legend."""
    v, fig = data.verdict, go.Figure()
    for key, of_kind, of_front, hv, label, color in (
        (
            "searched",
            v.searched,
            v.searched_front,
            v.searched_hypervolume,
            "searched plans",
            SHARED,
        ),
        ("baseline", v.baselines, v.baseline_front, v.baseline_hypervolume, "baselines", INK),
    ):
        labels = key == "baseline"  # a handful of baselines: name them on the plot
        # the verdict of the report's rows: report rows
        rows, front = cast(list[ReportRow], of_kind), cast(list[ReportRow], of_front)
        on_front = {r["trial"] for r in front}
        others = [r for r in rows if r["trial"] not in on_front]
        if others:
            fig.add_trace(
                _plans_trace(others, f"{label}, off their front", color, key, labels, False)
            )
        if front:
            name = f"{label}' front · hypervolume {hv:.3f}"
            fig.add_trace(_plans_trace(front, name, color, f"{key}-front", labels, True))
    fig.update_xaxes(type="log", title_text="parameters (log scale)")
    fig.update_yaxes(title_text="validation accuracy (± 1 SE)", tickformat=".1%")
    return _style(fig, 480)


def hypervolume_figure(data: ReportData) -> go.Figure:
    series = data.hypervolume
    total = series[-1].seconds
    unit, scale = ("s", 1) if total < 600 else ("min", 60) if total < 3 * 3600 else ("h", 3600)
    fig = make_subplots(
        rows=1,
        cols=2,
        horizontal_spacing=0.1,
        subplot_titles=("against trials", f"against compute time ({unit} of training)"),
    )
    hover = [f"trial {s.trial}<br>hypervolume {s.value:.4f}" for s in series]
    for col, x in ((1, [s.trial for s in series]), (2, [s.seconds / scale for s in series])):
        fig.add_trace(
            go.Scatter(
                x=x,
                y=[s.value for s in series],
                mode="lines",
                showlegend=False,
                line={"shape": "hv", "color": SHARED, "width": 2},
                hovertext=hover,
                hoverinfo="text",
            ),
            row=1,
            col=col,
        )
    fig.update_xaxes(title_text="trial", row=1, col=1)
    paid = " (parents first)" if data.parents else ""
    fig.update_xaxes(title_text=f"cumulative training time ({unit}){paid}", row=1, col=2)
    fig.update_yaxes(title_text="hypervolume", row=1, col=1)
    return _style(fig, 340)


def curves_figure(data: ReportData) -> go.Figure:
    fig = go.Figure()
    stopped = [r for r in data.rows if r["state"] == "pruned" and r["curve"]]
    xs, ys = [], []
    for r in stopped:  # one trace for all stopped curves, broken by None: light for 1,000 trials
        xs += list(range(1, len(r["curve"]) + 1)) + [None]
        ys += r["curve"] + [None]
    if stopped:
        fig.add_trace(
            go.Scatter(
                x=xs,
                y=ys,
                mode="lines",
                line={"color": "#d1d5db", "width": 1},
                name="stopped early",
                hoverinfo="skip",
            )
        )
        fig.add_trace(
            go.Scatter(
                x=[len(r["curve"]) for r in stopped],
                y=[r["curve"][-1] for r in stopped],
                mode="markers",
                name="where it was stopped",
                hoverinfo="text",
                hovertext=[
                    f"trial {r['trial']} stopped after epoch {len(r['curve'])}<br>"
                    f"{_escape(r['reason'])}"
                    for r in stopped
                ],
                marker={"symbol": "x", "color": MUTED, "size": 7},
            )
        )
    palette = plotly.colors.qualitative.D3
    for i, r in enumerate(data.front):
        fig.add_trace(
            go.Scatter(
                x=list(range(1, len(r["curve"]) + 1)),
                y=r["curve"],
                mode="lines+markers",
                name=f"trial {r['trial']}" + (" (knee)" if r["knee"] else ""),
                line={"color": palette[i % len(palette)], "width": 3 if r["knee"] else 2},
                hovertemplate=f"trial {r['trial']} · {_escape(r['plan_name'])}"
                "<br>epoch %{x}: %{y:.2%}<extra></extra>",
            )
        )
    fig.update_xaxes(
        title_text="epoch", dtick=1 if max(len(r["curve"]) for r in data.rows) <= 12 else None
    )
    fig.update_yaxes(title_text="validation accuracy", tickformat=".0%")
    return _style(fig, 420).update_layout(
        legend={"orientation": "v", "x": 1.02, "y": 1, "yanchor": "top"}
    )


def _unit_heatmap_axes(fig: go.Figure, colorscale: str, title: str) -> None:
    """Heatmaps of values in [0, 1] on one shared colour axis, first row at the top."""
    fig.update_yaxes(autorange="reversed")
    fig.update_layout(
        coloraxis={
            "cmin": 0,
            "cmax": 1,
            "colorscale": colorscale,
            "colorbar": {"title": {"text": title}},
        }
    )


def similarity_figure(banks: list[dict[str, Any]]) -> go.Figure:
    cols = min(len(banks), 3)
    fig = make_subplots(
        rows=math.ceil(len(banks) / cols),
        cols=cols,
        horizontal_spacing=0.12,
        vertical_spacing=0.2,
        subplot_titles=[
            f"{b['layers'][0].split('.')[0]} bank · {len(b['layers'])} layers · "
            f"{b['templates']} templates"
            for b in banks
        ],
    )
    for i, b in enumerate(banks):
        labels = [name.replace("stage", "s") for name in b["layers"]]
        fig.add_trace(
            go.Heatmap(
                z=b["similarity"],
                x=labels,
                y=labels,
                coloraxis="coloraxis",
                texttemplate="%{z:.2f}" if len(labels) <= 8 else None,
                hovertemplate="%{y} vs %{x}<br>|cos| %{z:.3f}<extra></extra>",
            ),
            row=i // cols + 1,
            col=i % cols + 1,
        )
    _unit_heatmap_axes(fig, "Blues", "|cos|")
    # Square-ish cells: fixed width for one or two banks; three per row fill the page's column.
    fig = _style(fig, 330 * math.ceil(len(banks) / cols) + 20)
    return fig.update_layout(width=340 * cols + 140 if cols < 3 else None)


def projection_figure(groups: list[dict[str, Any]]) -> go.Figure:
    """One heatmap per stage: rows the candidate groups (layers a-b of the stage's shareable
    convs), columns the bank sizes, colour the relative projection error of the group's fit."""
    stages = sorted({g["stage"] for g in groups})
    fig = make_subplots(
        rows=1,
        cols=len(stages),
        horizontal_spacing=0.1,
        subplot_titles=[f"stage {s}" for s in stages],
    )
    for col, stage in enumerate(stages, 1):
        mine = [g for g in groups if g["stage"] == stage]
        spans = sorted({(g["start"], g["stop"]) for g in mine})
        sizes = sorted({g["templates"] for g in mine})
        value = {(g["start"], g["stop"], g["templates"]): g["relative"] for g in mine}
        fig.add_trace(
            go.Heatmap(
                z=[[value.get((a, b, t)) for t in sizes] for a, b in spans],
                x=[f"T={t}" for t in sizes],
                y=[f"layers {a + 1}-{b}" for a, b in spans],
                coloraxis="coloraxis",
                texttemplate="%{z:.2f}" if len(spans) * len(sizes) <= 60 else None,
                hovertemplate="%{y}, %{x}<br>relative error %{z:.3f}<extra></extra>",
            ),
            row=1,
            col=col,
        )
    _unit_heatmap_axes(fig, "Viridis", "error")
    rows = max(
        (len({(g["start"], g["stop"]) for g in groups if g["stage"] == s}) for s in stages),
        default=1,
    )
    return _style(fig, 120 + 22 * rows)


def _png_error_bars(ax: Any, rows: Sequence[ReportRow], color: str) -> None:
    se = [accuracy_se(r) for r in rows]
    if any(se):
        ax.errorbar(
            [r["params"] for r in rows],
            [r["accuracy"] for r in rows],
            yerr=se,
            fmt="none",
            ecolor=color,
            elinewidth=0.8,
            alpha=0.5,
        )


def pareto_png(data: ReportData) -> bytes:
    fig = Figure(figsize=(7, 4.4), dpi=150, layout="constrained")
    ax = fig.add_subplot()
    for shared, color, marker, label in (
        (True, SHARED, "o", "shared"),
        (False, PLAIN, "s", "plain WRN"),
    ):
        for state, filled in (("complete", True), ("pruned", False)):
            pts = [
                r
                for r in data.rows
                if r["accuracy"] is not None
                and r["params"]
                and bool(r["shared"]) == shared
                and r["state"] == state
            ]
            if pts:
                ax.scatter(
                    [r["params"] for r in pts],
                    [r["accuracy"] for r in pts],
                    s=28,
                    marker=marker,
                    facecolors=color if filled else "none",
                    edgecolors=color,
                    alpha=0.85 if filled else 0.6,
                    label=f"{label}{'' if filled else ', stopped early'}",
                )
                _png_error_bars(ax, pts, color)
    baselines = [
        r for r in data.rows if r["baseline"] and r["accuracy"] is not None and r["params"]
    ]
    if baselines:
        ax.scatter(
            [r["params"] for r in baselines],
            [r["accuracy"] for r in baselines],
            s=90,
            marker="o",
            facecolors="none",
            edgecolors=INK,
            linewidths=1.3,
            zorder=3,
            label="baseline",
        )
    several = _several_seeds(data.rows)
    if several:
        ax.scatter(
            [r["params"] for r in several for _ in r["seeds"]],
            [s["val_acc"] for r in several for s in r["seeds"]],
            s=8,
            color=MUTED,
            zorder=2,
            label="one seed's run",
        )
    fallen = fallen_rows(data.rows)
    if fallen:
        ax.scatter(
            [r["params"] for r in fallen],
            [r["accuracy"] for r in fallen],
            s=110,
            marker="x",
            color="#b91c1c",
            zorder=5,
            label="did not hold up on fresh seeds",
        )
    front, knee = data.front, data.knee
    ax.step(
        [r["params"] for r in front],
        [r["accuracy"] for r in front],
        where="post",
        color="#111827",
        lw=1.2,
        zorder=4,
        label="Pareto front",
    )
    ax.scatter(
        [knee["params"]],
        [knee["accuracy"]],
        marker="*",
        s=220,
        color="#f59e0b",
        edgecolors="#78350f",
        zorder=5,
        label=f"knee: trial {knee['trial']}",
    )
    ax.set(
        xscale="log",
        xlabel="parameters (log scale)",
        ylabel="validation accuracy",
        title=f"Study {data.name}: accuracy against parameters",
    )
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
