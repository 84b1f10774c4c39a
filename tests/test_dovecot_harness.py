"""The throw-away Dovecot of tests/dovecot.py, proved with raw imapclient.

Delivery (LMTP, and SMTP through the hop), TLS (IMAPS and STARTTLS trusting only the test CA),
and each fault of the table in the team's DOVECOT.md as a client sees it: kick, clean stop,
crash, hung server, silent network loss, reset, and a changed UIDVALIDITY.
"""

from __future__ import annotations

import smtplib
import socket
import ssl
import time
from pathlib import Path

import pytest
from imapclient import IMAPClient
from imapclient.exceptions import IMAPClientAbortError, LoginError

from .dovecot import (  # noqa: F401
    Dovecot,
    SmtpHop,
    TcpProxy,
    dovecot,
    group_members,
    imap_proxy,
    smtp_hop,
)

AT_ONCE = 1.0  # seconds: "at once" for a client that learns of a closed connection
SOCKET_TIMEOUT = 2.0


def message(subject: str, to: str = "agent@example.test") -> str:
    """A small RFC 5322 message (LF line ends; deliver() makes them CRLF)."""
    return (f"From: Sender <sender@example.test>\nTo: <{to}>\nSubject: {subject}\n"
            f"Message-ID: <{subject.replace(' ', '.')}@example.test>\n\nHello from the harness test.\n")


def subjects(client: IMAPClient) -> list[bytes]:
    """Subjects of the messages in INBOX, in UID order."""
    client.select_folder("INBOX", readonly=True)
    uids = client.search("ALL")
    fetched = client.fetch(uids, ["ENVELOPE"]) if uids else {}
    return [fetched[uid][b"ENVELOPE"].subject for uid in sorted(fetched)]


# --- delivery and login ----------------------------------------------------------------------


def test_lmtp_delivery_is_seen_over_plain_imap(dovecot: Dovecot) -> None:
    dovecot.deliver(message("first"))
    client = dovecot.connect("plain")
    info = client.select_folder("INBOX")
    assert info[b"EXISTS"] == 1
    assert subjects(client) == [b"first"]
    client.logout()


def test_imaps_verifies_with_the_test_ca_only(dovecot: Dovecot) -> None:
    client = dovecot.connect("imaps")
    assert client.select_folder("INBOX")[b"EXISTS"] == 0
    client.logout()
    with pytest.raises(ssl.SSLCertVerificationError):
        IMAPClient(dovecot.host, dovecot.imaps_port, ssl=True, ssl_context=ssl.create_default_context(), timeout=5)


def test_starttls_on_the_plain_port_verifies_with_the_test_ca(dovecot: Dovecot) -> None:
    client = dovecot.connect("plain", login=False)
    assert b"STARTTLS" in client.capabilities()
    client.starttls(dovecot.ssl_context())
    client.login(dovecot.user, dovecot.password)
    assert client.select_folder("INBOX")[b"EXISTS"] == 0
    client.logout()

    untrusting = dovecot.connect("plain", login=False)
    with pytest.raises(ssl.SSLCertVerificationError):
        untrusting.starttls(ssl.create_default_context())  # the failed handshake closes the socket


def test_wrong_password_raises_login_error(dovecot: Dovecot) -> None:
    with pytest.raises(LoginError):
        dovecot.connect("starttls", password="wrong horse")


def test_lmtp_refuses_an_unknown_recipient(dovecot: Dovecot) -> None:
    with pytest.raises(smtplib.SMTPRecipientsRefused) as refused:
        dovecot.deliver(message("lost"), to="nobody@example.test")
    assert refused.value.recipients["nobody@example.test"][0] == 550


def test_added_user_has_a_mailbox_of_their_own(dovecot: Dovecot) -> None:
    dovecot.add_user("second@example.test", "battery staple")
    dovecot.deliver(message("for second", to="second@example.test"), to="second@example.test")
    second = dovecot.connect(user="second@example.test", password="battery staple")
    assert subjects(second) == [b"for second"]
    assert subjects(dovecot.connect()) == []


