"""Where a study's trials live: an Optuna storage, and the liveness of the workers writing it.

:func:`open_storage` (a journal file by default, or any Optuna URL); :func:`fail_stale_trials`
marks FAIL a trial whose worker is gone.

Design: docs/design.md#nasstorage
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import pathlib
import shutil
import socket
import time

import optuna
from optuna.storages import JournalStorage
from optuna.storages.journal import JournalFileBackend, JournalFileSymlinkLock
from optuna.trial import TrialState

from softshare.checkpoint import atomic_write_bytes

from .schema import DIRECTIONS, JOURNAL_FILE

__all__ = [
    "open_storage",
    "open_study",
    "repair_journal",
    "worker_identity",
    "fail_running_trial",
    "fail_stale_trials",
    "study_lock",
    "HEARTBEAT_S",
    "STALE_AFTER_S",
]

log = logging.getLogger(__name__)
HEARTBEAT_S = 30.0  # a running trial refreshes its heartbeat at least this often (and every epoch)
STALE_AFTER_S = 600.0  # a trial of another host with no heartbeat for this long is failed


def open_storage(folder: pathlib.Path, url: str | None = None) -> optuna.storages.BaseStorage:
    """The journal file in ``folder`` (created if missing), or the storage at ``url``.

    Several processes may open a server database that has no tables yet at the same moment
    (workers started together on different machines): Optuna creates its tables on first
    connection, and the loser of that race gets a unique-violation or "already exists" error
    from the server. The tables exist by then, so connecting again succeeds."""
    if url:
        try:
            return _retry_schema_race(lambda: optuna.storages.get_storage(url))
        except _schema_race_errors():
            raise
        except (ImportError, ValueError, OSError, _sqlalchemy_error()) as exc:
            raise ValueError(storage_failure(url, exc)) from None
    folder.mkdir(parents=True, exist_ok=True)
    if (said := repair_journal(folder / JOURNAL_FILE)) is not None:
        log.warning("%s", said)
    return JournalStorage(JournalFileBackend(str(folder / JOURNAL_FILE)))


_OP = b'"op_code"'  # every journal record has one; a line with two is two records glued together


def repair_journal(path: pathlib.Path) -> str | None:
    """Mend a journal whose writer died mid-append (a crash, a full disk); None if it is whole.

    Optuna appends one JSON record per line under its file lock. A writer killed mid-append
    leaves a cut-off last record; the next append is then glued to it, and every later read
    fails. Under the same lock (so no live writer is mid-append), the cut-off fragment is
    dropped and a record glued after one is kept. The damaged file is kept beside the journal
    and the returned line says what was done. A line that cannot be mended this way is left
    alone (Optuna then reports it)."""
    if not path.is_file() or path.stat().st_size == 0:
        return None
    lock = JournalFileSymlinkLock(str(path))
    lock.acquire()
    try:
        data = path.read_bytes()
        lines = data.splitlines(keepends=True)
        kept, dropped = [], 0
        for line in lines:
            if line.endswith(b"\n") and line.count(_OP) == 1:
                kept.append(line)  # the common case, not parsed: a whole record
                continue
            mended = _mend(line)
            dropped += mended is None or mended != line
            if mended is not None:
                kept.append(mended)
        if not dropped:
            return None
        stamp = time.strftime("%Y%m%d-%H%M%S")
        copy = path.with_name(f"{path.name}.damaged-{stamp}")
        shutil.copy2(path, copy)
        atomic_write_bytes(path, b"".join(kept))
    finally:
        lock.release()
    return (
        f"{path}: a record was cut off mid-write (a crash or a full disk); resumed from the "
        f"{len(kept)} whole records, {dropped} damaged line(s) dropped; the damaged file is "
        f"kept as {copy.name}"
    )


def _mend(line: bytes) -> bytes | None:
    """A damaged journal line's last whole record (newline-terminated), or None if it has none."""
    if not line.endswith(b"\n"):
        return None  # the cut-off last record: never completed, so never acted on
    start = line.rfind(b"{" + _OP)
    candidate = line[start:] if start >= 0 else line
    try:
        json.loads(candidate)
    except ValueError:
        return None
    return candidate


def _sqlalchemy_error() -> type[BaseException]:
    import sqlalchemy.exc  # an Optuna dependency; only server storages reach it

    return sqlalchemy.exc.SQLAlchemyError


