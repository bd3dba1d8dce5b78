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
import json
import math
import os
import pathlib
import platform
import shlex
import string
from collections import Counter
from dataclasses import asdict

import optuna
import pandas as pd
import plotly
import plotly.graph_objects as go

from softshare.checkpoint import atomic_write_bytes
from softshare.learned import group_errors

from .fidelity import load_parent, parent_runs
from .figures import (
    curves_figure,
    fallen_rows,
    hypervolume_figure,
    pareto_figure,
    pareto_png,
    plan_text,
    projection_figure,
    sharing_figure,
    similarity_figure,
    templates_text,
)
from .replicates import plan_rows, runs_of, yardstick
from .results import (
    HV_REFERENCE_ACC,
    fidelity_text,
    format_table,
    front_rows,
    hypervolume,
    knee_row,
    trial_rows,
)
from .schema import (
    COEFFICIENTS_FILE,
    CONFIRM_ATTR,
    LEARNED_PLANS_ATTR,
    REPORT_DIR,
    RETRAIN_DIR,
    counts_text,
    replicate_counts,
    trial_dir,
)
from .storage import shown_url
from .study import open_existing, study_counts
from .verdict import HV_REFERENCE_FACTOR, accuracy_text, fewer_text, ties, verdict

__all__ = [
    "write_report",
    "report_data",
    "terminal_summary",
    "retrain_command",
    "retrained_text",
    "fidelity_line",
    "REPORT_DIR",
    "KNEE_RULE",
]

TEMPLATE = pathlib.Path(__file__).with_name("report_template.html")
KNEE_RULE = (
    "The knee (best trade-off) is the front's point farthest from the straight line through the front's "
    "two extremes, with accuracy and log10(parameters) each scaled to [0, 1] over the front."
)
PLOT_CONFIG = {"displaylogo": False, "responsive": True}


def retrain_command(study_folder: str | os.PathLike, trial: int) -> str:
    return f"python search.py retrain {shlex.quote(str(study_folder))} --pick trial:{trial}"


# --- data --------------------------------------------------------------------------------------


def report_data(study_folder: str | os.PathLike) -> dict:
    """Everything the report shows, read from the study; one-line errors for a non-study or an empty one.

    Keys: name, folder, config (study.json), resolved (with preset defaults), rows (one per trial,
    from nas.results.trial_rows plus ``accuracy`` (val acc, or best seen for pruned trials),
    ``on_front``, ``knee``, ``retrain`` (the command), and ``retrain_test_acc``, ``retrain_test_std``,
    ``retrain_seeds``, ``retrain_epochs`` (from ``retrain/NNNN/summary.json``; None and 0 when
    the trial was not retrained), ``tied_with_next`` (a front member within noise of the next one,
    nas.verdict.ties; False off the front)), front, knee, reference ({accuracy, params}), hypervolume
    (one entry per trial: trial, seconds (cumulative training, the parents' first), value),
    parents (nas.fidelity.parent_runs: an inherit study's parents), similarity ({trial:
    [{bank, layers, templates, similarity}] or None when no coefficients.json}), counts,
    running, environment, verdict (nas.verdict.verdict: does sharing pay?), learned (the study
    attribute learned_plans: the plans read from parents, nas.learned), projection ({parent:
    rows of softshare.learned.group_errors} for each trained parent).
    """
    folder = pathlib.Path(study_folder)
    cfg, study = open_existing(folder)
    trials = study.get_trials(deepcopy=False)
    runs = trial_rows(study)  # every run, replicates included (trials.csv)
    rows = plan_rows(runs)  # one per architecture: its runs' mean and SE from the seeds
    front = front_rows(rows)
    counts = study_counts(study)  # the terminal's count, by the same function
    if not front:
        raise ValueError(
            f"study {cfg.name!r} in {folder} has no completed trial yet "
            f"({counts_text(counts)}); the report needs at least one."
        )
    knee = knee_row(
        front
    )  # = knee_row(rows): the front's front is itself, and O(front^2), not O(trials^2)
    on_front = {r["trial"] for r in front}
    retrained = _retrain_results(folder)
    for r in rows:
        r["accuracy"] = (
            r["val_acc"]
            if r["state"] == "complete"
            else (r["best_val_acc_seen"] if r["state"] == "pruned" else None)
        )
        r["on_front"], r["knee"] = r["trial"] in on_front, r["trial"] == knee["trial"]
        r["retrain"] = retrain_command(folder, r["trial"]) if r["on_front"] else ""
        r.update(retrained.get(r["trial"], NOT_RETRAINED))
        r["tied_with_next"] = False
    for r, tied in zip(front, ties(front)):
        r["tied_with_next"] = tied
    _mark_held_up(rows, front)
    max_params = max(r["params"] for r in rows if r["params"])
    reference = {"accuracy": HV_REFERENCE_ACC, "params": HV_REFERENCE_FACTOR * max_params}
    parents = parent_runs(folder)
    return {
        "name": cfg.name,
        "folder": str(folder),
        "config": cfg.to_dict(),
        "resolved": cfg.resolved(),
        "rows": rows,
        "runs": runs,
        "replicates": dict(replicate_counts(trials)),
        "confirmed": study.user_attrs.get(CONFIRM_ATTR),
        "seed_sd": yardstick(runs_of(trials)),
        "front": front,
        "knee": knee,
        "reference": reference,
        "parents": parents,
        "hypervolume": _hypervolume_series(
            rows, reference["params"], sum(p["train_seconds"] or 0.0 for p in parents)
        ),
        "similarity": {r["trial"]: _similarity(folder, r["trial"]) for r in front},
        "learned": study.user_attrs.get(LEARNED_PLANS_ATTR) or [],
        "projection": _projection(folder, cfg, parents),
        "counts": dict(counts),
        "running": counts["running"] + counts["waiting"] > 0
        or counts["complete"] + counts["pruned"] < cfg.n_trials,
        "environment": _environment(cfg, rows),
        "verdict": verdict(rows),
    }


