"""The inbox against its baselines: IDLE push latency, first-sync throughput, filtered queries.

    .venv/bin/python benchmarks/bench_inbox.py            # 20 push trials, 10,000 messages, 100,000-row cache
    .venv/bin/python benchmarks/bench_inbox.py --quick    # 5 trials, 1,000 messages, 20,000 rows

One run measures the issue's three acceptance figures, each beside a baseline measured in
the same run on the same data, on a throw-away Dovecot 2.3 (tests/dovecot.py, plain IMAP
port on 127.0.0.1) and a real vault.db in a temporary folder:

1. Push latency: `ImapSync.run` idles on one user's INBOX; a message is delivered by LMTP
   and timed from the start of the delivery until `inbox.read(MessageQuery(subject=...))`
   finds it (woken by `Inbox.wait_for_mail`, checked every 5 ms besides). The baseline, in
   trials interleaved with ours: a raw imapclient connection in IDLE on a second user,
   from the start of a delivery to it until `idle_check` returns the EXISTS. Dovecot
   itself waits 500 ms before it notifies (NOTIFY_DELAY_MSECS), so that is the floor.
2. First sync: generated mail (1-20 KB, plain, text+HTML, some with an attachment) is
   written as Maildir files into a third user's `cur/` before Dovecot starts, and a sample
   is checked byte for byte over IMAP. Timed: a fresh `ImapSync.sync_once()` into an empty
   cache with `first_sync_count` covering every message (login, the Parser's 2 worker
   processes starting, fetch, parse, store), and the baseline: one imapclient connection
   fetching BODY.PEEK[] in batches of the same size plus `mailparser.parse_from_bytes` of
   each message, in one process, storing nothing. The sync extracts codes, links and text
   of its newest 50 messages as it caches them; the older ones are extracted after it (the
   server's catch-up, `Inbox.reindex`), timed apart and printed on a line of its own.
3. Queries: a cache of generated messages (senders across 500 domains, Zipf-distributed,
   recipients with aliases and Cc, subjects, bodies, half with HTML) is built through the
   Store in large transactions, then `inbox.read(MessageQuery(..., limit=10))` is timed one
   call at a time for each filter. Filter values are drawn from random cached messages, so
   a busy sender is asked about as often as it sends; full-text words are drawn uniformly
   from the body vocabulary (whose words are themselves Zipf-distributed in the bodies).

Every timed part runs several rounds (or trials) and reports medians; the machine is a
shared 2-core VM, so the figures are noisy. It prints a table and verdict lines and
asserts nothing; a check that fails (a message not cached, a Maildir sample that differs)
stops it, since its timing would mean nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import gc
import itertools
import math
import os
import platform
import quopri
import random
import re
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from email.header import Header
from email.utils import formataddr, formatdate
from importlib.metadata import version
from pathlib import Path

import mailparser
from imapclient import IMAPClient

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the repo root, for tests.dovecot

from mailgent_mcp.db.sqlite import open_store
from mailgent_mcp.inbox.cache import Inbox, _row
from mailgent_mcp.inbox.imap import EXTRACT_INLINE, FETCH_BATCH, ImapAccount, ImapSync
from mailgent_mcp.inbox.parse import Attachment, ParsedMessage, Parser
from mailgent_mcp.inbox.store import InboxStore, MessageQuery
from tests.dovecot import SEARCH_PATH, Dovecot

PUSH_USER = "agent@example.test"  # ImapSync idles here
RAW_USER = "raw@example.test"  # the raw IDLE baseline idles here, so neither sees the other's mail
BULK_USER = "bulk@example.test"  # the Maildir written for the first sync
SEED = 20261123
PUSH_TARGET = 1.1  # ours/raw, at most
SYNC_TARGET = 1.0  # ours/baseline messages per second, at least
QUERY_TARGET_S = 0.005  # p50, under
POLL_S = 0.005

# --- generated mail --------------------------------------------------------------------------

SYLLABLES = ("ac", "al", "an", "ar", "bel", "bit", "bo", "cal", "cor", "da", "del", "dex", "el", "en", "fi",
             "flo", "ga", "gen", "hub", "ka", "kin", "la", "lo", "lux", "ma", "mer", "mo", "na", "neo", "no",
             "or", "pay", "pi", "pro", "qu", "ra", "ri", "sa", "shop", "sky", "so", "ta", "tech", "tri", "va",
             "ver", "vi", "wa", "zen", "zo")
TLDS = ("com", "com", "com", "com", "io", "net", "org", "co.uk", "de", "fr", "app", "dev")
FIRST_NAMES = ("Anna", "Ben", "Chloé", "David", "Elif", "Farah", "Giulia", "Hugo", "Ines", "José", "Kai",
               "Lena", "Marta", "Nikolai", "Olga", "Priya", "Quentin", "Rosa", "Sven", "Tomás", "Uma",
               "Victor", "Wen", "Yusuf", "Zoë")
LAST_NAMES = ("Adams", "Bauer", "Chen", "Dubois", "Evans", "Fischer", "García", "Hansen", "Ito", "Jensen",
              "Kowalski", "Larsen", "Müller", "Novak", "Okafor", "Petrov", "Rossi", "Silva", "Tanaka", "Weber")
WORDS = tuple(["account", "access", "activity", "address", "agenda", "agreement", "alert", "amount", "analysis", "answer", "api", "application", "approval", "archive", "article", "attachment", "audit", "backup", "balance", "billing", "branch", "browser", "budget", "build", "calendar", "campaign", "cancel", "card", "change", "checkout", "client", "cloud", "code", "comment", "community", "confirm", "connection", "contract", "coupon", "credit", "customer", "dashboard", "database", "deadline", "delivery", "deploy", "design", "device", "discount", "document", "domain", "download", "draft", "email", "estimate", "event", "expense", "export", "feature", "feedback", "file", "finance", "folder", "forecast", "form", "forward", "gateway", "guide", "history", "holiday", "identity", "image", "import", "incident", "integration", "invoice", "issue", "item", "journey", "kitchen", "language", "launch", "ledger", "license", "limit", "link", "location", "login", "maintenance", "manager", "market", "meeting", "member", "message", "migration", "milestone", "mobile", "module", "monitor", "network", "newsletter", "notice", "offer", "office", "onboarding", "order", "outage", "package", "parcel", "partner", "password", "payment", "people", "permission", "phone", "picture", "plan", "platform", "policy", "portal", "preview", "price", "privacy", "product", "profile", "project", "promotion", "proposal", "purchase", "quarter", "question", "quote", "receipt", "record", "refund", "region", "release", "reminder", "renewal", "report", "repository", "request", "reset", "review", "reward", "roadmap", "schedule", "screen", "search", "security", "server", "service", "session", "settings", "shipment", "signature", "software", "statement", "status", "storage", "subscription", "summary", "support", "survey", "system", "team", "template", "ticket", "timeline", "token", "training", "transfer", "travel", "trial", "update", "upgrade", "usage", "user", "vendor", "verification", "version", "video", "voucher", "wallet", "warehouse", "webinar", "website", "welcome", "window", "workflow", "workshop"])
GLUE = ("the", "your", "for", "with", "and", "to", "of", "on", "a", "is", "we", "you", "this", "our", "in",
        "please", "will", "has", "been", "from", "can", "now", "new")
TAGS = ("github", "aws", "shop", "bank", "news", "travel", "jobs", "social", "cloud", "crm", "support", "dev",
        "billing", "health", "school", "gaming", "stream", "domains", "hr", "events")
KINDS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {  # kind: (sender locals, subject templates)
    "verification": (("no-reply", "verify", "accounts"),
                     ("Your {brand} verification code is {code}", "{brand}: confirm your email address",
                      "Sign-in code for {brand}: {code}")),
    "reset": (("security", "no-reply"), ("Reset your {brand} password", "{brand} password reset request")),
    "receipt": (("receipts", "orders"), ("Your {brand} receipt #{order}", "Order {order} confirmed",
                                         "Thanks for your purchase from {brand}")),
    "shipping": (("shipping", "delivery"), ("Your order {order} has shipped", "{brand}: parcel {order} is on its way",
                                            "Delivery update for order {order}")),
    "newsletter": (("news", "hello", "digest"), ("{brand} weekly: {w1}, {w2} and {w3}", "What's new at {brand} ✨",
                                                 "{brand} digest: {w1} {w2}")),
    "security": (("security-noreply", "alerts"), ("Security alert: new sign-in to your {brand} account",
                                                  "{brand}: new device added to your account")),
    "invoice": (("billing", "invoices"), ("Invoice {order} from {brand}", "{brand} invoice for {month} is ready",
                                          "Payment received - thank you")),
    "personal": (("",), ("Re: {w1} {w2}", "Meeting about the {w1} {w2}", "Fwd: {w1} {w2} for {month}",
                         "Quick question about the {w1}")),
}
KIND_NAMES = tuple(KINDS)
KIND_WEIGHTS = (20, 5, 12, 10, 25, 6, 7, 15)
MONTHS = ("January", "February", "March", "April", "May", "June", "July", "August", "September", "October",
          "November", "December")


@dataclass(frozen=True)
class Mail:
    """What one generated message says, before it is laid out as MIME or as a parsed cache row."""

    index: int
    kind: str
    domain: str  # the registered domain, e.g. "kinpay.com"
    host: str  # the sending host: the domain or a subdomain of it, e.g. "mail.kinpay.com"
    sender: str
    name: str
    to: tuple[str, ...]
    cc: tuple[str, ...]
    subject: str
    date: float
    opening: str  # the kind's first line: a code, a link, an order number


def rng_shuffled(rng: random.Random, items: Sequence[str]) -> list[str]:
    """items in a random order (which words are common is itself random)."""
    out = list(items)
    rng.shuffle(out)
    return out


def make_domains(rng: random.Random, count: int) -> list[str]:
    """count distinct registered domains, most popular first."""
    domains: dict[str, None] = {}
    while len(domains) < count:
        stem = "".join(rng.choice(SYLLABLES) for _ in range(rng.choice((2, 2, 3))))
        domains[f"{stem}.{rng.choice(TLDS)}"] = None
    return list(domains)


class MailMaker:
    """Deterministic realistic mail: Zipf-popular sender domains, an agent's address with aliases, Cc'd people."""

    def __init__(self, seed: int, domains: int = 500) -> None:
        self.rng = random.Random(seed)
        self.domains = make_domains(self.rng, domains)
        self.weights = [1 / (rank + 1) for rank in range(domains)]  # Zipf, s = 1: a few senders send most
        self.people = [f"{self.rng.choice(FIRST_NAMES).lower()}.{self.rng.choice(LAST_NAMES).lower()}@"
                       f"{self.rng.choice(('example.test', *self.domains[:40]))}" for _ in range(200)]
        self.people = [p.encode("ascii", "ignore").decode() for p in self.people]
        # Body words are Zipf-distributed too: the commonest are in most messages, the rarest in a few percent.
        self.vocabulary = rng_shuffled(self.rng, WORDS)
        self.word_weights = list(itertools.accumulate(1 / (rank + 1) for rank in range(len(WORDS))))

    def mail(self, index: int, date: float) -> Mail:
        rng = self.rng
        domain = rng.choices(self.domains, self.weights)[0]
        kind = rng.choices(KIND_NAMES, KIND_WEIGHTS)[0]
        locals_, subjects = KINDS[kind]
        brand = domain.split(".")[0].capitalize()
        first, last = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)
        local = rng.choice(locals_) or f"{first}.{last}".lower().encode("ascii", "ignore").decode()
        host = rng.choices((domain, f"mail.{domain}", f"em.{domain}", f"notifications.{domain}"), (60, 20, 10, 10))[0]
        name = f"{first} {last}" if kind == "personal" else f"{brand}" if rng.random() < 0.7 else f"{brand} Team"
        roll = rng.random()
        to = ("agent@example.test",) if roll < 0.7 else (f"agent+{rng.choice(TAGS)}@example.test",) if roll < 0.95 \
            else (rng.choice(self.people), "agent@example.test")
        cc = tuple(rng.sample(self.people, rng.randint(1, 3))) if kind == "personal" and rng.random() < 0.4 else ()
        code, order = f"{rng.randrange(10**6):06d}", f"{rng.randrange(10**7, 10**8)}"
        subject = rng.choice(subjects).format(brand=brand, code=code, order=order, month=rng.choice(MONTHS),
                                              w1=rng.choice(WORDS), w2=rng.choice(WORDS), w3=rng.choice(WORDS))
        token = base64.urlsafe_b64encode(rng.randbytes(18)).decode()
        opening = {
            "verification": f"Your verification code is {code}. It expires in 10 minutes.\n"
                            f"Or open https://{domain}/verify?token={token}",
            "reset": f"Someone asked to reset your password. Open https://{domain}/reset/{token} to choose a new one.",
            "receipt": f"Order #{order}: total {rng.randint(5, 900)}.{rng.randint(0, 99):02d} EUR, paid by card.",
            "shipping": f"Parcel {order} left our warehouse. Track it at https://{domain}/track/{order}",
            "newsletter": f"This week at {brand}: {rng.choice(WORDS)}, {rng.choice(WORDS)} and more.",
            "security": f"A new sign-in to your {brand} account from {rng.choice(('Paris', 'Lagos', 'Osaka', 'Lima'))}."
                        f" If this was not you, open https://{domain}/security",
            "invoice": f"Invoice {order} for {rng.randint(10, 5000)}.00 EUR is due in 14 days.",
            "personal": f"Hi {rng.choice(FIRST_NAMES)},",
        }[kind]
        return Mail(index, kind, domain, host, f"{local}@{host}", name, to, cc, subject, date, opening)

    def text(self, mail: Mail, chars: int) -> str:
        """A plain body of about chars characters: the opening line, then paragraphs."""
        rng = self.rng
        parts, size = [mail.opening, ""], len(mail.opening)
        while size < chars:
            count = rng.randint(6, 16)
            content = iter(rng.choices(self.vocabulary, cum_weights=self.word_weights, k=count))
            sentence = " ".join(next(content) if rng.random() < 0.55 else rng.choice(GLUE) for _ in range(count))
            line = sentence[0].upper() + sentence[1:] + "."
            parts.append(line if rng.random() < 0.8 else line + "\n")
            size += len(line) + 1
        parts.append(f"\n-- \n{mail.name}\nhttps://{mail.domain}/unsubscribe")
        return "\n".join(parts)

    def mime(self, mail: Mail, size: int) -> bytes:
        """The message as delivered (CRLF line ends), about size bytes: plain, text+HTML, or with a PDF too."""
        rng = self.rng
        layout = rng.choices(("plain", "alternative", "mixed"), (40, 45, 15))[0]
        head = self._headers(mail)
        room = max(200, size - len(head))
        if layout == "plain":
            body = _text_part(self.text(mail, int(room * 0.93)), headers=False)
            top = "Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n"
        else:
            # The HTML part repeats the text with markup and comes to about twice its size.
            share = 0.5 if layout == "mixed" else 0.9
            text = self.text(mail, int(room * share * 0.26))
            alternative = _multipart(rng, "alternative", [_text_part(text), _html_part(mail, text)])
            if layout == "alternative":
                top, body = alternative
            else:
                top, body = _multipart(rng, "mixed", [alternative, _attachment(rng, int(room * 0.3))])
        return (head + "MIME-Version: 1.0\r\n" + top + "\r\n" + body).encode()

    def _headers(self, mail: Mail) -> str:
        rng = self.rng
        date = formatdate(mail.date)
        ip = f"203.0.113.{rng.randint(1, 254)}"
        bh = base64.b64encode(rng.randbytes(32)).decode()
        signature = base64.b64encode(rng.randbytes(256)).decode()
        lines = [
            f"Return-Path: <bounce-{rng.randrange(10**9)}@{mail.host}>",
            f"Received: from {mail.host} ({mail.host} [{ip}])\r\n\tby mx.example.test with ESMTPS id "
            f"{rng.randrange(16**12):012x}\r\n\tfor <agent@example.test>; {date}",
            f"Received: by {mail.host} with SMTP id {rng.randrange(16**16):016x}; {date}",
            f"Authentication-Results: mx.example.test;\r\n\tdkim=pass header.d={mail.domain} header.s=s1;\r\n"
            f"\tspf=pass smtp.mailfrom={mail.host};\r\n\tdmarc=pass header.from={mail.domain}",
            f"DKIM-Signature: v=1; a=rsa-sha256; c=relaxed/relaxed; d={mail.domain}; s=s1;\r\n"
            f"\th=from:to:subject:date:message-id:mime-version; bh={bh};\r\n\tb="
            + "\r\n\t ".join(signature[i:i + 70] for i in range(0, len(signature), 70)),
            f"From: {formataddr((mail.name, mail.sender), charset='utf-8')}",
            f"To: {', '.join(mail.to)}",
            *([f"Cc: {', '.join(mail.cc)}"] if mail.cc else []),
            f"Subject: {Header(mail.subject, 'utf-8').encode() if not mail.subject.isascii() else mail.subject}",
            f"Date: {date}",
            f"Message-ID: <{mail.index}.{rng.randrange(16**8):08x}@{mail.host}>",
        ]
        if mail.kind == "newsletter":
            lines.append(f"List-Unsubscribe: <https://{mail.domain}/unsubscribe?u={rng.randrange(10**9)}>")
        return "\r\n".join(lines) + "\r\n"


def _qp(text: str) -> str:
    return quopri.encodestring(text.replace("\r\n", "\n").encode()).decode().replace("\n", "\r\n")


def _text_part(text: str, headers: bool = True) -> str:
    body = _qp(text)
    if not headers:
        return body
    return f"Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n{body}"


def _html_part(mail: Mail, text: str) -> str:
    paragraphs = "".join(f'<p style="margin:0 0 12px 0;font-family:Arial,sans-serif;font-size:14px">{p}</p>\n'
                         for p in text.split("\n") if p)
    html = (f'<!DOCTYPE html><html><head><meta charset="utf-8"><title>{mail.subject}</title></head>\n'
            f'<body><table width="100%" cellpadding="0" cellspacing="0"><tr><td align="center">\n'
            f'<img src="https://{mail.domain}/logo.png" alt="{mail.name}" width="120">\n{paragraphs}'
            f'<a href="https://{mail.domain}/unsubscribe">Unsubscribe</a></td></tr></table></body></html>')
    return f"Content-Type: text/html; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n{_qp(html)}"


def _attachment(rng: random.Random, size: int) -> str:
    data = base64.b64encode(b"%PDF-1.4\n" + rng.randbytes(max(200, size))).decode()
    lines = "\r\n".join(data[i:i + 76] for i in range(0, len(data), 76))
    name = f"document-{rng.randrange(10**5)}.pdf"
    return (f'Content-Type: application/pdf; name="{name}"\r\nContent-Disposition: attachment; '
            f'filename="{name}"\r\nContent-Transfer-Encoding: base64\r\n\r\n{lines}\r\n')


def _multipart(rng: random.Random, subtype: str, parts: Sequence[str | tuple[str, str]]) -> tuple[str, str]:
    """(Content-Type header line, body) of a multipart of the given parts (a nested one as such a pair)."""
    boundary = f"=_{subtype}_{rng.randrange(16**16):016x}"
    chunks = []
    for part in parts:
        text = part if isinstance(part, str) else part[0] + "\r\n" + part[1]
        chunks.append(f"--{boundary}\r\n{text.rstrip(chr(13) + chr(10))}\r\n")
    return (f'Content-Type: multipart/{subtype}; boundary="{boundary}"\r\n',
            "This is a multi-part message in MIME format.\r\n\r\n" + "".join(chunks) + f"--{boundary}--\r\n")


def sizes(rng: random.Random, count: int, low: int, high: int) -> list[int]:
    """count sizes, log-uniform from low to high bytes: more small messages than large ones."""
    return [int(math.exp(rng.uniform(math.log(low), math.log(high)))) for _ in range(count)]


# --- statistics ------------------------------------------------------------------------------


def percentile(values: Sequence[float], q: float) -> float:
    """The nearest-rank q-quantile of values."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def _duration(seconds: float) -> str:
    return f"{seconds * 1e6:.0f} us" if seconds < 1e-3 else f"{seconds * 1e3:.2f} ms" if seconds < 1 \
        else f"{seconds:.2f} s"