# What to install for a missing database driver (SQLAlchemy's default for postgresql:// is psycopg 3).
_DRIVERS = {
    "psycopg": "pip install 'psycopg[binary]', or write postgresql+psycopg2://... with "
    "psycopg2-binary (the [postgres] extra)",
    "psycopg2": "pip install psycopg2-binary (the [postgres] extra)",
    "MySQLdb": "pip install mysqlclient, or write mysql+pymysql://... with pymysql",
    "pymysql": "pip install pymysql",
}


def shown_url(url: str) -> str:
    """A storage URL to print or log: its password, if any, masked."""
    try:
        from sqlalchemy.engine import make_url

        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # not a URL SQLAlchemy parses: nothing to mask that it knows of
        return url


def url_without_password(url: str) -> str:
    """A storage URL with its password left out, for what is written to disk (study.json): the
    database driver then takes it from the environment (PostgreSQL: PGPASSWORD or ~/.pgpass;
    give ``--storage`` with the password again to resume otherwise)."""
    try:
        from sqlalchemy.engine import make_url

        parsed = make_url(url)
    except Exception:  # not a URL SQLAlchemy parses: it holds no password it knows of
        return url
    if parsed.password is None:
        return url
    # URL.set(password=None) keeps the old one (None there means "unchanged")
    return parsed._replace(password=None).render_as_string(hide_password=False)


def storage_failure(url: str, exc: BaseException) -> str:
    """One line for a storage URL that cannot be opened: what failed, what to check or install.
    The URL is shown without its password."""
    shown = shown_url(url)
    root = exc
    while root.__cause__ is not None:
        root = root.__cause__
    lines = [line.strip() for line in str(root).splitlines() if line.strip()]
    what = lines[0] if lines else type(root).__name__
    kind = type(root).__name__
    if kind == "NoSuchModuleError" or "Can't load plugin" in what:
        todo = "accepted: sqlite:///PATH, postgresql://USER:PASSWORD@HOST:PORT/DB, mysql://..."
    elif isinstance(root, ImportError):
        todo = _DRIVERS.get(
            getattr(root, "name", None) or "", "install the database driver it names"
        )
    elif url.startswith("sqlite"):
        todo = "check that the database file's folder exists and is writable"
    else:
        todo = "check that the server is running and reachable and the user, password and database exist"
        if (
            "@" in url
            and url_without_password(url) == url
            and url.startswith(("postgres", "mysql"))
        ):
            todo += (
                " (study.json keeps the URL without its password: set PGPASSWORD or ~/.pgpass, "
                "or give --storage with the password)"
            )
    return f"cannot open the storage {shown}: {what}; {todo}"


def _schema_race_errors() -> tuple[type[BaseException], ...]:
    """What a server raises to the loser of a concurrent CREATE TABLE/TYPE or INSERT of the same row."""
    import sqlalchemy.exc  # an Optuna dependency; only server storages reach it

    return (
        optuna.exceptions.DuplicatedStudyError,
        sqlalchemy.exc.IntegrityError,
        sqlalchemy.exc.ProgrammingError,
    )


def _retry_schema_race(make, attempts: int = 6):
    """``make()``, again after a short wait when another process won a creation race; the last
    attempt's error propagates."""
    for attempt in range(attempts):
        try:
            return make()
        except _schema_race_errors() as exc:
            if attempt == attempts - 1:
                raise
            log.info("storage creation race lost (%s); retrying", type(exc).__name__)
            time.sleep(0.2 * (attempt + 1))
    raise AssertionError("unreachable")


def open_study(
    name: str, storage, sampler: optuna.samplers.BaseSampler | None = None
) -> optuna.Study:
    """Create the study or load it; safe when several workers do so at the same moment."""

    def create() -> optuna.Study:
        return optuna.create_study(
            study_name=name,
            storage=storage,
            sampler=sampler,
            directions=list(DIRECTIONS),
            load_if_exists=True,
        )

    try:
        return _retry_schema_race(create)
    except optuna.exceptions.DuplicatedStudyError:  # created in between, every time: load it
        return optuna.load_study(study_name=name, storage=storage, sampler=sampler)


