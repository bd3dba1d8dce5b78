"""How a study runs on Ray (``--backend ray``): :class:`RayOptions`, in a module that does not
import Ray, so that the command line declares its flags from these fields without it."""

from __future__ import annotations

from dataclasses import dataclass

from softshare.strict import option
from softshare.validate import is_int, is_number

__all__ = ["RayOptions"]


@dataclass(frozen=True)
class RayOptions:
    """Where and how a study runs on Ray; none of it is part of the study's identity.

    Attributes:
        address: ``None`` starts a local Ray runtime; ``"auto"`` joins the cluster this machine
            belongs to; ``"ray://HOST:PORT"`` connects through Ray Client.
        cpus_per_trial: CPUs reserved per trial, > 0 (fractions allowed).
        gpus_per_trial: GPUs per trial, >= 0; a fraction < 1 packs several trials on one card
            (0.5: two per card), above 1 it must be whole.
        max_concurrent: at most this many trials at once, >= 1; ``None``: as many as fit.
        max_failures: times a trial whose worker died is restarted from its checkpoint, >= 0.
        resume: continue the study's last Ray run (``Tuner.restore``) instead of starting one.
        storage_path: parent folder (or ``s3://``/``gs://`` URI) of Ray's run folders; ``None``:
            ``<study folder>/ray``. Every node must reach it on a multi-node cluster.
        verbose: Ray's console output, 0 (none) to 2.
    """

    # option(): the field's default and what its command-line flag shows (nas.cli.flags builds the
    # backend flags from these; softshare.strict)
    address: str | None = option(
        None,
        "ray: auto (the cluster this machine is in) or ray://HOST:PORT (default: start a local "
        "runtime)",
        metavar="ADDR",
    )
    cpus_per_trial: float = option(1.0, "ray: CPUs reserved per trial", gt=0.0, metavar="N")
    gpus_per_trial: float = option(
        0.0,
        "ray: GPUs per trial; a fraction packs trials on one card, 0.5 = two per card",
        min=0.0,
        metavar="N",
    )
    max_concurrent: int | None = option(
        None,
        "ray: at most N trials at once (default: as many as the resources allow)",
        min=1,
        metavar="N",
    )
    max_failures: int = option(
        2, "ray: restarts of a trial whose worker died, from its last epoch", min=0, metavar="N"
    )
    resume: bool = option(
        False, "ray: continue the study's last Ray run where it was interrupted (Tuner.restore)"
    )
    storage_path: str | None = option(
        None,
        "ray: parent of Ray's run folders, reachable by every node (default <study>/ray)",
        flag="--ray-storage",
        metavar="PATH",
    )
    verbose: int = 1  # no flag: --quiet sets 0

    def __post_init__(self) -> None:
        if not is_number(self.cpus_per_trial) or self.cpus_per_trial <= 0:
            raise ValueError(
                f"cpus_per_trial must be a number > 0, but got cpus_per_trial={self.cpus_per_trial!r}."
            )
        gpus = self.gpus_per_trial
        if not is_number(gpus) or gpus < 0 or (gpus > 1 and gpus != int(gpus)):
            raise ValueError(
                f"gpus_per_trial must be a fraction in [0, 1] or a whole number of GPUs, "
                f"but got gpus_per_trial={gpus!r}."
            )
        if self.max_concurrent is not None and (
            not is_int(self.max_concurrent) or self.max_concurrent < 1
        ):
            raise ValueError(
                f"max_concurrent must be an integer >= 1 or None, but got max_concurrent={self.max_concurrent!r}."
            )
        if not is_int(self.max_failures) or self.max_failures < 0:
            raise ValueError(
                f"max_failures must be an integer >= 0, but got max_failures={self.max_failures!r}."
            )
        if not is_int(self.verbose) or not 0 <= self.verbose <= 2:
            raise ValueError(f"verbose must be 0, 1 or 2, but got verbose={self.verbose!r}.")
