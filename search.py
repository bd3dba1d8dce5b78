#!/usr/bin/env python
"""Command line for soft parameter-sharing search: parse arguments, call nas/ or softshare/.

    python search.py model SWRN-28-10-2                 # what a plan builds: params, MACs, groups
    python search.py train --dataset cifar10 --data DIR --arch swrn --depth 16 --width 4 --templates 2
    python search.py evaluate runs/x/model_best.pt      # test accuracy of a checkpoint
    python search.py study NAME --preset smoke          # the search (see --help)

Errors a user can cause print one line and exit 2; nothing computed so far is lost.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import types
import typing
from typing import Sequence

EXIT_USAGE, EXIT_IO, EXIT_INTERRUPTED = 2, 74, 130  # 74: sysexits' EX_IOERR


def _os_error_line(exc: OSError) -> str:
    """What failed on the machine, and what to free or fix; finished work is kept on disk."""
    import errno

    where = f" ({exc.filename})" if exc.filename else ""
    what = exc.strerror or str(exc) or type(exc).__name__
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        todo = "free space there and re-run the same command"
    elif exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        todo = "make it writable, or choose another folder, and re-run"
    else:
        todo = "fix it and re-run the same command"
    return f"{what}{where}: {todo}; what was finished is kept"


class OneLineParser(argparse.ArgumentParser):
    """argparse, but a bad flag gives one line (what is wrong, what is accepted), no usage dump."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see --help)\n")


def _int_at_least(minimum: int):
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"expected an integer >= {minimum}, got {text!r}"
            ) from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"expected an integer >= {minimum}, got {value}")
        return value

    parse.__name__ = f"integer >= {minimum}"
    return parse


def _count(text: str) -> int:
    """A parameter count: 500000, 500k, 1.5M."""
    from nas.retrain import parse_count

    try:  # a plain number must be whole; 1.5M and 250k may have decimals
        value = int(text) if text.strip()[-1:].isdigit() else parse_count(text)
    except (ValueError, IndexError):
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(
            f"expected a parameter count >= 1 such as 500000, 500k or 1.5M, got {text!r}"
        )
    return value


_count.__name__ = "parameter count"


def _float_in(low: float, high: float | None = None, *, open_low: bool = False):
    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            value = float("nan")
        ok = value > low if open_low else value >= low
        if not ok or (high is not None and value > high) or value != value:
            bound = f"{'>' if open_low else '>='} {low}" + (
                f" and <= {high}" if high is not None else ""
            )
            raise argparse.ArgumentTypeError(f"expected a number {bound}, got {text!r}")
        return value

    parse.__name__ = "number"
    return parse


def _milestones(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(t) for t in text.split(",") if t.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated epochs such as 60,120,160, got {text!r}"
        ) from None


# --- flags built from the config dataclasses -------------------------------------------------
# Each flag comes from one config field (softshare.strict.option): its name, help, choices,
# bounds and default exist there once. A study's flags default to "not given" (SUPPRESS), so
# the preset, or the saved study, fills them in.

DATA_FLAGS = (
    "dataset",
    "root",
    "download",
    "val_fraction",
    "train_subset",
    "image_size",
    "synthetic_classes",
    "synthetic_train",
    "synthetic_test",
)
RECIPE_FLAGS = (
    "epochs",
    "batch_size",
    "lr",
    "momentum",
    "nesterov",
    "weight_decay",
    "schedule",
    "milestones",
    "gamma",
    "cutout",
    "flip",
    "crop_padding",
    "lr_update",
    "warmup",
    "label_smoothing",
    "ema",
)
RUNTIME_FLAGS = ("device", "precision", "channels_last", "compile", "seed")
STUDY_TOP_FLAGS = (
    "preset",
    "n_trials",
    "sampler",
    "seed",
    "max_params",
    "baselines",
    "baseline_seeds",
    "confirm_seeds",
    "confirm_max",
    "learned_plans",
    "workers",
    "storage",
)
STUDY_FIDELITY_FLAGS = ("fidelity", "inherit_epochs", "inherit_lr")
STUDY_DATA_FLAGS = ("dataset", "root", "download", "val_fraction", "train_subset", "image_size")
STUDY_RECIPE_FLAGS = (
    "epochs",
    "batch_size",
    "lr",
    "schedule",
    "cutout",
    "weight_decay",
    "lr_update",
    "warmup",
    "label_smoothing",
    "ema",
)
STUDY_STOP_FLAGS = ("eta", "min_epochs", "z", "patience", "enabled")
# Parsers a field's type cannot tell.
_SPECIAL_TYPES = {"max_params": _count, "milestones": _milestones}


