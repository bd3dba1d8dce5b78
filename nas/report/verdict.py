"""Does sharing pay? The searched plans against the study's baselines, beyond the noise.

:func:`verdict` answers from the rows of :func:`nas.report.results.trial_rows`; :func:`claims`
keeps the dominance claims that survive Holm's correction and :func:`dominance_table` lists them.
Pure; the answers are frozen dataclasses (:class:`Verdict`, :class:`Dominance`).

Design: docs/design.md#nasreportverdict
"""

from __future__ import annotations

import dataclasses
import math
import statistics
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from ..noise import CLAIM_Z, FAMILY_ALPHA, binomial_se, holm, one_sided_p
from ..replicates import plan_rows
from .results import (
    PlanRow,
    Row,
    TrialRow,
    completed_rows,
    front_rows,
    hv_reference,
    hypervolume,
)

__all__ = [
    "Dominance",
    "REQUIRED_KEYS",
    "Verdict",
    "accuracy_text",
    "baseline_rows",
    "claim_distance_text",
    "claims",
    "closest",
    "comparisons",
    "dominance_table",
    "fewer_text",
    "needed_z",
    "searched_rows",
    "ties",
    "uniform_vs_plain",
    "verdict",
]

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


def _checked_rows(rows: Iterable[Row], name: str = "rows") -> list[Row]:
    """``rows`` as a list, or ValueError naming the first row that lacks one of REQUIRED_KEYS."""
    if isinstance(rows, (str, dict)) or not hasattr(rows, "__iter__"):
        raise ValueError(
            f"{name} must be a list of trial rows (nas.report.results.trial_rows), but got {rows!r:.80}."
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


def _se(r: PlanRow) -> float:
    """A row's standard error: a plan's (:func:`nas.replicates.plan_rows`: from its seeds and
    the validation set), else the binomial one of its accuracy; 0.0 when neither is known."""
    if r.get("n_runs") and not r.get("at_epoch"):
        return r["val_se"] or 0.0
    return binomial_se(r["val_acc"], r["val_images"])


def _z(better: PlanRow, worse: PlanRow) -> float:
    """How many standard errors of the difference ``better`` is ahead of ``worse`` (inf when
    neither has a noise estimate and it is ahead at all)."""
    diff, se = better["val_acc"] - worse["val_acc"], math.hypot(_se(better), _se(worse))
    if se == 0.0:
        return math.inf if diff > 0 else (-math.inf if diff < 0 else 0.0)
    return diff / se


def _apart(a: PlanRow, b: PlanRow, z: float = CLAIM_Z) -> bool:
    """The two rows' accuracies differ by more than ``z`` standard errors of the difference."""
    return abs(_z(a, b)) > z


def _name(r: TrialRow) -> str:
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


def searched_rows(rows: Iterable[TrialRow]) -> list[PlanRow]:
    """Completed, non-duplicate plans proposed by the search (not baselines), one per
    architecture (its runs merged), in trial order."""
    return [r for r in completed_rows(plan_rows(_checked_rows(rows))) if not r["baseline"]]


def baseline_rows(rows: Iterable[TrialRow]) -> list[PlanRow]:
    """Completed, non-duplicate baselines, one per architecture (its seeds merged), in trial order."""
    return [r for r in completed_rows(plan_rows(_checked_rows(rows))) if r["baseline"]]


Key = tuple[int, int, "int | None"]  # (better trial, worse trial, the worse one's at_epoch)


def _key(better: PlanRow, worse: PlanRow) -> Key:
    return better["trial"], worse["trial"], worse.get("at_epoch")


def _candidates(baseline: PlanRow, searched: list[PlanRow]) -> list[PlanRow]:
    return [s for s in searched if s["params"] <= baseline["params"]]


@dataclass(frozen=True)
class Comparison:
    """A one-sided z-test that ``better`` beats ``worse``: ``z`` standard errors ahead, p-value ``p``."""

    better: PlanRow
    worse: PlanRow
    z: float
    p: float


@dataclass(frozen=True)
class Dominance:
    """A baseline and the searched plans that dominate it, most accurate first; ``dominated_by``
    None when it is not compared (``note`` says why); ``at_epoch`` the epoch of a stopped
    baseline's comparison, its rows (baseline and searched) as they stood then."""

    baseline: PlanRow
    dominated_by: list[PlanRow] | None
    note: str = ""
    at_epoch: int | None = None


def comparisons(rows: Iterable[TrialRow]) -> list[Comparison]:
    """Every comparison the verdict makes, each a one-sided test that ``better`` beats
    ``worse`` (:class:`Comparison`). Each fully trained baseline against each searched plan
    with no more parameters; each baseline the rule stopped, at its epoch, against each searched
    plan that reached it; each uniform SWRN against each plain WRN with more parameters."""
    plans = plan_rows(_checked_rows(rows))
    searched, baselines = searched_rows(plans), baseline_rows(plans)
    pairs = [(s, b) for b in baselines for s in _candidates(b, searched)]
    stopped = [r for r in plans if r["baseline"] and r["state"] == "pruned"]
    for b in stopped:
        epoch = len(b.get("curve") or [])
        view = _at_epoch(b, epoch) if epoch else None
        if view is not None:
            pairs += [(s, view) for s in _candidates(view, _reached(plans, epoch))]
    return _tests(pairs + _uniform_pairs(baselines))


def _uniform_pairs(baselines: list[PlanRow]) -> list[tuple[PlanRow, PlanRow]]:
    """(uniform SWRN, plain WRN with more parameters): each a claim that sharing beats it."""
    plain = [b for b in baselines if not b["shared"]]
    uniform = [b for b in baselines if b["shared"]]
    return [(u, p) for p in plain for u in uniform if u["params"] < p["params"]]


def _tests(pairs: list[tuple[PlanRow, PlanRow]]) -> list[Comparison]:
    """One one-sided z-test per (better, worse) pair."""
    out = []
    for better, worse in pairs:
        z = _z(better, worse)
        out.append(Comparison(better, worse, z, one_sided_p(z)))
    return out


def _kept(family: list[Comparison], alpha: float = FAMILY_ALPHA) -> set[Key]:
    """The claims of ``family`` that stand under Holm's correction over all of them."""
    kept = holm([c.p for c in family], alpha)
    return {_key(c.better, c.worse) for c, keep in zip(family, kept) if keep}


def claims(rows: Iterable[TrialRow], alpha: float = FAMILY_ALPHA) -> set[Key]:
    """The comparisons of :func:`comparisons` whose claim stands under Holm's correction over all
    of them, as (better trial, worse trial, the worse one's at_epoch or None)."""
    return _kept(comparisons(rows), alpha)


def _dominators(baseline: PlanRow, searched: list[PlanRow], claimed: set[Key]) -> list[PlanRow]:
    """Searched rows with no more parameters than ``baseline`` whose claim to beat it stands."""
    better = [s for s in _candidates(baseline, searched) if _key(s, baseline) in claimed]
    return sorted(better, key=lambda s: (-s["val_acc"], s["params"], s["trial"]))


def _reached(rows: list[PlanRow], epoch: int) -> list[PlanRow]:
    """Searched trials (their first run) as they stood after ``epoch``."""
    return [
        v
        for r in rows
        if not r["baseline"]
        and r.get("replicate_of") is None
        and r["status"] in ("complete", "pruned")
        and r["params"]
        if (v := _at_epoch(r, epoch)) is not None
    ]


def _at_epoch(r: PlanRow, epoch: int) -> PlanRow | None:
    """A copy of row ``r`` as it stood after ``epoch`` (its accuracy then, and that accuracy's
    standard error), or None when its curve does not reach that far."""
    curve = r.get("curve") or []
    if len(curve) < epoch or curve[epoch - 1] is None:
        return None
    acc = float(curve[epoch - 1])
    view: PlanRow = {**r, "val_acc": acc, "val_se": binomial_se(acc, r["val_images"])}
    view["at_epoch"] = epoch
    return view


def _stopped_entry(b: PlanRow, rows: list[PlanRow], claimed: set[Key]) -> Dominance | None:
    """The table entry of baseline ``b`` stopped early: compared at the epoch it was stopped at."""
    epoch = len(b.get("curve") or [])
    view = _at_epoch(b, epoch) if b["state"] == "pruned" and epoch else None
    if view is None:
        return None
    searched = _reached(rows, epoch)
    return Dominance(
        baseline=view,
        dominated_by=_dominators(view, searched, claimed),
        at_epoch=epoch,
        note=f"stopped by the rule at epoch {epoch}: compared at epoch {epoch} with the {len(searched)} "
        f"searched plan(s) that reached it",
    )


def _not_compared_note(r: PlanRow) -> str:
    if r["status"] == "over-budget":
        return "over the parameter budget, not trained: not compared"
    if r["state"] == "pruned":
        at = f" at epoch {r['epochs']}" if r["epochs"] else ""
        return f"stopped early{at}: not compared"
    if r["state"] in ("running", "waiting"):
        return "still training: not compared yet"
    return f"{r['status'] or r['state']}: not compared"


def _tried_again(r: PlanRow, rows: list[PlanRow]) -> bool:
    """A failed baseline queued again (nas.baselines.requeue_failed_baselines): its later try
    stands for it."""
    return r["status"] == "failed" and any(
        x["baseline"] and x["plan"] == r["plan"] and x["trial"] > r["trial"] for x in rows
    )


def dominance_table(rows: Iterable[TrialRow], claimed: set[Key] | None = None) -> list[Dominance]:
    """For each baseline, the searched plans that dominate it (:class:`Dominance`).

    One entry per completed baseline, fewest parameters first, ``dominated_by`` the searched rows
    that beat it, most accurate first (an empty list: none does). Then one per baseline stopped
    early, compared at that epoch: ``at_epoch`` the epoch and the rows (baseline and searched)
    copies whose ``val_acc``/``val_se`` are those after that epoch, and a ``note`` saying so. Then
    one per baseline with nothing to compare (over budget, failed, running, or stopped with no
    curve), ``dominated_by`` None and a ``note`` saying why. ``claimed``: :func:`claims` of
    ``rows``, when the caller has it already.
    """
    plans = plan_rows(_checked_rows(rows))
    claimed = claims(plans) if claimed is None else claimed
    searched = searched_rows(plans)
    order = lambda r: (r["params"] or 0, r["trial"])  # noqa: E731 - the table's sort key
    done = sorted(baseline_rows(plans), key=order)
    done_plans = {r["plan"] for r in done}
    rest = sorted(
        (
            r
            for r in plans
            if r["baseline"]
            and r["plan"] not in done_plans
            and r["status"] != "duplicate"
            and r.get("replicate_of") is None
            and not _tried_again(r, plans)
        ),
        key=order,
    )
    stopped = {
        b["trial"]: entry for b in rest if (entry := _stopped_entry(b, plans, claimed)) is not None
    }
    return (
        [Dominance(b, _dominators(b, searched, claimed)) for b in done]
        + [stopped[b["trial"]] for b in rest if b["trial"] in stopped]
        + [Dominance(b, None, _not_compared_note(b)) for b in rest if b["trial"] not in stopped]
    )


def ties(front: Sequence[PlanRow]) -> list[bool]:
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
    tied = [not _apart(a, b) for a, b in zip(front, front[1:])]
    return tied + [False] * bool(front)


# --- the verdict ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Verdict:
    """Does sharing pay in this study? The numbers, and one sentence that answers from them.

    ``searched`` and ``baselines``: completed plan rows of each kind; ``searched_front`` and
    ``baseline_front``: the Pareto front of each kind, fewest parameters first;
    ``reference_params``: the hypervolume reference's parameters (nas.report.results.hv_reference),
    None when no row has a parameter count; ``searched_hypervolume`` and ``baseline_hypervolume``:
    in (accuracy, log10 params) up to that reference, the same for both; ``table``:
    :func:`dominance_table`; ``counts``: baselines, compared, not_compared, beaten, searched,
    at_epoch; ``comparisons``: how many the Holm correction covers; ``sentence``: the answer;
    ``uniform_vs_plain``: :func:`uniform_vs_plain`; ``closest``: the searched plan's fully
    trained comparison nearest to a claim (:func:`closest`), None when there is none.
    """

    searched: list[PlanRow]
    baselines: list[PlanRow]
    searched_front: list[PlanRow]
    baseline_front: list[PlanRow]
    reference_params: int | None
    searched_hypervolume: float
    baseline_hypervolume: float
    table: list[Dominance]
    counts: dict[str, int]
    comparisons: int
    sentence: str = ""
    uniform_vs_plain: str = ""
    closest: Comparison | None = None


def _counts(table: list[Dominance], searched: list[PlanRow]) -> dict[str, int]:
    compared = [e for e in table if e.dominated_by is not None]
    return {
        "baselines": len(table),
        "compared": len(compared),
        "not_compared": len(table) - len(compared),
        "beaten": sum(bool(e.dominated_by) for e in compared),
        "searched": len(searched),
        "at_epoch": sum(e.at_epoch is not None for e in compared),
    }


def verdict(rows: Iterable[TrialRow]) -> Verdict:
    """Does sharing pay in this study? (:class:`Verdict`)"""
    plans = plan_rows(_checked_rows(rows))
    searched, baselines = searched_rows(plans), baseline_rows(plans)
    ref = hv_reference(plans)
    reference = ref.params if ref else None
    family = comparisons(plans)  # once: the table, the count and the baselines' sentence
    claimed = _kept(family)
    table = dominance_table(plans, claimed)
    numbers = Verdict(
        searched=searched,
        baselines=baselines,
        searched_front=front_rows(searched),
        baseline_front=front_rows(baselines),
        reference_params=reference,
        searched_hypervolume=hypervolume(searched, reference) if reference else 0.0,
        baseline_hypervolume=hypervolume(baselines, reference) if reference else 0.0,
        table=table,
        counts=_counts(table, searched),
        comparisons=len(family),
        closest=closest(family),
    )
    return dataclasses.replace(
        numbers,
        sentence=_sentence(numbers),
        uniform_vs_plain=uniform_vs_plain(baselines, claimed),
    )


def uniform_vs_plain(baselines: list[PlanRow], claimed: set[Key] | None = None) -> str:
    """Among fully trained baselines: does the paper's uniform sharing match a plain WRN with fewer
    parameters? The pair with the largest parameter saving where the SWRN is not worse beyond the
    noise, in one sentence; '' without both kinds. ``claimed``: the claims that stand
    (:func:`claims` of the whole study); default: Holm over these baselines' own comparisons."""
    plain = [b for b in baselines if not b["shared"]]
    uniform = [b for b in baselines if b["shared"]]
    if not plain or not uniform:
        return ""
    if claimed is None:
        claimed = _kept(_tests(_uniform_pairs(baselines)))
    pairs = [  # the uniform SWRN is not behind beyond the noise
        (p, u) for p in plain for u in uniform if u["params"] < p["params"] and _z(p, u) <= CLAIM_Z
    ]
    if not pairs:
        return (
            "Among the fully trained baselines, every uniform SWRN smaller than a plain WRN trails it by more "
            "than the noise."
        )
    p, u = max(pairs, key=lambda pair: (pair[0]["params"] / pair[1]["params"], pair[1]["val_acc"]))
    verb = "beats" if _key(u, p) in claimed else "matches, within the noise,"
    return (
        f"Among the fully trained baselines, uniform sharing {verb} the plain net: {_name(u)} "
        f"{accuracy_text(u['val_acc'], u['val_se'], 1)} against {_name(p)} {accuracy_text(p['val_acc'], p['val_se'], 1)}"
        f", with {fewer_text(u['params'], p['params'])}."
    )


def closest(family: list[Comparison]) -> Comparison | None:
    """The comparison of a searched plan with a fully trained baseline that comes nearest to a
    claim (the largest z), None when the search made none: how far a negative verdict was from
    a positive one."""
    mine = [c for c in family if not c.better["baseline"] and c.worse.get("at_epoch") is None]
    return max(mine, key=lambda c: (c.z, -c.better["trial"]), default=None)


def needed_z(family: int, alpha: float = FAMILY_ALPHA) -> float:
    """The z the strongest of ``family`` one-sided tests must pass: Holm's first step, p <=
    alpha / family."""
    return statistics.NormalDist().inv_cdf(1.0 - alpha / max(family, 1))


def claim_distance_text(c: Comparison | None, family: int) -> str:
    """'X over Y by 0.9 points (z 0.87), where the first of Holm's 9 tests asks for z > 2.77, a
    lead of about 2.9 points at this noise': how far comparison ``c`` (:func:`closest`) was from
    a claim among ``family`` tests; '' without one, or without a noise estimate."""
    if c is None:
        return ""
    se = math.hypot(_se(c.better), _se(c.worse))
    if se == 0.0:
        return ""
    lead = 100 * (c.better["val_acc"] - c.worse["val_acc"])
    z1 = needed_z(family)
    return (
        f"{_name(c.better)} over {_name(c.worse)} by {lead:.1f} points (z {c.z:.2f}), where the "
        f"first of Holm's {family} test{'s' * (family != 1)} asks for z > {z1:.2f}, a lead of "
        f"about {100 * z1 * se:.1f} points at this noise"
    )


# --- the sentence -----------------------------------------------------------------------------


def _baselines_text(c: dict[str, int], beaten: int | None = None) -> str:
    """'the 4 baselines', 'any of the 4 baselines' (beaten 0), '2 of 4 baselines', 'the only baseline';
    with ' trained in full' when some baselines were not compared."""
    full = " trained in full" if c["not_compared"] else ""
    m = c["compared"]
    if m == 1:
        return "the only baseline" + full
    if beaten is None:
        return f"the {m} baselines{full}"
    return (f"{beaten} of {m} baselines" if beaten else f"any of the {m} baselines") + full


def _kinds_text(table: list[Dominance]) -> str:
    """'1 of 2 plain WRNs and 1 of 2 uniform SWRNs; ' when both kinds were compared, else ''."""
    compared = [e for e in table if e.dominated_by is not None]
    parts = []
    for shared, noun in ((False, "plain WRN"), (True, "uniform SWRN")):
        kind = [e for e in compared if bool(e.baseline["shared"]) == shared]
        parts.append(
            f"{sum(bool(e.dominated_by) for e in kind)} of {len(kind)} {noun}{'s' * (len(kind) > 1)}"
        )
    both = all(any(bool(e.baseline["shared"]) == s for e in compared) for s in (False, True))
    return f"{' and '.join(parts)}; " if both else ""


def _best_text(table: list[Dominance]) -> str:
    """The largest accuracy gain over a baseline among the dominating pairs."""
    pairs = [(e.baseline, e.dominated_by[0]) for e in table if e.dominated_by]
    b, s = max(
        pairs, key=lambda p: (p[1]["val_acc"] - p[0]["val_acc"], -p[1]["params"], -p[1]["trial"])
    )
    at = f" at epoch {b['at_epoch']}" if b.get("at_epoch") else ""
    return (
        f"best: trial {s['trial']}, {accuracy_text(s['val_acc'], s['val_se'], 1)} vs {_name(b)}'s "
        f"{accuracy_text(b['val_acc'], b['val_se'], 1)}{at} with {fewer_text(s['params'], b['params'])}"
    )


def _margin_text(table: list[Dominance], family: int) -> str:
    """How much 'beyond the noise' is here: the test and its correction, and the noise in points."""
    ses = [_se(b) for b in (e.baseline for e in table if e.dominated_by is not None)]
    if max(ses, default=0.0) == 0.0:
        return "by any margin (no validation-set size recorded, so no noise estimate)"
    low, high = 100 * min(ses), 100 * max(ses)
    about = f"{high:.1f}" if f"{low:.1f}" == f"{high:.1f}" else f"{low:.1f} to {high:.1f}"
    return (
        f"beyond the noise (one-sided z-tests, Holm-corrected over {family} comparison"
        f"{'s' * (family != 1)} at {FAMILY_ALPHA:.1%}; a baseline's SE about {about} points)"
    )


def _sentence(v: Verdict) -> str:
    """The answer from fully trained comparisons, then, where the rule stopped baselines, what the
    comparison at those epochs showed (weaker evidence: an early epoch, not the budget)."""
    full = [e for e in v.table if e.at_epoch is None]
    early = [e for e in v.table if e.at_epoch is not None]
    counts = _counts(full, v.searched) | {"baselines": len(v.table)}
    counts["not_compared"] = len(v.table) - counts["compared"]
    main = _full_sentence(dataclasses.replace(v, counts=counts, table=full))
    if not early:
        return main
    beaten = [e for e in early if e.dominated_by]
    tail = (
        f"at the epoch where the rule stopped them, searched plans beat {len(beaten)} of {len(early)} stopped "
        f"baseline(s) beyond the noise" + (f" ({_best_text(beaten)})" if beaten else "")
    )
    return f"{main[:-1]}; {tail}."


def _full_sentence(v: Verdict) -> str:
    c, table = v.counts, v.table
    if c["baselines"] == 0:
        return (
            "Sharing cannot be judged here: there are no baselines in this study (--baselines none), "
            "so there is nothing to compare against."
        )
    if c["compared"] == 0:
        notes = "; ".join(f"{_name(e.baseline)}: {e.note}" for e in v.table)
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
        f"searched-front hypervolume {v.searched_hypervolume:.3f} vs the baselines' "
        f"{v.baseline_hypervolume:.3f}"
    )
    if c["beaten"]:
        return (
            f"Sharing paid: searched plans beat {_baselines_text(c, c['beaten'])} beyond the noise at no more "
            f"parameters ({_kinds_text(table)}{_best_text(table)}); {hv}."
        )
    near = claim_distance_text(v.closest, v.comparisons)
    return (
        f"Sharing did not pay here: no searched plan beat {_baselines_text(c, 0)} "
        f"{_margin_text(table, v.comparisons)} at equal or fewer parameters"
        f"{f'; the nearest to a claim: {near}' if near else ''}; {hv}."
    )