def noise_line(data: dict) -> str:
    """The study's noise yardstick and its replicate runs in one line ('' without either)."""
    sd = [s for s in data.get("seed_sd") or [] if s is not None]
    reps = sum((data.get("replicates") or {}).values())
    if not sd and not reps:
        return ""
    parts = []
    if sd:
        parts.append(
            f"seed SD (the noise yardstick, pooled over plans trained with several seeds) "
            f"{100 * sd[0]:.2f} points after epoch 1, {100 * sd[-1]:.2f} after epoch {len(data['seed_sd'])}"
        )
    if reps:
        secs = sum(
            r["train_seconds"] or 0.0 for r in data["runs"] if r.get("replicate_of") is not None
        )
        confirmed = data.get("confirmed")
        parts.append(
            f"{reps} replicate run(s), {secs / 60:.1f} min of training"
            + (f"; {len(confirmed)} plan(s) confirmed on fresh seeds" if confirmed else "")
        )
    held = fallen_rows(data["rows"])
    if held:
        parts.append(
            "did not hold up on fresh seeds: "
            + ", ".join(f"trial {r['trial']} ({r['plan_name']})" for r in held)
        )
    return "; ".join(parts)


def _mark_held_up(rows: list[dict], front: list[dict]) -> None:
    """``held_up`` of each plan confirmed on fresh seeds: True when it was on the front the
    search saw (its first run's accuracy) and is on the front of the means, False when it was and
    is no longer; None for every other plan."""
    single = [
        r | {"val_acc": r["single_val_acc"]} for r in rows if r.get("single_val_acc") is not None
    ]
    seen = {r["trial"] for r in front_rows(single)}
    final = {r["trial"] for r in front}
    for r in rows:
        confirmed = (r.get("n_runs") or 0) > 1 and r["trial"] in seen
        r["held_up"] = (r["trial"] in final) if confirmed else None


NOT_RETRAINED = {
    "retrain_test_acc": None,
    "retrain_test_std": None,
    "retrain_seeds": 0,
    "retrain_epochs": None,
    "retrain_from": None,
}


def _retrain_results(folder: pathlib.Path) -> dict[int, dict]:
    """Test accuracy of each trial retrained with ``search.py retrain`` (its ``summary.json``), by trial."""
    out = {}
    for path in sorted((folder / RETRAIN_DIR).glob("[0-9][0-9][0-9][0-9]/summary.json")):
        try:
            summary = json.loads(path.read_text())
            out[int(summary["trial"])] = {
                "retrain_test_acc": summary["test_acc_mean"],
                "retrain_test_std": summary["test_acc_std"],
                "retrain_seeds": len(summary["seeds"]),
                "retrain_epochs": summary["recipe"]["epochs"],
                "retrain_from": summary.get("from_parent"),
            }
        except (
            OSError,
            ValueError,
            KeyError,
            TypeError,
        ):  # being written, or edited by hand: not shown
            continue
    return out