# --- 1. push latency -------------------------------------------------------------------------


@dataclass
class Push:
    """Seconds from the start of each delivery to the message seen, per trial."""

    label: str
    times: list[float] = field(default_factory=list)


def raw_idle_once(server: Dovecot, client: IMAPClient, message: bytes) -> float:
    """Dovecot's own notify latency: IDLE, deliver, until idle_check returns the EXISTS (blocking)."""
    client.idle()
    try:
        start = time.perf_counter()
        server.deliver(message, to=RAW_USER)
        while time.perf_counter() - start < 10:
            responses = client.idle_check(timeout=1.0)
            if any(len(r) > 1 and r[1] == b"EXISTS" for r in responses):
                return time.perf_counter() - start
        raise SystemExit("bench_inbox: the raw IDLE connection saw no EXISTS within 10 s")
    finally:
        client.idle_done()


async def visible_at(inbox: Inbox, subject: str, timeout: float = 10.0) -> float:
    """perf_counter when a message with this subject can be read from the cache."""
    deadline = time.perf_counter() + timeout
    while time.perf_counter() < deadline:
        if await inbox.read(MessageQuery(subject=subject, limit=1)):
            return time.perf_counter()
        await inbox.wait_for_mail(POLL_S)  # woken by the add itself; the 5 ms poll covers a missed wake
    raise SystemExit(f"bench_inbox: {subject!r} was not cached within {timeout:.0f} s")


