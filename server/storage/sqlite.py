"""The device registry in one SQLite file, shared by the server and the ``murmur`` CLI.

- WAL, so the CLI can read while the server writes; every write is one
  ``BEGIN IMMEDIATE`` transaction, so a process killed mid-write (kill -9) leaves the
  last committed state and nothing half-written.
- A busy timeout, so two processes writing at once wait for each other instead of
  failing with "database is locked".
- ``PRAGMA user_version`` is the schema version; ``MIGRATIONS[n]`` takes the schema from
  n-1 to n inside the same transaction that bumps the version, so version 2 is one more
  function in the table.
- A file that is not a readable registry is reported, naming the file and what to do;
  it is never silently recreated (that would unpair every device without a word).

Not thread-safe: the owner calls it from one thread at a time (the pairing service's
one-thread executor; the CLI's main thread).
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from server.errors import StorageError
from server.storage.base import DeviceRecord, NewDevice, Redeemed

__all__ = ["DB_NAME", "MIGRATIONS", "SCHEMA_VERSION", "SqliteDeviceStore", "ensure_private_dir"]

DB_NAME = "devices.db"
BUSY_TIMEOUT_S = 5.0


def _v1(db: sqlite3.Connection) -> None:
    db.execute(
        """CREATE TABLE devices (
            id TEXT PRIMARY KEY,
            name TEXT NOT NULL,
            token_hash TEXT NOT NULL,
            created REAL NOT NULL,
            last_seen REAL,
            last_address TEXT NOT NULL DEFAULT '',
            revoked REAL
        )"""
    )
    db.execute(
        """CREATE TABLE pairing_codes (
            code_hash TEXT PRIMARY KEY,
            name TEXT NOT NULL DEFAULT '',
            expires REAL NOT NULL,
            used REAL
        )"""
    )
    # Small facts the server tells the CLI, e.g. the address it listens on.
    db.execute("CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")


MIGRATIONS: dict[int, Callable[[sqlite3.Connection], None]] = {1: _v1}
SCHEMA_VERSION = max(MIGRATIONS)


def ensure_private_dir(path: Path) -> Path:
    """Create ``path`` (and its parents) with the last one owner-only (0700)."""
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    if path.stat().st_mode & 0o077:
        path.chmod(0o700)
    return path


def _owner_only(path: Path) -> None:
    """The database and its -wal/-shm files: owner read/write only (0600)."""
    for file in (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
        try:
            if file.stat().st_mode & 0o077:
                file.chmod(0o600)
        except FileNotFoundError:
            continue  # no sidecar (yet), or another process's checkpoint just removed it


def _connect(path: Path) -> sqlite3.Connection:
    """Open, check and migrate; any SQLite failure becomes a StorageError naming the file."""
    try:
        db = sqlite3.connect(
            path, timeout=BUSY_TIMEOUT_S, isolation_level=None, check_same_thread=False
        )
    except sqlite3.Error as e:
        raise _unreadable(path, e) from e
    try:
        check = db.execute("PRAGMA quick_check").fetchone()
        if check is None or check[0] != "ok":
            raise sqlite3.DatabaseError(f"integrity check failed: {check}")
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=FULL")  # tiny writes; a power cut keeps a pairing
        with _transaction(db, path):
            version = db.execute("PRAGMA user_version").fetchone()[0]
            if version > SCHEMA_VERSION:
                raise StorageError(
                    f"{path} was written by a newer Murmur (schema {version}; this one "
                    f"knows up to {SCHEMA_VERSION}); upgrade Murmur or use another [pairing] state_dir"
                )
            for n in range(version + 1, SCHEMA_VERSION + 1):
                MIGRATIONS[n](db)
                db.execute(f"PRAGMA user_version = {n}")  # inside the transaction: all or nothing
    except BaseException as e:
        db.close()
        if isinstance(e, sqlite3.DatabaseError):
            raise _unreadable(path, e) from e
        if isinstance(e, StorageError) and isinstance(e.__cause__, sqlite3.DatabaseError):
            raise _unreadable(path, e.__cause__) from e
        raise
    return db


def _unreadable(path: Path, e: Exception) -> StorageError:
    return StorageError(
        f"{path} is not a readable Murmur device registry ({e}). Nothing was changed. "
        f"Move it aside (mv '{path}' '{path}.broken') and start the server again: "
        "it makes a new, empty registry, and every device must pair again (`murmur pair`)"
    )


@contextmanager
def _transaction(db: sqlite3.Connection, path: Path) -> Iterator[sqlite3.Connection]:
    try:
        db.execute("BEGIN IMMEDIATE")  # take the write lock now, not halfway through
    except sqlite3.OperationalError as e:
        raise StorageError(
            f"the device registry {path} is busy ({e}); try again in a moment"
        ) from e
    try:
        yield db
        db.execute("COMMIT")
    except BaseException as e:
        if db.in_transaction:
            db.execute("ROLLBACK")
        if isinstance(e, sqlite3.Error):
            raise StorageError(f"cannot write the device registry {path}: {e}") from e
        raise


class SqliteDeviceStore:
    def __init__(self, path: str | Path, *, create: bool = True) -> None:
        self.path = Path(path)
        if not self.path.exists():
            if not create:
                raise StorageError(f"no device registry at {self.path}")
            ensure_private_dir(self.path.parent)
            # Made owner-only before SQLite writes a byte.
            os.close(os.open(self.path, os.O_CREAT | os.O_RDWR, 0o600))
        # SQLite gives the -wal/-shm files it makes the database's mode: tighten a
        # looser file (a backup restored 0644) before connecting, and any sidecars
        # left behind by another process, before and after (connecting may make them).
        _owner_only(self.path)
        self._db = _connect(self.path)
        _owner_only(self.path)

    def _read(self, sql: str, args: tuple[object, ...] = ()) -> list[tuple[object, ...]]:
        try:
            return self._db.execute(sql, args).fetchall()
        except sqlite3.OperationalError as e:
            raise StorageError(f"cannot read the device registry {self.path}: {e}") from e

    # ---------------------------------------------------------------- codes

    def add_code(self, code_hash: str, expires: float, name: str = "") -> None:
        with _transaction(self._db, self.path) as db:
            db.execute(
                "INSERT INTO pairing_codes (code_hash, name, expires) VALUES (?, ?, ?)",
                (code_hash, name, expires),
            )

    def redeem_code(
        self, code_hash: str, now: float, device: NewDevice
    ) -> tuple[Redeemed, DeviceRecord | None]:
        with _transaction(self._db, self.path) as db:
            row = db.execute(
                "SELECT name, expires, used FROM pairing_codes WHERE code_hash = ?", (code_hash,)
            ).fetchone()
            if row is None:
                return Redeemed.UNKNOWN, None
            name, expires, used = row
            if used is not None:
                return Redeemed.USED, None
            if expires <= now:
                return Redeemed.EXPIRED, None
            if db.execute("SELECT 1 FROM devices WHERE id = ?", (device.id,)).fetchone():
                raise KeyError(device.id)
            db.execute("UPDATE pairing_codes SET used = ? WHERE code_hash = ?", (now, code_hash))
            record = DeviceRecord(device.id, name or device.name, device.token_hash, device.created)
            db.execute(
                "INSERT INTO devices (id, name, token_hash, created) VALUES (?, ?, ?, ?)",
                (record.id, record.name, record.token_hash, record.created),
            )
            return Redeemed.OK, record

    def prune_codes(self, before: float) -> int:
        with _transaction(self._db, self.path) as db:
            return db.execute("DELETE FROM pairing_codes WHERE expires < ?", (before,)).rowcount

    # ---------------------------------------------------------------- devices

    _COLUMNS = "id, name, token_hash, created, last_seen, last_address, revoked"

    def device(self, device_id: str) -> DeviceRecord | None:
        rows = self._read(f"SELECT {self._COLUMNS} FROM devices WHERE id = ?", (device_id,))
        return DeviceRecord(*rows[0]) if rows else None  # type: ignore[arg-type]

    def devices(self) -> list[DeviceRecord]:
        rows = self._read(f"SELECT {self._COLUMNS} FROM devices ORDER BY created, id")
        return [DeviceRecord(*r) for r in rows]  # type: ignore[arg-type]

    def touch(self, device_id: str, seen: float, address: str) -> None:
        with _transaction(self._db, self.path) as db:
            db.execute(
                "UPDATE devices SET last_seen = ?, last_address = ? WHERE id = ?",
                (seen, address, device_id),
            )

    def rename(self, device_id: str, name: str) -> bool:
        with _transaction(self._db, self.path) as db:
            cur = db.execute("UPDATE devices SET name = ? WHERE id = ?", (name, device_id))
            return cur.rowcount == 1

    def revoke(self, device_id: str, when: float) -> bool:
        with _transaction(self._db, self.path) as db:
            cur = db.execute(
                "UPDATE devices SET revoked = ? WHERE id = ? AND revoked IS NULL",
                (when, device_id),
            )
            return cur.rowcount == 1

    def revoked_ids(self) -> frozenset[str]:
        rows = self._read("SELECT id FROM devices WHERE revoked IS NOT NULL")
        return frozenset(str(r[0]) for r in rows)

    # ---------------------------------------------------------------- meta

    def get_meta(self, key: str) -> str | None:
        rows = self._read("SELECT value FROM meta WHERE key = ?", (key,))
        return str(rows[0][0]) if rows else None

    def set_meta(self, key: str, value: str) -> None:
        with _transaction(self._db, self.path) as db:
            db.execute(
                "INSERT INTO meta (key, value) VALUES (?, ?) "
                "ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                (key, value),
            )

    def close(self) -> None:
        self._db.close()