def retrained_text(r: dict) -> str:
    """'93.10% ± 0.20 (3 seeds, 200 epochs)', or '' for a trial not retrained."""
    if r["retrain_test_acc"] is None:
        return ""
    spread = f" ± {100 * r['retrain_test_std']:.2f}" if r["retrain_seeds"] > 1 else ""
    seeds = f"{r['retrain_seeds']} seed{'s' if r['retrain_seeds'] > 1 else ''}"
    start = f", from parent {r['retrain_from']}" if r.get("retrain_from") else ""
    return f"{r['retrain_test_acc']:.2%}{spread} ({seeds}, {r['retrain_epochs']} epochs{start})"


def fidelity_line(data: dict) -> str:
    """One sentence: where the study's accuracies come from, and its parents (accuracy,
    epochs, seconds), whose compute the study spent before its first trial."""
    res = data["resolved"]
    if res.get("fidelity", "scratch") != "inherit":
        return (
            f"accuracies: fidelity scratch, each trial trained from a random initialisation "
            f"(up to {res['recipe']['epochs']} epochs)"
        )
    parents = (
        ", ".join(
            f"{p['name']} ({p['status']}, val "
            f"{'-' if p['best_val_acc'] is None else accuracy_text(p['best_val_acc'], 0.0)}, "
            f"{p['epochs_run']} epochs, {p['train_seconds'] or 0:.0f} s)"
            for p in data["parents"]
        )
        or "none trained yet"
    )
    return (
        f"accuracies: fidelity inherit, each trial started from its parent (softshare.inherit) "
        f"and fine-tuned up to {res['inherit_epochs']} epochs from lr {res['inherit_lr']:g}; "
        f"parents (trained once, {res['recipe']['epochs']} epochs, counted in the compute): {parents}"
    )


def _hypervolume_series(
    rows: list[dict], reference_params: float, parent_seconds: float = 0.0
) -> list[dict]:
    """Hypervolume after each trial (trial order) and the training seconds spent up to it; an
    inherit study's parents are paid before its first trial (``parent_seconds``)."""
    series, front, seconds = [], [], parent_seconds
    for r in rows:
        if r["status"] != "duplicate":  # a duplicate re-uses a result: no compute spent
            seconds += r["train_seconds"] or 0.0
        if (
            r["state"] == "complete" and r["status"] != "duplicate"
        ):  # others cannot change the front
            front = front_rows(front + [r])  # the front of all trials so far
        series.append(
            {
                "trial": r["trial"],
                "seconds": seconds,
                "value": hypervolume(front, reference_params),
            }
        )
    return series


def _similarity(folder: pathlib.Path, trial: int) -> list[dict] | None:
    """|cos| between the layers of each bank, as the trial recorded it (coefficients.json)."""
    path = trial_dir(folder, trial) / COEFFICIENTS_FILE
    try:
        return [
            {k: b[k] for k in ("bank", "layers", "templates", "similarity")}
            for b in json.loads(path.read_text())
        ]
    except (
        OSError,
        ValueError,
        KeyError,
        TypeError,
    ):  # absent (not trained yet, plain net) or unreadable
        return None


def _projection(folder: pathlib.Path, cfg, parents: list[dict]) -> dict[str, list[dict]]:
    """For each trained parent (name -> rows): how well every candidate group of its trained
    kernels fits a bank of each size the space allows (softshare.learned.group_errors: stage,
    start, stop, templates, squared, relative)."""
    out = {}
    for p in parents:
        if p["status"] != "complete":
            continue
        try:
            model = load_parent(folder, p["name"])
        except (OSError, ValueError, RuntimeError):  # being written, or not one of ours
            continue
        out[p["name"]] = [
            asdict(g) for g in group_errors(model, cfg.search_space().template_choices)
        ]
    return out


def _environment(cfg, rows: list[dict]) -> dict:
    started = [r["started"] for r in rows if r["started"]]
    finished = [r["finished"] for r in rows if r["finished"]]
    return {
        "devices": sorted({r["device"] for r in rows if r["device"]}),
        "versions": cfg.versions
        | {
            "python (report)": platform.python_version(),
            "optuna (report)": optuna.__version__,
            "plotly (report)": plotly.__version__,
            "pandas (report)": pd.__version__,
        },
        "created": cfg.created,
        "first trial started": min(started, default=""),
        "last trial finished": max(finished, default=""),
        "report written": datetime.datetime.now(datetime.timezone.utc).isoformat(
            timespec="seconds"
        ),
    }


