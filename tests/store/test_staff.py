"""The staff directory: PINs and badges stored only as hashes, found again, removed safely."""

from __future__ import annotations

import re
import threading

import pytest
from peewee import SqliteDatabase

from appliance.core.staff import StaffError, StaffMember, badge_key, verify_pin
from appliance.store.staff import StaffDirectory

BADGE = "04A1B2C3D4E5F6"


@pytest.fixture
def directory(db: SqliteDatabase) -> StaffDirectory:
    return StaffDirectory(db)


def _row(db: SqliteDatabase, staff_id: str) -> tuple[str, str, str | None, int]:
    name, pin_hash, key, active = db.execute_sql(
        "SELECT name, pin_hash, badge_key, active FROM staff WHERE staff_id = ?", (staff_id,)
    ).fetchone()
    return name, pin_hash, key, active


def test_members_are_found_by_pin_and_badge_and_listed_by_name(
    directory: StaffDirectory, db: SqliteDatabase
) -> None:
    sam = directory.add("sam", "supervisor", "8642", BADGE.lower())
    alex = directory.add("  Alex ", "cashier", "1357")

    assert re.fullmatch(r"S[A-Z2-9]{6}", sam.staff_id)
    assert sam.staff_id != alex.staff_id
    assert alex == StaffMember(alex.staff_id, "Alex", "cashier")
    assert directory.members() == [alex, sam]  # by name, whatever the case
    assert directory.count() == 2
    assert directory.by_pin("8642") == sam
    assert directory.by_pin("1357") == alex
    assert directory.by_pin("9999") is None
    assert directory.by_badge(BADGE) == sam  # the UID's case does not matter
    assert directory.by_badge("04FFFFFFFFFFFF") is None
    assert directory.by_badge("not a uid") is None
    assert directory.badge_holders() == {sam.staff_id}

    name, pin_hash, key, active = _row(db, sam.staff_id)
    assert (name, active) == ("sam", 1)
    assert "8642" not in pin_hash and verify_pin("8642", pin_hash)
    assert key == badge_key(BADGE) and BADGE not in key.upper()
    assert _row(db, alex.staff_id)[2] is None


def test_a_pin_that_cannot_exist_is_refused_without_hashing(
    directory: StaffDirectory, monkeypatch: pytest.MonkeyPatch
) -> None:
    directory.add("Alex", "cashier", "1357")

    def no_hashing(pin: str, stored: str) -> bool:
        raise AssertionError("a PIN no one can have was checked against a hash")

    monkeypatch.setattr("appliance.store.staff.verify_pin", no_hashing)
    assert directory.by_pin("12") is None
    assert directory.by_pin("abcd") is None
    assert directory.by_pin("1111") is None


def test_a_pin_or_badge_in_use_and_bad_input_are_refused(
    directory: StaffDirectory, db: SqliteDatabase
) -> None:
    directory.add("Sam", "supervisor", "8642", BADGE)

    with pytest.raises(StaffError, match="PIN is already used"):
        directory.add("Kim", "cashier", "8642")
    with pytest.raises(StaffError, match="badge already belongs"):
        directory.add("Kim", "cashier", "2468", BADGE.lower())
    with pytest.raises(StaffError, match="4 to 12 digits"):
        directory.add("Kim", "cashier", "12")
    with pytest.raises(StaffError, match="hexadecimal"):
        directory.add("Kim", "cashier", "2468", "badge-7")
    with pytest.raises(StaffError, match="needs a name"):
        directory.add("  ", "cashier", "2468")
    with pytest.raises(StaffError, match="role"):
        directory.add("Kim", "manager", "2468")  # type: ignore[arg-type]

    assert directory.count() == 1
    assert db.execute_sql("SELECT COUNT(*) FROM staff").fetchone()[0] == 1


def test_a_removed_member_stays_on_record_but_can_no_longer_log_in(
    directory: StaffDirectory, db: SqliteDatabase
) -> None:
    leaver = directory.add("Lee", "cashier", "2468", BADGE)
    stays = directory.add("Sam", "supervisor", "8642")

    directory.remove(leaver.staff_id)

    assert directory.members() == [stays]
    assert directory.count() == 1
    assert directory.by_pin("2468") is None
    assert directory.by_badge(BADGE) is None
    # Documents keep naming the id: the row stays, inactive, with its badge freed.
    assert _row(db, leaver.staff_id)[0] == "Lee"
    assert _row(db, leaver.staff_id)[2:] == (None, 0)
    with pytest.raises(StaffError, match="no active staff member"):
        directory.remove(leaver.staff_id)
    with pytest.raises(StaffError, match="no active staff member"):
        directory.remove("S000000")
    # The badge and the PIN can go to someone new.
    newcomer = directory.add("Kim", "cashier", "2468", BADGE)
    assert directory.by_badge(BADGE) == newcomer


def test_a_pin_is_checked_on_a_worker_thread(directory: StaffDirectory) -> None:
    alex = directory.add("Alex", "cashier", "1357")
    found: list[StaffMember | None] = []
    worker = threading.Thread(target=lambda: found.append(directory.by_pin("1357")))
    worker.start()
    worker.join(timeout=30)
    assert found == [alex]