def _field(cls, name: str):
    import dataclasses

    return next(f for f in dataclasses.fields(cls) if f.name == name)


def field_type(cls, name: str) -> object:
    """The type of config field ``cls.name`` as Python resolves it (``typing.get_type_hints``,
    whether or not the module postpones annotations), ``X | None`` read as ``X``."""
    hint = typing.get_type_hints(cls)[name]
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        if len(args) == 1:
            return args[0]
    return hint


def _value_parser(cls, f):
    meta = f.metadata
    if f.name in _SPECIAL_TYPES:
        return _SPECIAL_TYPES[f.name]
    kind = field_type(cls, f.name)
    if kind is int:
        return _int_at_least(meta.get("min", 0))
    if kind is float:
        if "gt" in meta:
            return _float_in(meta["gt"], meta.get("max"), open_low=True)
        return _float_in(meta.get("min", float("-inf")), meta.get("max"))
    return str


def flag_name(cls, name: str) -> str:
    """The command-line flag of config field ``cls.name``: its ``flag`` metadata, else
    ``--name`` (``--no-name`` for a bool that is on by default)."""
    f = _field(cls, name)
    if f.metadata.get("flag"):
        return f.metadata["flag"]
    off = field_type(cls, name) is bool and f.default
    return ("--no-" if off else "--") + name.replace("_", "-")


def config_flag(
    group,
    cls,
    name: str,
    *,
    dest: str | None = None,
    given_only: bool = False,
    show_default: bool | None = None,
):
    """Add to ``group`` the flag of config field ``cls.name``, from the field's metadata.

    A bool field that is on by default becomes ``--no-NAME``, one that is off ``--NAME``.
    ``given_only``: the flag's default is "not given" (a study's preset or saved study fills it
    in), else the field's own default. ``show_default`` (default: not ``given_only``) puts the
    field's default in the help."""
    show_default = not given_only if show_default is None else show_default
    f = _field(cls, name)
    meta = f.metadata
    kw: dict = {"dest": dest or name, "help": meta["help"]}
    flag = flag_name(cls, name)
    if field_type(cls, name) is bool:
        kw["action"] = "store_false" if f.default else "store_true"
    else:
        kw["type"] = _value_parser(cls, f)
        if "choices" in meta:
            kw["choices"] = meta["choices"]
        else:
            kw["metavar"] = meta.get("metavar", name.upper())
        if "const" in meta:
            kw.update(nargs="?", const=meta["const"])
            kw["help"] += f" ({meta['const']} if given bare)"
        if show_default and f.default is not None:
            shown = ",".join(map(str, f.default)) if isinstance(f.default, tuple) else f.default
            kw["help"] += f" (default {shown})"
    kw["default"] = argparse.SUPPRESS if given_only else f.default
    group.add_argument(flag, **kw)


def add_data_args(p: argparse.ArgumentParser) -> None:
    from softshare.data import DataConfig

    g = p.add_argument_group("data")
    for name in DATA_FLAGS:
        config_flag(g, DataConfig, name)


def add_recipe_args(p: argparse.ArgumentParser) -> None:
    from softshare.train import TrainConfig

    g = p.add_argument_group("recipe (defaults: the reference implementation)")
    for name in RECIPE_FLAGS:
        config_flag(g, TrainConfig, name)


def add_runtime_args(p: argparse.ArgumentParser) -> None:
    from softshare.train import TrainConfig

    g = p.add_argument_group("runtime")
    for name in RUNTIME_FLAGS:
        config_flag(g, TrainConfig, name)
    g.add_argument("--quiet", action="store_true", help="no progress output")


def data_config(args: argparse.Namespace, split_seed: int = 0):
    from softshare.data import DataConfig

    return DataConfig(**{name: getattr(args, name) for name in DATA_FLAGS}, split_seed=split_seed)


def train_config(args: argparse.Namespace, **overrides):
    from softshare.train import TrainConfig

    given = {name: getattr(args, name) for name in RECIPE_FLAGS + RUNTIME_FLAGS}
    return TrainConfig(**(given | overrides))


def plan_from_args(args: argparse.Namespace) -> str:
    if args.plan:
        return args.plan
    if args.arch == "wrn":
        return f"WRN-{args.depth}-{args.width}"
    return f"SWRN-{args.depth}-{args.width}-{args.templates}"


