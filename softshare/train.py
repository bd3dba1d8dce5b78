"""The training loop every trial and every retrain runs through.

``train(model_config, cfg, data, ...)``: the reference recipe by default, atomic
checkpoints and exact resume, a per-epoch callback that may stop the run, and on a GPU a step
loop with no host sync.

Design: docs/design.md#softsharetrain
"""

from __future__ import annotations

import logging
import math
import os
import pathlib
import time
import traceback
from dataclasses import asdict, dataclass, field
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

from .analysis import coefficient_matrices
from .checkpoint import (
    atomic_same_file,
    atomic_write_text,
    dumps,
    environment,
    load_checkpoint,
    save_checkpoint,
)
from .data import Augment, DataConfig, Dataset, batches, num_batches
from .evaluate import evaluate
from .layers import parameter_groups
from .models import SWRN, ModelConfig, count_parameters, to_channels_last
from .runtime import (
    PRECISIONS,
    autocast_context,
    release_memory,
    resolve_device,
    resolve_precision,
)
from .strict import option, strict_from_dict
from .validate import is_int, is_number, require_in, require_int

__all__ = [
    "TrainConfig",
    "EpochMetrics",
    "RunResult",
    "train",
    "evaluate",
    "Callback",
    "CHECKPOINT",
    "BEST",
]

log = logging.getLogger(__name__)
CHECKPOINT, BEST, METRICS = "checkpoint.pt", "model_best.pt", "metrics.json"
SCHEDULES = ("step", "cosine")
LR_UPDATES = ("epoch", "step")
# TrainConfig fields that say how fast a run goes, not what it learns: a resume may change them.
RUNTIME_FIELDS = ("device", "precision", "channels_last", "compile", "eval_batch_size")
PROGRESS_EVERY = 20  # steps between progress figures (and early checks for a non-finite loss)


