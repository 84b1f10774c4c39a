"""Builds mailgent_mcp._extract_native, extract.py compiled by mypyc, where it can (see extract.py).

Everything else about the package is in pyproject.toml. The compiled module is optional:
without mypy, or a C compiler, or with MAILGENT_MCP_PURE_PYTHON=1, the package installs
pure Python, which gives the same results a little slower.
"""

from __future__ import annotations

import hashlib
import os
import sys
from pathlib import Path

from setuptools import Extension, setup  # type: ignore[import-untyped]

BUILDS = {"build", "build_ext", "bdist_wheel", "editable_wheel", "develop", "install"}


def native_extensions() -> list[Extension]:
    if os.environ.get("MAILGENT_MCP_PURE_PYTHON") == "1" or not BUILDS & set(sys.argv[1:]):
        return []  # metadata only, or pure Python asked for
    try:
        from mypyc.build import mypycify
    except ImportError:
        print("mailgent-mcp: mypyc not found; extraction stays pure Python", file=sys.stderr)
        return []
    source = Path("mailgent_mcp/extract.py")
    copy = source.with_name("_extract_native.py")
    digest = hashlib.sha256(source.read_bytes()).hexdigest()
    copy.write_text(source.read_text(encoding="utf-8") + f"\nSOURCE_SHA256 = {digest!r}\n", encoding="utf-8")
    try:
        extensions = mypycify([str(copy)], opt_level="3")
    except BaseException as exc:  # noqa: BLE001 - mypyc's checks failed: install pure Python
        print(f"mailgent-mcp: mypyc failed ({exc!r}); extraction stays pure Python", file=sys.stderr)
        return []
    finally:
        copy.unlink()  # the C sources are generated; the copy must not be packaged
    for extension in extensions:
        extension.optional = True  # no C compiler: pure Python, not a failed install
    return extensions


setup(ext_modules=native_extensions())
