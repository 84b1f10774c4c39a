"""Links of a mail, classified by what following them would do (verify, sign in, reset, unsubscribe); never opened."""

from __future__ import annotations

import html as html_lib
import re
import urllib.parse
from collections.abc import Iterable
from functools import lru_cache

from mailgent_mcp.inbox.extract.common import MAX_SCAN_CHARS, fold_case, word_pattern
from mailgent_mcp.inbox.extract.result import Link

_KIND_ORDER = {"verify": 0, "magic_signin": 1, "reset": 2, "other": 3, "unsubscribe": 4}
SHOWN_KINDS = frozenset({"verify", "magic_signin", "reset"})
_UNSUBSCRIBE = word_pattern(r"unsubscri|opt[-_ ]?out|list-?manage|email[-_ ]?preferences|manage (your )?"
                          r"(email|subscription|notification)|abmelden|abbestellen|désinscri|desinscri|désabonner|"
                          r"darse de baja|cancelar (a )?(inscrição|suscripción)|disiscriv|annulla l'iscrizione|"
                          r"uitschrijven|afmelden|отписаться|отписк|退订|取消订阅|配信停止|購読解除|수신 ?거부")
_RESET = word_pattern(r"reset|forgot|password|passwort|mot[- ]de[- ]passe|contraseña|senha|wachtwoord|пароль|"
                    r"密码|密碼|パスワード|비밀번호")
_VERIFY = word_pattern(r"verif|confirm|activat|validat|bestätig|aktivier|vérifi|valider|activer|"
                     r"conferm|attiva|bevestig|activeer|подтверд|активир|验证|驗證|确认|確認|認証|激活|"
                     r"인증|확인|활성화")
_SIGNIN = word_pattern(r"sign[-_ ]?in|log[-_ ]?in|magic|anmelden|einloggen|se connecter|connexion|iniciar sesión|"
                     r"entrar|accedi|inloggen|войти|вход|登录|登入|ログイン|サインイン|로그인")
# A query value or path segment long and random enough to be a one-time token.
_TOKEN = re.compile(r"[A-Za-z0-9_\-.~%]{20,}")
_PLAIN_URL = re.compile(r"(?:https?://)[^\s<>\"'\]\[]+", re.I)


@lru_cache(maxsize=4096)
def link_kind(url: str, text: str) -> tuple[str, float]:
    """What a link does, from its text and its URL (the inner URL of a redirect included)."""
    inner = url
    for _ in range(2):  # tracking redirects carry the real target percent-encoded
        inner = urllib.parse.unquote(inner)
    parts = urllib.parse.urlsplit(inner if "://" in inner else "http://x/" + inner)
    where = " ".join([parts.path, parts.query, parts.fragment])
    has_token = bool(_TOKEN.search(parts.query) or _TOKEN.search(parts.path.rsplit("/", 1)[-1]))
    text, where = fold_case(text), fold_case(where)
    if _UNSUBSCRIBE.search(text) or _UNSUBSCRIBE.search(where):
        return "unsubscribe", 0.9
    for pattern, kind in ((_RESET, "reset"), (_VERIFY, "verify"), (_SIGNIN, "magic_signin")):
        if pattern.search(text):
            if kind == "magic_signin" and not has_token:
                continue  # a plain "Sign in" link to a login page is not a magic link
            return kind, 0.95 if has_token else 0.8
    for pattern, kind in ((_RESET, "reset"), (_VERIFY, "verify"), (_SIGNIN, "magic_signin")):
        if pattern.search(where) and has_token:
            return kind, 0.7
    return "other", 0.3


def _plain_links(text: str) -> list[tuple[str, str]]:
    """(url, the words before it on its line, or the line above) for each URL in plain text."""
    found = []
    for match in _PLAIN_URL.finditer(text[:MAX_SCAN_CHARS]):
        url = match.group().rstrip(".,;:!?)>»")
        line_start = text.rfind("\n", 0, match.start()) + 1
        label = text[line_start:match.start()].strip(" <([:-")
        if not label:
            prev_end = max(line_start - 1, 0)
            prev_start = text.rfind("\n", 0, prev_end) + 1
            label = text[prev_start:prev_end].strip(" <([:-")
        found.append((url, label[-100:]))
    return found


def find_links(anchors: Iterable[tuple[str, str]], plain: str, subject: str = "") -> list[Link]:
    """Links of both bodies, deduplicated, ranked: verification first, unsubscribe last."""
    seen: dict[str, Link] = {}
    order: dict[str, int] = {}
    for url, text in [*anchors, *_plain_links(plain)]:
        url = html_lib.unescape(url.strip())
        if not url.lower().startswith(("http://", "https://")):
            continue  # mailto:, tel:, cid:, javascript: and page anchors are not links to follow
        label = " ".join(text.split())[:200]
        kind, confidence = link_kind(url, label)
        if kind == "other" and subject and not label:
            kind, confidence = link_kind(url, subject)
            kind, confidence = (kind, confidence * 0.8) if kind in SHOWN_KINDS else ("other", 0.3)
        old = seen.get(url)
        if old is None or confidence > old.confidence:
            seen[url] = Link(url, kind, round(confidence, 2), label or (old.text if old else ""))
            order.setdefault(url, len(order))
    return sorted(seen.values(), key=lambda link: (_KIND_ORDER[link.kind], -link.confidence, order[link.url]))
