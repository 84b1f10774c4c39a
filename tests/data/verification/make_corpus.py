"""Writes the labelled verification corpus: *.eml beside manifest.json.

Every mail is written here, after the shapes real services send (multipart/alternative,
HTML-only, quoted-printable, base64, 8bit in iso-8859-1, shift_jis, koi8-r, gb2312,
euc-kr ...), with made-up names, domains (.test, .example) and codes. The labels say
what extraction must find: every code in rank order (empty: no code), the first link's
kind and URL (null: no link), and whether the sender's auth is aligned.

Run `python tests/data/verification/make_corpus.py` to rewrite the files after editing.
"""

from __future__ import annotations

import base64
import email.header
import json
import quopri
from pathlib import Path
from typing import Any

HERE = Path(__file__).parent
CORPUS: list[dict[str, Any]] = []

GOOD_AR = "mx.mailgent.test; dkim=pass header.d={d} header.s=s1; spf=pass smtp.mailfrom=bounce@{d}; dmarc=pass header.from={d}"


def encode_body(body: str, charset: str, cte: str) -> bytes:
    data = body.encode(charset)
    if cte == "quoted-printable":
        return quopri.encodestring(data).replace(b"\n", b"\r\n")
    if cte == "base64":
        return base64.encodebytes(data).replace(b"\n", b"\r\n")
    return data.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")


def part(subtype: str, body: str, charset: str = "utf-8", cte: str = "quoted-printable") -> bytes:
    head = f"Content-Type: text/{subtype}; charset=\"{charset}\"\r\nContent-Transfer-Encoding: {cte}\r\n\r\n"
    return head.encode() + encode_body(body, charset, cte)


def subject_header(subject: str, charset: str) -> str:
    if subject.isascii():
        return subject
    return email.header.Header(subject, "utf-8" if charset in ("utf-8", "iso-8859-1", "iso-8859-15") else charset).encode()


def add(name: str, *, sender: str, subject: str, text: str | None = None, html: str | None = None,
        charset: str = "utf-8", cte: str = "quoted-printable", codes: list[str] | None = None,
        link: tuple[str, str] | None = None, auth: list[str] | None = None, aligned: bool | None = None,
        note: str = "") -> None:
    """One corpus mail and its labels."""
    domain = sender.rsplit("@", 1)[1]
    headers = [f"Authentication-Results: {a}" for a in (auth if auth is not None else [GOOD_AR.format(d=domain)])]
    headers += [f"From: Service <{sender}>", "To: agent@mailgent.test", f"Subject: {subject_header(subject, charset)}",
                "Date: Thu, 26 Nov 2026 10:00:00 +0000", f"Message-ID: <{name}@{domain}>", "MIME-Version: 1.0"]
    if text is not None and html is not None:
        boundary = f"=_b_{name}"
        body = b"".join([b"--" + boundary.encode() + b"\r\n" + part("plain", text, charset, cte) + b"\r\n",
                         b"--" + boundary.encode() + b"\r\n" + part("html", html, charset, cte) + b"\r\n",
                         b"--" + boundary.encode() + b"--\r\n"])
        raw = ("\r\n".join(headers) + f"\r\nContent-Type: multipart/alternative; boundary=\"{boundary}\"\r\n\r\n"
               ).encode() + body
    else:
        raw = ("\r\n".join(headers) + "\r\n").encode() + part("html" if html is not None else "plain",
                                                             html if html is not None else text or "", charset, cte)
    (HERE / f"{name}.eml").write_bytes(raw)
    CORPUS.append({"file": f"{name}.eml", "codes": codes or [],
                   "first_link": {"kind": link[0], "url": link[1]} if link else None,
                   "aligned": aligned if aligned is not None else auth is None, "note": note})


