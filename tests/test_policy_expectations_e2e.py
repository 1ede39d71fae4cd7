"""A running gateway refuses a reload that breaks one of the policy's expected decisions, logs the case that failed,
and keeps filtering with the policy it runs: real mitmdump, real HTTPS origin, a real client."""

from __future__ import annotations

import pytest

from tests.support.gateway import start_gateway
from tests.support.mitmdump import MitmdumpError
from tests.test_policy_expectations import SOCIAL_RULE
from tests.test_policy_reload_e2e import REFUSED, demo_copy_with_pupil_device, facebook_status

pytestmark = pytest.mark.e2e


def test_a_reload_that_breaks_an_expected_decision_is_refused_and_facebook_stays_blocked(tmp_path, origin):
    policy = demo_copy_with_pupil_device(tmp_path)
    proxy = start_gateway(tmp_path, policy, origin=origin, gateway_reload_interval_ms=100)
    try:
        assert facebook_status(proxy) == 403
        mark = proxy.mark()
        policy.write_text(policy.read_text().replace(SOCIAL_RULE, ""))
        failure = proxy.wait_for_output(REFUSED, after=mark)
        log = proxy.output()[failure.start():]
        assert "expect.0: expected block for pupil at Mon 2026-09-07 09:40 (lesson) on https://www.facebook.com/, " \
               "but the policy decides allow: the policy's default" in log  # fmt: skip
        assert facebook_status(proxy) == 403
    finally:
        proxy.stop()


def test_a_gateway_does_not_start_on_a_policy_that_breaks_an_expected_decision(tmp_path):
    policy = demo_copy_with_pupil_device(tmp_path)
    policy.write_text(policy.read_text().replace(SOCIAL_RULE, ""))
    with pytest.raises(MitmdumpError) as failed:
        start_gateway(tmp_path, policy)
    assert "the policy is invalid" in str(failed.value)
    assert "expect.0: expected block for pupil" in str(failed.value)
