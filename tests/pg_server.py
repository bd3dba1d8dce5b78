"""A throwaway PostgreSQL server for tests: initdb in a temporary folder, started on a free port.

Uses the server binaries of Debian's ``postgresql`` package (``/usr/lib/postgresql/<v>/bin``) or
whatever ``initdb`` is on PATH. PostgreSQL refuses to run as root, so as root the server runs as
the ``postgres`` user the package creates. Only 127.0.0.1 and a socket in the folder are listened
on; authentication is ``trust`` (nothing outside this machine reaches it).
"""

from __future__ import annotations

import contextlib
import glob
import os
import pathlib
import pwd
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator

__all__ = ["server_bin_dir", "postgres_server"]


def server_bin_dir() -> pathlib.Path | None:
    """The folder holding initdb and pg_ctl, or None when PostgreSQL is not installed."""
    debian = [pathlib.Path(p).parent for p in glob.glob("/usr/lib/postgresql/*/bin/initdb")]
    if debian:  # the newest version installed
        return max(debian, key=lambda d: int(d.parent.name) if d.parent.name.isdigit() else 0)
    found = shutil.which("initdb")
    return (
        pathlib.Path(found).resolve().parent if found else None
    )  # a link in /usr/local/bin: its target


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _as_server_user(args: list[str]) -> list[str]:
    if os.geteuid() != 0:
        return args
    return ["runuser", "-u", "postgres", "--", *args]


def _run(args: list[str]) -> None:
    done = subprocess.run(_as_server_user(args), capture_output=True, text=True, timeout=120)
    if done.returncode:
        raise RuntimeError(
            f"{' '.join(args[:2])} failed ({done.returncode}): {done.stderr.strip() or done.stdout.strip()}"
        )


@contextlib.contextmanager
def postgres_server(database: str = "nas") -> Iterator[str]:
    """Start a server with an empty ``database``; yields its SQLAlchemy URL; stops and deletes it after."""
    bin_dir = server_bin_dir()
    if bin_dir is None:
        raise FileNotFoundError("PostgreSQL server binaries (initdb, pg_ctl) are not installed")
    root = pathlib.Path(tempfile.mkdtemp(prefix="pg-test-"))
    if os.geteuid() == 0:  # the server user must own its folder
        user = pwd.getpwnam("postgres")
        os.chown(root, user.pw_uid, user.pw_gid)
    data, port = root / "data", _free_port()
    try:
        _run(
            [
                str(bin_dir / "initdb"),
                "-D",
                str(data),
                "-A",
                "trust",
                "-U",
                "postgres",
                "--no-sync",
            ]
        )
        options = f"-p {port} -k {root} -c listen_addresses=127.0.0.1 -c fsync=off"
        _run(
            [
                str(bin_dir / "pg_ctl"),
                "-D",
                str(data),
                "-o",
                options,
                "-l",
                str(root / "server.log"),
                "-w",
                "start",
            ]
        )
        try:
            _run(
                [
                    str(bin_dir / "createdb"),
                    "-h",
                    "127.0.0.1",
                    "-p",
                    str(port),
                    "-U",
                    "postgres",
                    database,
                ]
            )
            yield f"postgresql+psycopg2://postgres@127.0.0.1:{port}/{database}"
        finally:
            _run([str(bin_dir / "pg_ctl"), "-D", str(data), "-m", "fast", "-w", "stop"])
    finally:
        shutil.rmtree(root, ignore_errors=True)
