"""Real-time content analysis settings (issue 10: being built)."""

from __future__ import annotations

from gateway.policy.model_base import Strict


class ContentAnalysis(Strict):
    pass
