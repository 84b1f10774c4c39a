"""DKIM verified by the server itself (RFC 6376), where no receiving server it trusts vouched.

`dkimpy` (and dnspython, through which it finds keys) is used here and nowhere else. It runs
in the parser worker, where the raw message is (it is not kept after parsing), inside the
parse time limit: each key lookup has a short timeout and the whole check a budget, and the
work is bounded (a few signatures, a size cap). The key lookup is a picklable callable handed
to the worker, so tests give a static map of keys they made instead of DNS.

A check gives (d= domain, result) per signature checked, result as RFC 8601 names it:
pass, fail (it does not verify), permerror (no usable key, malformed), temperror (the
lookup failed or the budget ran out), policy (not acceptable here: see _refused).
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

log = logging.getLogger(__name__)

MAX_DKIM_BYTES = 2 * 1024 * 1024  # larger mail is not checked (verification mail is small)
MAX_SIGNATURES = 3  # signatures checked per message, topmost first
LOOKUP_TIMEOUT_S = 1.0  # one DNS query at most
# A longer key record is refused: the key's size (and its RSA exponent) set the cost of a check,
# and a sender's own domain can publish any. 8192-bit RSA fits.
MAX_KEY_RECORD_BYTES = 1600
CACHE_SIZE = 512  # keys kept per worker process
CACHE_TTL_S = 600.0  # how long a key (or its absence) is kept

# A key lookup: ("selector._domainkey.domain", timeout in seconds) -> the TXT record, or None
# when there is none; it raises KeyLookupFailed when it could not tell.
KeyLookup = Callable[[str, float], bytes | None]
DkimResults = tuple[tuple[str, str], ...]


class KeyLookupFailed(Exception):
    """The key could not be looked up now (a DNS timeout or server failure): a temporary error."""


@dataclass(frozen=True)
class StaticKeyLookup:
    """Keys from a map {"selector._domainkey.domain": TXT record}; nothing else exists (no DNS)."""

    records: Mapping[str, str] = field(default_factory=dict)

    def __call__(self, name: str, timeout: float) -> bytes | None:
        """The record of name, or None."""
        record = self.records.get(name.lower().rstrip("."))
        return record.encode() if record is not None else None


@dataclass(frozen=True)
class DnsKeyLookup:
    """Keys from DNS TXT records (the system's resolver, or these nameservers), cached in this process."""

    nameservers: tuple[str, ...] | None = None
    port: int = 53
    timeout: float = LOOKUP_TIMEOUT_S

    def __call__(self, name: str, timeout: float) -> bytes | None:
        """The TXT record of name (a cached answer when there is one), or None when there is none."""
        key = (self, name.lower().rstrip("."))
        now = time.monotonic()
        with _CACHE_LOCK:
            hit = _CACHE.get(key)
            if hit is not None and hit[0] > now:
                return hit[1]
        record = self._query(key[1], min(timeout, self.timeout))
        with _CACHE_LOCK:
            _CACHE[key] = (now + CACHE_TTL_S, record)
            _CACHE.move_to_end(key)
            while len(_CACHE) > CACHE_SIZE:
                _CACHE.popitem(last=False)
        return record

    def _query(self, name: str, timeout: float) -> bytes | None:
        import dns.exception
        import dns.resolver

        resolver = dns.resolver.Resolver(configure=self.nameservers is None)
        if self.nameservers is not None:
            resolver.nameservers = list(self.nameservers)
            resolver.port = self.port
        try:
            answer = resolver.resolve(name, "TXT", lifetime=timeout, search=False, raise_on_no_answer=False)
        except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer):
            return None
        except dns.exception.DNSException as exc:
            raise KeyLookupFailed(type(exc).__name__) from None
        for rrset in answer.response.answer:
            for record in rrset:
                strings = getattr(record, "strings", None)
                if strings is not None:
                    return b"".join(strings)
        return None


_CACHE: OrderedDict[tuple[DnsKeyLookup, str], tuple[float, bytes | None]] = OrderedDict()
_CACHE_LOCK = threading.Lock()


class _Lookups:
    """dkimpy's dnsfunc over a KeyLookup: within the deadline, and remembering why a key was not found."""

    def __init__(self, lookup: KeyLookup, deadline: float) -> None:
        self._lookup = lookup
        self._deadline = deadline
        self.failed = False  # a lookup failed or found no time left: temperror
        self.missing = False  # no key record: permerror
        self.found = False  # a key record came back: what fails after it is the signature's check

    def __call__(self, name: bytes, timeout: float = LOOKUP_TIMEOUT_S) -> bytes | None:
        import dkim

        left = self._deadline - time.monotonic()
        if left <= 0:
            self.failed = True
            raise dkim.DnsTimeoutError("no time left")
        try:
            record = self._lookup(name.decode("ascii", "replace"), min(timeout, left))
        except KeyLookupFailed:
            self.failed = True
            raise dkim.DnsTimeoutError("lookup failed") from None
        except Exception:
            self.failed = True
            raise dkim.DnsTimeoutError("lookup failed") from None
        if record is not None and len(record) > MAX_KEY_RECORD_BYTES:
            record = None
        self.missing, self.found = not record, bool(record)
        return record


def _quiet_logger() -> logging.Logger:
    # dkimpy logs the sender's selector, domain and key text: none of it belongs in our logs.
    logger = logging.getLogger(__name__ + ".dkimpy")
    logger.disabled = True
    logger.propagate = False
    return logger


def _refused(fields: dict[bytes, bytes]) -> bool:
    """Signatures that cannot vouch for what the agent is shown, whatever their cryptography.

    l= signs only the first l bytes of the body: anyone may append text (and links) after it.
    A signature must cover From (RFC 6376 §5.4), or it says nothing about the sender.
    """
    signed = [h.strip().lower() for h in fields.get(b"h", b"").split(b":")]
    return b"l" in fields or b"from" not in signed


def check(raw: bytes, lookup: KeyLookup, deadline: float) -> DkimResults | None:
    """(d= domain, result) of each DKIM signature checked (topmost first, at most a few); None when not checked."""
    if len(raw) > MAX_DKIM_BYTES:
        return None
    import dkim
    from dkim.util import InvalidTagValueList, parse_tag_value

    try:
        message = dkim.DKIM(raw, logger=_quiet_logger(), timeout=LOOKUP_TIMEOUT_S)
    except Exception:
        return None
    signatures = [value for name, value in message.headers if name.lower() == b"dkim-signature"]
    results: list[tuple[str, str]] = []
    for index, value in enumerate(signatures[:MAX_SIGNATURES]):
        try:
            fields: dict[bytes, Any] = parse_tag_value(value)
        except InvalidTagValueList:
            results.append(("", "permerror"))
            continue
        domain = bytes(fields.get(b"d", b"")).decode("ascii", "replace").strip().lower()[:253]
        results.append((domain, _result(message, index, fields, lookup, deadline)))
    return tuple(results)


def _result(message: Any, index: int, fields: dict[bytes, bytes], lookup: KeyLookup, deadline: float) -> str:
    import dkim

    if _refused(fields):
        return "policy"
    lookups = _Lookups(lookup, deadline)
    try:
        verified = bool(message.verify(idx=index, dnsfunc=lookups))
    except dkim.ValidationError:
        # Before the key lookup: a malformed signature; after it: the body hash did not match.
        return "fail" if lookups.found else "permerror"
    except dkim.DKIMException:
        return "temperror" if lookups.failed else "permerror"
    except Exception:
        return "permerror"
    if verified:
        return "pass"
    return "temperror" if lookups.failed else "permerror" if lookups.missing else "fail"
