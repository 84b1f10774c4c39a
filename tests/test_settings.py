"""One Settings: every variable and config.toml key read in settings.py, typed, checked, documented.

The README's settings table is compared with the registry (VARIABLES), both ways.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from mailgent_mcp.errors import ConfigError
from mailgent_mcp.inbox.cache import retention
from mailgent_mcp.settings import (
    ENVIRONMENT_VARIABLES,
    VARIABLES,
    load_settings,
    read_environment,
)

from .conftest import run_cli

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
])
def test_a_bad_value_names_its_setting(home: Path, environ: dict[str, str], text: str, named: str) -> None:
    config(home, text)
    with pytest.raises(ConfigError, match=re.escape(named)):
        load_settings(home, environ)


def test_a_retention_that_is_not_an_age_names_the_variable(home: Path) -> None:
    settings = load_settings(config(home, ""), {"MAILGENT_RETENTION": "soon"})
    with pytest.raises(ConfigError, match="MAILGENT_RETENTION"):
        retention(settings)


def test_the_environment_wins_over_config_toml_and_the_command_line_over_both(home: Path) -> None:
    config(home, '[vault]\ndefault_entry = "from-file"\n[server]\ntool_names = "dotted"\n'
                 '[inbox]\nretention = "7d"\n')
    from_file = load_settings(home, {})
    assert (from_file.default_entry, from_file.tool_names, from_file.retention) == ("from-file", "dotted", "7d")
    from_env = load_settings(home, {"MAILGENT_DEFAULT_ENTRY": "from-env", "MAILGENT_TOOL_NAMES": "underscore",
                                    "MAILGENT_RETENTION": "off"})
    assert (from_env.default_entry, from_env.tool_names, from_env.retention) == ("from-env", "underscore", "off")
    assert load_settings(home, {"MAILGENT_TOOL_NAMES": "underscore"}, tool_names="dotted").tool_names == "dotted"


def test_defaults_with_nothing_set(home: Path) -> None:
    settings = load_settings(config(home, ""), {})
    assert (settings.default_entry, settings.tool_names, settings.retention, settings.lease_ttl) == (
        None, "underscore", "30d", 15.0)
    assert settings.accounts == () and settings.smtp_listen is None and settings.passphrase is None


SECRETS = {"MAILGENT_PASSPHRASE": "correct horse battery staple 7", "MAILGENT_IMAP_PASSWORD": "imap-pass-6Qz",
           "MAILGENT_TOKEN": "tok-" + "x" * 40, "MAILGENT_MASTER_KEY": "QUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUE="}


def test_secrets_are_never_in_a_repr(home: Path) -> None:
    settings = load_settings(config(home, ""), SECRETS)
    shown = repr(settings) + str(settings) + repr(read_environment(SECRETS))
    for value in SECRETS.values():
        assert value not in shown
    assert settings.passphrase is not None and settings.passphrase.get_secret_value() == SECRETS["MAILGENT_PASSPHRASE"]


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