async def ours_once(server: Dovecot, inbox: Inbox, sync: ImapSync, message: bytes, subject: str) -> float:
    """Our push: ImapSync is idling; deliver, until the message is readable from the cache."""
    deadline = time.perf_counter() + 10
    while not sync.status.idling and time.perf_counter() < deadline:
        await asyncio.sleep(POLL_S)
    # status.idling is set just before the IDLE command goes out; the first IDLE after a sync
    # is short (Timing.settle), and the NOOP after it would see the mail sooner than IDLE
    # does: wait for the steady IDLE, as mail mostly finds it.
    await asyncio.sleep(sync.timing.settle + 0.5)
    start = time.perf_counter()
    await asyncio.to_thread(server.deliver, message)
    return await visible_at(inbox, subject) - start


async def push_latency(server: Dovecot, maker: MailMaker, home: Path, trials: int) -> tuple[Push, Push]:
    """Interleaved trials of raw IDLE and of ours, after one untimed trial each (it starts the parser workers)."""
    raw, ours = Push("raw imapclient IDLE: EXISTS"), Push("ImapSync.run: cached, readable")
    account = ImapAccount(name="push", host=server.host, port=server.imap_port, username=PUSH_USER,
                          security="plain")
    parser = Parser(workers=2)
    client = server.connect("plain", user=RAW_USER, password=server.password)
    client.select_folder("INBOX", readonly=True)
    try:
        async with await Inbox.open(home) as inbox:
            sync = ImapSync(account, server.password, inbox, parser)
            stop = asyncio.Event()
            task = asyncio.create_task(sync.run(stop))
            try:
                for trial in range(trials + 1):
                    for side in ("raw", "ours") if trial % 2 else ("ours", "raw"):
                        subject = f"Your Pushbench verification code is {trial:06d} ({side})"
                        message = maker.mime(replace(maker.mail(trial, time.time()), subject=subject), 3000)
                        if side == "raw":
                            seconds = await asyncio.to_thread(raw_idle_once, server, client, message)
                        else:
                            seconds = await ours_once(server, inbox, sync, message, subject)
                        if trial:
                            (raw if side == "raw" else ours).times.append(seconds)
                        await asyncio.sleep(0.2)
            finally:
                stop.set()  # the IDLE ends within IDLE_TICK
                await asyncio.wait_for(task, 30)
    finally:
        parser.close()
        client.logout()
    return raw, ours


