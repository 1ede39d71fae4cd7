"""An expected decision the policy carries (issue 10: being built)."""

from __future__ import annotations

from gateway.policy.model_base import Strict


class ExpectedDecision(Strict):
    pass
