"""The backend contract's promise, checked on the source: the layers above
the client speak in capabilities and typed errors, never in one backend's
words (see docs/architecture.md)."""

import re
from pathlib import Path

import pytest

import cloudfs
from cloudfs.client import cloudreve_codes
from cloudfs.client.koodrive import codes as koodrive_codes

ROOT = Path(cloudfs.__file__).parent
NEUTRAL = ("fs", "upload", "cache")
#: every backend's own error codes (those too long to be anything else)
WIRE_CODES = sorted({str(code) for code in cloudreve_codes.CODES if code >= 10000}
                    | {str(cloudreve_codes.BATCH_PARTIAL_FAILURE)}
                    | {str(code) for code in koodrive_codes.CODES})
#: a wire code, a dialect's name, a dialect class, the backend's name
LEAKS = re.compile(r"\b(" + "|".join(WIRE_CODES) + r")\b|\bv[34]\b|\bV[34]Dialect\b|\bCookieAuth\b|\bBearerAuth\b"
                   r"|\bCloudreve|\b[Kk]oo[Dd]rive|\bKooAuth\b")


@pytest.mark.parametrize("package", NEUTRAL)
def test_no_backend_knowledge_above_the_client(package):
    leaks = [f"{path.relative_to(ROOT)}:{number}: {line.strip()}"
             for path in sorted((ROOT / package).rglob("*.py"))
             for number, line in enumerate(path.read_text().splitlines(), 1)
             if LEAKS.search(line)]
    assert not leaks, "backend knowledge in " + package + ":\n" + "\n".join(leaks)