def test_smtp_through_the_hop_arrives_in_the_mailbox(dovecot: Dovecot, smtp_hop: SmtpHop) -> None:
    with smtplib.SMTP(smtp_hop.host, smtp_hop.port, timeout=5) as smtp:
        smtp.sendmail("sender@example.test", [dovecot.user], message("via smtp"))
    assert smtp_hop.relayed == 1
    assert subjects(dovecot.connect()) == [b"via smtp"]
    with smtplib.SMTP(smtp_hop.host, smtp_hop.port, timeout=5) as smtp, \
            pytest.raises(smtplib.SMTPDataError) as refused:
        smtp.sendmail("sender@example.test", ["nobody@example.test"], message("lost"))
    assert refused.value.smtp_code == 550


# --- faults, as the DOVECOT.md table says a client sees them ---------------------------------


def idling(dovecot: Dovecot, port: int | None = None) -> IMAPClient:
    """A client in IDLE on INBOX, with a short socket timeout."""
    client = dovecot.connect(port=port, timeout=SOCKET_TIMEOUT)
    client.select_folder("INBOX")
    client.idle()
    return client


def test_kick_says_bye_then_closes(dovecot: Dovecot) -> None:
    client = idling(dovecot)
    assert dovecot.kick() is True
    assert client.idle_check(timeout=5)[0][0] == b"BYE"
    with pytest.raises(IMAPClientAbortError):
        client.idle_done()


def test_clean_stop_says_bye_and_refuses_until_restarted(dovecot: Dovecot) -> None:
    dovecot.deliver(message("kept"))
    before = dovecot.connect().select_folder("INBOX")[b"UIDVALIDITY"]
    client = idling(dovecot)
    dovecot.stop()
    assert client.idle_check(timeout=5)[0][0] == b"BYE"
    with pytest.raises(IMAPClientAbortError):
        client.idle_done()
    with pytest.raises(ConnectionRefusedError):
        dovecot.connect()

    dovecot.start()
    dovecot.restart()
    after = dovecot.connect()
    assert after.select_folder("INBOX")[b"UIDVALIDITY"] == before
    assert subjects(after) == [b"kept"]


def test_crash_closes_without_a_word(dovecot: Dovecot) -> None:
    dovecot.deliver(message("kept"))
    client = idling(dovecot)
    dovecot.crash()
    started = time.monotonic()
    assert client.idle_check(timeout=5) == []
    assert time.monotonic() - started < AT_ONCE
    with pytest.raises(IMAPClientAbortError):
        client.idle_done()
    assert not dovecot.running

    dovecot.start()
    assert subjects(dovecot.connect()) == [b"kept"]


def test_paused_imap_process_makes_noop_time_out(dovecot: Dovecot) -> None:
    client = dovecot.connect(timeout=SOCKET_TIMEOUT)
    client.select_folder("INBOX")
    assert len(dovecot.pause_imap(dovecot.user)) == 1
    started = time.monotonic()
    with pytest.raises(TimeoutError):
        client.noop()
    assert time.monotonic() - started >= SOCKET_TIMEOUT - 0.1
    dovecot.resume_imap()
    assert dovecot.connect(timeout=SOCKET_TIMEOUT).noop()  # the server answers new clients again


def test_blackholed_proxy_makes_noop_time_out_until_healed(dovecot: Dovecot, imap_proxy: TcpProxy) -> None:
    client = dovecot.connect(port=imap_proxy.port, timeout=SOCKET_TIMEOUT)
    client.select_folder("INBOX")
    imap_proxy.blackhole()
    with pytest.raises(TimeoutError):
        client.noop()
    imap_proxy.heal()
    fresh = dovecot.connect(port=imap_proxy.port, timeout=SOCKET_TIMEOUT)
    assert fresh.select_folder("INBOX")[b"EXISTS"] == 0