# --- page parts --------------------------------------------------------------------------------


def _div(fig: go.Figure, div_id: str) -> str:
    return fig.to_html(full_html=False, include_plotlyjs=False, div_id=div_id, config=PLOT_CONFIG)


def _similarity_html(data: dict) -> str:
    parts = []
    for r in data["front"]:
        banks = data["similarity"][r["trial"]]
        multi = [b for b in banks or [] if len(b["layers"]) > 1]
        head = f"<h3>Trial {r['trial']} · {html.escape(plan_text(r))}</h3>"
        if banks is None:
            parts.append(head + '<p class="note">No coefficients recorded for this trial.</p>')
        elif not banks:
            parts.append(head + '<p class="note">A plain Wide ResNet: no shared banks.</p>')
        elif not multi:
            parts.append(
                head
                + f'<p class="note">All {len(banks)} banks serve a single layer: nothing to compare.</p>'
            )
        else:
            single = len(banks) - len(multi)
            note = (
                f'<p class="note">{single} single-layer bank(s) not shown.</p>' if single else ""
            )
            parts.append(head + note + _div(similarity_figure(multi), f"similarity-{r['trial']}"))
    return "\n".join(parts)


def _projection_html(data: dict) -> str:
    """The parents' projection errors per candidate group, and the learned plans read from them."""
    parts = []
    if data["learned"]:
        by_plan = {r["plan"]: r for r in data["rows"]}
        items = []
        for p in data["learned"]:
            row = by_plan.get(p["plan"])
            acc = f"{row['accuracy']:.2%}" if row and row.get("accuracy") is not None else "-"
            items.append(
                f"<tr><td>{html.escape(p['plan_name'])}</td><td>{html.escape(p['parent'])}</td>"
                f"<td>{p['budget']:,}</td><td>{p['params']:,}</td>"
                f"<td>{p['projection_error']:.3f}</td><td>{acc}</td></tr>"
            )
        parts.append(
            "<table><tr><th>learned plan</th><th>parent</th><th>budget</th><th>params</th>"
            "<th>projection error</th><th>val acc</th></tr>" + "".join(items) + "</table>"
        )
    for name, groups in data["projection"].items():
        parts.append(
            f"<h3>Parent {html.escape(name)}</h3>"
            + _div(projection_figure(groups), f"projection-{html.escape(name)}")
        )
    if not parts:
        return (
            '<p class="note">No trained parent in this study (they are trained with '
            "--learned-plans N or --fidelity inherit).</p>"
        )
    return "\n".join(parts)


def _table_html(data: dict) -> str:
    head = (
        "<tr><th>trial</th><th>plan</th><th>depth</th><th>width</th><th>templates per group</th>"
        "<th>params</th><th>mult-adds</th><th>epochs</th><th>val acc</th><th>fidelity</th>"
        "<th>retrained: test acc</th></tr>"
    )
    body = []
    for r in data["front"]:
        kind = (
            '<span class="shared">shared</span>'
            if r["shared"]
            else '<span class="plain">plain WRN</span>'
        )
        badge = ('<span class="badge">knee</span>' if r["knee"] else "") + (
            '<span class="badge baseline">baseline</span>' if r["baseline"] else ""
        )
        tied = (
            '<br><small class="tied">tied with next (within noise)</small>'
            if r["tied_with_next"]
            else ""
        )
        body.append(
            f'<tr class="main{" knee" if r["knee"] else ""}"><td class="num">{r["trial"]}{badge}</td>'
            f'<td>{html.escape(plan_text(r))}<br><small>{kind}</small></td><td class="num">{r["depth"]}</td>'
            f'<td class="num">{r["width"]}</td><td><code>{templates_text(r["templates"])}</code></td>'
            f'<td class="num">{r["params"]:,}</td><td class="num">{(r["macs"] or 0) / 1e6:,.2f} M</td>'
            f'<td class="num">{r["epochs"]}</td><td class="num">{accuracy_text(r["val_acc"], r["val_se"])}{tied}</td>'
            f"<td>{html.escape(fidelity_text(r))}</td>"
            f'<td class="num">{html.escape(retrained_text(r)) or "-"}</td></tr>'
            f'<tr class="cmd{" knee" if r["knee"] else ""}"><td></td><td colspan="10">'
            f'<code class="cmd">{html.escape(r["retrain"])}</code></td></tr>'
        )
    return f"<table>{head}{''.join(body)}</table>"


