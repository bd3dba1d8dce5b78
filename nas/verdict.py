"""Does sharing pay? The searched plans against the study's baselines, beyond the noise.

Baselines are the study's reference plans (``row["baseline"]``: the plain WRN-d-k and the paper's
uniform SWRN-d-k-s, enqueued by the study itself); every other completed trial is a *searched*
plan. A searched plan *dominates* a baseline when it has no more parameters and its validation
accuracy is higher by more than ``CLAIM_Z`` standard errors of the difference (nas.noise), both
measured on the study's validation set. Accuracies are fractions in [0, 1], parameters counts.

A fully trained baseline is compared with the fully trained searched plans. A baseline the
stopping rule stopped at epoch e is compared at epoch e, with every searched plan that reached
epoch e (its accuracy after epoch e, finished or stopped later): the same budget on both sides,
as the rule itself compared them (every trial shares the recipe, so epoch e means the same
schedule point). A baseline with no curve to compare (failed, over budget, running) is listed as
not compared.

Everything here is pure: it reads rows as :func:`nas.results.trial_rows` makes them.
"""

from __future__ import annotations

from .noise import CLAIM_Z, beyond_noise, binomial_se, difference_se
from .results import completed_rows, front_rows, hypervolume

__all__ = [
    "HV_REFERENCE_FACTOR",
    "REQUIRED_KEYS",
    "accuracy_text",
    "baseline_rows",
    "dominance_table",
    "fewer_text",
    "searched_rows",
    "ties",
    "uniform_vs_plain",
    "verdict",
]

HV_REFERENCE_FACTOR = 10  # hypervolume reference parameters: 10x the largest model of the study
REQUIRED_KEYS = (
    "trial",
    "state",
    "status",
    "plan",
    "plan_name",
    "shared",
    "params",
    "epochs",
    "val_acc",
    "val_se",
    "val_images",
    "baseline",
)


# --- argument checks and small helpers --------------------------------------------------------


def _checked_rows(rows: list[dict], name: str = "rows") -> list[dict]:
    """``rows`` as a list, or ValueError naming the first row that lacks one of REQUIRED_KEYS."""
    if isinstance(rows, (str, dict)) or not hasattr(rows, "__iter__"):
        raise ValueError(
            f"{name} must be a list of trial rows (nas.results.trial_rows), but got {rows!r:.80}."
        )
    rows = list(rows)
    for i, r in enumerate(rows):
        missing = [k for k in REQUIRED_KEYS if not isinstance(r, dict) or k not in r]
        if missing:
            raise ValueError(
                f"{name}[{i}] must be a trial row with keys {', '.join(REQUIRED_KEYS)}, "
                f"but it lacks {', '.join(missing)}."
            )
    return rows


def _images(a: dict, b: dict) -> int | None:
    """Validation images behind a comparison of two rows: the smaller known count (a study uses one
    validation set, so they agree), or None when neither row knows it."""
    known = [r["val_images"] for r in (a, b) if r["val_images"]]
    return min(known) if known else None


def _name(r: dict) -> str:
    return r["plan_name"] or r["plan"] or f"trial {r['trial']}"


def accuracy_text(accuracy: float, se: float | None, digits: int = 2) -> str:
    """'58.90% ± 0.70' (percent and percentage points), without the '±' part when the error is unknown."""
    spread = f" ± {100 * se:.{digits}f}" if se else ""
    return f"{100 * accuracy:.{digits}f}%{spread}"


def fewer_text(small: int, big: int) -> str:
    """How much smaller a model of ``small`` parameters is than one of ``big``: 'as many parameters',
    '38% fewer parameters', or '12x fewer parameters' from ten times smaller on. ValueError unless
    0 < small <= big."""
    if not 0 < small <= big:
        raise ValueError(
            f"fewer_text needs 0 < small <= big (parameter counts), but got {small=}, {big=}."
        )
    if small == big:
        return "as many parameters"
    if 10 * small <= big:
        return f"{big / small:,.0f}x fewer parameters"
    fewer = 100 * (1 - small / big)
    return f"{fewer:.0f}% fewer parameters" if fewer >= 1 else f"{fewer:.2g}% fewer parameters"


# --- the comparison ---------------------------------------------------------------------------


def searched_rows(rows: list[dict]) -> list[dict]:
    """Completed, non-duplicate trials proposed by the search (not baselines), in trial order."""
    return [r for r in completed_rows(_checked_rows(rows)) if not r["baseline"]]


def baseline_rows(rows: list[dict]) -> list[dict]:
    """Completed, non-duplicate baseline trials, in trial order."""
    return [r for r in completed_rows(_checked_rows(rows)) if r["baseline"]]


