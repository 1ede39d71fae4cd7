"""The recorded normal browsing session (tests/fixtures/circumvention/browsing_session.json)."""

from __future__ import annotations

import json
from pathlib import Path

SESSION = Path(__file__).resolve().parents[1] / "fixtures" / "circumvention" / "browsing_session.json"


def browsing_session() -> list[dict]:
    return json.loads(SESSION.read_text())["requests"]