# ----------------------------------------------------------------------------- commands


def cmd_model(args: argparse.Namespace) -> int:
    from softshare import build_model, count_parameters, parse_plan

    plan = parse_plan(args.plan)
    built = count_parameters(build_model(plan, num_classes=args.classes))
    plain = parse_plan(f"WRN-{plan.depth}-{plan.width}").num_parameters(args.classes)
    print(f"plan        {plan.name}  ({plan.text})")
    print(
        f"parameters  {plan.num_parameters(args.classes):,} (built model: {built:,}); plain WRN-{plan.depth}-{plan.width}: "
        f"{plain:,} ({plan.num_parameters(args.classes) / plain:.1%})"
    )
    print(
        f"mult-adds   {plan.multiply_adds(args.image_size, args.classes):,} per {args.image_size}x{args.image_size} image"
    )
    for stage, groups in enumerate(plan.stages, 1):
        desc = (
            ", ".join(
                f"{n} layers x {t} templates" if t else f"{n} plain layers" for n, t in groups
            )
            or "none"
        )
        print(f"stage {stage}     {desc}")
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    from softshare import ModelConfig
    from softshare.console import ProgressBar
    from softshare.data import load_dataset
    from softshare.train import train

    plan = ModelConfig(
        plan_from_args(args)
    ).plan  # a bad plan or recipe fails before any data is read
    cfg = train_config(args)
    dcfg = data_config(args)
    data = load_dataset(dcfg)
    mcfg = ModelConfig(plan, num_classes=data.num_classes, in_channels=data.train.images.shape[1])
    out = args.out or os.path.join(
        "runs", mcfg.sharing_plan.name.replace(":", "_").replace("/", "_")
    )
    progress = None if args.quiet else ProgressBar(sys.stderr)
    logging.getLogger("search").info("training %s on %s -> %s", mcfg.plan, data.name, out)
    try:
        result = train(
            mcfg, cfg, data, data_config=dcfg, out_dir=out, resume=args.resume, progress=progress
        )
    except KeyboardInterrupt:
        print(
            f"interrupted; the last finished epoch is saved in {out}: re-run with --resume to continue",
            file=sys.stderr,
        )
        return EXIT_INTERRUPTED
    best = (
        f"{result.best_val_acc:.2%}"
        if result.best_val_acc is not None
        else "n/a (no validation set)"
    )
    print(
        f"{result.status}: {result.epochs_run} epochs, best val acc {best}, {result.parameters:,} params, "
        f"{result.images_per_s:,.0f} img/s on {result.device} ({result.precision}); checkpoints in {out}"
    )
    return 0 if result.status != "diverged" else 1


def cmd_evaluate(args: argparse.Namespace) -> int:
    from softshare.evaluate import evaluate_checkpoint

    report = evaluate_checkpoint(
        args.checkpoint, data_root=args.data, device=args.device, split=args.split
    )
    print(
        json.dumps(report, indent=2)
        if args.json
        else f"{report['split']} accuracy {report['accuracy']:.2%}  loss {report['loss']:.4f}  "
        f"({report['images']} images, {report['plan']})"
    )
    return 0


# Flags of the study command that are not study settings.
_NOT_STUDY = {"name", "results_dir", "quiet", "command", "func", "backend", "verbose"}


def _study_config(args: argparse.Namespace):
    from nas.config import StudyConfig, load_study_config
    from nas.schema import STUDY_FILE
    from nas.study import study_dir

    folder = study_dir(args.results_dir, args.name)
    saved = load_study_config(folder) if (folder / STUDY_FILE).exists() else None
    given = {  # the study's flags are named by their place in the config (dest "recipe.epochs")
        flag: value
        for flag, value in vars(args).items()
        if flag not in _NOT_STUDY and flag not in RAY_FLAGS
    }
    return StudyConfig.from_flags(args.name, given, saved), folder


