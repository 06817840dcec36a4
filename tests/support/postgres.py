"""A real, throwaway PostgreSQL server for tests (no pytest, no Docker).

It runs the distribution's ``initdb``/``pg_ctl`` (searched in PATH, ``$PG_BIN`` and
``/usr/lib/postgresql/*/bin``) on a free port of 127.0.0.1, with its data and socket in a
temporary directory and ``fsync=off``: durability is not what these tests check. PostgreSQL
refuses to run as root, so as root the server runs as ``postgres`` (or ``nobody``).

Set ``CEREBELUM_TEST_POSTGRES_URL`` (a superuser or CREATEDB URL) to use an existing
server instead; each test database is then created and dropped on it.

Typical use::

    server = start_postgres()        # raises PostgresUnavailable when there is no PostgreSQL
    url = server.create_database()   # postgresql://postgres@127.0.0.1:PORT/test_...
    ...
    server.drop_database(url)
    server.stop()

Run as a script for a server to poke at by hand: ``python tests/support/postgres.py``.
"""

from __future__ import annotations

import atexit
import contextlib
import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from pathlib import Path

import psycopg
from psycopg import sql
from sqlalchemy.engine import make_url

__all__ = [
    "ENV_URL",
    "PostgresServer",
    "PostgresUnavailable",
    "find_bin_dir",
    "start_postgres",
]

ENV_URL = "CEREBELUM_TEST_POSTGRES_URL"


class PostgresUnavailable(RuntimeError):
    """No PostgreSQL binaries and no CEREBELUM_TEST_POSTGRES_URL: tests needing one cannot run."""


def find_bin_dir() -> Path | None:
    """The directory holding ``initdb`` and ``pg_ctl``: $PG_BIN, then PATH, then the newest packaged version."""
    candidates: list[Path] = []
    if os.environ.get("PG_BIN"):
        candidates.append(Path(os.environ["PG_BIN"]))
    initdb = shutil.which("initdb")
    if initdb:
        candidates.append(Path(initdb).resolve().parent)
    packaged = glob.glob("/usr/lib/postgresql/*/bin") + glob.glob("/usr/pgsql-*/bin")
    candidates += sorted((Path(p) for p in packaged), key=_version_key, reverse=True)
    for directory in candidates:
        if (directory / "initdb").is_file() and (directory / "pg_ctl").is_file():
            return directory
    return None


def _version_key(path: Path) -> tuple[int, str]:
    digits = "".join(ch for ch in path.parent.name if ch.isdigit())
    return (int(digits) if digits else 0, str(path))


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _unprivileged_user() -> pwd.struct_passwd | None:
    """Whom to run the server as: None when we are not root (then we run it ourselves)."""
    if os.geteuid() != 0:
        return None
    for name in ("postgres", "nobody"):
        with contextlib.suppress(KeyError):
            return pwd.getpwnam(name)
    raise PostgresUnavailable("running as root, and neither a 'postgres' nor a 'nobody' user exists")


