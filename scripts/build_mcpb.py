"""Build the Claude Desktop extension bundle: dist/mailgent-mcp-VERSION.mcpb.

    python3 scripts/build_mcpb.py [--out DIR]

An .mcpb is a zip with manifest.json at its root. mcpb/manifest.json declares the server of
type "uv": Claude Desktop runs `uv run` in the unpacked bundle, which installs the project from
the pyproject.toml beside it (dependencies from PyPI, for the user's platform and Python), and
starts mcpb/launch.py as server/launch.py. So the bundle holds what builds the wheel (the
package, pyproject.toml, README.md, LICENSE) plus those two files, and no compiled code.

It is written here with the standard library (sorted entries, fixed timestamps: the same
checkout gives the same bytes) so that building needs no Node.js; tests/test_packaging.py
checks the result with the official mcpb CLI.
"""

from __future__ import annotations

import argparse
import json
import sys
import tomllib
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = "mailgent_mcp"
# bundle path -> source path in the checkout
FIXED_FILES = {
    "manifest.json": "mcpb/manifest.json",
    "server/launch.py": "mcpb/launch.py",
    "pyproject.toml": "pyproject.toml",
    "README.md": "README.md",
    "LICENSE": "LICENSE",
}
ZIP_TIME = (1980, 1, 1, 0, 0, 0)  # the earliest a zip can store; any fixed time makes the build reproducible


def project_version(root: Path = ROOT) -> str:
    version: str = tomllib.loads((root / "pyproject.toml").read_text())["project"]["version"]
    return version


def bundle_files(root: Path = ROOT) -> dict[str, Path]:
    """What goes in the bundle: bundle path -> file in the checkout."""
    files = {name: root / source for name, source in FIXED_FILES.items()}
    for path in sorted((root / PACKAGE).rglob("*")):
        if path.is_file() and "__pycache__" not in path.parts and (path.suffix == ".py" or path.name == "py.typed"):
            files[path.relative_to(root).as_posix()] = path
    return files


def build(out_dir: Path, root: Path = ROOT) -> Path:
    version = project_version(root)
    manifest = json.loads((root / "mcpb/manifest.json").read_text())
    if manifest.get("version") != version:
        raise SystemExit(f"build_mcpb: mcpb/manifest.json has version {manifest.get('version')!r} and pyproject.toml "
                         f"{version!r}; set the manifest's version to {version!r}")
    out_dir.mkdir(parents=True, exist_ok=True)
    target = out_dir / f"{manifest['name']}-{version}.mcpb"
    partial = target.with_suffix(".mcpb.partial")
    with zipfile.ZipFile(partial, "w", compression=zipfile.ZIP_DEFLATED) as bundle:
        for name, path in sorted(bundle_files(root).items()):
            info = zipfile.ZipInfo(name, date_time=ZIP_TIME)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            bundle.writestr(info, path.read_bytes())
    partial.replace(target)  # never a half-written bundle under the final name
    return target


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Build the Claude Desktop extension bundle (.mcpb).")
    parser.add_argument("--out", type=Path, default=ROOT / "dist", help="output folder (default: dist/)")
    args = parser.parse_args(argv)
    print(build(args.out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