def _dominators_html(entry: dict) -> str:
    """The searched plans that dominate one baseline, one per line, or 'none' / why it is not compared."""
    b = entry["baseline"]
    if entry["dominated_by"] is None:
        return f'<span class="note">{html.escape(entry["note"])}</span>'
    lines = [
        f"trial {s['trial']} · {html.escape(plan_text(s))} · {s['params']:,} params "
        f"({fewer_text(s['params'], b['params'])}) · {accuracy_text(s['val_acc'], s['val_se'])} · "
        f"<b>{100 * (s['val_acc'] - b['val_acc']):+.2f} points</b>"
        for s in entry["dominated_by"]
    ] or ["none"]
    if entry["note"]:  # a stopped baseline: say at which epoch it was compared, before the matches
        lines.insert(
            0 if entry["dominated_by"] else 1,
            f'<span class="note">{html.escape(entry["note"])}</span>',
        )
    return "<br>".join(lines)


def _dominance_html(data: dict) -> str:
    head = (
        "<tr><th>baseline</th><th>params</th><th>val acc ± SE</th>"
        "<th>searched plans that dominate it (no more params, more accurate beyond the noise: "
        "one-sided z-tests, Holm-corrected over every comparison of the verdict)</th></tr>"
    )
    body = []
    for entry in data["verdict"]["table"]:
        b = entry["baseline"]
        acc = (
            accuracy_text(b["val_acc"], b["val_se"]) if entry["dominated_by"] is not None else "-"
        )
        acc += f"<br><small>at epoch {entry['at_epoch']}</small>" if entry["at_epoch"] else ""
        kind = "uniform SWRN" if b["shared"] else "plain WRN"
        body.append(
            f"<tr><td>trial {b['trial']} · {html.escape(plan_text(b))}<br><small>{kind}</small></td>"
            f'<td class="num">{b["params"] or 0:,}</td><td class="num">{acc}</td>'
            f"<td>{_dominators_html(entry)}</td></tr>"
        )
    return f'<table class="dominance">{head}{"".join(body)}</table>'


def _sharing_html(data: dict) -> str:
    """The section's body: the verdict sentence, both fronts on one plot, and the dominance table."""
    v = data["verdict"]
    parts = [f'<p class="verdict">{html.escape(v["sentence"])}</p>']
    if v["uniform_vs_plain"]:
        parts.append(f'<p class="note">{html.escape(v["uniform_vs_plain"])}</p>')
    if v["baselines"]:  # nothing to plot against without a fully trained baseline
        parts.append(_div(sharing_figure(data), "sharing"))
    if v["table"]:
        parts.append(_dominance_html(data))
    return "\n".join(parts)