# --- 2. first sync ---------------------------------------------------------------------------


def write_maildir(server: Dovecot, user: str, messages: Sequence[bytes], seen: Sequence[bool]) -> None:
    """Messages as Maildir files in the user's cur/ (LF line ends, S= and W= sizes), owned by the mail user.

    Dovecot finds the files at the first SELECT and gives them UIDs (Maildir++ names:
    time.M<n>P<pid>.host, then S= the file's size and W= the size with CRLF line ends, which
    IMAP reports as RFC822.SIZE, then :2, and the flags, S for seen).
    """
    owner = server.mail_root.stat()
    home = server.mail_root / user
    maildir = home / "Maildir"
    for folder in (home, maildir, maildir / "cur", maildir / "new", maildir / "tmp"):
        folder.mkdir(exist_ok=True)
        os.chown(folder, owner.st_uid, owner.st_gid)
    start = int(time.time()) - len(messages)
    for i, (crlf, flag) in enumerate(zip(messages, seen, strict=True)):
        lf = crlf.replace(b"\r\n", b"\n")
        path = maildir / "cur" / f"{start + i}.M{i:06d}P{os.getpid()}.bench,S={len(lf)},W={len(crlf)}:2,{'S' * flag}"
        path.write_bytes(lf)
        os.chown(path, owner.st_uid, owner.st_gid)