def page(body: str, *, preheader: str = "", footer: str = "", lang: str = "en") -> str:
    """A mail template as ESPs make them: tables, inline styles, hidden preheader, pixel, footer."""
    pre = (f'<div style="display:none;font-size:1px;color:#fff;max-height:0px;overflow:hidden;mso-hide:all">'
           f'{preheader}&zwnj;&nbsp;&zwnj;&nbsp;&zwnj;&nbsp;</div>') if preheader else ""
    return (f'<!DOCTYPE html><html lang="{lang}"><head><meta charset="utf-8"><style type="text/css">'
            f'body{{margin:0;padding:0}} .btn{{background:#2da44e;color:#ffffff}} @media (max-width:600px){{'
            f'.c{{width:100%!important}}}}</style></head><body style="background:#f6f8fa">{pre}'
            f'<table role="presentation" width="100%" cellpadding="0" cellspacing="0"><tr><td align="center">'
            f'<table class="c" width="600" style="background:#ffffff;font-family:Helvetica,Arial,sans-serif">'
            f'<tr><td style="padding:24px">{body}</td></tr>'
            f'<tr><td style="padding:16px;font-size:12px;color:#6a737d">{footer}</td></tr></table>'
            f'</td></tr></table><img src="https://t.mailgent-esp.test/o/abc123def456.gif" width="1" height="1" '
            f'alt="" style="display:block"></body></html>')


def code_box(code: str) -> str:
    return (f'<table><tr><td style="font-size:32px;letter-spacing:8px;font-weight:bold;padding:16px;'
            f'background:#f1f1f1">{code}</td></tr></table>')


def button(url: str, label: str) -> str:
    return (f'<table><tr><td class="btn" style="border-radius:6px"><a href="{url}" style="color:#fff;'
            f'text-decoration:none;padding:12px 24px;display:inline-block">{label}</a></td></tr></table>')


EN_FOOTER = ('© 2026 Acme Labs, Inc. · 548 Market St, San Francisco, CA 94104<br>'
             'You are receiving this email because you signed up for Acme. '
             '<a href="https://acme.example/privacy">Privacy Policy</a>')


def build_languages() -> None:
    """A plain and an HTML code mail in each of eleven languages, in their own charsets."""
    langs = [
        ("en", "us-ascii", "Your verification code is {c}. It expires in 10 minutes.",
         "Your Acme verification code", "Verify your sign-in", "If you did not request this, ignore this email."),
        ("de", "iso-8859-1", "Ihr Bestätigungscode lautet: {c}\nDer Code ist 10 Minuten gültig. Angefordert am "
         "26.11.2026 um 14:05 Uhr.", "Ihr Bestätigungscode", "Anmeldung bestätigen",
         "Bei Fragen erreichen Sie uns unter Telefon 030 12345678."),
        ("fr", "iso-8859-1", "Votre code de vérification est : {c}\nIl expire dans 10 minutes.",
         "Votre code de vérification", "Confirmez votre connexion",
         "Service client : 01 23 45 67 89. Siège : 12 rue de Rivoli, 75004 Paris."),
        ("es", "iso-8859-1", "Tu código de verificación es {c}. Caduca en 10 minutos. Solicitado el 26 de "
         "noviembre de 2026.", "Tu código de verificación", "Confirma tu inicio de sesión",
         "Si no has sido tú, cambia tu contraseña."),
        ("pt", "windows-1252", "Seu código de verificação é {c}. Ele expira em 10 minutos.",
         "Seu código de verificação", "Confirme seu acesso", "Pedido feito em 26 de novembro de 2026 às 09:12."),
        ("it", "iso-8859-1", "Il tuo codice di verifica è {c}. Scade tra 10 minuti.",
         "Il tuo codice di verifica", "Conferma l'accesso", "Assistenza: +39 02 1234 5678."),
        ("nl", "iso-8859-1", "Je verificatiecode is {c}. De code verloopt over 10 minuten.",
         "Je verificatiecode", "Bevestig je aanmelding", "Adres: Keizersgracht 123, 1015 CJ Amsterdam."),
        ("ru", "koi8-r", "Ваш код подтверждения: {c}. Код действует 10 минут.",
         "Код подтверждения", "Подтвердите вход", "Запрос получен 26 ноября 2026 г. в 14:05."),
        ("zh", "gb2312", "您的验证码是：{c}，10分钟内有效。请勿泄露给他人。",
         "验证码通知", "确认登录", "如有疑问请致电客服 400-123-4567。"),
        ("ja", "shift_jis", "認証コード：{c}\n有効期限は10分です。",
         "認証コードのお知らせ", "ログインの確認", "このメールは2026年11月26日に送信されました。"),
        ("ko", "euc-kr", "인증번호 [{c}]를 입력해 주세요. 10분 후 만료됩니다.",
         "인증번호 안내", "로그인 확인", "고객센터 1588-1234 로 문의하세요."),
    ]
    for i, (lang, charset, line, subject, title, extra) in enumerate(langs):
        c1 = f"{(i * 7919 + 104729) % 900000 + 100000}"
        c2 = f"{(i * 6271 + 31337) % 900000 + 100000}"
        sender = f"no-reply@{lang}.service.test"
        add(f"lang_{lang}_plain", sender=sender, subject=subject, charset=charset,
            cte="8bit" if charset in ("iso-8859-1", "koi8-r", "windows-1252", "us-ascii") else "base64",
            text=f"{title}\n\n{line.format(c=c1)}\n\n{extra}\n", codes=[c1], note=f"{lang}, {charset}, plain only")
        before, after = line.split("{c}")
        html = page(f"<h1>{title}</h1><p>{before}</p>{code_box(c2)}<p>{after}</p><p>{extra}</p>",
                    preheader=line.format(c="000000"), footer=f"© 2026 Service {lang.upper()}", lang=lang)
        add(f"lang_{lang}_html", sender=sender, subject=subject, html=html, charset="utf-8",
            cte="quoted-printable" if i % 2 else "base64", codes=[c2],
            note=f"{lang}, HTML only, code in a box, hidden preheader with a decoy code")