@dataclass(frozen=True)
class TrainConfig:
    """The recipe and the runtime. Every field is a CLI flag and is saved with the run."""

    # option(): the field's default and what its command-line flag shows (softshare.strict).
    epochs: int = option(200, "training epochs", min=1)
    batch_size: int = option(128, "batch size", min=1)
    lr: float = option(0.1, "initial learning rate", gt=0.0)
    momentum: float = option(0.9, "Nesterov momentum", min=0.0, max=0.999, advanced=True)
    nesterov: bool = option(
        True, "Nesterov momentum (--no-nesterov: plain momentum)", advanced=True
    )
    weight_decay: float = option(5e-4, "on all but sharing coefficients", min=0.0)
    schedule: str = option("step", "learning-rate schedule", choices=SCHEDULES)
    milestones: tuple[int, ...] = option(  # epochs where lr *= gamma (step schedule)
        (60, 120, 160), "step schedule epochs, comma-separated", parse="int_list", advanced=True
    )
    gamma: float = option(0.2, "step schedule factor", gt=0.0, advanced=True)
    # Short budgets (issue 22): a cosine schedule moved once an epoch trains a 1-epoch run at a
    # constant lr 0.1 and ends it wherever its last steps leave it; moved every step, the lr
    # reaches 0 at the run's end, and the seed-to-seed spread shrinks (docs/benchmarks.md).
    lr_update: str = option(
        "epoch",
        "when the schedule moves the learning rate: every epoch, or every step (a smooth decay "
        "to the end of the run, for short budgets)",
        choices=LR_UPDATES,
    )
    warmup: float = option(
        0.0, "epochs of linear learning-rate warm-up from 0 (needs --lr-update step)", min=0.0
    )
    label_smoothing: float = option(0.0, "label smoothing of the training loss", min=0.0, max=0.5)
    ema: float = option(
        0.0,
        "decay per step of an exponential moving average of the weights (BatchNorm statistics "
        "too), which is evaluated and saved in their place; 0: off",
        min=0.0,
        max=0.9999,
    )
    cutout: int = option(0, "Cutout hole side in pixels; 0: off", min=0, const=16, metavar="PX")
    crop_padding: int = option(4, "random-crop padding", min=0, advanced=True)
    flip: bool = option(True, "horizontal flips (--no-flip: none)", advanced=True)
    seed: int = option(0, "seed of weights, shuffling and augmentation", min=0, group="runtime")
    device: str = option("auto", "auto | cpu | cuda | cuda:N", group="runtime")
    precision: str = option(
        "auto",
        "auto: bf16 on CUDA and on CPUs with native bf16, else fp32",
        choices=PRECISIONS,
        group="runtime",
    )
    channels_last: bool = option(
        True, "NHWC memory format (--no-channels-last: NCHW)", group="runtime"
    )
    compile: bool = option(False, "torch.compile the model", group="runtime")
    # images per evaluation batch; 0: auto (500 on the CPU, on CUDA as many as free memory
    # allows, the whole split where it fits). Saved configs with 500 keep meaning 500.
    eval_batch_size: int = 0

    def __post_init__(self) -> None:
        object.__setattr__(self, "milestones", tuple(self.milestones))
        for name, low in (
            ("epochs", 1),
            ("batch_size", 1),
            ("eval_batch_size", 0),
            ("cutout", 0),
            ("crop_padding", 0),
            ("seed", 0),
        ):
            object.__setattr__(self, name, require_int(name, getattr(self, name), low))
        for name in ("lr", "gamma"):
            if not (is_number(getattr(self, name)) and getattr(self, name) > 0):
                raise ValueError(f"{name} must be > 0, but got {name}={getattr(self, name)!r}.")
        if not 0 <= self.momentum < 1:
            raise ValueError(f"momentum must be in [0, 1), but got momentum={self.momentum!r}.")
        if self.weight_decay < 0:
            raise ValueError(
                f"weight_decay must be >= 0, but got weight_decay={self.weight_decay!r}."
            )
        if self.schedule not in SCHEDULES:
            raise ValueError(
                f"schedule must be one of {', '.join(SCHEDULES)}, but got schedule={self.schedule!r}."
            )
        if any(not is_int(m) or m < 1 for m in self.milestones) or list(self.milestones) != sorted(
            self.milestones
        ):
            raise ValueError(
                f"milestones must be increasing epochs >= 1, but got milestones={self.milestones!r}."
            )
        if self.lr_update not in LR_UPDATES:
            raise ValueError(
                f"lr_update must be one of {', '.join(LR_UPDATES)}, but got lr_update={self.lr_update!r}."
            )
        for name, low, high in (
            ("warmup", 0.0, None),
            ("label_smoothing", 0.0, 0.5),
            ("ema", 0.0, 0.9999),
        ):
            object.__setattr__(self, name, require_in(name, getattr(self, name), low, high))
        if self.warmup > 0 and self.lr_update != "step":
            raise ValueError(
                f"warmup={self.warmup!r} needs lr_update='step' (a warm-up moves the lr within epochs)."
            )
        if self.precision not in PRECISIONS:
            raise ValueError(
                f"precision must be one of {', '.join(PRECISIONS)}, but got precision={self.precision!r}."
            )

    def to_dict(self) -> dict:
        data = asdict(self)
        data["milestones"] = list(self.milestones)
        return data

    @classmethod
    def from_dict(cls, data: dict) -> "TrainConfig":
        return strict_from_dict(cls, data, "train config")


@dataclass
class EpochMetrics:
    """What one epoch produced. Accuracies are fractions in [0, 1]; val_* are None without a val set."""

    epoch: int
    epochs: int
    train_loss: float
    train_acc: float
    val_loss: float | None
    val_acc: float | None
    lr: float
    seconds: float
    images_per_s: float
    # compile=True: whether torch.compile's code trained this run (False: it fell back to
    # eager, e.g. at torch's recompile limit); None without compile.
    compiled: bool | None = None