def cmd_study(args: argparse.Namespace) -> int:
    import optuna

    from nas.optuna_backend import run_study
    from nas.report.progress import StudyReporter
    from nas.schema import counts_text
    from nas.storage import shown_url
    from nas.study import study_counts

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    cfg, folder = _study_config(args)
    ray_options = _ray_options(args)
    runner = (
        f"{cfg.workers} worker(s)"
        if ray_options is None
        else f"Ray backend ({ray_options.address or 'local runtime'}, {ray_options.cpus_per_trial:g} CPU and "
        f"{ray_options.gpus_per_trial:g} GPU per trial{', resuming its last run' if ray_options.resume else ''})"
    )
    print(
        f"study {cfg.name}: preset {cfg.preset}, {cfg.n_trials} trials, sampler {cfg.sampler}, {runner}; "
        f"storage {shown_url(cfg.storage) if cfg.storage else folder / 'journal.log'}"
    )
    try:
        if ray_options is None:
            study = run_study(cfg, folder, None if args.quiet else StudyReporter(cfg))
        else:
            study = _ray_backend().run_ray(cfg, folder, ray_options)
    except RuntimeError as exc:  # a systematic failure: every trial kept, the reason in one line
        print(f"search.py study: error: {str(exc).splitlines()[0]}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        again = (
            "re-run the same command with --resume to continue the Ray run"
            if ray_options is not None
            else "re-run the same command to resume"
        )
        print(f"interrupted; finished trials are kept in {folder}: {again}", file=sys.stderr)
        return EXIT_INTERRUPTED
    # The same count, in the same words, as the report's "trials" line.
    print(f"study {cfg.name}: {counts_text(study_counts(study))} (of {cfg.n_trials} planned)")
    _write_report(folder, summary=True)
    return 0


def _write_report(folder, summary: bool = False) -> None:
    """Refresh the study's report (with ``summary``, print the front, the dominance table and the
    one-sentence verdict too); a study with nothing to show yet is said so, not an error."""
    from nas.report import report_data, terminal_summary, write_report

    try:
        data = report_data(folder)
        page = write_report(folder, data)
    except ValueError as exc:
        print(f"report: not written ({exc})")
        return
    print(terminal_summary(data, page) if summary else f"report: {page}")


def cmd_report(args: argparse.Namespace) -> int:
    from nas.report import report_data, terminal_summary, write_report

    data = report_data(args.folder)
    print(terminal_summary(data, write_report(args.folder, data)))
    return 0


def _add_study_args(p: argparse.ArgumentParser) -> None:
    from nas.config import StudyConfig
    from nas.early_stop import StopRule
    from softshare.data import DataConfig
    from softshare.train import TrainConfig

    p.add_argument("name", help="study name; its folder is <results-dir>/<name>")
    for name in STUDY_TOP_FLAGS:  # the preset sets none of these: their defaults are the config's
        config_flag(p, StudyConfig, name, given_only=True, show_default=name != "preset")
    p.add_argument(
        "--space",
        dest="space_file",
        default=argparse.SUPPRESS,
        metavar="FILE",
        help="JSON/TOML file of ranges (depths, widths, max_templates, ...)",
    )
    p.add_argument(
        "--results-dir",
        default="results",
        help="parent folder of study folders (default ./results)",
    )
    for title, cls, section, names in (
        ("data (default: the preset's)", DataConfig, "data", STUDY_DATA_FLAGS),
        ("per-trial recipe (default: the preset's)", TrainConfig, "recipe", STUDY_RECIPE_FLAGS),
        (
            "early stopping (Pareto-aware successive halving)",
            StopRule,
            "early_stopping",
            STUDY_STOP_FLAGS,
        ),
    ):
        g = p.add_argument_group(title)
        for name in names:
            config_flag(g, cls, name, dest=f"{section}.{name}", given_only=True)
    g = p.add_argument_group(
        "fidelity (where a trial's accuracy comes from; inherit: parents trained once, in "
        "<study>/parents/)"
    )
    for name in STUDY_FIDELITY_FLAGS:
        config_flag(g, StudyConfig, name, given_only=True, show_default=True)
    g = p.add_argument_group("runtime")
    for name in ("device", "precision"):
        config_flag(g, StudyConfig, name, given_only=True, show_default=True)
    g.add_argument("--quiet", action="store_true", help="no progress lines")
    r = p.add_argument_group("backend (how trials are run; not part of the study's identity)")
    r.add_argument(
        "--backend",
        choices=("optuna", "ray"),
        default="optuna",
        help="optuna: local worker processes (default); ray: trials as Ray Tune actors",
    )
    from nas.ray_options import RayOptions

    for name in RAY_FLAGS:
        config_flag(r, RayOptions, name, given_only=True, show_default=True)


# The RayOptions fields the command line sets (verbose comes from --quiet).
RAY_FLAGS = (
    "address",
    "cpus_per_trial",
    "gpus_per_trial",
    "max_concurrent",
    "max_failures",
    "storage_path",
    "resume",
)


RAY_MISSING = "--backend ray needs Ray: pip install -e '.[ray]'"


