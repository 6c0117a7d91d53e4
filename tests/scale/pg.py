"""A throwaway PostgreSQL server for the tests and the scale benchmark: the machine's own server
binaries (Debian's postgresql package), a cluster in a temp folder, listening on a loopback port.

initdb refuses to run as root, so as root the cluster is created and run as the `postgres` system
user that the Debian package creates (or DAENA_PG_OS_USER).
"""
from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path


class PostgresUnavailable(RuntimeError):
    pass


def server_bin_dir() -> Path:
    """The folder with initdb/pg_ctl: on PATH, else Debian's /usr/lib/postgresql/<major>/bin."""
    on_path = shutil.which("initdb")
    if on_path:
        return Path(on_path).parent
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(Path(p).parts[-3]))
    if not found:
        raise PostgresUnavailable("no PostgreSQL server binaries (initdb): apt-get install postgresql")
    return Path(found[-1]).parent


class PostgresServer:
    """`start()` a cluster, `create_database(name)`, `stop()`; `dsn(db)` is a libpq key=value string."""

    user = "postgres"
    host = "127.0.0.1"

    @staticmethod
    def free_port() -> int:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            return s.getsockname()[1]

    def __init__(self) -> None:
        self.bin = server_bin_dir()
        self.root = Path(tempfile.mkdtemp(prefix="daena-pg-"))
        self.data = self.root / "data"
        self.port = self.free_port()
        self.os_user = None
        if os.geteuid() == 0:
            self.os_user = os.environ.get("DAENA_PG_OS_USER", "postgres")
            try:
                account = pwd.getpwnam(self.os_user)
            except KeyError as exc:
                raise PostgresUnavailable(f"running as root and there is no {self.os_user!r} user to run initdb as") from exc
            os.chown(self.root, account.pw_uid, account.pw_gid)

    def _run(self, *args: str) -> None:
        command = [str(self.bin / args[0]), *args[1:]]
        if self.os_user:
            command = ["runuser", "-u", self.os_user, "--", *command]
        result = subprocess.run(command, capture_output=True, text=True, cwd=self.root)
        if result.returncode:
            raise PostgresUnavailable(f"{' '.join(command)} failed ({result.returncode}): {result.stderr or result.stdout}")

    def start(self) -> PostgresServer:
        self._run("initdb", "-D", str(self.data), "-A", "trust", "-U", self.user, "--no-sync")
        options = f"-p {self.port} -k {self.root} -c listen_addresses={self.host} -c fsync=off -c max_connections=200"
        self._run("pg_ctl", "-D", str(self.data), "-o", options, "-l", str(self.root / "server.log"), "-w", "start")
        return self

    def stop(self) -> None:
        try:
            self._run("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop")
        finally:
            shutil.rmtree(self.root, ignore_errors=True)

    def create_database(self, name: str) -> str:
        import psycopg2  # from dagster-postgres (the scale extra)

        con = psycopg2.connect(host=self.host, port=self.port, user=self.user, dbname="postgres")
        con.autocommit = True
        with con.cursor() as cur:
            cur.execute(f'CREATE DATABASE "{name}"')
        con.close()
        return self.dsn(name)

    def dsn(self, database: str) -> str:
        return f"dbname={database} host={self.host} port={self.port} user={self.user}"

    def lake_target(self, database: str) -> str:
        """The DAENA_WAREHOUSE value of a DuckLake catalog in `database`."""
        return f"ducklake:postgres:{self.dsn(database)}"