@dataclass
class RunResult:
    """The outcome of a run: status is complete, stopped (by the callback) or diverged.

    ``coefficients``: the final coefficient matrices of the model's banks
    (:func:`softshare.analysis.coefficient_matrices`), in what :func:`train` returns; None in the
    per-epoch ``metrics.json``."""

    status: str
    epochs_run: int
    best_val_acc: float | None
    final_val_acc: float | None
    history: list[dict] = field(default_factory=list)  # one EpochMetrics dict per epoch
    stop_reason: str = ""
    train_seconds: float = 0.0
    images_per_s: float = 0.0
    parameters: int = 0
    device: str = ""
    precision: str = ""
    coefficients: list[dict] | None = None

    def to_dict(self) -> dict:
        return asdict(self)


# A callback sees each epoch's metrics; a truthy return stops the run (a str is the reason).
Callback = Callable[[EpochMetrics], "bool | str | None"]
# The same, handed the run so far (a RunResult as metrics.json holds it) instead.
ResultCallback = Callable[["RunResult"], "bool | str | None"]


class _Run:
    """Everything a run holds between epochs; it is what a checkpoint saves."""

    def __init__(
        self,
        model_config: ModelConfig,
        cfg: TrainConfig,
        data: Dataset,
        data_config: DataConfig | None,
        initial: nn.Module | None = None,
    ):
        self.model_config, self.cfg, self.data_config = model_config, cfg, data_config
        self.device = resolve_device(cfg.device)
        self.precision = resolve_precision(cfg.precision, self.device)
        torch.manual_seed(cfg.seed)  # the model's initial weights
        self.model = SWRN(model_config)
        if initial is not None:  # start from given weights (softshare.inherit), not at random
            if initial.config.to_dict() != model_config.to_dict():
                raise ValueError(
                    f"initial weights are of {initial.config.sharing_plan.name}, not "
                    f"{model_config.sharing_plan.name} (softshare.inherit makes them for a plan)."
                )
            self.model.load_state_dict(initial.state_dict())
        self.model = self.model.to(self.device)
        if self.device.type == "cuda" and not _deterministic():
            # Every training batch has one shape (drop_last), so cuDNN's autotuning is paid
            # once per run; the flag is process-wide and stays on.
            torch.backends.cudnn.benchmark = True
        if cfg.channels_last:
            to_channels_last(self.model)
        if cfg.compile:
            # Each architecture is new code to dynamo (other parameter shapes fail its guards),
            # and after torch's recompile limit (8 per process) a study's later runs would train
            # eager, silently. Compile per run: the earlier runs' compiled code is dropped first.
            torch._dynamo.reset()
        self.forward = torch.compile(self.model) if cfg.compile else self.model
        self.graphs_before = _compiled_graphs() if cfg.compile else 0  # (imports dynamo)
        self.optimizer = torch.optim.SGD(
            parameter_groups(self.model, cfg.weight_decay),
            lr=cfg.lr,
            momentum=cfg.momentum,
            nesterov=cfg.nesterov and cfg.momentum > 0,
        )
        self.steps_per_epoch = num_batches(
            len(data.train.labels), cfg.batch_size, len(data.train.labels) >= cfg.batch_size
        )
        self.scheduler = _scheduler(self.optimizer, cfg, self.steps_per_epoch)
        # The averaged copy that is evaluated and saved; the raw weights train (and resume).
        self.ema = (
            AveragedModel(self.model, multi_avg_fn=get_ema_multi_avg_fn(cfg.ema), use_buffers=True)
            if cfg.ema > 0
            else None
        )
        self.generator = torch.Generator().manual_seed(
            cfg.seed
        )  # drives shuffling and augmentation
        self.data = data.to(self.device)
        self.epoch, self.best_val_acc, self.history = 0, None, []
        self.status, self.stop_reason, self.train_seconds = "running", "", 0.0

    def state(self) -> dict:
        return {
            "model_config": self.model_config.to_dict(),
            "train_config": self.cfg.to_dict(),
            "data_config": self.data_config.to_dict() if self.data_config else None,
            # the weights evaluated (the average where there is one): what loaders read
            "model_state": self.evaluated.state_dict(),
            "optimizer_state": self.optimizer.state_dict(),
            "scheduler_state": self.scheduler.state_dict(),
            "epoch": self.epoch,
            "best_val_acc": self.best_val_acc,
            "history": self.history,
            "status": self.status,
            "stop_reason": self.stop_reason,
            "train_seconds": self.train_seconds,
            "rng": self._rng_state(),
            **(
                {"train_state": self.model.state_dict(), "ema_count": int(self.ema.n_averaged)}
                if self.ema is not None
                else {}
            ),
            "environment": environment(self.device),
            "precision": self.precision,
            "num_classes": self.data.num_classes,
            "classes": list(self.data.classes),
            "mean": list(self.data.mean),
            "std": list(self.data.std),
        }

    @property
    def evaluated(self) -> nn.Module:
        """The model that is evaluated and saved: the weight average where there is one."""
        return self.ema.module if self.ema is not None else self.model

    def _rng_state(self) -> dict:
        rng = {"generator": self.generator.get_state(), "torch": torch.get_rng_state()}
        if self.device.type == "cuda":
            rng["cuda"] = torch.cuda.get_rng_state(self.device)
        return rng

    def restore(self, ckpt: dict) -> None:
        """Continue from a checkpoint read onto the CPU (:func:`load_checkpoint`'s default).

        ``load_state_dict`` copies weights and optimizer state onto the run's device; the RNG
        states must stay CPU ByteTensors, which is why the file is not read onto the device.
        """
        if self.ema is not None:
            self.model.load_state_dict(ckpt["train_state"])
            self.ema.module.load_state_dict(ckpt["model_state"])
            self.ema.n_averaged.fill_(ckpt["ema_count"])
        else:
            self.model.load_state_dict(ckpt["model_state"])
        self.optimizer.load_state_dict(ckpt["optimizer_state"])
        self.scheduler.load_state_dict(ckpt["scheduler_state"])
        # "curve": the key of checkpoints written before nas took that word for accuracies.
        self.epoch, self.best_val_acc, self.history = (
            ckpt["epoch"],
            ckpt["best_val_acc"],
            list(ckpt["history"] if "history" in ckpt else ckpt["curve"]),
        )
        # "completed": the word of checkpoints written before the vocabulary was unified.
        status = ckpt["status"]
        self.status = "complete" if status == "completed" else status
        self.stop_reason = ckpt["stop_reason"]
        self.train_seconds = ckpt["train_seconds"]
        rng = ckpt["rng"]
        self.generator.set_state(rng["generator"])
        torch.set_rng_state(rng["torch"])
        if self.device.type == "cuda" and "cuda" in rng:  # absent where the run began on a CPU
            torch.cuda.set_rng_state(rng["cuda"], self.device)

    def result(self) -> RunResult:
        val = [row["val_acc"] for row in self.history]
        speeds = [row["images_per_s"] for row in self.history]
        return RunResult(
            status=self.status,
            epochs_run=self.epoch,
            best_val_acc=self.best_val_acc,
            final_val_acc=val[-1] if val else None,
            history=list(self.history),
            stop_reason=self.stop_reason,
            train_seconds=self.train_seconds,
            images_per_s=sum(speeds) / len(speeds) if speeds else 0.0,
            parameters=count_parameters(self.model),
            device=environment(self.device)["device"],
            precision=self.precision,
        )