def _dominators(baseline: dict, searched: list[dict]) -> list[dict]:
    """Searched rows with no more parameters than ``baseline`` and more accurate beyond the noise."""
    better = [
        s
        for s in searched
        if s["params"] <= baseline["params"]
        and beyond_noise(s["val_acc"], baseline["val_acc"], _images(s, baseline))
    ]
    return sorted(better, key=lambda s: (-s["val_acc"], s["params"], s["trial"]))


def _at_epoch(r: dict, epoch: int) -> dict | None:
    """A copy of row ``r`` as it stood after ``epoch`` (its accuracy then, and that accuracy's
    standard error), or None when its curve does not reach that far."""
    curve = r.get("curve") or []
    if len(curve) < epoch or curve[epoch - 1] is None:
        return None
    acc = float(curve[epoch - 1])
    return r | {"val_acc": acc, "val_se": binomial_se(acc, r["val_images"]), "at_epoch": epoch}


def _stopped_entry(b: dict, rows: list[dict]) -> dict | None:
    """The table entry of baseline ``b`` stopped early: compared at the epoch it was stopped at."""
    epoch = len(b.get("curve") or [])
    view = _at_epoch(b, epoch) if b["state"] == "pruned" and epoch else None
    if view is None:
        return None
    searched = [
        v
        for r in rows
        if not r["baseline"] and r["status"] in ("complete", "pruned") and r["params"]
        if (v := _at_epoch(r, epoch)) is not None
    ]
    return {
        "baseline": view,
        "dominated_by": _dominators(view, searched),
        "at_epoch": epoch,
        "note": f"stopped by the rule at epoch {epoch}: compared at epoch {epoch} with the {len(searched)} "
        f"searched plan(s) that reached it",
    }


def _not_compared_note(r: dict) -> str:
    if r["status"] == "over-budget":
        return "over the parameter budget, not trained: not compared"
    if r["state"] == "pruned":
        at = f" at epoch {r['epochs']}" if r["epochs"] else ""
        return f"stopped early{at}: not compared"
    if r["state"] in ("running", "waiting"):
        return "still training: not compared yet"
    return f"{r['status'] or r['state']}: not compared"


def _tried_again(r: dict, rows: list[dict]) -> bool:
    """A failed baseline queued again (nas.baselines.requeue_failed_baselines): its later try
    stands for it."""
    return r["status"] == "failed" and any(
        x["baseline"] and x["plan"] == r["plan"] and x["trial"] > r["trial"] for x in rows
    )


def dominance_table(rows: list[dict]) -> list[dict]:
    """For each baseline, the searched plans that dominate it.

    One entry per completed baseline, fewest parameters first: ``{"baseline": row, "dominated_by":
    [searched rows, most accurate first], "note": "", "at_epoch": None}`` (an empty list: no
    searched plan beats it). Then one per baseline stopped early, compared at that epoch: the same
    keys, with ``at_epoch`` the epoch and the rows (baseline and searched) copies whose
    ``val_acc``/``val_se`` are those after that epoch, and a ``note`` saying so. Then one per
    baseline with nothing to compare (over budget, failed, running, or stopped with no curve), with
    ``"dominated_by": None`` and a ``"note"`` saying why.
    """
    rows = _checked_rows(rows)
    searched = searched_rows(rows)
    order = lambda r: (r["params"] or 0, r["trial"])  # noqa: E731 - the table's sort key
    done = sorted(baseline_rows(rows), key=order)
    done_ids = {r["trial"] for r in done}
    rest = sorted(
        (
            r
            for r in rows
            if r["baseline"]
            and r["trial"] not in done_ids
            and r["status"] != "duplicate"
            and not _tried_again(r, rows)
        ),
        key=order,
    )
    stopped = {b["trial"]: entry for b in rest if (entry := _stopped_entry(b, rows)) is not None}
    return (
        [
            {"baseline": b, "dominated_by": _dominators(b, searched), "note": "", "at_epoch": None}
            for b in done
        ]
        + [stopped[b["trial"]] for b in rest if b["trial"] in stopped]
        + [
            {"baseline": b, "dominated_by": None, "note": _not_compared_note(b), "at_epoch": None}
            for b in rest
            if b["trial"] not in stopped
        ]
    )