def check_maildir(server: Dovecot, messages: Sequence[bytes], rng: random.Random) -> str:
    """Dovecot serves every message written, and a sample byte for byte with the right size; a summary."""
    client = server.connect("plain", user=BULK_USER, password=server.password, timeout=60)
    try:
        exists = int(client.select_folder("INBOX", readonly=True)[b"EXISTS"])
        uids = client.search(["ALL"])
        sample = rng.sample(uids, min(25, len(uids)))
        fetched = client.fetch(sample, ["BODY.PEEK[]", "RFC822.SIZE"])
    finally:
        client.logout()
    written = set(messages)
    same = sum(1 for data in fetched.values()
               if data[b"BODY[]"] in written and data[b"RFC822.SIZE"] == len(data[b"BODY[]"]))
    if exists != len(messages) or same != len(sample):
        raise SystemExit(f"bench_inbox: the Maildir check failed: {exists} of {len(messages)} messages served, "
                         f"{same} of {len(sample)} sampled identical")
    return f"{exists:,} served, {same} of {len(sample)} sampled byte-identical with RFC822.SIZE right"


def baseline_sync(server: Dovecot, batch: int) -> tuple[float, int]:
    """imapclient FETCH BODY.PEEK[] in batches plus mailparser.parse_from_bytes of each, one process."""
    start = time.perf_counter()
    client = IMAPClient(server.host, server.imap_port, ssl=False, timeout=60)
    client.login(BULK_USER, server.password)
    client.select_folder("INBOX", readonly=True)
    uids = client.search(["ALL"])
    parsed = 0
    for at in range(0, len(uids), batch):
        for data in client.fetch(uids[at:at + batch], ["BODY.PEEK[]"]).values():
            mailparser.parse_from_bytes(data[b"BODY[]"])
            parsed += 1
    client.logout()
    return time.perf_counter() - start, parsed