def _deterministic() -> bool:
    """Whether the caller asked for reproducible kernels: then no autotuning, whose choice of
    algorithm depends on timings and so changes the rounding from run to run."""
    return torch.backends.cudnn.deterministic or torch.are_deterministic_algorithms_enabled()


def _scheduler(optimizer: torch.optim.Optimizer, cfg: TrainConfig, steps_per_epoch: int):
    if cfg.lr_update == "step":  # a factor of the base lr at every step of the run
        total, warm = cfg.epochs * steps_per_epoch, cfg.warmup * steps_per_epoch

        def factor(step: int) -> float:
            if step < warm:
                return (step + 1) / warm
            if cfg.schedule == "cosine":
                return 0.5 * (1 + math.cos(math.pi * min(step, total) / total))
            return cfg.gamma ** sum(step >= m * steps_per_epoch for m in cfg.milestones)

        return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
    if cfg.schedule == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=cfg.epochs)
    return torch.optim.lr_scheduler.MultiStepLR(
        optimizer, milestones=list(cfg.milestones), gamma=cfg.gamma
    )


class _Tally:
    """An epoch's loss sum and correct count, kept on the device and read without a host sync.

    :meth:`poll` (at progress points) gives the newest snapshot that has reached the host, or
    None: on CUDA a snapshot is a non-blocking copy into pinned memory whose arrival an event
    query tells, so the step loop never waits for the GPU (the figures lag by one progress
    interval); on the CPU it arrives at once. :meth:`final` is the epoch's one sync.
    """

    def __init__(self, device: torch.device) -> None:
        cuda = device.type == "cuda"
        self.device = device
        self.sums = torch.zeros(2, dtype=torch.float64, device=device)  # loss sum, correct
        self.host = torch.zeros(2, dtype=torch.float64, pin_memory=cuda)
        self.event = torch.cuda.Event() if cuda else None
        self.pending: tuple[int, int] | None = None  # (step, images) of the snapshot in flight

    def add(self, loss: torch.Tensor, logits: torch.Tensor, y: torch.Tensor) -> None:
        self.sums[0] += loss.detach().double() * len(y)
        self.sums[1] += (logits.detach().argmax(1) == y).sum()

    def poll(self, step: int, seen: int) -> tuple[int, int, float, float] | None:
        """(step, images, loss sum, correct) of the newest snapshot on the host, or None; takes
        a new snapshot at (step, seen) when none is in flight."""
        ready = self._arrived()
        if self.pending is None:
            self.host.copy_(self.sums, non_blocking=self.event is not None)
            if self.event is not None:
                self.event.record(torch.cuda.current_stream(self.device))
            self.pending = (step, seen)
            ready = self._arrived() or ready
        return ready

    def _arrived(self) -> tuple[int, int, float, float] | None:
        if self.pending is None or (self.event is not None and not self.event.query()):
            return None
        (step, seen), self.pending = self.pending, None
        loss_sum, correct = self.host.tolist()  # host memory: no sync
        return step, seen, loss_sum, correct

    def final(self) -> tuple[float, float]:
        loss_sum, correct = self.sums.tolist()  # waits for the epoch's last step
        return loss_sum, correct