def test_blackhole_holds_the_bytes_that_heal_delivers(dovecot: Dovecot, imap_proxy: TcpProxy) -> None:
    client = idling(dovecot, port=imap_proxy.port)
    imap_proxy.blackhole()
    dovecot.deliver(message("during the outage"))
    started = time.monotonic()
    assert client.idle_check(timeout=1) == []  # silence: only the client's own timeout ends it
    assert time.monotonic() - started >= 0.9
    imap_proxy.heal()
    assert (1, b"EXISTS") in client.idle_check(timeout=5)  # what TCP would retransmit after a short outage
    client.idle_done()


def test_proxy_reset_breaks_idle_and_noop(dovecot: Dovecot, imap_proxy: TcpProxy) -> None:
    idle = idling(dovecot, port=imap_proxy.port)
    busy = dovecot.connect(port=imap_proxy.port, timeout=SOCKET_TIMEOUT)
    busy.select_folder("INBOX")
    assert imap_proxy.connections == 2
    imap_proxy.reset()
    started = time.monotonic()
    assert idle.idle_check(timeout=5) == []
    assert time.monotonic() - started < AT_ONCE
    with pytest.raises(BrokenPipeError):
        idle.idle_done()
    with pytest.raises(IMAPClientAbortError, match="Connection reset by peer"):
        busy.noop()
    assert imap_proxy.connections == 0


def test_reset_uidvalidity_changes_it_and_keeps_the_messages(dovecot: Dovecot) -> None:
    dovecot.deliver(message("kept"))
    selected = dovecot.connect()
    before = selected.select_folder("INBOX")[b"UIDVALIDITY"]
    assert dovecot.uidvalidity() == before

    after = dovecot.reset_uidvalidity()
    assert after != before
    fresh = dovecot.connect()
    assert fresh.select_folder("INBOX")[b"UIDVALIDITY"] == after
    assert subjects(fresh) == [b"kept"]
    # A session that had INBOX selected is told to start over at its next command.
    with pytest.raises(IMAPClientAbortError):
        selected.noop()


# --- the harness itself ----------------------------------------------------------------------


def listening_addresses(pids: list[int]) -> set[tuple[str, int]]:
    """(address, port) of the IPv4 and IPv6 TCP sockets these processes listen on."""
    inodes = set()
    for pid in pids:
        fd_dir = Path(f"/proc/{pid}/fd")
        for fd in fd_dir.iterdir() if fd_dir.exists() else []:
            try:
                target = fd.readlink().as_posix()
            except OSError:
                continue
            if target.startswith("socket:["):
                inodes.add(target[len("socket:["):-1])
    found = set()
    for table, family in (("/proc/net/tcp", socket.AF_INET), ("/proc/net/tcp6", socket.AF_INET6)):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            if fields[3] == "0A" and fields[9] in inodes:  # 0A: LISTEN
                address, port = fields[1].split(":")
                raw = bytes.fromhex(address)
                # /proc/net shows each 32-bit word in host (little-endian) order
                raw = b"".join(raw[i:i + 4][::-1] for i in range(0, len(raw), 4))
                found.add((socket.inet_ntop(family, raw), int(port, 16)))
    return found


def test_dovecot_listens_on_loopback_only(dovecot: Dovecot) -> None:
    assert dovecot.pid is not None
    pids = [p.pid for p in group_members(dovecot.pid)]
    assert listening_addresses(pids) == {
        ("127.0.0.1", dovecot.imap_port), ("127.0.0.1", dovecot.imaps_port), ("127.0.0.1", dovecot.lmtp_port)}


def test_close_leaves_no_process_and_no_folder(dovecot: Dovecot) -> None:
    client = dovecot.connect()
    client.select_folder("INBOX")
    dovecot.pause_imap()  # a stopped process must not survive the stop
    pgid = dovecot.pid
    assert pgid is not None
    dovecot.close()
    assert group_members(pgid) == []
    assert not dovecot.root.exists()
