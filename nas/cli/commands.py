"""The commands of ``search.py``: for each, the function that adds its arguments and the one
that runs it (:data:`COMMANDS`)."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from dataclasses import dataclass
from typing import Callable

from .flags import (
    add_config_flags,
    argument_group,
    flag_fields,
    flag_name,
    float_in,
    int_at_least,
)

EXIT_INTERRUPTED = 130


def data_config(args: argparse.Namespace, split_seed: int = 0):
    from softshare.data import DataConfig

    given = {name: getattr(args, name) for name in flag_fields(DataConfig)}
    return DataConfig(**given, split_seed=split_seed)


def train_config(args: argparse.Namespace, **overrides):
    from softshare.train import TrainConfig

    given = {name: getattr(args, name) for name in flag_fields(TrainConfig)}
    return TrainConfig(**(given | overrides))


def plan_from_args(args: argparse.Namespace) -> str:
    if args.plan:
        return args.plan
    if args.arch == "wrn":
        return f"WRN-{args.depth}-{args.width}"
    return f"SWRN-{args.depth}-{args.width}-{args.templates}"


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
    from nas.ray_options import RayOptions
    from nas.schema import STUDY_FILE
    from nas.study import study_dir

    folder = study_dir(args.results_dir, args.name)
    saved = load_study_config(folder) if (folder / STUDY_FILE).exists() else None
    not_study = _NOT_STUDY | set(flag_fields(RayOptions))
    given = {  # the study's flags are named by their place in the config (dest "recipe.epochs")
        flag: value for flag, value in vars(args).items() if flag not in not_study
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

    given = {name: getattr(args, name) for name in flag_fields(RayOptions) if hasattr(args, name)}
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


# --- the arguments of each command ---------------------------------------------------------

TRAIN_TITLES = {
    "architecture": "architecture",
    "data": "data",
    "recipe": "recipe (defaults: the reference implementation)",
    "runtime": "runtime",
}
STUDY_TITLES = {
    "data": "data (default: the preset's)",
    "recipe": "per-trial recipe (default: the preset's)",
    "early_stopping": "early stopping (Pareto-aware successive halving)",
    "fidelity": "fidelity (where a trial's accuracy comes from; inherit: parents trained "
    "once, in <study>/parents/)",
    "runtime": "runtime",
    "backend": "backend (how trials are run; not part of the study's identity)",
}


def _recipe_args(p: argparse.ArgumentParser) -> None:
    from softshare.train import TrainConfig

    add_config_flags(p, TrainConfig, TRAIN_TITLES, group="recipe")
    runtime = argument_group(p, TRAIN_TITLES["runtime"])
    runtime.add_argument("--quiet", action="store_true", help="no progress output")


def _model_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("plan", help="SWRN-d-k-s, WRN-d-k or explicit text such as 28-10:2x3,4/6x2/6")
    p.add_argument("--classes", type=int_at_least(1), default=10)
    p.add_argument("--image-size", type=int_at_least(1), default=32)


def _train_args(p: argparse.ArgumentParser) -> None:
    from softshare.data import DataConfig

    a = p.add_argument_group("architecture")
    a.add_argument("--arch", choices=("swrn", "wrn"), default="swrn")
    a.add_argument("--depth", type=int_at_least(10), default=16, help="6N+4 (default 16)")
    a.add_argument(
        "--width", type=int_at_least(1), default=4, help="widening factor k (default 4)"
    )
    a.add_argument(
        "--templates", type=int_at_least(1), default=2, help="templates per stage bank (default 2)"
    )
    a.add_argument(
        "--plan",
        default=None,
        help="explicit plan text; overrides --arch/--depth/--width/--templates",
    )
    add_config_flags(p, DataConfig, TRAIN_TITLES, group="data")
    _recipe_args(p)
    p.add_argument("--out", default=None, help="run folder (default runs/<plan name>)")
    p.add_argument("--resume", action="store_true", help="continue from --out's checkpoint")


def _study_args(p: argparse.ArgumentParser) -> None:
    from nas.config import StudyConfig
    from nas.early_stop import StopRule
    from nas.ray_options import RayOptions
    from softshare.data import DataConfig
    from softshare.train import TrainConfig

    p.add_argument("name", help="study name; its folder is <results-dir>/<name>")
    add_config_flags(p, StudyConfig, STUDY_TITLES, in_study=True)
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
    for cls, section in (
        (DataConfig, "data"),
        (TrainConfig, "recipe"),
        (StopRule, "early_stopping"),
    ):
        # the preset fills in what is not given: no default to show
        add_config_flags(
            p,
            cls,
            STUDY_TITLES,
            section=section,
            in_study=True,
            groups=(section,),
            show_default=False,
        )
    argument_group(p, STUDY_TITLES["runtime"]).add_argument(
        "--quiet", action="store_true", help="no progress lines"
    )
    backend = argument_group(p, STUDY_TITLES["backend"])
    backend.add_argument(
        "--backend",
        choices=("optuna", "ray"),
        default="optuna",
        help="optuna: local worker processes (default); ray: trials as Ray Tune actors",
    )
    add_config_flags(p, RayOptions, STUDY_TITLES, group="backend", in_study=True)


def _report_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("folder", help="study folder, e.g. results/NAME")


def _retrain_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("study", help="study folder, e.g. results/NAME")
    p.add_argument(
        "--pick", default="knee", help="knee | best | trial:N | max-params:SIZE (default knee)"
    )
    p.add_argument(
        "--seeds",
        type=int_at_least(1),
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
        type=int_at_least(1),
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
    _recipe_args(p)


def _checkpoint_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("checkpoint")
    p.add_argument(
        "--data",
        default=None,
        metavar="DIR",
        help="where the dataset lives now (default: as recorded)",
    )
    p.add_argument("--device", default="auto")
    p.add_argument("--split", choices=("test", "val"), default="test")


def _fold_args(p: argparse.ArgumentParser) -> None:
    _checkpoint_args(p)
    p.add_argument(
        "--threshold",
        type=float_in(0.0, 1.0, open_low=True),
        default=0.98,
        help="layers whose coefficient vectors have |cos| >= this share one (default 0.98)",
    )
    p.add_argument(
        "--out", default=None, help="folded checkpoint path (default: <checkpoint>-folded.pt)"
    )


def _evaluate_args(p: argparse.ArgumentParser) -> None:
    _checkpoint_args(p)
    p.add_argument("--json", action="store_true", help="print the result as JSON")


@dataclass(frozen=True)
class Command:
    name: str
    help: str
    arguments: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace], int]


COMMANDS = (
    Command(
        "model", "what a plan builds: parameters, multiply-adds, groups", _model_args, cmd_model
    ),
    Command("train", "train one model", _train_args, cmd_train),
    Command(
        "study",
        "search sharing patterns (creates or resumes results/<name>)",
        _study_args,
        cmd_study,
    ),
    Command(
        "report",
        "write <study>/report/ (page, PNG, CSVs) and print the front",
        _report_args,
        cmd_report,
    ),
    Command(
        "retrain",
        "train a frontier member at full budget and test it once",
        _retrain_args,
        cmd_retrain,
    ),
    Command(
        "fold",
        "fold near-recurrent layers of a trained model; params and accuracy before/after",
        _fold_args,
        cmd_fold,
    ),
    Command("evaluate", "test accuracy and loss of a checkpoint", _evaluate_args, cmd_evaluate),
)
