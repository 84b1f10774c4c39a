"""One Settings: every variable and config.toml key read in settings.py, typed, checked, documented.

The README's settings table is compared with the registry (VARIABLES), both ways.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from mailgent_mcp.errors import ConfigError
from mailgent_mcp.settings import (
    ENVIRONMENT_VARIABLES,
    VARIABLES,
    load_settings,
    read_environment,
)

from .conftest import clean_env, run_cli

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "mailgent_mcp"


def config(home: Path, text: str) -> Path:
    home.mkdir(mode=0o700, exist_ok=True)
    (home / "config.toml").write_text(text)
    return home


@pytest.mark.parametrize(("text", "named", "nearest"), [
    ('[vault]\ndefault_entyr = "github"\n', "default_entyr", "default_entry"),
    ('[valt]\ndefault_entry = "github"\n', "valt", "vault"),
    ('[server]\ntool_name = "dotted"\n', "tool_name", "tool_names"),
    ('[accounts.work]\nhots = "imap.example.com"\nhost = "h"\nusername = "u"\n', "hots", "host"),
])
def test_an_unknown_key_or_table_is_refused_naming_it_and_the_nearest(home: Path, text: str, named: str,
                                                                      nearest: str) -> None:
    config(home, text)
    with pytest.raises(ConfigError) as caught:
        load_settings(home, {})
    assert repr(named) in str(caught.value) and repr(nearest) in str(caught.value)
    result = run_cli(home, "inbox", "list")  # a command that reads config.toml stops, naming the key
    assert result.returncode == 7 and repr(named) in result.stderr


@pytest.mark.parametrize(("environ", "text", "named"), [
    ({"MAILGENT_TOOL_NAMES": "camel"}, "", "MAILGENT_TOOL_NAMES"),
    ({}, "[server]\ntool_names = 1\n", "tool_names"),
    ({}, "[vault]\ndefault_entry = 5\n", "default_entry"),
    ({}, "[inbox]\nretention = 30\n", "retention"),
    ({"MAILGENT_LEASE_TTL": "soon"}, "", "MAILGENT_LEASE_TTL"),
    ({"MAILGENT_LEASE_TTL": "0"}, "", "MAILGENT_LEASE_TTL"),
    ({"MAILGENT_PASSPHRASE": " "}, "", "MAILGENT_PASSPHRASE"),
    ({"MAILGENT_MASTER_KEY": ""}, "", "MAILGENT_MASTER_KEY"),
    ({}, '[accounts.w]\nhost = "h"\nusername = "u"\nport = "993"\n', "port"),
    ({}, '[accounts.w]\nhost = "h"\nusername = "u"\nmailboxes = "INBOX"\n', "mailboxes"),
    ({}, "vault = 3\n", "vault"),
    ({"MAILGENT_RETENTION": "soon"}, "", "MAILGENT_RETENTION"),
    ({"MAILGENT_RETENTION": "-1d"}, "", "MAILGENT_RETENTION"),
    ({}, '[inbox]\nretention = "a while"\n', "retention in config.toml's [inbox] table"),
    ({}, '[inbox]\nretention = "0s"\n', "retention in config.toml's [inbox] table"),
    ({"MAILGENT_SMTP_LISTEN": "2525x"}, "", "MAILGENT_SMTP_LISTEN"),
    ({"MAILGENT_SMTP_LISTEN": "127.0.0.1:70000"}, "", "MAILGENT_SMTP_LISTEN"),
    ({"MAILGENT_SMTP_LISTEN": "0.0.0.0:2525"}, "", "MAILGENT_SMTP_LISTEN"),
])
def test_a_bad_value_names_its_setting(home: Path, environ: dict[str, str], text: str, named: str) -> None:
    config(home, text)
    with pytest.raises(ConfigError, match=re.escape(named)):
        load_settings(home, environ)


def test_the_retention_is_read_as_seconds_or_off(home: Path) -> None:
    assert load_settings(config(home, ""), {"MAILGENT_RETENTION": "12h"}).retention == 12 * 3600
    assert load_settings(home, {"MAILGENT_RETENTION": "off"}).retention is None
    assert load_settings(config(home, '[inbox]\nretention = "never"\n'), {}).retention is None


def test_the_smtp_address_given_on_the_command_line_is_checked_too(home: Path) -> None:
    config(home, "")
    with pytest.raises(ConfigError, match="--smtp-listen"):
        load_settings(home, {"MAILGENT_SMTP_LISTEN": "127.0.0.1:2525"}, smtp_listen="example.com:25")
    assert load_settings(home, {"MAILGENT_SMTP_LISTEN": "127.0.0.1:2525"},
                         smtp_listen="[::1]:2526").smtp_listen == "[::1]:2526"


def test_the_environment_wins_over_config_toml_and_the_command_line_over_both(home: Path) -> None:
    config(home, '[vault]\ndefault_entry = "from-file"\n[server]\ntool_names = "dotted"\n'
                 '[inbox]\nretention = "7d"\n')
    from_file = load_settings(home, {})
    assert (from_file.default_entry, from_file.tool_names, from_file.retention) == ("from-file", "dotted", 7 * 86400)
    from_env = load_settings(home, {"MAILGENT_DEFAULT_ENTRY": "from-env", "MAILGENT_TOOL_NAMES": "underscore",
                                    "MAILGENT_RETENTION": "off"})
    assert (from_env.default_entry, from_env.tool_names, from_env.retention) == ("from-env", "underscore", None)
    assert load_settings(home, {"MAILGENT_TOOL_NAMES": "underscore"}, tool_names="dotted").tool_names == "dotted"


def test_defaults_with_nothing_set(home: Path) -> None:
    settings = load_settings(config(home, ""), {})
    assert (settings.default_entry, settings.tool_names, settings.retention, settings.lease_ttl) == (
        None, "underscore", 30 * 86400, 15.0)
    assert settings.accounts == () and settings.smtp_listen is None and settings.passphrase is None


SECRETS = {"MAILGENT_PASSPHRASE": "correct horse battery staple 7", "MAILGENT_IMAP_PASSWORD": "imap-pass-6Qz",
           "MAILGENT_TOKEN": "tok-" + "x" * 40, "MAILGENT_MASTER_KEY": "QUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUE="}


def test_secrets_are_never_in_a_repr(home: Path) -> None:
    settings = load_settings(config(home, ""), SECRETS)
    shown = repr(settings) + str(settings) + repr(read_environment(SECRETS))
    for value in SECRETS.values():
        assert value not in shown
    assert settings.passphrase is not None and settings.passphrase.get_secret_value() == SECRETS["MAILGENT_PASSPHRASE"]


@pytest.mark.parametrize(("args", "variable", "value"), [
    (("vault", "list"), "MAILGENT_MASTER_KEY", "not base64 SECRET-mk-41c9"),
    (("vault", "list"), "MAILGENT_PASSPHRASE", "SECRET-pass-wrong-3"),
    (("serve", "--transport", "http"), "MAILGENT_TOKEN", "SECRET-tok-7"),
])
def test_a_refused_secret_is_named_never_shown(home: Path, args: tuple[str, ...], variable: str, value: str) -> None:
    assert run_cli(home, "vault", "list", env=clean_env(home, MAILGENT_PASSPHRASE="amber quiet river stone")
                   ).returncode == 0  # a vault sealed with another passphrase
    result = run_cli(home, *args, env=clean_env(home, **{variable: value}))
    assert result.returncode != 0 and variable in result.stderr
    assert value not in result.stdout + result.stderr and "SECRET" not in result.stdout + result.stderr


def test_no_module_but_settings_reads_a_mailgent_variable() -> None:
    """os.environ is read for MAILGENT_* settings in settings.py alone (others pass it through to children)."""
    readers = []
    for path in PACKAGE.rglob("*.py"):
        if path.name == "settings.py":
            continue
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if re.search(r"environ(\.get\(|\[)\s*[\"']?(MAILGENT_|ENV_)", line):
                readers.append(f"{path.relative_to(ROOT)}:{number}")
    assert readers == []


def settings_table() -> list[tuple[str | None, str | None]]:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme[readme.index("### Settings"):]
    rows = []
    for line in section.splitlines():
        if line.startswith("| `") or line.startswith("| - |"):
            cells = [c.strip() for c in line.strip("|").split("|")]
            rows.append((cells[0].strip("`") if cells[0] != "-" else None,
                         cells[1].strip("`") if cells[1] != "-" else None))
        elif rows and not line.startswith("|"):
            break
    return rows


def test_the_readme_table_lists_every_setting_and_nothing_else() -> None:
    assert settings_table() == [(v.env, v.key) for v in VARIABLES]
    assert len(set(ENVIRONMENT_VARIABLES)) == len(ENVIRONMENT_VARIABLES)
