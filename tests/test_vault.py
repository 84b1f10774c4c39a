"""The vault's operations on a real vault.db: put, get, list, delete, totp, and their audit rows."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from mailgent_mcp.errors import EntryExists, EntryNotFound, InvalidInput, NoTotpSeed
from mailgent_mcp.vault import otp
from mailgent_mcp.vault.entries import Vault
from mailgent_mcp.vault.models import EntryType

from .conftest import SEED_80, SEED_RFC, db_rows

T0 = 1_234_567_890  # the Key URI test file's reference time


async def test_put_then_get_returns_every_field(vault: Vault) -> None:
    info = await vault.put("github", {"username": "bot@example.com", "password": "pa55 wörd", "url": "https://github.com",
                                      "notes": "recovery codes in the safe", "api_token": "ghp_x"}, "login")
    assert info.type is EntryType.LOGIN and not info.has_totp and info.totp is None
    assert info.fields == ["api_token", "notes", "password", "url", "username"]
    view = await vault.get("github")
    assert view.data == {"username": "bot@example.com", "password": "pa55 wörd", "url": "https://github.com",
                         "notes": "recovery codes in the safe", "api_token": "ghp_x"}
    assert view.created_at == info.created_at


async def test_put_merges_fields_and_none_removes_one(vault: Vault) -> None:
    await vault.put("svc", {"username": "u", "password": "p1", "notes": "n"}, "LOGIN")
    await vault.put("svc", {"password": "p2", "notes": None})
    view = await vault.get("svc")
    assert view.data == {"username": "u", "password": "p2"}
    assert view.type is EntryType.LOGIN


async def test_enabling_2fa_later_keeps_the_password(vault: Vault) -> None:
    await vault.put("svc", {"username": "u", "password": "p"}, "LOGIN")
    info = await vault.put("svc", {"secret": SEED_RFC})
    assert info.has_totp and info.type is EntryType.LOGIN
    assert (await vault.get("svc")).data["password"] == "p"


@pytest.mark.parametrize(
    ("data", "expected"),
    [({"password": "p"}, EntryType.LOGIN), ({"secret": SEED_RFC}, EntryType.TOTP), ({"notes": "x"}, EntryType.NOTE)],
    ids=["password-login", "seed-totp", "other-note"],
)
async def test_new_entry_type_is_inferred(vault: Vault, data: dict[str, str], expected: EntryType) -> None:
    assert (await vault.put("x", data)).type is expected


async def test_get_shows_totp_parameters_but_never_the_seed(vault: Vault) -> None:
    uri = f"otpauth://totp/ACME:alice@example.com?secret={SEED_RFC}&issuer=ACME&algorithm=SHA256&digits=8&period=60"
    await vault.put("acme", {"secret": uri})
    view = await vault.get("acme")
    assert "secret" not in view.data
    assert view.totp is not None
    assert (view.totp.issuer, view.totp.account, view.totp.algorithm, view.totp.digits, view.totp.period) == (
        "ACME", "alice@example.com", "SHA256", 8, 60)
    dumped = view.model_dump_json()
    assert SEED_RFC not in dumped and SEED_RFC.lower() not in dumped
    assert bytes.fromhex("3132333435363738393031323334353637383930").hex() not in dumped


async def test_short_seed_works_and_is_marked_weak(vault: Vault) -> None:
    info = await vault.put("old", {"secret": SEED_80})
    assert info.totp is not None and info.totp.weak and info.totp.seed_bits == 80
    code = await vault.totp("old", at=T0)
    assert code.code == "742275"  # the Key URI test file's case 2 at 1234567890
    strong = await vault.put("new", {"secret": SEED_RFC})
    assert strong.totp is not None and not strong.totp.weak


async def test_totp_matches_the_engine_and_reports_expiry(vault: Vault) -> None:
    await vault.put("svc", {"secret": SEED_RFC})
    code = await vault.totp("svc", at=T0)
    assert code.code == otp.totp_at(otp.parse_secret(SEED_RFC), T0).code == "005924"
    assert code.remaining == 30 - T0 % 30
    assert code.expires_at == "2009-02-13T23:32:00Z"
    assert (code.period, code.digits, code.algorithm) == (30, 6, "SHA1")


async def test_min_remaining_with_a_fixed_time_gives_the_next_step(vault: Vault) -> None:
    await vault.put("svc", {"secret": SEED_RFC})
    at = 1_234_567_919.5  # 0.5 s left in its step
    code = await vault.totp("svc", min_remaining=5, at=at)
    nxt = otp.totp_at(otp.parse_secret(SEED_RFC), 1_234_567_920)
    assert code.code == nxt.code and code.remaining == 30 and code.waited == 0.5
    unchanged = await vault.totp("svc", min_remaining=0, at=at)
    assert unchanged.code == otp.totp_at(otp.parse_secret(SEED_RFC), at).code and unchanged.remaining == 1


async def test_min_remaining_waits_for_the_next_step(home: Path) -> None:
    # A fake clock and sleep: the wait logic is exercised without spending real seconds.
    now = [1_000_000_017.0]  # 3 s left in its step
    slept: list[float] = []

    async def fake_sleep(seconds: float) -> None:
        slept.append(seconds)
        now[0] += seconds

    async with await Vault.open(home, environ={}, clock=lambda: now[0], sleep=fake_sleep) as v:
        await v.put("svc", {"secret": SEED_RFC})
        code = await v.totp("svc", min_remaining=10)
        assert slept and abs(sum(slept) - 3.0) < 1e-6
        assert code.remaining == 30 and code.waited == pytest.approx(3.0)
        assert code.code == otp.totp_at(otp.parse_secret(SEED_RFC), 1_000_000_020).code
        slept.clear()
        again = await v.totp("svc", min_remaining=10, unused_only=False)  # now 30 s left: no wait
        assert slept == [] and again.code == code.code


async def test_min_remaining_not_below_the_period_is_refused(vault: Vault) -> None:
    await vault.put("svc", {"secret": SEED_RFC})
    with pytest.raises(InvalidInput, match="below the code period"):
        await vault.totp("svc", min_remaining=30)
    with pytest.raises(InvalidInput, match="0 or more"):
        await vault.totp("svc", min_remaining=-1)


async def test_totp_errors_name_the_next_step(vault: Vault) -> None:
    with pytest.raises(EntryNotFound, match="store one with vault_put"):
        await vault.totp("missing")
    await vault.put("login-only", {"password": "p"})
    with pytest.raises(NoTotpSeed, match=r"data.secret"):
        await vault.totp("login-only")


async def test_list_filters_by_prefix_literally(vault: Vault) -> None:
    for name in ("aws/prod", "aws/dev", "a%s/x", "a_s/y", "github"):
        await vault.put(name, {"notes": "n"})
    await vault.put("github", {"secret": SEED_RFC})
    assert [e.name for e in await vault.list()] == ["a%s/x", "a_s/y", "aws/dev", "aws/prod", "github"]
    assert [e.name for e in await vault.list("aws/")] == ["aws/dev", "aws/prod"]
    assert [e.name for e in await vault.list("a%")] == ["a%s/x"]  # % and _ are not wildcards
    assert [(e.name, e.has_totp) for e in await vault.list("git")] == [("github", True)]


async def test_delete_removes_entry_and_fields(vault: Vault, home: Path) -> None:
    await vault.put("gone", {"password": "p", "secret": SEED_RFC})
    assert await vault.delete("gone") is True
    with pytest.raises(EntryNotFound):
        await vault.get("gone")
    assert db_rows(home, "SELECT COUNT(*) FROM entry_fields") == [(0,)]
    with pytest.raises(EntryNotFound):
        await vault.delete("gone")


async def test_if_absent_refuses_to_overwrite(vault: Vault) -> None:
    await vault.put("seeded", {"secret": SEED_RFC})
    with pytest.raises(EntryExists):
        await vault.put("seeded", {"secret": SEED_80}, if_absent=True)
    assert (await vault.totp("seeded", at=T0)).code == "005924"


async def test_hotp_uri_is_refused_with_a_reason(vault: Vault) -> None:
    uri = f"otpauth://hotp/Ex:alice?secret={SEED_RFC}&issuer=Ex&counter=5"
    with pytest.raises(InvalidInput, match="HOTP"):
        await vault.put("hotp", {"secret": uri})
    assert await vault.list() == []


async def test_every_operation_appends_an_audit_row(vault: Vault) -> None:
    await vault.put("a", {"password": "p", "secret": SEED_RFC}, actor="Claude Desktop")
    await vault.get("a")
    await vault.totp("a")
    await vault.list()
    with pytest.raises(EntryNotFound):
        await vault.get("missing")
    await vault.delete("a")
    rows = await vault.audit_tail(10)
    assert [(r.op, r.entry, r.outcome) for r in rows] == [
        ("init", None, "ok"), ("put", "a", "ok"), ("get", "a", "ok"), ("totp", "a", "ok"), ("list", None, "ok"),
        ("get", "missing", "not_found"), ("delete", "a", "ok")]
    assert rows[1].actor == "Claude Desktop" and rows[2].actor == "cli"
    assert (await vault.audit_verify()).ok


async def test_name_is_nfc_normalised(vault: Vault) -> None:
    await vault.put("cafe\u0301", {"notes": "n"})  # e + combining accent
    assert (await vault.get("caf\u00e9")).name == "caf\u00e9"


async def test_data_folder_and_files_are_private(vault: Vault, home: Path) -> None:
    await vault.put("x", {"password": "p"})
    assert stat.S_IMODE(home.stat().st_mode) == 0o700
    for path in home.iterdir():
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path.name


async def test_existing_loose_folder_is_tightened(tmp_path: Path) -> None:
    loose = tmp_path / "loose"
    loose.mkdir(mode=0o755)
    loose.chmod(0o755)
    async with await Vault.open(loose, environ={}):
        pass
    assert stat.S_IMODE(loose.stat().st_mode) == 0o700


async def test_schema_version_is_recorded(vault: Vault, home: Path) -> None:
    from mailgent_mcp.db.migrations import RECORDED

    from .conftest import LATEST_STEP, schema_steps

    assert db_rows(home, "PRAGMA user_version") == [(RECORDED,)]
    assert schema_steps(home) == {"vault": LATEST_STEP["vault"]}  # the inbox's tables come with the inbox
    assert db_rows(home, "PRAGMA journal_mode") == [("wal",)]


async def test_read_audit_rows_are_written_in_order_before_a_change(vault: Vault, home: Path) -> None:
    """Reads queue their rows (see Vault._queue_audit); a change writes them first, in order."""
    await vault.put("a", {"password": "p"})
    await vault.get("a")
    await vault.list()
    await vault.put("b", {"password": "q"})
    ops = [(str(op), str(entry)) for op, entry in db_rows(home, "SELECT op, entry FROM audit ORDER BY seq")]
    assert ops == [("init", "None"), ("put", "a"), ("get", "a"), ("list", "None"), ("put", "b")]


async def test_queued_read_rows_are_written_within_the_gathering_delay(vault: Vault, home: Path) -> None:
    import asyncio

    from mailgent_mcp.vault.entries import AUDIT_FLUSH_DELAY_S

    await vault.put("a", {"secret": SEED_RFC})
    for _ in range(5):
        await vault.totp("a")
    await asyncio.sleep(AUDIT_FLUSH_DELAY_S * 4)  # the flusher's own wait, with room to write
    assert db_rows(home, "SELECT COUNT(*) FROM audit WHERE op = 'totp'") == [(5,)]


async def test_a_steady_stream_of_reads_has_its_rows_written_at_least_every_second(vault: Vault, home: Path) -> None:
    import asyncio
    import time

    from mailgent_mcp.vault.entries import AUDIT_FLUSH_DELAY_S, AUDIT_FLUSH_MAX_S

    await vault.put("a", {"secret": SEED_RFC})
    start = time.monotonic()
    written = 0
    while time.monotonic() - start < AUDIT_FLUSH_MAX_S * 1.8:  # reads never pause for the gathering delay
        await vault.totp("a")
        await asyncio.sleep(AUDIT_FLUSH_DELAY_S / 5)
        written = int(str(db_rows(home, "SELECT COUNT(*) FROM audit WHERE op = 'totp'")[0][0]))
        if written:
            break
    assert written > 0  # the stream did not hold its rows back until it ended


async def test_close_writes_queued_read_rows(home: Path) -> None:
    v = await Vault.open(home, environ={})
    await v.put("a", {"secret": SEED_RFC})
    await v.totp("a")
    with pytest.raises(EntryNotFound):
        await v.get("missing")
    await v.close()
    assert db_rows(home, "SELECT op, entry, outcome FROM audit WHERE op != 'put' AND op != 'init'") == [
        ("totp", "a", "ok"), ("get", "missing", "not_found")]