def _train_epoch(run: _Run, progress) -> tuple[float, float, int, bool]:
    """One pass over the training split; returns loss, accuracy, images, and whether finite."""
    cfg, model = run.cfg, run.model
    model.train()
    augment = Augment(crop_padding=cfg.crop_padding, flip=cfg.flip, cutout=cfg.cutout)
    tally = _Tally(run.device)
    seen, finite, step = 0, True, 0
    total = len(run.data.train.labels) // cfg.batch_size or 1
    for step, (x, y) in enumerate(
        batches(
            run.data.train,
            cfg.batch_size,
            mean=run.data.mean,
            std=run.data.std,
            generator=run.generator,
            augment=augment,
            shuffle=True,
            drop_last=len(run.data.train.labels) >= cfg.batch_size,
            channels_last=cfg.channels_last,
        ),
        1,
    ):
        with autocast_context(run.device, run.precision):
            logits = run.forward(x)
            loss = F.cross_entropy(logits.float(), y, label_smoothing=cfg.label_smoothing)
        run.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        run.optimizer.step()
        if cfg.lr_update == "step":
            run.scheduler.step()
        if run.ema is not None:
            run.ema.update_parameters(model)
        tally.add(loss, logits, y)
        seen += len(y)
        if step % PROGRESS_EVERY == 0:  # no host sync: figures that have arrived, if any
            ready = tally.poll(step, seen)
            if ready is not None:
                at, images, loss_sum, correct = ready
                if not math.isfinite(loss_sum):
                    finite = False
                    break
                if progress is not None:
                    progress.batch(at, total, loss_sum / images, correct / images)
    loss_sum, correct = tally.final()  # the epoch's one host sync
    mean_loss, accuracy = loss_sum / max(seen, 1), correct / max(seen, 1)
    finite = finite and math.isfinite(mean_loss)
    if progress is not None and finite and seen:
        progress.batch(step, total, mean_loss, accuracy)
    return mean_loss, accuracy, seen, finite