async def our_first_sync(server: Dovecot, home: Path, count: int) -> tuple[float, int, float]:
    """A fresh ImapSync.sync_once() into an empty cache, taking every message; (seconds, cached, catch-up).

    The sync extracts its newest messages (imap.EXTRACT_INLINE) as it caches them and leaves
    the rest to the extraction catch-up that the server runs after it (Inbox.reindex): timed
    apart, after the sync.
    """
    account = ImapAccount(name="bulk", host=server.host, port=server.imap_port, username=BULK_USER,
                          security="plain", first_sync_count=count)
    parser = Parser(workers=2)
    try:
        async with await Inbox.open(home) as inbox:
            sync = ImapSync(account, server.password, inbox, parser)
            start = time.perf_counter()
            added = await sync.sync_once()
            elapsed = time.perf_counter() - start
            await sync.disconnect()
            start = time.perf_counter()
            await inbox.reindex(parser)
            catch_up = time.perf_counter() - start
    finally:
        parser.close()
    return elapsed, added, catch_up


@dataclass
class Throughput:
    """Messages per second of each round."""

    label: str
    rates: list[float] = field(default_factory=list)
    seconds: list[float] = field(default_factory=list)
    catch_up: list[float] = field(default_factory=list)  # ours: the extraction after the sync

    @property
    def rate(self) -> float:
        return statistics.median(self.rates)


async def first_sync(server: Dovecot, count: int, rounds: int, root: Path) -> tuple[Throughput, Throughput]:
    """Rounds of ours and of the baseline, alternating which goes first, after one untimed baseline pass."""
    baseline_sync(server, FETCH_BATCH)  # Dovecot builds its index; the files enter the page cache
    base = Throughput(f"imapclient FETCH + mail-parser (batches of {FETCH_BATCH}, 1 process)")
    ours = Throughput("ImapSync.sync_once() into an empty cache")
    for round_ in range(rounds):
        for side in ("ours", "base") if round_ % 2 == 0 else ("base", "ours"):
            gc.collect()
            if side == "base":
                seconds, done = baseline_sync(server, FETCH_BATCH)
                result = base
            else:
                seconds, done, catch_up = await our_first_sync(server, root / f"sync-{round_}", count)
                result = ours
                ours.catch_up.append(catch_up)
            if done != count:
                raise SystemExit(f"bench_inbox: {result.label} took {done} of {count} messages")
            result.seconds.append(seconds)
            result.rates.append(count / seconds)
    return base, ours


# --- 3. queries ------------------------------------------------------------------------------


def build_cache(home: Path, maker: MailMaker, count: int, batch: int = 5000) -> list[tuple[Mail, str]]:
    """count messages cached through the InboxStore, batch rows a transaction, newest last; (mail, text) of each."""
    rng = maker.rng
    end = time.time()
    step = 2 * 365 * 86400 / count  # two years of mail
    made: list[tuple[Mail, str]] = []
    home.mkdir(mode=0o700, parents=True, exist_ok=True)
    store = open_store(home / "vault.db", InboxStore)
    try:
        chars = sizes(rng, count, 200, 3000)
        for at in range(0, count, batch):
            with store.transaction(durable=False):
                for i in range(at, min(count, at + batch)):
                    received = end - (count - i) * step + rng.uniform(0, step)
                    mail = maker.mail(i, received - rng.uniform(5, 600))
                    text = maker.text(mail, chars[i])
                    parsed = ParsedMessage(
                        raw_size=len(text) * 3, message_id=f"<{i}.bench@{mail.host}>", from_addr=mail.sender,
                        from_name=mail.name, to=mail.to, cc=mail.cc, subject=mail.subject, date=mail.date, text=text,
                        html=f"<html><body><p>{text.replace(chr(10), '</p><p>')}</p></body></html>"
                        if rng.random() < 0.5 else "",
                        attachments=(Attachment("invoice.pdf", "application/pdf", 48_000),)
                        if mail.kind == "invoice" else (),
                        auth_results=(f"mx.example.test; dkim=pass header.d={mail.domain}; spf=pass",),
                    )
                    seen = i < count - 500 and rng.random() < 0.97  # the newest 500 unread, and a few older
                    store.insert_message(_row("bench", "INBOX", 1, i + 1, parsed, received, seen),
                                         [*mail.to, *mail.cc])
                    made.append((mail, text))
    finally:
        store.close()
    return made


