"""actors is the bottom layer: it imports only the standard library, trio, attrs and
structlog, and speaks no domain language of the layers above it."""

from __future__ import annotations

import ast
import re
import sys
from pathlib import Path

import pytest

import actors

SOURCES = sorted(Path(actors.__file__).parent.glob("*.py"))
ALLOWED = {"actors", "attrs", "structlog", "trio"} | set(sys.stdlib_module_names)
DOMAIN_WORDS = re.compile(
    r"\b(pods?|nodes?|kube\w*|kubernetes|namespaces?|apiserver|controlplane|runtime)\b",
    re.IGNORECASE,
)


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: p.name)
def test_imports_point_down_only(path: Path) -> None:
    imported = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            imported |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            imported.add(node.module.split(".")[0])
    assert imported <= ALLOWED, imported - ALLOWED


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: p.name)
def test_no_domain_words(path: Path) -> None:
    assert DOMAIN_WORDS.findall(path.read_text()) == []