def build_shapes() -> None:
    """Code shapes: grouped, prefixed, alphanumeric, in the subject, one digit per cell, full-width."""
    add("shape_grouped_dash", sender="security@bank.test", subject="Your security code",
        text="Your one-time security code is 482-913.\nNever share it with anyone, not even bank staff.\n",
        codes=["482913"], note="123-456 joined")
    add("shape_grouped_space", sender="no-reply@shop.test", subject="Sign-in code",
        text="Use this code to sign in:\n\n731 205\n\nThis code will expire in 15 minutes.\n", codes=["731205"])
    add("shape_prefixed_google", sender="no-reply@accounts.googlemail.test", subject="G-739214 is your verification code",
        text="G-739214 is your Google verification code.\nDon't share it with anyone.\n",
        codes=["739214"], note="prefix dropped: digits typed")
    add("shape_alnum_grouped", sender="feedback@slack.test", subject="Slack confirmation code: X7K-9QZ",
        html=page("<h1>Confirm your email address</h1><p>Your confirmation code is below — enter it in your open "
                  "browser window and we'll help you get signed in.</p>" + code_box("X7K-9QZ")),
        codes=["X7K9QZ"], note="3+3 alphanumeric, also in subject")
    add("shape_alnum_steam", sender="noreply@games.test", subject="Your account: access from new computer",
        text="Here is the Guard code you need to login to account agentbot:\n\nF4KQ9\n\nThis email was generated "
             "because of a login attempt from a web or mobile device.\n", codes=["F4KQ9"])
    add("shape_subject_only", sender="security@social.test", subject="384712 is your Social code",
        html=page("<p>Hi agent,</p><p>Someone tried to log in to your account. Use the code in the subject line to "
                  "confirm it was you.</p>"), codes=["384712"], note="code only in the subject")
    cells = "".join(f'<td style="border:1px solid #ccc;padding:8px;font-size:24px">{d}</td>' for d in "592038")
    add("shape_table_cells", sender="verify@wallet.test", subject="Confirm your wallet",
        html=page(f"<p>Enter this verification code:</p><table><tr>{cells}</tr></table><p>Valid for 5 minutes.</p>"),
        codes=["592038"], note="one digit per table cell")
    add("shape_fullwidth", sender="info@jp-shop.test", subject="ワンタイムパスワード", charset="shift_jis", cte="base64",
        text="ワンタイムパスワード：１２８４７６\n有効期限：30分\n", codes=["128476"], note="full-width digits")
    add("shape_four_digits", sender="no-reply@taxi.test", subject="Your code",
        text="4821 is your Taxi code. Don't share it.\n", codes=["4821"])
    add("shape_eight_digits", sender="noreply@cloud.test", subject="Email verification",
        text="Enter the following 8-digit code to verify your email address: 73920461\n", codes=["73920461"])
    add("shape_zero_width", sender="no-reply@chat.test", subject="Login code",
        html=page("<p>Your login code:</p><p style=\"font-size:28px\">6&#8203;1&#8203;4&#8203;2&#8203;8&#8203;3</p>"),
        codes=["614283"], note="zero-width spaces inside the code")
    add("shape_pin_keyword", sender="alerts@bank.test", subject="Your one-time PIN",
        text="Your one-time PIN is 90214. It is valid for 3 minutes.\n", codes=["90214"])
    add("shape_code_first_line", sender="noreply@delivery.test", subject="Verify your phone",
        text="520617\n\nThat's your verification code for Delivery. Enter it in the app.\n", codes=["520617"])
    add("shape_entities_plain", sender="no-reply@forum.test", subject="Your forum passcode",
        text="Your passcode&nbsp;is&#58; 771204\n", codes=["771204"], note="entities in text/plain")