def _ray_backend():
    """nas.ray_backend; a ValueError of one line (what to install) when Ray is not installed."""
    try:
        import nas.ray_backend
    except ModuleNotFoundError as exc:  # Ray itself only: any other missing module is a real error
        if exc.name != "ray" and not (exc.name or "").startswith("ray."):
            raise
        raise ValueError(RAY_MISSING) from None
    return nas.ray_backend


def _ray_options(args: argparse.Namespace):
    """RayOptions from the flags; ValueError when Ray flags come without --backend ray or clash."""
    from nas.ray_options import RayOptions

    given = {name: getattr(args, name) for name in RAY_FLAGS if hasattr(args, name)}
    if args.backend != "ray":
        if given:
            flags = ", ".join(flag_name(RayOptions, name) for name in given)
            raise ValueError(
                f"{flags}: Ray option(s), given without --backend ray; add --backend ray or drop them"
            )
        return None
    if getattr(args, "workers", 1) != 1:
        raise ValueError(
            "--workers is for --backend optuna; with --backend ray use --max-concurrent (and "
            "--cpus-per-trial / --gpus-per-trial)"
        )
    _ray_backend()  # one line naming what to install when Ray is missing
    return RayOptions(verbose=0 if args.quiet else 1, **given)


def cmd_retrain(args: argparse.Namespace) -> int:
    from nas.retrain import mean_se_text, retrain, retrained_baselines
    from softshare.console import ProgressBar

    recipe = train_config(args)
    factory = None if args.quiet else (lambda prefix: ProgressBar(sys.stderr, prefix=prefix))
    try:
        summary = retrain(
            args.study,
            args.pick,
            recipe,
            seeds=args.seeds,
            full_train=args.full_train,
            train_subset=args.train_subset,
            data_root=args.data,
            progress_factory=factory,
            from_parent=args.from_parent,
        )
    except KeyboardInterrupt:
        print(
            "interrupted; finished epochs are saved: re-run the same command to resume",
            file=sys.stderr,
        )
        return EXIT_INTERRUPTED
    start = f", from parent {summary['from_parent']}" if summary["from_parent"] else ""
    print(
        f"trial {summary['trial']} ({summary['plan_name']}, {summary['params']:,} params{start}): search val "
        f"{summary['search_val_acc']:.2%}; retrained test acc {mean_se_text(summary)}"
    )
    for run in summary["seeds"]:
        print(
            f"  {run['seed_dir']}: {run['status']}, {run['epochs_run']} epochs, test {run['test_acc']:.2%}"
        )
    for b in retrained_baselines(args.study, but=summary["trial"]):  # the same question, beside it
        print(
            f"  baseline {b['plan_name']} (trial {b['trial']}, {b['params']:,} params): "
            f"retrained test acc {mean_se_text(b)}"
            + ("" if b["recipe"] == summary["recipe"] else " (another recipe)")
        )
    _write_report(args.study)
    return 0


