"""The report's sentences, shared by the page and the terminal: where the accuracies come from,
the noise, the retrained trials, and the terminal's summary of the front and the verdict."""

from __future__ import annotations

import os

from .data import ReportData
from .figures import fallen_rows
from .results import ReportRow, format_table
from .verdict import Verdict, accuracy_text

__all__ = ["fidelity_line", "noise_line", "retrained_text", "terminal_summary"]


def noise_line(data: ReportData) -> str:
    """The study's noise yardstick and its replicate runs in one line ('' without either)."""
    sd = [s for s in data.seed_sd or [] if s is not None]
    reps = sum((data.replicates or {}).values())
    if not sd and not reps:
        return ""
    parts = []
    if sd:
        parts.append(
            f"seed SD (the noise yardstick, pooled over plans trained with several seeds) "
            f"{100 * sd[0]:.2f} points after epoch 1, {100 * sd[-1]:.2f} after epoch {len(data.seed_sd)}"
        )
    if reps:
        secs = sum(
            r["train_seconds"] or 0.0 for r in data.runs if r.get("replicate_of") is not None
        )
        confirmed = data.confirmed
        parts.append(
            f"{reps} replicate run(s), {secs / 60:.1f} min of training"
            + (f"; {len(confirmed)} plan(s) confirmed on fresh seeds" if confirmed else "")
        )
    held = fallen_rows(data.rows)
    if held:
        parts.append(
            "did not hold up on fresh seeds: "
            + ", ".join(f"trial {r['trial']} ({r['plan_name']})" for r in held)
        )
    return "; ".join(parts)


def retrained_text(r: ReportRow) -> str:
    """'93.10% ± 0.20 (3 seeds, 200 epochs)', or '' for a trial not retrained."""
    if r["retrain_test_acc"] is None:
        return ""
    spread = f" ± {100 * r['retrain_test_std']:.2f}" if r["retrain_seeds"] > 1 else ""
    seeds = f"{r['retrain_seeds']} seed{'s' if r['retrain_seeds'] > 1 else ''}"
    start = f", from parent {r['retrain_from']}" if r.get("retrain_from") else ""
    return f"{r['retrain_test_acc']:.2%}{spread} ({seeds}, {r['retrain_epochs']} epochs{start})"


def fidelity_line(data: ReportData) -> str:
    """One sentence: where the study's accuracies come from, and its parents (accuracy,
    epochs, seconds), whose compute the study spent before its first trial."""
    res = data.resolved
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
            for p in data.parents
        )
        or "none trained yet"
    )
    return (
        f"accuracies: fidelity inherit, each trial started from its parent (softshare.inherit) "
        f"and fine-tuned up to {res['inherit_epochs']} epochs from lr {res['inherit_lr']:g}; "
        f"parents (trained once, {res['recipe']['epochs']} epochs, counted in the compute): {parents}"
    )


def terminal_summary(data: ReportData, page: str | os.PathLike | None = None) -> str:
    """The front as a table, the knee's retrain command, the dominance table, the page's path, and last
    the one-sentence answer to "does sharing pay?", for the terminal."""
    knee = data.knee
    lines = [
        "Pareto front (validation accuracy vs parameters):",
        format_table(data.front, knee),
        f"knee (best trade-off): trial {knee['trial']}; retrain it with: {knee['retrain']}",
        fidelity_line(data),
    ]
    if line := noise_line(data):
        lines.append(line)
    lines += [
        f"retrained: trial {r['trial']} ({r['plan_name']}, {r['params']:,} params): test acc {retrained_text(r)}"
        for r in data.rows
        if r["retrain_test_acc"] is not None
    ]
    lines += _dominance_lines(data.verdict)
    if data.verdict.uniform_vs_plain:
        lines.append(data.verdict.uniform_vs_plain)
    if page is not None:
        lines.append(f"report: {page}")
    return "\n".join(lines + [data.verdict.sentence])


def _dominance_lines(v: Verdict) -> list[str]:
    """Each baseline and the searched plans that dominate it, for the terminal; nothing without baselines."""
    if not v.table:
        return []
    lines = [
        "Does sharing pay? Each baseline (mean over its seeds) and the searched plans with no more "
        f"parameters that beat it beyond the noise (z-tests, Holm-corrected over the "
        f"{v.comparisons} comparisons the verdict makes):"
    ]
    for e in v.table:
        b = e.baseline
        head = f"  {b['plan_name'] or b['plan']} (trial {b['trial']}, {b['params'] or 0:,} params"
        if e.dominated_by is None:
            lines.append(f"{head}): {e.note}")
            continue
        beaten = (
            ", ".join(
                f"trial {s['trial']} ({accuracy_text(s['val_acc'], s['val_se'])}, "
                f"{100 * (s['val_acc'] - b['val_acc']):+.2f} points, {s['params']:,} params)"
                for s in e.dominated_by
            )
            or "none"
        )
        at = f" at epoch {e.at_epoch}" if e.at_epoch else ""
        lines.append(f"{head}, {accuracy_text(b['val_acc'], b['val_se'])}{at}): {beaten}")
    return lines
