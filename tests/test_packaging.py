"""The release as PyPI, the MCP registry and Claude Desktop take it.

The wheel and the sdist are built from a copy of the checkout, as a release builds them, with
leftovers of an old compiled build planted in it: the wheel must be py3-none-any and hold
every file of the package and nothing else, with the licence metadata PyPI reads; the sdist
must hold what builds the same wheel and no tests; `twine check` must pass on both.
server.json (the MCP registry) and mcpb/manifest.json (the Claude Desktop bundle) must name
the version pyproject.toml has, only settings the server reads, and mark exactly the secret
ones. The bundle that scripts/build_mcpb.py writes is checked with the official mcpb CLI, and
(slow) the bundle and the README's `uvx` entry are started as their hosts start them.
"""

from __future__ import annotations

import email.parser
import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tomllib
import zipfile
from dataclasses import dataclass
from email.message import Message
from importlib.metadata import PackageNotFoundError
from importlib.metadata import version as installed_version
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from mcp import Client, StdioServerParameters

import mailgent_mcp
from mailgent_mcp.cli.main import build_parser
from mailgent_mcp.settings import ENVIRONMENT_VARIABLES, SECRET_VARIABLES

from .conftest import ALL_TOOLS, SEED_RFC, clean_env, run_cli
from .helpers.node import NODE_BIN, NODE_DIR, needs, runtime

ROOT = Path(__file__).resolve().parents[1]
PROJECT: dict[str, Any] = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
NAME: str = PROJECT["name"]
VERSION: str = PROJECT["version"]
PACKAGE = "mailgent_mcp"
SUBPACKAGES = {"db", "vault", "inbox", "mcp", "cli", "demo"}
REPOSITORY = "https://github.com/mailgent/mailgent-mcp"
README = ROOT / "README.md"
SERVER_JSON = ROOT / "server.json"
MANIFEST = ROOT / "mcpb" / "manifest.json"
MCPB_CLI = NODE_BIN / "mcpb"
MCPB_CONFIG = NODE_DIR / "mcpb_config.mjs"  # resolves a bundle's server config with the mcpb library
VENV_BIN = Path(sys.executable).parent

# The environment variables the server reads, and which of them are secrets: the one registry
# of settings. Every variable server.json or the bundle sets must be one of them.
KNOWN_VARIABLES = set(ENVIRONMENT_VARIABLES)
SECRET = set(SECRET_VARIABLES)

COMPILED = (".so", ".pyd", ".c", ".pyx", ".pyc")  # what a compiled build (mypyc) leaves behind
LEFT_OUT = ("tests/", "benchmarks/", "examples/", "scripts/", "mcpb/", "build/", "server.json")
COPY_SKIPS = {".git", ".venv", "node_modules", "__pycache__", "build", "dist", ".mypy_cache", ".ruff_cache",
              ".pytest_cache", ".hypothesis"}
PASSPHRASE = "plum velvet harbor cactus"  # strong enough for zxcvbn


# -- building -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Built:
    src: Path  # the copy of the checkout built from
    package_files: frozenset[str]  # every file of the package in the copy, as the wheel must hold them
    wheel: Path  # pip wheel from the copy
    sdist: Path  # python -m build --sdist from the copy
    wheel_from_sdist: Path


def _copy_ignore(directory: str, names: list[str]) -> set[str]:
    skip = {n for n in names if n in COPY_SKIPS or n.endswith(".egg-info") or n.endswith(COMPILED)}
    if Path(directory) == ROOT / "tests":
        skip.add("data")  # hundreds of MB of corpora; the rest of tests/ is enough to see it left out
    return skip


def setuptools_in_venv() -> bool:
    """Whether this venv's setuptools builds the project (77: the SPDX licence expression)."""
    try:
        return int(installed_version("setuptools").split(".")[0]) >= 77
    except PackageNotFoundError:
        return False


