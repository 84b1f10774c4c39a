"""Use the vault from Python: store a login, enrol 2FA from an otpauth:// URI, get a code.

    MAILGENT_HOME=/tmp/mailgent-example python examples/vault_api.py

The seed below is the Key URI spec's example; a real one comes from the service's 2FA page.
"""

from __future__ import annotations

import asyncio

from mailgent_mcp.vault.entries import Vault

URI = "otpauth://totp/Example:alice@google.com?secret=JBSWY3DPEHPK3PXP&issuer=Example"


async def main() -> None:
    async with await Vault.open(actor="example script") as vault:
        await vault.put("example", {"username": "alice@google.com", "password": "correct horse"}, "LOGIN")
        info = await vault.put("example", {"secret": URI})  # merges: the password stays
        assert info.totp is not None
        print(f"stored: fields {info.fields}, TOTP {info.totp.algorithm}/{info.totp.digits}/{info.totp.period}s,"
              f" weak={info.totp.weak}")
        code = await vault.totp("example", min_remaining=5)  # never a code about to expire
        print(f"code {code.code}, valid for {code.remaining} s more (until {code.expires_at})")
        view = await vault.get("example")
        print(f"get shows has_totp={view.has_totp} and data keys {sorted(view.data)}; the seed never comes back")


if __name__ == "__main__":
    asyncio.run(main())