def _settings_html(data: dict) -> str:
    res, env, cfg = data["resolved"], data["environment"], data["config"]
    items = [
        ("study", f"{data['name']} · {data['folder']}"),
        ("preset · sampler · seed", f"{res['preset']} · {res['sampler']} · {res['seed']}"),
        ("trials", f"{counts_text(Counter(data['counts']))} (of {res['n_trials']} planned)"),
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
    items += [
        (key, env[key] or "-")
        for key in ("created", "first trial started", "last trial finished", "report written")
    ]
    cells = [f"<tr><td>{html.escape(k)}</td><td>{_value_html(v)}</td></tr>" for k, v in items]
    return f'<table class="settings">{"".join(cells)}</table>'


def _value_html(value) -> str:
    """A dict as 'key value' pairs that wrap like text; anything else as text."""
    if not isinstance(value, dict):
        return html.escape(str(value))
    return " ".join(
        f'<span class="kv"><b>{html.escape(str(k))}</b> {html.escape(json.dumps(v))}</span>'
        for k, v in sorted(value.items())
    )


def _cards_html(data: dict) -> str:
    knee, counts, hv = data["knee"], Counter(data["counts"]), data["hypervolume"][-1]["value"]
    cards = [
        ("trials", f"{len(data['rows'])}", counts_text(counts)),
        (
            "Pareto front",
            f"{len(data['front'])} models",
            f"{data['front'][0]['params']:,} to {data['front'][-1]['params']:,} params",
        ),
        (
            "knee (best trade-off)",
            f"trial {knee['trial']}",
            f"{knee['val_acc']:.2%} · {knee['params']:,} params · {plan_text(knee)}",
        ),
        ("hypervolume", f"{hv:.4f}", "accuracy x log10 params, see below"),
    ]
    return "".join(
        f'<div class="card"><div class="label">{html.escape(a)}</div><div class="value">{html.escape(b)}'
        f'</div><div class="detail">{html.escape(c)}</div></div>'
        for a, b, c in cards
    )


def _page(data: dict) -> str:
    ref = data["reference"]
    no_params = [r["trial"] for r in data["rows"] if not r["params"]]
    unplaced = (
        (
            f'<p class="note">Not yet described (no parameter count), so not plotted: trial(s) '
            f"{', '.join(map(str, no_params))}.</p>"
        )
        if no_params
        else ""
    )
    counts = Counter(data["counts"])
    banner = (
        (
            f'<p class="banner">This study has not finished ({counts["complete"] + counts["pruned"]} of '
            f"{data['resolved']['n_trials']} trials done, {counts['running']} running): this page is a snapshot, "
            f"refreshed as trials finish.</p>"
        )
        if data["running"]
        else ""
    )
    return string.Template(TEMPLATE.read_text()).substitute(
        title=html.escape(f"Study {data['name']}: sharing patterns, accuracy and parameters"),
        plotlyjs=plotly.offline.get_plotlyjs(),
        banner=banner,
        cards=_cards_html(data),
        pareto=_div(pareto_figure(data), "pareto"),
        unplaced=unplaced,
        knee_rule=html.escape(KNEE_RULE),
        table=_table_html(data),
        sharing=_sharing_html(data),
        hypervolume=_div(hypervolume_figure(data), "hypervolume"),
        reference=(
            f"(accuracy {ref['accuracy']:g}, parameters {ref['params']:,} = {HV_REFERENCE_FACTOR}x the largest "
            f"model of the study; log<sub>10</sub> {math.log10(ref['params']):.3f})"
        ),
        curves=_div(curves_figure(data), "curves"),
        similarity=_similarity_html(data),
        projection=_projection_html(data),
        settings=_settings_html(data),
        footer=html.escape(
            f"written {data['environment']['report written']} from {data['folder']}"
        ),
    )


def _csv(rows: list[dict]) -> str:
    encode = lambda v: json.dumps(v) if isinstance(v, (list, dict)) else v  # noqa: E731 - one cell per field
    return pd.DataFrame([{k: encode(v) for k, v in r.items()} for r in rows]).to_csv(index=False)


# The columns a notebook reads first, in this order; every other column of the table follows.
FRAME_FIRST = (
    "trial",
    "role",
    "replicate_of",
    "plan",
    "plan_name",
    "depth",
    "width",
    "params",
    "macs",
    "status",
    "val_acc",
    "val_se",
    "seed",
    "plan_val_acc",
    "plan_val_se",
    "n_runs",
    "seeds",
    "epochs",
    "curve",
)


def trials_dataframe(study_folder: str | os.PathLike):
    """The study as a pandas DataFrame, one row per trial (replicates included), as Optuna users
    know ``study.trials_dataframe()``: what ``trials.csv`` holds.

    ``val_acc``/``val_se`` are the trial's own run (its objective, binomial SE); ``plan_val_acc``,
    ``plan_val_se``, ``n_runs`` and ``seeds`` are its architecture's, over every seed it trained
    with (:func:`nas.replicates.plan_rows`); ``role`` is baseline, searched or replicate."""
    import pandas as pd

    table = _trial_table(report_data(study_folder))
    frame = pd.DataFrame(table)
    return frame[_columns(table)]


def _trial_table(data: dict) -> list[dict]:
    """One row per trial (replicates included) with the columns of the plan rows: its plan's
    report columns (front, knee, retrain, seeds, ...) and its own run's values."""
    of_trial = {}
    for row in data["rows"]:
        for run in row.get("seeds") or [{"trial": row["trial"]}]:
            of_trial[run["trial"]] = row
    table = []
    for run in data["runs"]:
        plan = of_trial.get(run["trial"], {})
        own = run["val_acc"] if run["state"] == "complete" else run["best_val_acc_seen"]
        accuracy = own if run["state"] in ("complete", "pruned") else None
        of_plan = {"plan_val_acc": plan.get("val_acc"), "plan_val_se": plan.get("val_se")}
        table.append(
            {k: plan.get(k) for k in data["rows"][0]}
            | plan
            | run
            | of_plan
            | {"accuracy": accuracy}
        )
    return table


def _columns(table: list[dict]) -> list[str]:
    """The columns of :func:`trials_dataframe`: FRAME_FIRST, then every other key in order."""
    seen = dict.fromkeys(k for r in table for k in r)
    return [c for c in FRAME_FIRST if c in seen] + [c for c in seen if c not in FRAME_FIRST]


def _frame_csv(table: list[dict], columns: list[str]) -> str:
    """A CSV of ``table`` with ``columns`` (lists and dicts as JSON cells)."""
    return _csv([{k: r.get(k) for k in columns} for r in table])


def write_report(study_folder: str | os.PathLike, data: dict | None = None) -> pathlib.Path:
    """Write ``study_folder/report/`` and return the path of its ``index.html``.

    ``data`` is :func:`report_data`'s result when the caller already has it. Raises
    FileNotFoundError / ValueError (one line) for a folder that is not a study or a study with no
    completed trial, before anything is written.
    """
    data = report_data(study_folder) if data is None else data
    table = _trial_table(data)
    columns = _columns(table)  # trials.csv and pareto.csv: the same columns
    front = [r | {"plan_val_acc": r["val_acc"], "plan_val_se": r["val_se"]} for r in data["front"]]
    files = {
        "index.html": _page(data),
        "pareto.png": pareto_png(data),
        "trials.csv": _frame_csv(table, columns),
        "pareto.csv": _frame_csv(front, columns),
    }
    out = pathlib.Path(study_folder) / REPORT_DIR
    out.mkdir(exist_ok=True)
    for name, payload in files.items():
        atomic_write_bytes(out / name, payload if isinstance(payload, bytes) else payload.encode())
    return out / "index.html"


def terminal_summary(data: dict, page: str | os.PathLike | None = None) -> str:
    """The front as a table, the knee's retrain command, the dominance table, the page's path, and last
    the one-sentence answer to "does sharing pay?", for the terminal."""
    knee = data["knee"]
    lines = [
        "Pareto front (validation accuracy vs parameters):",
        format_table(data["front"], knee),
        f"knee (best trade-off): trial {knee['trial']}; retrain it with: {knee['retrain']}",
        fidelity_line(data),
    ]
    if line := noise_line(data):
        lines.append(line)
    lines += [
        f"retrained: trial {r['trial']} ({r['plan_name']}, {r['params']:,} params): test acc {retrained_text(r)}"
        for r in data["rows"]
        if r["retrain_test_acc"] is not None
    ]
    lines += _dominance_lines(data["verdict"])
    if data["verdict"]["uniform_vs_plain"]:
        lines.append(data["verdict"]["uniform_vs_plain"])
    if page is not None:
        lines.append(f"report: {page}")
    return "\n".join(lines + [data["verdict"]["sentence"]])


def _dominance_lines(v: dict) -> list[str]:
    """Each baseline and the searched plans that dominate it, for the terminal; nothing without baselines."""
    if not v["table"]:
        return []
    lines = [
        "Does sharing pay? Each baseline (mean over its seeds) and the searched plans with no more "
        f"parameters that beat it beyond the noise (z-tests, Holm-corrected over the "
        f"{v.get('comparisons', 0)} comparisons the verdict makes):"
    ]
    for e in v["table"]:
        b = e["baseline"]
        head = f"  {b['plan_name'] or b['plan']} (trial {b['trial']}, {b['params'] or 0:,} params"
        if e["dominated_by"] is None:
            lines.append(f"{head}): {e['note']}")
            continue
        beaten = (
            ", ".join(
                f"trial {s['trial']} ({accuracy_text(s['val_acc'], s['val_se'])}, "
                f"{100 * (s['val_acc'] - b['val_acc']):+.2f} points, {s['params']:,} params)"
                for s in e["dominated_by"]
            )
            or "none"
        )
        at = f" at epoch {e['at_epoch']}" if e["at_epoch"] else ""
        lines.append(f"{head}, {accuracy_text(b['val_acc'], b['val_se'])}{at}): {beaten}")
    return lines
