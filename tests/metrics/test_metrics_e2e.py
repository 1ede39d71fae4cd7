"""The proxy's Prometheus endpoint end to end: a real mitmdump with the gateway, real curl clients through it, and
the endpoint scraped over HTTP as Prometheus would. What a monitoring screen shows after real traffic: requests,
decisions by action and category, the decision-latency histogram, the policy running and a refused reload, the
spool growing while the database is away; and what it must never show: a person, an address, a host or a URL."""

from __future__ import annotations

import hashlib
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.support.clients import curl
from tests.support.gateway import start_gateway
from tests.support.mitmdump import Mitmdump, MitmdumpError
from tests.support.origins import OriginServer
from tests.support.policies import demo_policy_with_devices
from tests.support.ports import free_port

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
PUPIL = "127.0.0.2"
PAGE = {"Accept": "text/html"}
Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]

if shutil.which("curl") is None:
    pytest.skip("curl is not installed (scripts/bootstrap installs it)", allow_module_level=True)


def start_with_metrics(folder: Path, origin: OriginServer, **options: object) -> tuple[Mitmdump, str, Path]:
    policy = demo_policy_with_devices(folder, {PUPIL: "pupil"}, copy_lists=True)
    listen = f"127.0.0.1:{free_port()}"
    proxy = start_gateway(folder, policy, origin=origin, gateway_metrics_listen=listen, **options)
    return proxy, f"http://{listen}/metrics", policy


def scrape(url: str) -> tuple[str, Samples]:
    text = httpx.get(url, timeout=10).text
    samples: Samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return text, samples


def value(samples: Samples, name: str, **labels: str) -> float:
    """The sum of the samples named `name` whose labels include `labels`."""
    wanted = set(labels.items())
    return sum(v for (n, ls), v in samples.items() if n == name and wanted <= ls)


def eventually(url: str, check: Callable[[Samples], bool], timeout: float = 30.0) -> Samples:
    deadline = time.monotonic() + timeout
    while True:
        _, samples = scrape(url)
        if check(samples) or time.monotonic() > deadline:
            return samples
        time.sleep(0.2)


@pytest.fixture(scope="module")
def gateway(tmp_path_factory, origin):
    proxy, url, policy = start_with_metrics(tmp_path_factory.mktemp("metrics"), origin)
    yield proxy, url, policy
    proxy.stop()


def test_metrics_count_requests_decisions_and_latency(gateway):
    proxy, url, policy = gateway
    _, before = scrape(url)
    blocked = curl("http://instagram.com/", proxy=proxy.proxy_url, source_address=PUPIL, headers=PAGE)
    allowed = curl("http://example.org/hello", proxy=proxy.proxy_url, source_address=PUPIL)
    secure = curl("https://www.bbc.co.uk/bitesize", proxy=proxy.proxy_url, ca=proxy.ca_cert_path,
                  source_address=PUPIL)  # fmt: skip
    assert blocked.status == 403 and allowed.status == 200 and secure.status == 200

    def counted(s: Samples) -> bool:
        return value(s, "gateway_requests_total") >= value(before, "gateway_requests_total") + 3

    after = eventually(url, counted)
    assert value(after, "gateway_requests_total", scheme="http") - value(before, "gateway_requests_total",
                                                                          scheme="http") == 2  # fmt: skip
    blocks = dict(action="block", source="rule", category="social_media_named")
    assert value(after, "gateway_decisions_total", **blocks) - value(before, "gateway_decisions_total", **blocks) == 1
    assert value(after, "gateway_requests_total", scheme="https") - value(before, "gateway_requests_total",
                                                                          scheme="https") == 1  # fmt: skip
    assert value(after, "gateway_decisions_total", action="allow") - value(before, "gateway_decisions_total",
                                                                           action="allow") == 2  # fmt: skip
    # Every request's decision is timed, and well inside the histogram's range; so are the tunnel's CONNECT and
    # TLS ClientHello.
    timed = value(after, "gateway_decision_seconds_count", hook="requestheaders")
    assert timed - value(before, "gateway_decision_seconds_count", hook="requestheaders") == 3
    for hook in ("http_connect", "tls_clienthello"):
        assert value(after, "gateway_decision_seconds_count", hook=hook) - value(
            before, "gateway_decision_seconds_count", hook=hook) == 1, hook  # fmt: skip
    assert value(after, "gateway_decision_seconds_bucket", hook="requestheaders", le="0.1") == timed
    assert 0 < value(after, "gateway_decision_seconds_sum", hook="requestheaders") < timed * 0.1
    # The policy running, as the audit trail names it.
    assert value(after, "gateway_policy_info", sha256=hashlib.sha256(policy.read_bytes()).hexdigest(),
                 file=policy.name) == 1  # fmt: skip
    assert value(after, "gateway_policy_loads_total") == 1
    assert value(after, "gateway_policy_reload_failures_total") == 0
    assert value(after, "gateway_policy_loaded_timestamp_seconds") > time.time() - 3600
    assert value(after, "gateway_connections_total") >= 3
    assert value(after, "gateway_fail_closed_total") == 0
    # The single proxy is worker 0; its process's own figures come along.
    assert value(after, "gateway_requests_total", worker="0") > 0
    assert value(after, "process_resident_memory_bytes") > 0