def ties(front: list[dict]) -> list[bool]:
    """Per front member (fewest parameters first): True when it is *tied with the next* member, i.e.
    their accuracies differ by no more than CLAIM_Z standard errors of the difference. The last
    member is never tied with a next one. ValueError unless every member has an accuracy and
    parameters, in ascending parameter order."""
    front = _checked_rows(front, "front")
    unmeasured = [r["trial"] for r in front if r["val_acc"] is None or not r["params"]]
    if unmeasured:
        raise ValueError(
            f"front must hold completed trials (each with val_acc and params), "
            f"but got trials {unmeasured}."
        )
    if any(a["params"] > b["params"] for a, b in zip(front, front[1:])):
        raise ValueError(
            f"front must be sorted by params ascending, but got {[r['params'] for r in front]}."
        )
    tied = [
        not beyond_noise(
            max(a["val_acc"], b["val_acc"]), min(a["val_acc"], b["val_acc"]), _images(a, b)
        )
        for a, b in zip(front, front[1:])
    ]
    return tied + [False] * bool(front)


# --- the verdict ------------------------------------------------------------------------------


def _counts(rows: list[dict], table: list[dict], searched: list[dict]) -> dict:
    compared = [e for e in table if e["dominated_by"] is not None]
    return {
        "baselines": len(table),
        "compared": len(compared),
        "not_compared": len(table) - len(compared),
        "beaten": sum(bool(e["dominated_by"]) for e in compared),
        "searched": len(searched),
        "at_epoch": sum(e["at_epoch"] is not None for e in compared),
    }


def verdict(rows: list[dict]) -> dict:
    """Does sharing pay in this study? The numbers, and one sentence that answers from them.

    Keys: ``searched`` and ``baselines`` (completed rows of each kind), ``searched_front`` and
    ``baseline_front`` (the Pareto front of each kind, fewest parameters first),
    ``reference_params`` (HV_REFERENCE_FACTOR x the largest parameter count of all rows, or None
    when no row has one), ``searched_hypervolume`` and ``baseline_hypervolume`` (in (accuracy,
    log10 params) up to (0, log10 reference_params), the same reference for both), ``table``
    (:func:`dominance_table`), ``counts`` (baselines, compared, not_compared, beaten, searched)
    and ``sentence``.
    """
    rows = _checked_rows(rows)
    searched, baselines = searched_rows(rows), baseline_rows(rows)
    sizes = [r["params"] for r in rows if r["params"]]
    reference = HV_REFERENCE_FACTOR * max(sizes) if sizes else None
    table = dominance_table(rows)
    out = {
        "searched": searched,
        "baselines": baselines,
        "searched_front": front_rows(searched),
        "baseline_front": front_rows(baselines),
        "reference_params": reference,
        "searched_hypervolume": hypervolume(searched, reference) if reference else 0.0,
        "baseline_hypervolume": hypervolume(baselines, reference) if reference else 0.0,
        "table": table,
        "counts": _counts(rows, table, searched),
    }
    out["sentence"] = _sentence(out)
    out["uniform_vs_plain"] = uniform_vs_plain(baselines)
    return out


def uniform_vs_plain(baselines: list[dict]) -> str:
    """Among fully trained baselines: does the paper's uniform sharing match a plain WRN with fewer
    parameters? The pair with the largest parameter saving where the SWRN is not worse beyond the
    noise, in one sentence; '' without both kinds."""
    plain = [b for b in baselines if not b["shared"]]
    uniform = [b for b in baselines if b["shared"]]
    if not plain or not uniform:
        return ""
    pairs = [
        (p, u)
        for p in plain
        for u in uniform
        if u["params"] < p["params"]
        and not beyond_noise(p["val_acc"], u["val_acc"], _images(p, u))
    ]
    if not pairs:
        return (
            "Among the fully trained baselines, every uniform SWRN smaller than a plain WRN trails it by more "
            "than the noise."
        )
    p, u = max(pairs, key=lambda pair: (pair[0]["params"] / pair[1]["params"], pair[1]["val_acc"]))
    verb = (
        "beats"
        if beyond_noise(u["val_acc"], p["val_acc"], _images(p, u))
        else "matches, within the noise,"
    )
    return (
        f"Among the fully trained baselines, uniform sharing {verb} the plain net: {_name(u)} "
        f"{accuracy_text(u['val_acc'], u['val_se'], 1)} against {_name(p)} {accuracy_text(p['val_acc'], p['val_se'], 1)}"
        f", with {fewer_text(u['params'], p['params'])}."
    )


# --- the sentence -----------------------------------------------------------------------------


def _baselines_text(c: dict, beaten: int | None = None) -> str:
    """'the 4 baselines', 'any of the 4 baselines' (beaten 0), '2 of 4 baselines', 'the only baseline';
    with ' trained in full' when some baselines were not compared."""
    full = " trained in full" if c["not_compared"] else ""
    m = c["compared"]
    if m == 1:
        return "the only baseline" + full
    if beaten is None:
        return f"the {m} baselines{full}"
    return (f"{beaten} of {m} baselines" if beaten else f"any of the {m} baselines") + full


