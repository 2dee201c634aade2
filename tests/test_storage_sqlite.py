"""The device registry on a real SQLite file: schema, sharing, crashes, corruption, modes."""

from __future__ import annotations

import sqlite3
import stat
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from server.errors import StorageError
from server.storage.base import NewDevice, Redeemed
from server.storage.sqlite import DB_NAME, MIGRATIONS, SCHEMA_VERSION, SqliteDeviceStore

ROOT = Path(__file__).resolve().parents[1]


def _device(i: int | str, now: float = 1000.0) -> NewDevice:
    return NewDevice(f"dev{i}", f"phone {i}", f"hash{i}", now)


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "state" / DB_NAME


def test_migrates_an_empty_file_to_the_current_schema(db: Path):
    db.parent.mkdir()
    db.touch()  # empty: a brand-new SQLite database
    store = SqliteDeviceStore(db)
    store.close()
    con = sqlite3.connect(db)
    assert con.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION == max(MIGRATIONS)
    tables = {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert {"devices", "pairing_codes", "meta"} <= tables
    assert con.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    con.close()


def test_a_next_migration_is_one_function(db: Path, monkeypatch):
    SqliteDeviceStore(db).close()

    def v2(con: sqlite3.Connection) -> None:
        con.execute("ALTER TABLE devices ADD COLUMN model TEXT NOT NULL DEFAULT ''")

    monkeypatch.setitem(MIGRATIONS, 2, v2)
    monkeypatch.setattr("server.storage.sqlite.SCHEMA_VERSION", 2)
    SqliteDeviceStore(db).close()
    con = sqlite3.connect(db)
    assert con.execute("PRAGMA user_version").fetchone()[0] == 2
    assert "model" in {r[1] for r in con.execute("PRAGMA table_info(devices)")}


def test_survives_reopening(db: Path):
    store = SqliteDeviceStore(db)
    store.add_code("c1", expires=2000.0, name="glasses")
    assert store.redeem_code("c1", 1500.0, _device(1))[0] is Redeemed.OK
    store.touch("dev1", 1600.0, "10.0.0.7")
    store.set_meta("server.listen", "0.0.0.0:50051")
    store.close()
    again = SqliteDeviceStore(db)
    [d] = again.devices()
    assert (d.id, d.name, d.last_seen, d.last_address) == ("dev1", "glasses", 1600.0, "10.0.0.7")
    assert again.get_meta("server.listen") == "0.0.0.0:50051"
    assert again.redeem_code("c1", 1501.0, _device(2))[0] is Redeemed.USED
    again.close()


def test_codes_expire_and_work_once(db: Path):
    store = SqliteDeviceStore(db)
    store.add_code("c", expires=100.0)
    assert store.redeem_code("nope", 50.0, _device(0)) == (Redeemed.UNKNOWN, None)
    assert store.redeem_code("c", 100.0, _device(0)) == (Redeemed.EXPIRED, None)
    store.add_code("d", expires=100.0)
    assert store.redeem_code("d", 99.0, _device(1))[0] is Redeemed.OK
    with pytest.raises(KeyError):  # an id that is taken changes nothing
        store.add_code("e", expires=100.0)
        store.redeem_code("e", 99.0, _device(1))
    assert store.redeem_code("e", 99.0, _device(2))[0] is Redeemed.OK
    assert store.prune_codes(before=101.0) == 3
    store.close()


def test_revoke_rename_and_revoked_ids(db: Path):
    store = SqliteDeviceStore(db)
    for i in range(2):
        store.add_code(f"c{i}", 10.0)
        store.redeem_code(f"c{i}", 1.0, _device(i))
    assert store.rename("dev0", "left lens") and not store.rename("ghost", "x")
    assert store.revoke("dev1", 5.0) and not store.revoke("dev1", 6.0)
    assert not store.revoke("ghost", 5.0)
    assert store.revoked_ids() == frozenset({"dev1"})
    d0, d1 = store.devices()
    assert (d0.name, d0.active, d1.active, d1.revoked) == ("left lens", True, False, 5.0)
    store.close()


def test_two_connections_cli_and_server_share_it(db: Path):
    """The CLI issues codes while the server redeems and touches: nobody sees 'locked'."""
    server, cli = SqliteDeviceStore(db), SqliteDeviceStore(db)
    errors: list[BaseException] = []

    def issue() -> None:
        try:
            for i in range(150):
                cli.add_code(f"code{i}", expires=1e12)
        except BaseException as e:
            errors.append(e)

    t = threading.Thread(target=issue)
    t.start()
    redeemed = 0
    deadline = time.monotonic() + 30
    while redeemed < 150 and time.monotonic() < deadline:
        if server.redeem_code(f"code{redeemed}", 1.0, _device(redeemed))[0] is Redeemed.OK:
            server.touch(f"dev{redeemed}", 2.0, "127.0.0.1")
            redeemed += 1
    t.join()
    assert errors == [] and redeemed == 150
    assert len(cli.devices()) == 150  # the other connection sees every commit
    server.close()
    cli.close()


def test_a_corrupt_file_is_a_clear_error_and_is_left_alone(db: Path):
    db.parent.mkdir()
    garbage = b"this is not a database, it is a shopping list\n" * 200
    db.write_bytes(garbage)
    with pytest.raises(StorageError) as err:
        SqliteDeviceStore(db)
    message = err.value.message
    assert str(db) in message and "Move it aside" in message and "pair again" in message
    assert db.read_bytes() == garbage  # never silently recreated


def test_a_damaged_page_is_a_clear_error(db: Path):
    store = SqliteDeviceStore(db)
    for i in range(50):
        store.add_code(f"c{i}" * 20, 10.0, name="x" * 200)
    store.close()
    sqlite3.connect(db).execute("PRAGMA wal_checkpoint(TRUNCATE)").connection.close()
    data = bytearray(db.read_bytes())
    assert len(data) > 4096 * 2
    data[4096 : 4096 + 300] = b"\xff" * 300  # scribble over the second page's header
    db.write_bytes(bytes(data))
    with pytest.raises(StorageError, match="not a readable Murmur device registry"):
        SqliteDeviceStore(db)


def test_a_newer_schema_is_refused(db: Path):
    SqliteDeviceStore(db).close()
    con = sqlite3.connect(db)
    con.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    con.commit()
    con.close()
    with pytest.raises(StorageError, match="newer Murmur"):
        SqliteDeviceStore(db)


def test_missing_file_is_not_created_when_asked_not_to(db: Path):
    with pytest.raises(StorageError, match="no device registry"):
        SqliteDeviceStore(db, create=False)
    assert not db.exists() and not db.parent.exists()


def test_file_modes_are_owner_only(tmp_path: Path):
    db = tmp_path / "a" / "murmur" / DB_NAME
    store = SqliteDeviceStore(db)
    store.add_code("c", 10.0)
    assert stat.S_IMODE(db.parent.stat().st_mode) == 0o700
    for path in db.parent.iterdir():  # the database and its -wal/-shm files
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
    store.close()


@pytest.mark.parametrize("held_open", [False, True])
def test_a_registry_left_world_readable_is_made_owner_only_with_its_wal_files(
    db: Path, held_open: bool
):
    db.parent.mkdir(mode=0o700)
    SqliteDeviceStore(db).close()
    db.chmod(0o644)  # e.g. restored from a backup, or made by an older version
    left = None
    if held_open:  # another process holds it open: its -wal/-shm are there already
        left = sqlite3.connect(db)
        left.execute("INSERT INTO meta (key, value) VALUES ('k', 'v')")
        left.commit()
        for sidecar in (db.with_name(DB_NAME + "-wal"), db.with_name(DB_NAME + "-shm")):
            sidecar.chmod(0o644)
    store = SqliteDeviceStore(db)  # SQLite gives new -wal/-shm files the database's mode
    store.add_code("c", 10.0)
    try:
        assert {p.name for p in db.parent.iterdir()} >= {DB_NAME + "-wal", DB_NAME + "-shm"}
        for path in db.parent.iterdir():
            assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
    finally:
        store.close()
        if left is not None:
            left.close()


def test_a_device_record_never_shows_its_token_hash(db: Path):
    store = SqliteDeviceStore(db)
    store.add_code("c", 10.0)
    _, record = store.redeem_code("c", 1.0, _device("x"))
    store.close()
    assert record is not None and "hashx" not in repr(record) and "hashx" not in str(record)


CRASHER = textwrap.dedent(
    """
    import sys
    from server.storage.base import NewDevice
    from server.storage.sqlite import SqliteDeviceStore
    store = SqliteDeviceStore(sys.argv[1])
    i = 0
    while True:
        store.add_code(f"c{i}", 1e12, name="n" * 500)
        store.redeem_code(f"c{i}", 1.0, NewDevice(f"d{i}", "crash", "h" * 64, 1.0))
        print(i, flush=True)  # after the commit
        i += 1
    """
)


def test_kill_9_while_pairing_leaves_a_usable_registry(db: Path):
    proc = subprocess.Popen(
        [sys.executable, "-c", CRASHER, str(db)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    last = -1
    try:
        for line in proc.stdout:
            last = int(line)
            if last >= 40:
                break
    finally:
        proc.kill()  # SIGKILL, mid-transaction more often than not
        proc.wait()
    assert last >= 40
    store = SqliteDeviceStore(db)  # opens (quick_check passes), nothing half-written
    ids = {d.id for d in store.devices()}
    assert {f"d{i}" for i in range(last + 1)} <= ids
    assert len(ids) <= last + 2  # at most the one committed after the last line read
    store.add_code("after", 1e12)
    assert store.redeem_code("after", 1.0, NewDevice("new", "n", "h", 1.0))[0] is Redeemed.OK
    store.close()