def _save(run: _Run, out: pathlib.Path | None, best: bool) -> None:
    if out is None:
        return
    save_checkpoint(out / CHECKPOINT, run.state())
    if best:  # the same state: a second name of the file just written, not a second write
        atomic_same_file(out / CHECKPOINT, out / BEST)
    atomic_write_text(out / METRICS, dumps(run.result().to_dict()))


def _run_epoch(run: _Run, out, callbacks, progress) -> None:
    cfg = run.cfg
    run.epoch += 1
    if progress is not None:
        progress.epoch_start(run.epoch, cfg.epochs)
    start = time.perf_counter()
    train_loss, train_acc, seen, finite = _train_epoch(run, progress)
    seconds = time.perf_counter() - start
    run.train_seconds += seconds
    lr = run.optimizer.param_groups[0]["lr"]
    if cfg.lr_update == "epoch":
        run.scheduler.step()
    if not finite:
        run.status, run.stop_reason = "diverged", f"non-finite training loss in epoch {run.epoch}"
        log.warning("run diverged: %s", run.stop_reason)
    val_loss = val_acc = None
    if finite and run.data.val is not None and len(run.data.val.labels):
        val_loss, val_acc = evaluate(
            run.evaluated,
            run.data.val,
            run.data.mean,
            run.data.std,
            batch_size=cfg.eval_batch_size,
            precision=run.precision,
            channels_last=cfg.channels_last,
        )
    metrics = EpochMetrics(
        run.epoch,
        cfg.epochs,
        train_loss,
        train_acc,
        val_loss,
        val_acc,
        lr,
        seconds,
        seen / seconds if seconds > 0 else 0.0,
        _compiled_graphs() > run.graphs_before if cfg.compile else None,
    )
    run.history.append(asdict(metrics))
    improved = val_acc is not None and (run.best_val_acc is None or val_acc > run.best_val_acc)
    if improved:
        run.best_val_acc = val_acc
    if progress is not None:
        progress.epoch_end(metrics)
    if run.status == "running" and run.epoch >= cfg.epochs:
        run.status = "complete"
    _save(run, out, best=improved or (run.data.val is None and finite))
    # The callback sees every epoch (progress, curves); a stop only matters before the last.
    callback, result_callback = callbacks
    decision = None
    if run.status != "diverged":
        decision = callback(metrics) if callback is not None else None
        if result_callback is not None:
            decision = result_callback(run.result()) or decision
    if decision and run.status == "running":
        run.status, run.stop_reason = (
            "stopped",
            decision if isinstance(decision, str) else "stopped by callback",
        )
        _save(run, out, best=False)


def _compiled_graphs() -> int:
    """Graphs torch.compile has compiled in this process (dynamo's own count)."""
    from torch._dynamo.utils import counters

    return counters["stats"]["unique_graphs"]