def build_distractors() -> None:
    """Verification mails full of numbers that are not codes, and the code among them."""
    add("distract_year_date_time", sender="no-reply@events.test", subject="Your sign-in code",
        text="Sign-in attempt on Thursday, November 26, 2026 at 10:42 AM (UTC).\nYour code: 318406\n\n"
             "Since 2004 we protect your account.\n", codes=["318406"])
    add("distract_price_phone", sender="billing@telco.test", subject="Confirm your payment",
        text="To confirm the payment of $1,249.00 enter verification code 604213.\nQuestions? Call 1-800-555-0199 "
             "or +44 20 7946 0958.\n", codes=["604213"])
    add("distract_order_invoice", sender="orders@market.test", subject="Verify your order",
        text="Order #88421973 needs a quick check.\nInvoice number: 2026-11-0042\nVerification code: 275914\n",
        codes=["275914"])
    add("distract_postcode_card", sender="pay@wallet.test", subject="Verification code for your card",
        text="We received a request to add your Visa ending in 4242 to Wallet.\nYour verification code is 839105.\n\n"
             "Wallet Ltd, 10115 Berlin\nBilling address ZIP 94104\n", codes=["839105"])
    add("distract_two_step", sender="security@devhub.test", subject="[DevHub] 2-step authentication code",
        text="Hi agent,\n\nHere is your 2-step verification code: 406128\n\n2-step verification keeps your account "
             "safe. Set up 2FA in 3 steps.\n", codes=["406128"], note="'2-step' is no code")
    add("distract_masked_card", sender="3ds@cards.test", subject="Authorise your purchase",
        html=page("<p>Purchase of €89,99 at SHOP 24 on 26/11/2026 with card **** 1234.</p><p>Your one-time "
                  "passcode:</p>" + code_box("740392") + "<p>Reference: 4471-2209</p>"), codes=["740392"])
    add("distract_german_receipt_code", sender="kontakt@versand.test", subject="Ihr Sicherheitscode",
        charset="iso-8859-1", cte="quoted-printable",
        text="Hallo,\n\nIhr Sicherheitscode lautet 552810.\n\nBestellnummer: 302-7718223-5521904\nKundennummer "
             "4410382\nVersand GmbH, Hauptstraße 5, 80331 München\n", codes=["552810"])
    add("distract_french_phone", sender="securite@banque.test", subject="Code de sécurité",
        charset="iso-8859-1", cte="8bit",
        text="Votre code de sécurité : 684201\nPour toute question, appelez le 09 69 32 00 00.\nVotre carte se "
             "terminant par 9012.\n", codes=["684201"])
    add("distract_spanish_pedido", sender="avisos@tienda.test", subject="Código de verificación",
        charset="iso-8859-15", cte="quoted-printable",
        text="Pedido 7731942 en preparación.\nTu código de verificación es 190374.\nTotal: 129,90 €\n",
        codes=["190374"])
    add("distract_russian_order", sender="noreply@magazin.test", subject="Код для входа", charset="koi8-r", cte="8bit",
        text="Заказ N 5512093 оформлен 26.11.2026.\nКод для входа: 730519\nСумма: 2 990 руб.\n", codes=["730519"])
    add("distract_chinese_order", sender="service@shop.cn.test", subject="验证码", charset="gb2312", cte="base64",
        text="您的订单号20261126001已发货。\n本次操作验证码为 481920，5分钟内有效。\n客服电话：400-820-8820\n",
        codes=["481920"])
    add("distract_japanese_order", sender="info@order.jp.test", subject="確認コード", charset="shift_jis", cte="base64",
        text="ご注文番号：1120-4471-0093\n確認コード：306182\n合計金額：¥3,980\n", codes=["306182"])
    add("distract_korean_card", sender="noti@card.kr.test", subject="인증번호", charset="euc-kr", cte="base64",
        text="카드 끝자리 5521 결제 승인 요청\n인증번호는 847201 입니다.\n", codes=["847201"])
    add("distract_tracking_url", sender="no-reply@app.test", subject="Your code",
        html=page('<p>Your code is <b>209471</b>.</p><p><a href="https://app.test/help?id=123456&amp;ref=998877">'
                  'Help centre</a></p>'), codes=["209471"], link=("other", "https://app.test/help?id=123456&ref=998877"))
    add("distract_dutch_address", sender="noreply@bank.nl.test", subject="Je beveiligingscode",
        text="Je beveiligingscode is 650128.\nBel ons op 020 123 4567.\nBank NL, Damrak 1, 1012 LG Amsterdam\n",
        codes=["650128"])


