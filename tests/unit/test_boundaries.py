"""The backend contract's promise, checked on the source: the layers above
the client speak in capabilities and typed errors, never in one backend's
words (see docs/architecture.md)."""

import re
from pathlib import Path

import pytest

import cloudfs

ROOT = Path(cloudfs.__file__).parent
NEUTRAL = ("fs", "upload", "cache")
#: a wire code (Cloudreve's are five digits), a dialect's name, a dialect class
LEAKS = re.compile(r"\b[0-9]{5}\b|\bv[34]\b|\bV[34]Dialect\b|\bCookieAuth\b|\bBearerAuth\b|\bCloudreve")


@pytest.mark.parametrize("package", NEUTRAL)
def test_no_backend_knowledge_above_the_client(package):
    leaks = [f"{path.relative_to(ROOT)}:{number}: {line.strip()}"
             for path in sorted((ROOT / package).rglob("*.py"))
             for number, line in enumerate(path.read_text().splitlines(), 1)
             if LEAKS.search(line)]
    assert not leaks, "backend knowledge in " + package + ":\n" + "\n".join(leaks)