def train(
    model_config: ModelConfig,
    cfg: TrainConfig,
    data: Dataset,
    *,
    data_config: DataConfig | None = None,
    out_dir: str | os.PathLike | None = None,
    resume: bool = False,
    callback: Callback | None = None,
    progress=None,
    initial: nn.Module | None = None,
    result_callback: ResultCallback | None = None,
) -> RunResult:
    """Train a model of ``model_config`` on ``data`` with recipe ``cfg``.

    ``out_dir``: where checkpoint.pt, model_best.pt and metrics.json are written every epoch.
    ``resume``: continue from ``out_dir/checkpoint.pt`` if present (the configs must match).
    ``progress``: an object with epoch_start/batch/epoch_end methods (see softshare.console), or None.
    ``initial``: a model of ``model_config`` whose weights the run starts from (e.g. one made by
    :func:`softshare.inherit`) instead of a random initialisation; a resume ignores it.
    ``result_callback``: as ``callback``, handed the run so far (a RunResult without coefficients).

    Whatever the run raises (``torch.OutOfMemoryError`` included) propagates as itself, after
    the run's memory is released (the locals of the traceback's frames are cleared for that).
    """
    if model_config.num_classes != data.num_classes:
        raise ValueError(
            f"model has {model_config.num_classes} classes but the dataset {data.name} has "
            f"{data.num_classes}; set num_classes={data.num_classes}."
        )
    out = pathlib.Path(out_dir) if out_dir is not None else None
    device, run = resolve_device(cfg.device), None
    try:
        run = _Run(model_config, cfg, data, data_config, initial)
        return _train(run, out, resume, (callback, result_callback), progress)
    except BaseException as exc:
        # The traceback holds every frame the error went through, and with them the model, the
        # batch and its activations: clear their locals, so that the memory is released below
        # and not kept by the caller's copy of the error (a study records a failed trial, an
        # out-of-memory one included, and goes on to the next). The error itself propagates.
        traceback.clear_frames(exc.__traceback__)
        raise
    finally:
        del run
        release_memory(device)


def _train(run: _Run, out: pathlib.Path | None, resume: bool, callbacks, progress) -> RunResult:
    model_config, cfg, data_config = run.model_config, run.cfg, run.data_config
    if resume and out is not None and (out / CHECKPOINT).exists():
        ckpt = load_checkpoint(out / CHECKPOINT)  # onto the CPU: see _Run.restore
        _check_resumable(ckpt, run, out / CHECKPOINT)
        run.restore(ckpt)
        log.info("resumed %s at epoch %d", out, run.epoch)
    elif out is not None:
        out.mkdir(parents=True, exist_ok=True)
        atomic_write_text(
            out / "config.json",
            dumps(
                {
                    "model_config": model_config.to_dict(),
                    "train_config": cfg.to_dict(),
                    "data_config": data_config.to_dict() if data_config else None,
                }
            ),
        )
    while run.status == "running" and run.epoch < cfg.epochs:
        _run_epoch(run, out, callbacks, progress)
    if progress is not None and hasattr(progress, "close"):
        progress.close()
    result = run.result()
    result.coefficients = coefficient_matrices(run.evaluated)
    return result


def _check_resumable(ckpt: dict, run: _Run, path: pathlib.Path) -> None:
    """A checkpoint resumes only the run it came from: same model, recipe (bar runtime) and data."""
    if ckpt["model_config"] != run.model_config.to_dict():
        raise ValueError(
            f"{path} holds model {ckpt['model_config']['plan']!r}, not {run.model_config.plan!r}; "
            f"use another --out or drop --resume."
        )
    # a checkpoint older than a recipe field has that field's default
    saved = {
        k: v
        for k, v in TrainConfig.from_dict(ckpt["train_config"]).to_dict().items()
        if k not in RUNTIME_FIELDS
    }
    current = {k: v for k, v in run.cfg.to_dict().items() if k not in RUNTIME_FIELDS}
    if saved != current:
        changed = sorted(k for k in current if saved.get(k) != current[k])
        raise ValueError(
            f"{path} was trained with a different recipe ({', '.join(changed)}); "
            f"resume with the same flags or use another --out."
        )
    where = {"root", "download"}  # the same data may live elsewhere now
    saved_data = {k: v for k, v in (ckpt.get("data_config") or {}).items() if k not in where}
    if (
        run.data_config is not None
        and saved_data
        and saved_data != {k: v for k, v in run.data_config.to_dict().items() if k not in where}
    ):
        raise ValueError(
            f"{path} was trained on other data ({ckpt['data_config']['dataset']!r}, split or subset); "
            f"resume with the same data flags or use another --out."
        )