def run(command: list[str | Path], cwd: Path | None = None, timeout: float = 300,
        env: dict[str, str] | None = None, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    done = subprocess.run([str(c) for c in command], check=False, capture_output=True, text=True, cwd=cwd,
                          timeout=timeout, env=env, input=stdin)
    assert done.returncode == 0, f"{' '.join(map(str, command))} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return done


def only(folder: Path, pattern: str) -> Path:
    found = list(folder.glob(pattern))
    assert len(found) == 1, f"expected one {pattern} in {folder}: {found}"
    return found[0]


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Built:
    base = tmp_path_factory.mktemp("release")
    src = base / "src"
    shutil.copytree(ROOT, src, ignore=_copy_ignore)
    package_files = frozenset(p.relative_to(src).as_posix() for p in (src / PACKAGE).rglob("*") if p.is_file())
    # What an old mypyc build left in a developer's checkout (.gitignore lists them): never shipped.
    (src / PACKAGE / "inbox" / "extract.c").write_text("/* generated */\n")
    (src / PACKAGE / "_extract_native.cpython-311-x86_64-linux-gnu.so").write_bytes(b"\x7fELF")
    pip_isolation = ["--no-build-isolation"] if setuptools_in_venv() else []
    build_isolation = ["--no-isolation"] if setuptools_in_venv() else []
    run([sys.executable, "-m", "pip", "wheel", "--no-deps", *pip_isolation, "-w", base / "wheel", src])
    run([sys.executable, "-m", "build", "--sdist", *build_isolation, "--outdir", base / "sdist", src])
    sdist = only(base / "sdist", "*.tar.gz")
    run([sys.executable, "-m", "pip", "wheel", "--no-deps", *pip_isolation, "-w", base / "from-sdist", sdist])
    return Built(src, package_files, only(base / "wheel", "*.whl"), sdist, only(base / "from-sdist", "*.whl"))


def wheel_names(wheel: Path) -> set[str]:
    with zipfile.ZipFile(wheel) as z:
        return set(z.namelist())


def wheel_text(wheel: Path, name: str) -> str:
    with zipfile.ZipFile(wheel) as z:
        return z.read(name).decode()


def dist_info() -> str:
    return f"{PACKAGE}-{VERSION}.dist-info"


def metadata(wheel: Path) -> Message:
    return email.parser.Parser().parsestr(wheel_text(wheel, f"{dist_info()}/METADATA"))


def sdist_names(sdist: Path) -> set[str]:
    prefix = f"{PACKAGE}-{VERSION}/"
    with tarfile.open(sdist) as t:
        names = {m.name for m in t.getmembers() if m.isfile()}
    assert all(n.startswith(prefix) for n in names), names
    return {n[len(prefix):] for n in names}


# -- the wheel and the sdist --------------------------------------------------------------------


def test_wheel_is_pure_python_and_holds_the_whole_package_alone(built: Built) -> None:
    assert built.wheel.name == f"{PACKAGE}-{VERSION}-py3-none-any.whl"
    wheel_file = wheel_text(built.wheel, f"{dist_info()}/WHEEL")
    assert "Root-Is-Purelib: true" in wheel_file
    assert re.findall(r"^Tag: (.+)$", wheel_file, re.MULTILINE) == ["py3-none-any"]
    names = wheel_names(built.wheel)
    in_package = {n for n in names if not n.startswith(dist_info() + "/")}
    found = {n.split("/")[1] for n in in_package if n.count("/") == 2 and n.endswith("/__init__.py")}
    assert found >= SUBPACKAGES, f"subpackages missing from the wheel: {SUBPACKAGES - found}"
    assert f"{PACKAGE}/py.typed" in in_package
    assert in_package == built.package_files, (
        f"missing: {sorted(built.package_files - in_package)}; unexpected: {sorted(in_package - built.package_files)}"
        " (a file the package reads at run time goes in [tool.setuptools.package-data])")
    assert not [n for n in names if n.endswith(COMPILED)]
    assert not [n for n in names if n.startswith(LEFT_OUT)]


def test_wheel_metadata_is_what_pypi_and_the_registry_read(built: Built) -> None:
    names = wheel_names(built.wheel)
    assert f"{dist_info()}/licenses/LICENSE" in names
    assert wheel_text(built.wheel, f"{dist_info()}/licenses/LICENSE") == (ROOT / "LICENSE").read_text()
    meta = metadata(built.wheel)
    assert meta["Metadata-Version"] == "2.4"  # the first with License-Expression (PEP 639)
    assert (meta["Name"], meta["Version"]) == (NAME, VERSION)
    assert meta["License-Expression"] == "MIT"
    assert meta.get_all("License-File") == ["LICENSE"]
    classifiers = meta.get_all("Classifier") or []
    assert not [c for c in classifiers if c.startswith("License ::")], "PEP 639: no licence classifier"
    assert {f"Programming Language :: Python :: 3.{minor}" for minor in (11, 12, 13)} <= set(classifiers)
    assert {"Operating System :: POSIX :: Linux", "Operating System :: MacOS", "Topic :: Security"} <= set(classifiers)
    assert not [c for c in classifiers if "Windows" in c or "OS Independent" in c], "README: Windows does not work"
    urls = dict(u.split(", ", 1) for u in meta.get_all("Project-URL") or [])
    assert set(urls) == {"Homepage", "Repository", "Issues", "Documentation"}
    assert all(u.startswith(REPOSITORY) for u in urls.values()), urls
    assert meta["Requires-Python"] == ">=3.11"
    assert meta["Description-Content-Type"] == "text/markdown"
    assert f"<!-- mcp-name: {server_json()['name']} -->" in meta.get_payload(), (
        "the registry looks for the mcp-name marker in the description PyPI shows")


def test_sdist_builds_the_same_wheel_and_leaves_the_tests_out(built: Built) -> None:
    names = sdist_names(built.sdist)
    assert {"pyproject.toml", "README.md", "LICENSE", "PKG-INFO"} <= names
    assert built.package_files <= names
    assert not [n for n in names if n.startswith(LEFT_OUT)], "MANIFEST.in leaves these out"
    assert not [n for n in names if n.endswith(COMPILED)]
    assert wheel_names(built.wheel_from_sdist) == wheel_names(built.wheel)


def test_twine_check_passes_on_the_wheel_and_the_sdist(built: Built) -> None:
    done = run([sys.executable, "-m", "twine", "check", "--strict", built.wheel, built.sdist])
    assert done.stdout.count("PASSED") == 2, done.stdout


# -- the version --------------------------------------------------------------------------------


def test_the_version_is_read_from_the_installed_metadata(home: Path) -> None:
    assert installed_version(NAME) == VERSION, "pyproject.toml's version changed since: bash scripts/setup.sh"
    assert mailgent_mcp.__version__ == VERSION
    done = run_cli(home, "--version")
    assert done.stdout.strip() == f"{NAME} {VERSION}", done.stdout + done.stderr


def test_a_checkout_run_without_installing_says_its_version_is_unknown(tmp_path: Path) -> None:
    (tmp_path / PACKAGE).mkdir()
    shutil.copy(ROOT / PACKAGE / "__init__.py", tmp_path / PACKAGE / "__init__.py")
    # -S: no site-packages, so no installed metadata, as for PYTHONPATH=checkout on a bare Python
    done = run([sys.executable, "-S", "-c", f"import {PACKAGE}; print({PACKAGE}.__version__)"], cwd=tmp_path)
    assert done.stdout.strip() == "0+unknown"


# -- server.json, for the official MCP registry ---------------------------------------------------


def server_json() -> dict[str, Any]:
    parsed: dict[str, Any] = json.loads(SERVER_JSON.read_text())
    return parsed


def test_server_json_names_this_release_and_the_readme_marker() -> None:
    server = server_json()
    assert server["$schema"] == "https://static.modelcontextprotocol.io/schemas/2025-12-11/server.schema.json"
    markers = re.findall(r"<!--\s*mcp-name:\s*(\S+)\s*-->", README.read_text())
    assert markers == [server["name"]], "README.md's mcp-name marker must name server.json's server"
    assert re.fullmatch(r"[a-zA-Z0-9.-]+/[a-zA-Z0-9._-]+", server["name"])
    assert server["name"] == "io.github.mailgent/mailgent-mcp"  # a GitHub namespace: the org that publishes
    assert 1 <= len(server["description"]) <= 100, "the registry refuses a longer description"
    assert server["version"] == VERSION
    assert server["repository"] == {"url": REPOSITORY, "source": "github"}
    assert set(server) <= {"$schema", "name", "title", "description", "repository", "websiteUrl", "version",
                           "packages", "remotes", "icons", "_meta"}


def test_server_json_package_is_the_pypi_release_started_over_stdio() -> None:
    [package] = server_json()["packages"]
    assert set(package) <= {"registryType", "registryBaseUrl", "identifier", "version", "fileSha256", "runtimeHint",
                            "transport", "runtimeArguments", "packageArguments", "environmentVariables"}
    assert package["registryType"] == "pypi" and package["registryBaseUrl"] == "https://pypi.org"
    assert (package["identifier"], package["version"]) == (NAME, VERSION)
    assert package["transport"] == {"type": "stdio"}
    assert package["runtimeHint"] == "uvx"
    args = [a["value"] for a in package["packageArguments"] if a["type"] == "positional"]
    assert args == ["serve"] and len(args) == len(package["packageArguments"])
    assert build_parser().parse_args(args).group == "serve"


def test_server_json_variables_are_settings_the_server_reads_with_the_secrets_marked() -> None:
    [package] = server_json()["packages"]
    variables = {v["name"]: v for v in package["environmentVariables"]}
    assert len(variables) == len(package["environmentVariables"]), "a variable listed twice"
    assert set(variables) <= KNOWN_VARIABLES, set(variables) - KNOWN_VARIABLES
    assert {"MAILGENT_PASSPHRASE", "MAILGENT_MASTER_KEY", "MAILGENT_IMAP_PASSWORD"} <= set(variables)
    for name, variable in variables.items():
        assert variable.get("isSecret", False) is (name in SECRET), f"{name}: isSecret must be {name in SECRET}"
        assert not variable.get("isRequired", False), f"{name}: nothing needs configuring"
        assert variable.get("description"), name
        assert "value" not in variable and "default" not in variable, f"{name}: a client should ask, not be told"


# -- the Claude Desktop extension bundle ----------------------------------------------------------


def manifest() -> dict[str, Any]:
    parsed: dict[str, Any] = json.loads(MANIFEST.read_text())
    return parsed


def load_script(path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location(path.stem, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


BUILD_MCPB = load_script(ROOT / "scripts" / "build_mcpb.py")


def test_manifest_has_what_the_mcpb_spec_requires_for_this_release() -> None:
    m = manifest()
    assert m["manifest_version"] == "0.4"  # the first with the uv server type
    assert (m["name"], m["version"]) == (NAME, VERSION)
    assert m["description"] and m["author"]["name"]
    assert m["license"] == PROJECT["license"]
    server = m["server"]
    assert server["type"] == "uv"
    assert BUILD_MCPB.FIXED_FILES[server["entry_point"]] == "mcpb/launch.py"
    config = server["mcp_config"]
    assert config["command"] == "uv"
    args = config["args"]
    assert args[:4] == ["run", "--directory", "${__dirname}", "--quiet"], "uv must run in the unpacked bundle"
    assert args[4:] == [server["entry_point"], "serve"]
    assert [t["name"] for t in m["tools"]] == ALL_TOOLS
    assert m["compatibility"]["platforms"] == ["darwin", "linux"], "README: Windows does not work"


def test_manifest_passes_each_setting_as_a_variable_the_server_reads_with_the_secrets_masked() -> None:
    m = manifest()
    user_config: dict[str, dict[str, Any]] = m["user_config"]
    env: dict[str, str] = m["server"]["mcp_config"]["env"]
    assert set(env) <= KNOWN_VARIABLES, set(env) - KNOWN_VARIABLES
    setting_of = {}
    for name, value in env.items():
        match = re.fullmatch(r"\$\{user_config\.(\w+)\}", value)
        assert match and match.group(1) in user_config, f"{name}: {value!r} names no user_config setting"
        setting_of[name] = match.group(1)
    assert sorted(setting_of.values()) == sorted(user_config), "every setting is passed, once"
    for name, key in setting_of.items():
        option = user_config[key]
        assert option.get("sensitive", False) is (name in SECRET), f"{key} ({name}): sensitive must be {name in SECRET}"
        assert not option.get("required", False), f"{key}: nothing needs configuring"
        assert "default" not in option, f"{key}: launch.py treats an unset setting as absent, not as a default"
    assert user_config["passphrase"]["sensitive"] and user_config["imap_password"]["sensitive"]
    assert setting_of["MAILGENT_PASSPHRASE"] == "passphrase" and setting_of["MAILGENT_IMAP_PASSWORD"] == "imap_password"


def test_launcher_unsets_the_settings_left_empty() -> None:
    launch = load_script(ROOT / "mcpb" / "launch.py")
    environ = {"MAILGENT_PASSPHRASE": "${user_config.passphrase}", "MAILGENT_IMAP_URL": "",
               "MAILGENT_SMTP_LISTEN": "  ", "MAILGENT_HOME": "/data", "MAILGENT_IMAP_PASSWORD": "pw", "PATH": ""}
    assert sorted(launch.drop_unset(environ)) == ["MAILGENT_IMAP_URL", "MAILGENT_PASSPHRASE", "MAILGENT_SMTP_LISTEN"]
    assert environ == {"MAILGENT_HOME": "/data", "MAILGENT_IMAP_PASSWORD": "pw", "PATH": ""}


@pytest.fixture(scope="module")
def bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    built_bundle: Path = BUILD_MCPB.build(tmp_path_factory.mktemp("mcpb"))
    return built_bundle


def test_bundle_holds_the_manifest_what_it_points_at_and_the_package(bundle: Path, tmp_path: Path) -> None:
    assert bundle.name == f"{NAME}-{VERSION}.mcpb"
    with zipfile.ZipFile(bundle) as z:
        names = set(z.namelist())
        assert json.loads(z.read("manifest.json")) == manifest()
        assert z.read("server/launch.py") == (ROOT / "mcpb" / "launch.py").read_bytes()
    package = {p.relative_to(ROOT).as_posix() for p in (ROOT / PACKAGE).rglob("*")
               if p.is_file() and "__pycache__" not in p.parts and not p.name.endswith(COMPILED)}
    assert names == set(BUILD_MCPB.FIXED_FILES) | package
    assert manifest()["server"]["entry_point"] in names
    assert BUILD_MCPB.build(tmp_path).read_bytes() == bundle.read_bytes(), "the same checkout gives the same bundle"


def test_bundle_build_refuses_a_manifest_of_another_version(tmp_path: Path) -> None:
    root = tmp_path / "checkout"
    (root / "mcpb").mkdir(parents=True)
    shutil.copy(ROOT / "pyproject.toml", root / "pyproject.toml")
    (root / "mcpb" / "manifest.json").write_text(json.dumps({**manifest(), "version": "0.0.1"}))
    with pytest.raises(SystemExit, match=f"set the manifest's version to '{VERSION}'"):
        BUILD_MCPB.build(tmp_path / "out", root)
    assert not (tmp_path / "out").exists() or not list((tmp_path / "out").iterdir())


@needs(MCPB_CLI)
def test_official_mcpb_cli_validates_and_unpacks_the_bundle(bundle: Path, tmp_path: Path) -> None:
    node = runtime(MCPB_CLI)
    unpacked = tmp_path / "unpacked"
    run([node, MCPB_CLI, "unpack", bundle, unpacked], cwd=NODE_DIR, timeout=120)
    done = run([node, MCPB_CLI, "validate", unpacked / "manifest.json"], cwd=NODE_DIR, timeout=120)
    assert "validation passes" in done.stdout, done.stdout
    assert (unpacked / manifest()["server"]["entry_point"]).is_file()
    with zipfile.ZipFile(bundle) as z:
        assert {p.relative_to(unpacked).as_posix() for p in unpacked.rglob("*") if p.is_file()} == set(z.namelist())
    # The same validator refuses a secret setting that is not masked, so the check above means something.
    broken = manifest()
    broken["user_config"]["passphrase"]["sensitive"] = "yes"
    (tmp_path / "broken.json").write_text(json.dumps(broken))
    refused = subprocess.run([node, str(MCPB_CLI), "validate", str(tmp_path / "broken.json")], check=False,
                             capture_output=True, text=True, timeout=120, cwd=NODE_DIR)
    assert refused.returncode != 0 and "sensitive" in refused.stdout, refused.stdout


# -- started as the hosts start them (slow: uv installs the dependencies) ------------------------------


def uv_environment(home: Path) -> dict[str, str]:
    """What uv needs here: the test's Python, no Python downloads, and the machine's TLS trust."""
    env = clean_env(home)
    env["UV_PYTHON"] = sys.executable
    env["UV_PYTHON_DOWNLOADS"] = "never"
    for name in ("UV_CACHE_DIR", "XDG_CACHE_HOME", "SSL_CERT_FILE", "UV_INDEX_URL", "UV_DEFAULT_INDEX"):
        if name in os.environ:
            env[name] = os.environ[name]
    if "SSL_CERT_FILE" not in env and os.environ.get("PIP_CERT"):
        env["SSL_CERT_FILE"] = os.environ["PIP_CERT"]  # the CA bundle pip is told to trust on this machine
    return env


def uv_tool(name: str) -> str:
    path = VENV_BIN / name
    assert path.exists(), f"{path} is missing: the test extras install uv (bash scripts/setup.sh --test)"
    return str(path)


async def check_a_working_server(client: Client) -> None:
    assert [t.name for t in (await client.list_tools()).tools] == ALL_TOOLS
    put = await client.call_tool("vault_put", {"name": "github", "data": {"secret": SEED_RFC}})
    assert not put.is_error, put.content
    code = await client.call_tool("vault_totp", {"name": "github"})
    assert not code.is_error, code.content
    assert re.fullmatch(r"\d{6}", (code.structured_content or {})["code"]), code.structured_content


def readme_uvx_entry() -> dict[str, Any]:
    """The README's client config entry that starts the server with uvx."""
    blocks = re.findall(r"```json\n(.*?)```", README.read_text(), re.DOTALL)
    entries = [server for block in blocks for server in json.loads(block).get("mcpServers", {}).values()
               if server.get("command") == "uvx"]
    assert len(entries) == 1, "README.md should show one uvx client config"
    entry: dict[str, Any] = entries[0]
    return entry


def test_readme_uvx_entry_runs_this_package_s_serve() -> None:
    entry = readme_uvx_entry()
    assert entry["args"][0] == NAME
    assert build_parser().parse_args(entry["args"][1:]).group == "serve"
    assert "env" not in entry, "a key in the config would seal a new vault with it"


@pytest.mark.slow
async def test_readme_uvx_entry_starts_a_working_server_from_the_wheel(built: Built, home: Path) -> None:
    entry = readme_uvx_entry()
    env = uv_environment(home)
    # uvx mailgent-mcp resolves the package on PyPI; --from points it at the wheel this release uploads.
    args = ["--from", str(built.wheel), *entry["args"]]
    version = run([uv_tool("uvx"), *args[:-1], "--version"], env=env, timeout=600)
    assert version.stdout.strip() == f"{NAME} {VERSION}"
    async with Client(StdioServerParameters(command=uv_tool("uvx"), args=args, env=env), mode="legacy") as client:
        await check_a_working_server(client)
    assert (home / "master.key").exists(), "a config with no key makes the default vault"


@pytest.mark.slow
@needs(MCPB_CLI)
async def test_bundle_starts_as_claude_desktop_starts_it(bundle: Path, home: Path, tmp_path: Path) -> None:
    extension = tmp_path / "extension"
    with zipfile.ZipFile(bundle) as z:
        z.extractall(extension)
    # The user entered a passphrase and a data folder and left every other setting empty.
    user_config = {"passphrase": PASSPHRASE, "data_folder": str(home)}
    resolved = run([runtime(MCPB_CLI), MCPB_CONFIG, extension], cwd=NODE_DIR, timeout=120,
                   stdin=json.dumps(user_config))
    config = json.loads(resolved.stdout)
    assert config["env"]["MAILGENT_PASSPHRASE"] == PASSPHRASE and config["env"]["MAILGENT_HOME"] == str(home)
    assert config["env"]["MAILGENT_IMAP_URL"] == "${user_config.imap_url}", "the host leaves an empty setting as is"
    assert config["command"] == "uv"
    env = {**uv_environment(home), **config["env"]}
    # The first start installs the project and its dependencies into the bundle's .venv.
    warm = run([uv_tool("uv"), *config["args"][:-1], "--version"], env=env, timeout=600)
    assert warm.stdout.strip() == f"{NAME} {VERSION}"
    params = StdioServerParameters(command=uv_tool("uv"), args=config["args"], env=env)
    async with Client(params, mode="legacy") as client:
        await check_a_working_server(client)
    assert not (home / "master.key").exists(), "the passphrase from the user config sealed the vault"
    assert run_cli(home, "vault", "list", env=clean_env(home, MAILGENT_PASSPHRASE=PASSPHRASE)).returncode == 0
    assert run_cli(home, "vault", "list").returncode == 3  # locked without it