def query_plans(made: Sequence[tuple[Mail, str]], rng: random.Random, count: int) -> dict[str, list[MessageQuery]]:
    """count queries per filter: values from random cached messages; full-text words uniform over the vocabulary."""
    def pick() -> tuple[Mail, str]:
        return made[rng.randrange(len(made))]

    def subject_word() -> str:
        words = [w for w in re.findall(r"[A-Za-z]{4,}", pick()[0].subject)]
        return rng.choice(words) if words else "your"

    return {
        "newest 10, no filter": [MessageQuery() for _ in range(count)],
        "sender domain": [MessageQuery(sender=pick()[0].domain) for _ in range(count)],
        "recipient": [MessageQuery(to=rng.choice([*m.to, *m.cc])) for m, _ in (pick() for _ in range(count))],
        "subject substring": [MessageQuery(subject=subject_word().lower()) for _ in range(count)],
        "full-text word": [MessageQuery(text=rng.choice(WORDS)) for _ in range(count)],
        "unread only": [MessageQuery(seen=False) for _ in range(count)],
        # what inbox_wait asks while it waits: mail received since a moment (none yet)
        "received since now (none)": [MessageQuery(since=time.time() + 3600) for _ in range(count)],
    }


def fts_matches(db: Path, words: Sequence[str]) -> int:
    """The median number of cached messages that each full-text word matches (counted apart, untimed)."""
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        return int(statistics.median(
            conn.execute("SELECT count(*) FROM messages_fts WHERE messages_fts MATCH ?", (f'"{w}"',)).fetchone()[0]
            for w in words))
    finally:
        conn.close()


@dataclass
class Queries:
    """Per-round p50 and p99 (seconds) of one filter's calls."""

    label: str
    p50s: list[float] = field(default_factory=list)
    p99s: list[float] = field(default_factory=list)
    hits: int = 0  # calls that found at least one message, in the last round

    @property
    def p50(self) -> float:
        return statistics.median(self.p50s)

    @property
    def p99(self) -> float:
        return statistics.median(self.p99s)


async def time_queries(home: Path, plans: dict[str, list[MessageQuery]], rounds: int) -> list[Queries]:
    """Each query timed on its own through inbox.read, after one untimed pass over all of them."""
    results = {label: Queries(label) for label in plans}
    async with await Inbox.open(home) as inbox:
        for queries in plans.values():
            for query in queries:
                await inbox.read(query)
        for _ in range(rounds):
            for label, queries in plans.items():
                gc.collect()
                latencies, hits = [], 0
                for query in queries:
                    before = time.perf_counter()
                    found = await inbox.read(query)
                    latencies.append(time.perf_counter() - before)
                    hits += bool(found)
                results[label].p50s.append(percentile(latencies, 0.50))
                results[label].p99s.append(percentile(latencies, 0.99))
                results[label].hits = hits
    return list(results.values())


# --- the run ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Plan:
    trials: int
    sync_messages: int
    sync_rounds: int
    cache_messages: int
    queries: int
    query_rounds: int


async def run(plan: Plan) -> None:
    maker = MailMaker(SEED)
    rng = random.Random(SEED + 1)
    with tempfile.TemporaryDirectory(prefix="mailgent-bench-inbox-") as tmp:
        root = Path(tmp)
        started = time.perf_counter()
        messages = [maker.mime(maker.mail(i, time.time() - (plan.sync_messages - i) * 600), size)
                    for i, size in enumerate(sizes(rng, plan.sync_messages, 1536, 20 * 1024))]
        seen = [rng.random() < 0.7 for _ in messages]
        generated = time.perf_counter() - started
        server = Dovecot(user=PUSH_USER)
        try:
            for user in (RAW_USER, BULK_USER):
                server.add_user(user, server.password)
            started = time.perf_counter()
            write_maildir(server, BULK_USER, messages, seen)
            written = time.perf_counter() - started
            with server:
                check = check_maildir(server, messages, rng)
                raw, ours = await push_latency(server, maker, root / "push", plan.trials)
                base, synced = await first_sync(server, plan.sync_messages, plan.sync_rounds, root)
        finally:
            server.close()
        started = time.perf_counter()
        made = build_cache(root / "cache", maker, plan.cache_messages)
        built = time.perf_counter() - started
        db_size = sum(f.stat().st_size for f in (root / "cache").glob("vault.db*"))
        plans = query_plans(made, rng, plan.queries)
        matches = fts_matches(root / "cache" / "vault.db", [q.text or "" for q in plans["full-text word"]])
        queries = await time_queries(root / "cache", plans, plan.query_rounds)
    corpus = Corpus(messages, generated, written, check, built, db_size, matches)
    print_report(plan, corpus, (raw, ours), (base, synced), queries)


@dataclass(frozen=True)
class Corpus:
    messages: list[bytes]
    generated: float
    written: float
    check: str
    built: float
    db_size: int
    fts_matches: int  # median messages a full-text query word matches