def _kinds_text(table: list[dict]) -> str:
    """'1 of 2 plain WRNs and 1 of 2 uniform SWRNs; ' when both kinds were compared, else ''."""
    compared = [e for e in table if e["dominated_by"] is not None]
    parts = []
    for shared, noun in ((False, "plain WRN"), (True, "uniform SWRN")):
        kind = [e for e in compared if bool(e["baseline"]["shared"]) == shared]
        parts.append(
            f"{sum(bool(e['dominated_by']) for e in kind)} of {len(kind)} {noun}{'s' * (len(kind) > 1)}"
        )
    both = all(any(bool(e["baseline"]["shared"]) == s for e in compared) for s in (False, True))
    return f"{' and '.join(parts)}; " if both else ""


def _best_text(table: list[dict]) -> str:
    """The largest accuracy gain over a baseline among the dominating pairs."""
    pairs = [(e["baseline"], e["dominated_by"][0]) for e in table if e["dominated_by"]]
    b, s = max(
        pairs, key=lambda p: (p[1]["val_acc"] - p[0]["val_acc"], -p[1]["params"], -p[1]["trial"])
    )
    at = f" at epoch {b['at_epoch']}" if b.get("at_epoch") else ""
    return (
        f"best: trial {s['trial']}, {accuracy_text(s['val_acc'], s['val_se'], 1)} vs {_name(b)}'s "
        f"{accuracy_text(b['val_acc'], b['val_se'], 1)}{at} with {fewer_text(s['params'], b['params'])}"
    )


def _margin_text(table: list[dict]) -> str:
    """How much 'beyond the noise' is here: CLAIM_Z standard errors of the difference, in points."""
    margins = [
        100 * CLAIM_Z * difference_se(b["val_acc"], b["val_acc"], b["val_images"])
        for b in (e["baseline"] for e in table if e["dominated_by"] is not None)
    ]
    if max(margins) == 0.0:
        return "by any margin (no validation-set size recorded, so no noise estimate)"
    low, high = min(margins), max(margins)
    about = f"{high:.1f}" if f"{low:.1f}" == f"{high:.1f}" else f"{low:.1f} to {high:.1f}"
    return f"by more than the noise ({CLAIM_Z:g} SE of the difference, about {about} points)"


def _sentence(v: dict) -> str:
    """The answer from fully trained comparisons, then, where the rule stopped baselines, what the
    comparison at those epochs showed (weaker evidence: an early epoch, not the budget)."""
    full = [e for e in v["table"] if e["at_epoch"] is None]
    early = [e for e in v["table"] if e["at_epoch"] is not None]
    counts = _counts([], full, v["searched"]) | {"baselines": len(v["table"])}
    counts["not_compared"] = len(v["table"]) - counts["compared"]
    main = _full_sentence(v | {"counts": counts, "table": full})
    if not early:
        return main
    beaten = [e for e in early if e["dominated_by"]]
    tail = (
        f"at the epoch where the rule stopped them, searched plans beat {len(beaten)} of {len(early)} stopped "
        f"baseline(s) beyond the noise" + (f" ({_best_text(beaten)})" if beaten else "")
    )
    return f"{main[:-1]}; {tail}."


def _full_sentence(v: dict) -> str:
    c, table = v["counts"], v["table"]
    if c["baselines"] == 0:
        return (
            "Sharing cannot be judged here: there are no baselines in this study (--baselines none), "
            "so there is nothing to compare against."
        )
    if c["compared"] == 0:
        notes = "; ".join(f"{_name(e['baseline'])}: {e['note']}" for e in v["table"])
        return (
            f"Sharing cannot be judged yet: none of the {c['baselines']} baseline(s) was trained in full "
            f"({notes}), and a fully trained plan is not compared with one that was not."
        )
    if c["searched"] == 0:
        return (
            f"Sharing cannot be judged yet: no searched plan has finished training, so there is nothing to "
            f"set against {_baselines_text(c)}."
        )
    hv = (
        f"searched-front hypervolume {v['searched_hypervolume']:.3f} vs the baselines' "
        f"{v['baseline_hypervolume']:.3f}"
    )
    if c["beaten"]:
        return (
            f"Sharing paid: searched plans beat {_baselines_text(c, c['beaten'])} beyond the noise at no more "
            f"parameters ({_kinds_text(table)}{_best_text(table)}); {hv}."
        )
    return (
        f"Sharing did not pay here: no searched plan beat {_baselines_text(c, 0)} "
        f"{_margin_text(table)} at equal or fewer parameters; {hv}."
    )