def build_resends() -> None:
    """A newer code above an older one: the newest is first."""
    add("resend_quoted", sender="no-reply@resend.test", subject="Re: Your verification code",
        text="Here is your new verification code: 222904\n\nOn Wed, 25 Nov 2026 at 09:58, Resend <no-reply@resend.test>"
             " wrote:\n> Your verification code: 111804\n> It expires in 10 minutes.\n",
        codes=["222904", "111804"])
    add("resend_previous_expired", sender="no-reply@again.test", subject="Your new code",
        text="You asked for a new code.\nNew code: 333812\nThe previous code 444120 has expired and no longer works.\n",
        codes=["333812", "444120"])
    add("resend_html_blockquote", sender="auth@mailer.test", subject="Fwd: login code",
        html=page('<p>Your login code is 902817.</p><blockquote type="cite"><p>Your login code is 817209.</p>'
                  '</blockquote>'), codes=["902817", "817209"])
    add("resend_german", sender="konto@dienst.test", subject="Neuer Bestätigungscode", charset="iso-8859-1",
        cte="quoted-printable",
        text="Ihr neuer Bestätigungscode: 615290\nDer vorherige Code 590126 ist abgelaufen.\n",
        codes=["615290", "590126"])


def build_links() -> None:
    """Verify links, magic sign-in links, password resets, tracking redirects."""
    tok = "eyJhbGciOiJIUzI1NiJ9.a7Fq2Lx9Pz"
    url = f"https://devhub.test/users/confirm_email?token={tok}"
    add("link_verify_button", sender="noreply@devhub.test", subject="Please verify your email address",
        html=page("<p>Almost done, agent! To complete your sign up, we just need to verify your email address.</p>" +
                  button(url, "Verify email address") + '<p><a href="https://devhub.test/">DevHub</a></p>',
                  footer=EN_FOOTER), link=("verify", url))
    url = "https://click.esp.test/ls/click?upn=u001.Aqz9-2BLk3&amp;url=https%3A%2F%2Fshop.test%2Fverify%3Ft%3D8f3a9b2c7d1e4f5a6b7c"
    add("link_verify_tracking", sender="hello@shop.test", subject="Confirm your subscription",
        html=page('<p>Please confirm you want to receive our emails.</p>' + button(url, "Yes, subscribe me") +
                  '<p><a href="https://click.esp.test/ls/click?upn=zz">View in browser</a></p>',
                  footer=EN_FOOTER + '<a href="https://shop.test/unsubscribe?u=1">Unsubscribe</a>'),
        link=("verify", url.replace("&amp;", "&")), note="tracking redirect kept as given; inner URL classifies it")
    url = f"https://notes.test/loginwithemail?token={tok}Xy"
    add("link_magic", sender="notify@notes.test", subject="Your Notes login link",
        html=page('<p>Click the link below to log in.</p><p><a href="' + url + '">Click here to log in with this '
                  'magic link</a></p><p>Or copy and paste this temporary login code:</p>' + code_box("fjord-plume-kite") +
                  '<p><a href="https://notes.test/login">Sign in manually</a></p>'), link=("magic_signin", url),
        note="word code is no code")
    url = f"https://chat.test/z/auth/magic?k={tok}Ab"
    add("link_magic_plain", sender="team@chat.test", subject="Sign in to Chat",
        text=f"Hi,\n\nClick the link to sign in to Chat. It works once and expires in 24 hours.\n\n{url}\n\n"
             "If you didn't ask for this, you can ignore this message.\n", link=("magic_signin", url))
    url = f"https://acme.example/password/reset/{tok}Qq"
    add("link_reset_html", sender="no-reply@acme.example", subject="Reset your password",
        html=page("<p>We received a request to reset your password.</p>" + button(url, "Reset password") +
                  "<p>This link expires in 1 hour.</p>", footer=EN_FOOTER), link=("reset", url))
    url = f"https://shop.de.test/passwort-vergessen?key={tok}De"
    add("link_reset_german", sender="service@shop.de.test", subject="Passwort zurücksetzen", charset="iso-8859-1",
        cte="quoted-printable",
        text=f"Hallo,\n\nüber folgenden Link können Sie Ihr Passwort zurücksetzen:\n{url}\n\nViele Grüße\n",
        link=("reset", url))
    url = f"https://photos.test/verify-email?code={tok}Ph"
    add("link_verify_plain_and_html", sender="no-reply@photos.test", subject="Confirm your email",
        text=f"Confirm your email:\n{url}\n",
        html=page(button(url, "Confirm email") + '<p><a href="https://photos.test/help">Help</a></p>'),
        link=("verify", url), note="same link in both bodies, once")
    url = f"https://mail.fr.test/activer?jeton={tok}Fr"
    add("link_verify_french", sender="bienvenue@mail.fr.test", subject="Activez votre compte",
        html=page('<p>Bienvenue ! Cliquez ci-dessous pour activer votre compte.</p>' + button(url, "Activer mon compte")),
        link=("verify", url))
    url = f"https://id.ja.test/confirm?t={tok}Jp"
    add("link_verify_japanese", sender="no-reply@id.ja.test", subject="メールアドレスの確認", charset="utf-8", cte="base64",
        html=page('<p>以下のボタンからメールアドレスを確認してください。</p>' + button(url, "メールアドレスを確認する")),
        link=("verify", url))
    url = f"https://social.test/reset?c={tok}Zz"
    add("link_reset_with_code", sender="security@social.test", subject="Password reset code",
        html=page("<p>Use this code to reset your password:</p>" + code_box("503917") +
                  "<p>Or " + f'<a href="{url}">reset your password</a> directly.</p>'),
        codes=["503917"], link=("reset", url))
    url = f"https://code.test/verify?token={tok}Vv"
    add("link_verify_with_code_and_unsub", sender="hi@code.test", subject="Verify your email",
        html=page(f'<p>Your verification code: 661204</p><p><a href="{url}">Verify email</a></p>',
                  footer='<a href="https://code.test/email/unsubscribe/abcdef">Unsubscribe</a> · '
                         '<a href="https://code.test/terms">Terms</a>'), codes=["661204"], link=("verify", url))
    url = f"https://ru.test/confirm?token={tok}Ru"
    add("link_verify_russian", sender="noreply@ru.test", subject="Подтвердите адрес", charset="koi8-r", cte="8bit",
        text=f"Здравствуйте!\nЧтобы подтвердить адрес, перейдите по ссылке:\n{url}\n", link=("verify", url))