def cmd_fold(args: argparse.Namespace) -> int:
    import pathlib

    from softshare import count_parameters, load
    from softshare.evaluate import evaluate_checkpoint
    from softshare.fold import fold_checkpoint

    source = pathlib.Path(args.checkpoint)
    out = pathlib.Path(args.out) if args.out else source.with_name(source.stem + "-folded.pt")
    report = fold_checkpoint(source, out, args.threshold)
    before = evaluate_checkpoint(source, data_root=args.data, device=args.device, split=args.split)
    after = evaluate_checkpoint(out, data_root=args.data, device=args.device, split=args.split)
    for i, bank in enumerate(report, 1):
        groups = " ".join("{" + ",".join(map(str, c)) + "}" for c in bank["clusters"])
        print(
            f"bank {i}: {bank['layers']} layers, templates {bank['templates_before']} -> {bank['templates_after']}"
            f"  clusters {groups}"
        )
    # counted on the models themselves: their class count and input channels are the checkpoint's
    p_before, p_after = count_parameters(load(source)), count_parameters(load(out))
    print(
        f"parameters {p_before:,} -> {p_after:,} (saves {p_before - p_after:,}, {1 - p_after / p_before:.1%})"
    )
    print(
        f"{args.split} accuracy {before['accuracy']:.2%} -> {after['accuracy']:.2%} "
        f"(threshold |cos| >= {args.threshold}); folded checkpoint: {out}"
    )
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(
        prog="search.py", description="Search over soft parameter-sharing patterns."
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=OneLineParser)

    p = sub.add_parser("model", help="what a plan builds: parameters, multiply-adds, groups")
    p.add_argument("plan", help="SWRN-d-k-s, WRN-d-k or explicit text such as 28-10:2x3,4/6x2/6")
    p.add_argument("--classes", type=_int_at_least(1), default=10)
    p.add_argument("--image-size", type=_int_at_least(1), default=32)
    p.set_defaults(func=cmd_model)

    p = sub.add_parser("train", help="train one model")
    a = p.add_argument_group("architecture")
    a.add_argument("--arch", choices=("swrn", "wrn"), default="swrn")
    a.add_argument("--depth", type=_int_at_least(10), default=16, help="6N+4 (default 16)")
    a.add_argument(
        "--width", type=_int_at_least(1), default=4, help="widening factor k (default 4)"
    )
    a.add_argument(
        "--templates",
        type=_int_at_least(1),
        default=2,
        help="templates per stage bank (default 2)",
    )
    a.add_argument(
        "--plan",
        default=None,
        help="explicit plan text; overrides --arch/--depth/--width/--templates",
    )
    add_data_args(p)
    add_recipe_args(p)
    add_runtime_args(p)
    p.add_argument("--out", default=None, help="run folder (default runs/<plan name>)")
    p.add_argument("--resume", action="store_true", help="continue from --out's checkpoint")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("study", help="search sharing patterns (creates or resumes results/<name>)")
    _add_study_args(p)
    p.set_defaults(func=cmd_study)

    p = sub.add_parser(
        "report", help="write <study>/report/ (page, PNG, CSVs) and print the front"
    )
    p.add_argument("folder", help="study folder, e.g. results/NAME")
    p.set_defaults(func=cmd_report)

    p = sub.add_parser("retrain", help="train a frontier member at full budget and test it once")
    p.add_argument("study", help="study folder, e.g. results/NAME")
    p.add_argument(
        "--pick", default="knee", help="knee | best | trial:N | max-params:SIZE (default knee)"
    )
    p.add_argument(
        "--seeds",
        type=_int_at_least(1),
        default=1,
        help="train this many seeds, report mean and spread",
    )
    p.add_argument(
        "--full-train",
        action="store_true",
        help="train on train+validation (no validation monitoring)",
    )
    p.add_argument(
        "--data",
        default=None,
        metavar="DIR",
        help="where the dataset lives now (default: the study's)",
    )
    p.add_argument(
        "--train-subset",
        type=_int_at_least(1),
        default=None,
        metavar="N",
        help="train on N images (default: the whole training split)",
    )
    p.add_argument(
        "--from-parent",
        action="store_true",
        help="start from the study's trained parent of the plan's depth and width "
        "(softshare.inherit; an inherit study's <study>/parents/WRN-d-k), not from scratch",
    )
    add_recipe_args(p)
    add_runtime_args(p)
    p.set_defaults(func=cmd_retrain)

    p = sub.add_parser(
        "fold",
        help="fold near-recurrent layers of a trained model; params and accuracy before/after",
    )
    p.add_argument("checkpoint")
    p.add_argument(
        "--threshold",
        type=_float_in(0.0, 1.0, open_low=True),
        default=0.98,
        help="layers whose coefficient vectors have |cos| >= this share one (default 0.98)",
    )
    p.add_argument(
        "--out", default=None, help="folded checkpoint path (default: <checkpoint>-folded.pt)"
    )
    p.add_argument("--data", default=None, metavar="DIR")
    p.add_argument("--device", default="auto")
    p.add_argument("--split", choices=("test", "val"), default="test")
    p.set_defaults(func=cmd_fold)

    p = sub.add_parser("evaluate", help="test accuracy and loss of a checkpoint")
    p.add_argument("checkpoint")
    p.add_argument(
        "--data",
        default=None,
        metavar="DIR",
        help="where the dataset lives now (default: as recorded)",
    )
    p.add_argument("--device", default="auto")
    p.add_argument("--split", choices=("test", "val"), default="test")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.set_defaults(func=cmd_evaluate)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )
    try:
        return args.func(args)
    except (ValueError, FileNotFoundError, NotADirectoryError, FileExistsError) as exc:
        print(
            f"search.py {args.command}: error: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}",
            file=sys.stderr,
        )
        return EXIT_USAGE
    except OSError as exc:  # disk full, permission denied, ...: the machine's, not the input's
        print(f"search.py {args.command}: error: {_os_error_line(exc)}", file=sys.stderr)
        return EXIT_IO


if __name__ == "__main__":
    sys.exit(main())