def print_report(plan: Plan, corpus: Corpus, push: tuple[Push, Push], sync: tuple[Throughput, Throughput],
                 queries: list[Queries]) -> None:
    print(f"mailgent-mcp inbox benchmark: Python {platform.python_version()}, SQLite {sqlite3.sqlite_version}, "
          f"IMAPClient {version('IMAPClient')}, mail-parser {version('mail-parser')}, Dovecot "
          f"{_dovecot_version()}, {os.cpu_count()} CPUs")
    print()
    raw, ours = push
    print(f"1. push latency: LMTP delivery start to seen; {plan.trials} trials each, interleaved, after 1 untimed")
    print(f"{'':<34} {'median':>9} {'p90':>9} {'min':>9} {'max':>9}")
    for p in push:
        print(f"{p.label:<34} {_ms(statistics.median(p.times))} {_ms(percentile(p.times, 0.9))} "
              f"{_ms(min(p.times))} {_ms(max(p.times))}")
    push_ratio = statistics.median(ours.times) / statistics.median(raw.times)
    print(f"{'ratio ours/raw':<34} {push_ratio:>8.2f}x {percentile(ours.times, 0.9) / percentile(raw.times, 0.9):>8.2f}x"
          f"   (ours minus raw, median: {(statistics.median(ours.times) - statistics.median(raw.times)) * 1e3:.0f} ms)")
    print()
    base, synced = sync
    kb = [len(m) / 1024 for m in corpus.messages]
    multipart = sum(b"multipart/" in m[:6000] for m in corpus.messages)
    attached = sum(b"application/pdf" in m for m in corpus.messages)
    print(f"2. first sync of {len(corpus.messages):,} messages ({min(kb):.1f}-{max(kb):.1f} KB, median "
          f"{statistics.median(kb):.1f} KB, {sum(len(m) for m in corpus.messages) / 2**20:.0f} MB; "
          f"{multipart:,} text+HTML, {attached:,} of them with a PDF)")
    print(f"   generated in {corpus.generated:.1f} s, written as Maildir files in {corpus.written:.1f} s; "
          f"Dovecot: {corpus.check}")
    print(f"   {plan.sync_rounds} rounds each, alternating, after 1 untimed baseline pass; median")
    print(f"{'':<62} {'msgs/s':>8} {'time':>8}")
    for t in sync:
        print(f"{t.label:<62} {t.rate:>8,.0f} {statistics.median(t.seconds):>6.1f} s")
    sync_ratio = synced.rate / base.rate
    print(f"{'ratio ours/baseline (messages per second)':<62} {sync_ratio:>7.2f}x")
    catch_up = statistics.median(synced.catch_up)
    older = max(plan.sync_messages - EXTRACT_INLINE, 0)
    print(f"then the extraction of the {older:,} older messages (Inbox.reindex, 2 workers): {catch_up:.1f} s, "
          f"{older / catch_up if catch_up else 0:,.0f} msgs/s")
    print()
    print(f"3. queries on a {plan.cache_messages:,}-message cache (built in {corpus.built:.0f} s, "
          f"{corpus.db_size / 2**20:.0f} MB): inbox.read(MessageQuery(..., limit=10)),")
    print(f"   {plan.queries} calls per filter, values from random cached messages; median over {plan.query_rounds} "
          f"rounds of each round's p50, p99")
    print(f"{'filter':<34} {'p50':>9} {'p99':>9} {'found':>9}")
    for q in queries:
        print(f"{q.label:<34} {_duration(q.p50):>9} {_duration(q.p99):>9} {f'{q.hits}/{plan.queries}':>9}")
    print(f"(found: calls that returned a message; a full-text word matched a median of {corpus.fts_matches:,} "
          f"messages, {corpus.fts_matches / plan.cache_messages:.0%} of the cache)")
    print()
    print(f"push latency median: {push_ratio:.2f}x raw IDLE (target within {PUSH_TARGET}x): "
          f"{'met' if push_ratio <= PUSH_TARGET else 'MISSED'}")
    print(f"first sync: {sync_ratio:.2f}x the baseline's messages/s (target at least {SYNC_TARGET}x): "
          f"{'met' if sync_ratio >= SYNC_TARGET else 'MISSED'}")
    for q in queries[1:]:
        print(f"query p50, {q.label}: {_duration(q.p50)} (target under {QUERY_TARGET_S * 1e3:.0f} ms): "
              f"{'met' if q.p50 < QUERY_TARGET_S else 'MISSED'}")


def _ms(seconds: float) -> str:
    return f"{seconds * 1e3:>6.0f} ms"


def _dovecot_version() -> str:
    binary = shutil.which("dovecot", path=SEARCH_PATH)
    out = subprocess.run([binary, "--version"], capture_output=True, text=True).stdout.split() if binary else []
    return out[0] if out else "?"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true",
                        help="5 push trials, 1,000 messages to sync, a 20,000-message cache, 50 queries per filter")
    args = parser.parse_args()
    if args.quick:
        plan = Plan(trials=5, sync_messages=1_000, sync_rounds=3, cache_messages=20_000, queries=50, query_rounds=3)
    else:
        plan = Plan(trials=20, sync_messages=10_000, sync_rounds=3, cache_messages=100_000, queries=200,
                    query_rounds=3)
    asyncio.run(run(plan))
    return 0


if __name__ == "__main__":
    sys.exit(main())