def build_no_code() -> None:
    """Receipts, newsletters, notices: numbers everywhere, no code."""
    add("nocode_receipt", sender="orders@store.test", subject="Your receipt from Store #1234-5678",
        html=page("<h2>Thanks for your order</h2><p>Order number: 112-4467732-9081123</p><table>"
                  "<tr><td>USB-C cable</td><td>2</td><td>$19.98</td></tr><tr><td>Total</td><td></td><td>$21.57</td>"
                  "</tr></table><p>Paid with Visa ending in 4242 on Nov 26, 2026.</p>",
                  footer=EN_FOOTER), link=("other", "https://acme.example/privacy"))
    add("nocode_newsletter", sender="news@magazine.test", subject="The Weekly: 10 stories for 2026",
        html=page("<h1>The Weekly</h1><p>Since 1998 we bring you the best. This week: 2026 trends, and 25% off with "
                  "promo code SAVE2026.</p><p><a href=\"https://magazine.test/stories/4417\">Read more</a></p>",
                  footer='<a href="https://magazine.test/unsubscribe?e=x">Unsubscribe</a>'),
        link=("other", "https://magazine.test/stories/4417"))
    add("nocode_shipping", sender="ship@parcel.test", subject="Your parcel is on its way",
        text="Tracking number: 1Z999AA10123456784\nParcel 00340434161234567890 will arrive on 27.11.2026 between "
             "10:00 and 14:00.\nDepot: Industriestr. 12, 44147 Dortmund\n")
    add("nocode_security_alert", sender="security@devhub.test", subject="[DevHub] Two-factor authentication enabled",
        text="Hey agent,\n\n2-step verification was turned on for your account on 2026-11-26 10:04 UTC.\nIf this was "
             "not you, contact support at +1 415 555 0132.\n")
    add("nocode_calendar", sender="calendar@office.test", subject="Invitation: Sync @ Thu 26 Nov 2026 15:00 - 15:30",
        text="Meeting ID: 845 2210 9931\nPasscode required? No.\nDial-in: +1 646 558 8656\nRoom 4012, Building 7\n")
    add("nocode_invoice_de", sender="rechnung@hosting.test", subject="Ihre Rechnung 2026-1187", charset="iso-8859-1",
        cte="quoted-printable",
        text="Rechnungsnummer: 2026-1187\nRechnungsdatum: 26.11.2026\nBetrag: 14,99 EUR\nKundennummer: 558201\n"
             "Hosting GmbH, Gartenweg 3, 10115 Berlin, USt-IdNr. DE123456789\n")
    add("nocode_newsletter_fr", sender="lettre@boutique.test", subject="Soldes : -30 % jusqu'au 30/11",
        charset="iso-8859-15", cte="quoted-printable",
        html=page("<p>Profitez de -30 % avec le code promo NOEL2026 jusqu'au 30/11/2026.</p><p>Livraison offerte "
                  "dès 49 €.</p>", footer="Boutique SAS, 75008 Paris. <a href=\"https://boutique.test/desinscription\">"
                                          "Se désabonner</a>"),
        link=("unsubscribe", "https://boutique.test/desinscription"))
    add("nocode_bank_statement", sender="estatements@bank.test", subject="Your November statement is ready",
        text="Account ending 8812\nStatement period: 01/11/2026 - 30/11/2026\nClosing balance: $3,204.55\n"
             "Customer ID: 77120934\n")
    add("nocode_chinese_promo", sender="promo@shop.cn.test", subject="双十一优惠", charset="gb2312", cte="base64",
        text="双十一大促！优惠码 8888 立减50元。活动时间2026年11月11日。订单满199元包邮。\n")
    add("nocode_japanese_receipt", sender="order@jp-shop.test", subject="ご注文ありがとうございます", charset="shift_jis",
        cte="base64", text="ご注文番号：250-8841-2231\n注文日：2026年11月26日\n合計：¥12,800\n郵便番号 150-0001\n")
    add("nocode_russian_news", sender="news@ru-news.test", subject="Новости недели", charset="koi8-r", cte="8bit",
        text="В 2026 году мы открыли 12 новых магазинов. Промокод СКИДКА2026 даёт скидку 20%.\nТелефон: 8 800 555-35-35\n")
    add("nocode_korean_shipping", sender="ship@kr-mall.test", subject="배송 안내", charset="euc-kr", cte="base64",
        text="주문번호 20261126-0001 상품이 발송되었습니다.\n운송장번호: 6841 2290 1133\n고객센터 1588-0000\n")
    add("nocode_github_pr", sender="notifications@devhub.test", subject="Re: [org/repo] Fix build (#4821)",
        text="@agent approved this pull request.\n\nThe code looks good; merged in 8f3a9b2.\n\n— \nReply to this email "
             "directly, view it on DevHub: https://devhub.test/org/repo/pull/4821\n",
        link=("other", "https://devhub.test/org/repo/pull/4821"), note="'code' without a code")
    add("nocode_welcome", sender="welcome@app.test", subject="Welcome to App",
        html=page('<h1>Welcome aboard!</h1><p>Your account is ready. Need help? Read the '
                  '<a href="https://app.test/docs/getting-started">getting started guide</a>.</p>',
                  footer=EN_FOOTER), link=("other", "https://app.test/docs/getting-started"))
    add("nocode_forged_auth", sender="security@bigbank.test", subject="Account notice",
        text="Your statement for account 4410 is available online.\n",
        auth=["mx.mailgent.test; dkim=none; spf=fail smtp.mailfrom=evil.test; dmarc=fail header.from=bigbank.test",
              "bigbank.test; dkim=pass header.d=bigbank.test; spf=pass smtp.mailfrom=bigbank.test; dmarc=pass"],
        aligned=False, note="forged lower Authentication-Results ignored")
    add("nocode_spain_receipt", sender="recibos@tienda.es.test", subject="Tu recibo", charset="iso-8859-15", cte="8bit",
        text="Pedido: 40021977\nFecha: 26/11/2026 18:22\nTotal: 59,90 €\nTarjeta terminada en 3321\n"
             "Calle Mayor 10, 28013 Madrid\n")


def build_auth() -> None:
    """Sender trust: an ESP-signed aligned mail, and one signed by another domain only."""
    add("auth_subdomain_aligned", sender="no-reply@mail.partner.test", subject="Your code",
        text="Your verification code is 417302.\n",
        auth=["mx.mailgent.test; dkim=pass header.d=partner.test; spf=pass smtp.mailfrom=bounces@esp.test; "
              "dmarc=pass header.from=mail.partner.test"], aligned=True, codes=["417302"])
    add("auth_foreign_dkim", sender="security@paypal-alerts.test", subject="Your code",
        text="Your verification code is 902251.\n",
        auth=["mx.mailgent.test; dkim=pass header.d=esp.test; spf=pass smtp.mailfrom=bounce@esp.test; dmarc=none"],
        aligned=False, codes=["902251"], note="signed by the ESP only: not aligned")


def main() -> None:
    for old in HERE.glob("*.eml"):
        old.unlink()
    build_languages()
    build_shapes()
    build_distractors()
    build_resends()
    build_links()
    build_no_code()
    build_auth()
    (HERE / "manifest.json").write_text(json.dumps(CORPUS, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    print(f"{len(CORPUS)} mails")


if __name__ == "__main__":
    main()