def test_a_hostile_url_leaves_no_person_address_or_url_in_the_metrics(gateway):
    proxy, url, _ = gateway
    _, before = scrape(url)
    hostile = 'http://instagram.com/alice.smith/"><script>x</script>?user=alice.smith%40school.example&q=Bob+Jones'
    curl(hostile, proxy=proxy.proxy_url, source_address=PUPIL, headers={**PAGE, "X-Forwarded-For": "alice.smith"})
    curl('http://evil-label.example/metric{le="x"}', proxy=proxy.proxy_url, source_address=PUPIL)
    eventually(url, lambda s: value(s, "gateway_requests_total") >= value(before, "gateway_requests_total") + 2)
    _, samples = scrape(url)
    labels = {f"{k}={v}".lower() for (_, ls) in samples for k, v in ls}
    for secret in ("alice", "smith", "bob", "jones", "instagram", "evil-label", "script", "127.0.0.2", "example",
                   "pupil", "metric{"):  # fmt: skip
        assert not [label for label in labels if secret in label], secret
    # Every label is from a closed set the policy or the code defines.
    names = {label.partition("=")[0] for label in labels}
    assert names <= {"worker", "scheme", "action", "source", "category", "hook", "le", "outcome", "kind", "file",
                     "sha256"}, names  # fmt: skip


def test_a_broken_policy_reload_is_counted_and_the_old_policy_keeps_its_version(tmp_path, origin):
    """Counted by the policy source itself, once per broken change, whatever the log says about it: a file that
    does not parse, then a list emptied under the running policy, each one refusal; a fixed file loads again."""
    proxy, url, policy = start_with_metrics(tmp_path, origin, gateway_reload_interval_ms=100)
    try:
        good = policy.read_text()
        running = hashlib.sha256(policy.read_bytes()).hexdigest()
        policy.write_text(good + "\nnot: [valid\n")
        samples = eventually(url, lambda s: value(s, "gateway_policy_reload_failures_total") >= 1)
        assert value(samples, "gateway_policy_reload_failures_total") == 1
        time.sleep(1.0)  # ten more looks at the same broken file
        _, samples = scrape(url)
        assert value(samples, "gateway_policy_reload_failures_total") == 1, "one broken change, one refusal"
        assert value(samples, "gateway_policy_info", sha256=running) == 1
        assert value(samples, "gateway_policy_loads_total") == 1
        assert curl("http://www.facebook.com/", proxy=proxy.proxy_url, source_address=PUPIL).status == 403

        policy.write_text(good)
        eventually(url, lambda s: value(s, "gateway_policy_loads_total") == 2)
        (policy.parent / "lists" / "social_media_named.txt").write_text("# emptied by a bad download\n")
        samples = eventually(url, lambda s: value(s, "gateway_policy_reload_failures_total") >= 2)
        assert value(samples, "gateway_policy_reload_failures_total") == 2
        assert value(samples, "gateway_policy_loads_total") == 2
        assert curl("http://www.facebook.com/", proxy=proxy.proxy_url, source_address=PUPIL).status == 403
    finally:
        proxy.stop()


def test_the_spool_gauge_rises_while_the_database_is_away(tmp_path, origin):
    # Nothing listens on this port: every write is refused, as with a database server that is down.
    away = f"postgresql+psycopg://gateway@127.0.0.1:{free_port()}/gateway"
    policy = demo_policy_with_devices(tmp_path, {PUPIL: "pupil"})
    listen = f"127.0.0.1:{free_port()}"
    proxy = Mitmdump(
        ["addons/gateway.py"],
        {"gateway_policy": policy, "gateway_now": "2026-09-07T09:30", "gateway_db": away,
         "gateway_spool": tmp_path / "spool", "gateway_metrics_listen": listen},
        workdir=tmp_path, origin=origin, ready_line=r"policy .* loaded",
    ).start()  # fmt: skip
    try:
        url = f"http://{listen}/metrics"
        _, before = scrape(url)
        assert value(before, "gateway_spool_files", kind="access") == 0
        assert value(before, "gateway_identity_store_up") == 0
        for _ in range(3):
            curl("http://example.org/hello", proxy=proxy.proxy_url, source_address=PUPIL)
        samples = eventually(url, lambda s: value(s, "gateway_log_rows_total", outcome="spooled") == 3)
        assert value(samples, "gateway_spool_files", kind="access") > 0
        assert value(samples, "gateway_spool_bytes", kind="access") > 0
        assert value(samples, "gateway_log_rows_total", outcome="spooled") == 3
        assert value(samples, "gateway_spool_oldest_age_seconds", kind="access") >= 0
        assert value(samples, "gateway_log_rows_total", outcome="written") == 0
    finally:
        proxy.stop()


def test_the_endpoint_refuses_to_start_on_a_port_in_use(tmp_path, origin):
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        policy = demo_policy_with_devices(tmp_path, {PUPIL: "pupil"})
        with pytest.raises(MitmdumpError) as refused:
            start_gateway(tmp_path, policy, origin=origin, gateway_metrics_listen=f"127.0.0.1:{port}")
    assert f"gateway_metrics_listen 127.0.0.1:{port}: cannot listen there" in str(refused.value)
    assert "Address already in use" in str(refused.value)


def test_gateway_health_checks_each_workers_endpoint(gateway, tmp_path):
    _, url, _ = gateway
    live = url.removeprefix("http://").removesuffix("/metrics")
    dead = f"127.0.0.1:{free_port()}"
    got = subprocess.run(
        [sys.executable, "-c", "from gateway.cli.main import cli; cli()", "health", "--var", str(tmp_path),
         "--proxy", dead, "--console", "", "--metrics", live, "--metrics", dead],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    lines = got.stdout.splitlines()
    assert got.returncode == 2, got.stdout + got.stderr
    assert f"OK metrics {live}: answers" in lines
    assert any(line.startswith(f"CRITICAL metrics {dead}: no answer") for line in lines)


def test_a_pupil_cannot_read_the_metrics_through_the_proxy(gateway):
    proxy, url, _ = gateway
    got = curl(url, proxy=proxy.proxy_url, source_address=PUPIL, headers=PAGE)
    assert got.status == 403 and "gateway_requests_total" not in got.text
