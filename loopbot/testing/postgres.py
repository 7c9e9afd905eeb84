"""A real PostgreSQL server for tests: Debian's binaries, a cluster made with initdb in a temporary
directory, listening on a free loopback port, stopped and removed afterwards. Run as root (CI),
the cluster belongs to the `postgres` user (or nobody), as initdb refuses to run as root."""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

ROOTS = (Path("/usr/lib/postgresql"),)
USER = "loopbot"


def binaries() -> Path | None:
    """The newest installed server's bin directory (Debian: /usr/lib/postgresql/<major>/bin)."""
    found = []
    for root in ROOTS:
        if root.is_dir():
            for version in root.iterdir():
                if (version / "bin" / "initdb").is_file() and version.name.isdigit():
                    found.append((int(version.name), version / "bin"))
    return max(found)[1] if found else None


@dataclass(frozen=True)
class PostgresServer:
    host: str
    port: int
    user: str

    def url(self, database: str = "postgres") -> str:
        return f"postgresql+psycopg://{self.user}@{self.host}:{self.port}/{database}"

    def create_database(self, name: str) -> str:
        """A fresh, empty database; its SQLAlchemy URL."""
        import psycopg

        with psycopg.connect(host=self.host, port=self.port, user=self.user, dbname="postgres",
                             autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _owner() -> pwd.struct_passwd | None:
    """Whom the cluster runs as: None (ourselves) unless we are root."""
    if os.geteuid() != 0:
        return None
    for name in ("postgres", "nobody"):
        try:
            return pwd.getpwnam(name)
        except KeyError:
            continue
    raise RuntimeError("running as root with neither a postgres nor a nobody user to run PostgreSQL as")


@contextmanager
def postgres_server(bin_dir: Path) -> Iterator[PostgresServer]:
    owner = _owner()
    base = Path(tempfile.mkdtemp(prefix="loopbot-pg-"))
    data, sockets, log = base / "data", base / "run", base / "server.log"
    sockets.mkdir()
    prefix: list[str] = []
    if owner is not None:
        for path in (base, sockets):
            os.chown(path, owner.pw_uid, owner.pw_gid)
        prefix = ["runuser", "-u", owner.pw_name, "--"]
    port = _free_port()

    def run(*args: str) -> None:
        done = subprocess.run([*prefix, *args], capture_output=True, text=True, cwd=base, check=False)
        if done.returncode != 0:
            tail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
            raise RuntimeError(f"{Path(args[0]).name} failed ({done.returncode}): {done.stderr[-2000:]}\n{tail}")

    try:
        run(str(bin_dir / "initdb"), "-D", str(data), "-U", USER, "-A", "trust", "-E", "UTF8", "--no-sync",
            "--no-instructions")
        # fsync off: a test cluster that dies is thrown away anyway.
        options = f"-h 127.0.0.1 -p {port} -k {sockets} -F -c max_connections=100 -c shared_buffers=16MB"
        run(str(bin_dir / "pg_ctl"), "-D", str(data), "-l", str(log), "-o", options, "-w", "-t", "60", "start")
        try:
            yield PostgresServer("127.0.0.1", port, USER)
        finally:
            run(str(bin_dir / "pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "stop")
    finally:
        shutil.rmtree(base, ignore_errors=True)