@contextlib.contextmanager
def study_lock(study: optuna.Study, folder: pathlib.Path, name: str = "slots"):
    """One process at a time, of all that share ``study``, runs the block (counting and taking a
    slot, claiming an architecture).

    On a PostgreSQL storage: a session advisory lock of the server, so processes on several
    machines, each with its own results folder, exclude each other (the server releases it if
    the process dies). Elsewhere (a journal file, SQLite): a file lock in the study folder, which
    the processes sharing such a storage share too."""
    engine = _server_engine(study)
    if engine is not None and engine.dialect.name == "postgresql":
        with _advisory_lock(engine, _lock_key(study.study_name, name)):
            yield
        return
    import fcntl

    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / f".{name}.lock", "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _server_engine(study: optuna.Study):
    """The SQLAlchemy engine of a database storage (under Optuna's cache), or None."""
    storage = study._storage
    storage = getattr(storage, "_backend", storage)  # optuna's _CachedStorage wraps an RDBStorage
    return getattr(storage, "engine", None)


def _lock_key(study_name: str, name: str) -> int:
    """A signed 64-bit key, the same in every process (Python's hash() is salted per process)."""
    digest = hashlib.sha256(f"softshare-nas/{study_name}/{name}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


@contextlib.contextmanager
def _advisory_lock(engine, key: int):
    from sqlalchemy import text

    with engine.connect() as conn:
        conn.execute(text("SELECT pg_advisory_lock(:key)"), {"key": key})
        try:
            yield
        finally:
            conn.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": key})


def _process_start(pid: int) -> str:
    """Start time of ``pid`` (Linux clock ticks since boot): tells a reused pid from ours."""
    try:
        return pathlib.Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return ""


def _pid_namespace() -> str:
    """This process's PID namespace ("pid:[4026531836]"), or "" where /proc does not say."""
    try:
        return os.readlink("/proc/self/ns/pid")
    except OSError:
        return ""


def worker_identity() -> dict:
    """Who runs a trial: host, PID namespace, pid and process start time, and a heartbeat."""
    pid = os.getpid()
    return {
        "host": socket.gethostname(),
        "pidns": _pid_namespace(),
        "pid": pid,
        "start": _process_start(pid),
        "heartbeat": time.time(),
    }


def _worker_alive(worker: dict) -> bool:
    """Whether the worker of a RUNNING trial still runs. Its pid means something only in our own
    PID namespace on our host (two containers may share a hostname, not their PIDs); anywhere
    else its heartbeat decides."""
    elsewhere = worker.get("host") != socket.gethostname() or (
        worker.get("pidns", "") != _pid_namespace()
    )
    if elsewhere:
        return time.time() - float(worker.get("heartbeat", 0)) < STALE_AFTER_S
    pid = int(worker.get("pid", -1))
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    start = _process_start(pid)
    return not (start and worker.get("start") and start != worker["start"])


def fail_stale_trials(study: optuna.Study, recover=None) -> list[int]:
    """Mark FAIL every RUNNING trial whose worker is gone; returns their numbers.

    ``recover(trial) -> bool``, when given, is tried first: a worker killed after training but
    before the study was told leaves a trial whose result is on disk (:func:`nas.trial.recover`),
    and such a trial is finished from it instead of failed and trained again."""
    failed = []
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        worker = trial.user_attrs.get("worker")
        if worker is None and time.time() - trial.datetime_start.timestamp() < STALE_AFTER_S:
            continue  # just asked for; its worker has not written its identity yet
        if worker is not None and _worker_alive(worker):
            continue
        reason = (
            f"worker {worker.get('host')}:{worker.get('pid')} died"
            if worker
            else "worker never reported"
        )
        if recover is not None and recover(trial):
            continue
        if fail_running_trial(study, trial, reason):
            failed.append(trial.number)
            log.warning(
                "trial %d was left running by a dead worker; marked failed (%s)",
                trial.number,
                reason,
            )
    return failed


def fail_running_trial(study: optuna.Study, trial: optuna.trial.FrozenTrial, reason: str) -> bool:
    """Mark a RUNNING trial that nobody will finish FAIL, with status "failed" and ``reason``;
    False when another process finished it first."""
    try:
        study._storage.set_trial_user_attr(trial._trial_id, "status", "failed")
        study._storage.set_trial_user_attr(trial._trial_id, "reason", reason)
        study._storage.set_trial_state_values(trial._trial_id, TrialState.FAIL)
        return True
    except optuna.exceptions.UpdateFinishedTrialError:
        return False