class PostgresServer:
    """A server for tests: either one we started (``start``) or an existing one (``external``)."""

    def __init__(self, admin_url: str, *, process_dir: Path | None = None, bin_dir: Path | None = None) -> None:
        self.admin_url = admin_url  # connects to the maintenance database as a superuser
        self._dir = process_dir
        self._bin_dir = bin_dir
        self._user = _unprivileged_user() if process_dir is not None else None
        self._options = ""  # the server's command-line options, kept to start it again (`restart`)

    # -- starting and stopping -------------------------------------------------------------------------
    @classmethod
    def external(cls, url: str) -> PostgresServer:
        return cls(url)

    @classmethod
    def start(cls, bin_dir: Path | None = None, *, timeout_s: float = 60.0, durable: bool = False) -> PostgresServer:
        """Start a server; ``durable`` keeps fsync on (benchmarks), otherwise it is off (tests)."""
        bin_dir = bin_dir or find_bin_dir()
        if bin_dir is None:
            raise PostgresUnavailable(
                "no PostgreSQL server binaries (initdb, pg_ctl) found in $PG_BIN, PATH or /usr/lib/postgresql/*/bin; "
                f"install PostgreSQL or set {ENV_URL}"
            )
        base = Path(tempfile.mkdtemp(prefix="cerebelum-pg-"))
        server = cls("", process_dir=base, bin_dir=bin_dir)
        try:
            server._boot(timeout_s, durable=durable)
        except BaseException:
            server.stop()
            raise
        return server

    def _boot(self, timeout_s: float, *, durable: bool) -> None:
        assert self._dir is not None
        if self._user is not None:
            os.chown(self._dir, self._user.pw_uid, self._user.pw_gid)
        data = self._dir / "data"
        self._run("initdb", "-D", str(data), "--auth=trust", "-U", "postgres", "-E", "UTF8", "--locale=C", "--no-sync")
        last_error: subprocess.CalledProcessError | None = None
        for _ in range(3):  # the free port may be taken between probing and binding it
            port = _free_port()
            options = " ".join(
                [
                    f"-p {port}",
                    "-c listen_addresses=127.0.0.1",
                    f"-c unix_socket_directories={self._dir}",
                    *([] if durable else ["-c fsync=off", "-c full_page_writes=off"]),
                    "-c max_connections=200",
                ]
            )
            try:
                self._run(
                    "pg_ctl", "-D", str(data), "-l", str(self._dir / "postgres.log"),
                    "-o", options, "-w", "-t", str(int(timeout_s)), "start",
                )  # fmt: skip
            except subprocess.CalledProcessError as e:
                last_error = e
                continue
            self.admin_url = f"postgresql://postgres@127.0.0.1:{port}/postgres"
            self._options = options
            atexit.register(self.stop)
            return
        raise RuntimeError(f"PostgreSQL did not start; see {self._dir / 'postgres.log'}:\n{self.log_tail()}") from (
            last_error
        )

    def _run(self, tool: str, *args: str, cwd: Path | None = None) -> None:
        assert self._bin_dir is not None
        command = [str(self._bin_dir / tool), *args]
        if self._user is not None:
            command = ["runuser", "-u", self._user.pw_name, "--", *command]
        result = subprocess.run(command, cwd=cwd or self._dir, capture_output=True, text=True, check=False)
        if result.returncode != 0:
            raise subprocess.CalledProcessError(result.returncode, command, result.stdout, result.stderr)

    def log_tail(self, lines: int = 30) -> str:
        if self._dir is None:
            return ""
        try:
            return "\n".join((self._dir / "postgres.log").read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def restart(self, *, mode: str = "immediate", down_s: float = 0.0, timeout_s: float = 60.0) -> None:
        """Stop the server we started and start it again on the same data directory and port.

        ``immediate`` stops it as a crash would (every backend killed, recovery from the WAL at
        start); ``fast`` rolls back open transactions and shuts down cleanly. Clients see their
        connections drop either way. ``down_s`` keeps it stopped that long in between.
        """
        if self._dir is None:
            raise PostgresUnavailable("only a server these tests started can be restarted")
        if mode not in ("immediate", "fast", "smart"):
            raise ValueError(f"mode must be immediate, fast or smart, not {mode!r}")
        data = self._dir / "data"
        self._run("pg_ctl", "-D", str(data), "-m", mode, "-w", "-t", str(int(timeout_s)), "stop")
        if down_s > 0:
            time.sleep(down_s)
        try:
            self._run(
                "pg_ctl", "-D", str(data), "-l", str(self._dir / "postgres.log"),
                "-o", self._options, "-w", "-t", str(int(timeout_s)), "start",
            )  # fmt: skip
        except subprocess.CalledProcessError as e:
            raise RuntimeError(f"PostgreSQL did not start again:\n{self.log_tail()}") from e

    def stop(self) -> None:
        """Stop the server we started and remove its files; an external server is left alone."""
        if self._dir is None:
            return
        directory, self._dir = self._dir, None
        data = directory / "data"
        if (data / "postmaster.pid").exists():
            with contextlib.suppress(subprocess.CalledProcessError):
                self._run("pg_ctl", "-D", str(data), "-m", "immediate", "-w", "stop", cwd=directory)
        shutil.rmtree(directory, ignore_errors=True)
        atexit.unregister(self.stop)

    # -- databases ---------------------------------------------------------------------------------------
    def create_database(self, name: str | None = None) -> str:
        """Create an empty database; return its URL."""
        name = name or f"test_{uuid.uuid4().hex[:16]}"
        with psycopg.connect(self.admin_url, autocommit=True) as conn:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        return make_url(self.admin_url).set(database=name).render_as_string(hide_password=False)

    def drop_database(self, url_or_name: str) -> None:
        name = (make_url(url_or_name).database or "") if "://" in url_or_name else url_or_name
        with psycopg.connect(self.admin_url, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


def start_postgres() -> PostgresServer:
    """The server named by CEREBELUM_TEST_POSTGRES_URL, or a new throwaway one."""
    url = os.environ.get(ENV_URL)
    if url:
        return PostgresServer.external(url)
    return PostgresServer.start()


def _wait_forever(server: PostgresServer) -> None:  # pragma: no cover - manual use
    print(server.create_database("cerebelum"), flush=True)
    print("Ctrl-C stops the server", flush=True)
    with contextlib.suppress(KeyboardInterrupt):
        while True:
            time.sleep(3600)


if __name__ == "__main__":  # pragma: no cover - manual use
    _server = start_postgres()
    try:
        _wait_forever(_server)
    finally:
        _server.stop()
