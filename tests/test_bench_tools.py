"""The benchmarks' own parts: the origin's lesson page reaches content analysis, the content-off and intercept-all
policy variants, the round loop's order, and CPU caps that hold a process and its children to their share."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT / "bench"))

import cpu_cap  # noqa: E402
from bench_origin import start_origin  # noqa: E402
from proxy_load import cpu_seconds, rounds  # noqa: E402
from throughput import demo_policy, without_section  # noqa: E402

from gateway.content.build import build_analyser  # noqa: E402
from gateway.decisions.types import Action  # noqa: E402
from gateway.identity.types import Identity  # noqa: E402
from gateway.policy.loader import load_policy  # noqa: E402


def get(port: int, path: str) -> tuple[dict[str, str], bytes]:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as conn:
        conn.sendall(f"GET {path} HTTP/1.1\r\nHost: www.bbc.co.uk\r\nConnection: close\r\n\r\n".encode())
        data = b""
        while chunk := conn.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode().split("\r\n")
    headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
    assert lines[0] == "HTTP/1.1 200 OK"
    assert len(body) == int(headers["content-length"])
    return headers, body


@pytest.fixture(scope="module")
def origin(tmp_path_factory: pytest.TempPathFactory):
    process, port, _ = start_origin(tmp_path_factory.mktemp("origin-ca"), "www.bbc.co.uk", "www.gov.uk")
    yield port
    process.kill()
    process.wait()


def test_lesson_page_is_a_new_page_that_content_analysis_reads_whole_and_passes(origin: int) -> None:
    analyser = build_analyser(load_policy(REPO_ROOT / "policies" / "default.yaml"))
    assert analyser is not None
    headers, first = get(origin, "/page.html?1")
    _, second = get(origin, "/page.html?2")
    assert first != second, "the same bytes twice would be answered from the gateway's remembered findings"
    assert 20_000 <= len(first) <= 60_000
    # Held and analysed before the browser sees it, not streamed past.
    assert analyser.wants(headers["content-type"], int(headers["content-length"]))
    finding = analyser.analyse_page(first.decode(), Identity(group="pupil"))
    assert finding.action is Action.ALLOW and finding.score == 0


def test_other_paths_still_get_the_13_byte_answer(origin: int) -> None:
    headers, body = get(origin, "/bench?7")
    assert (headers["content-type"], body) == ("text/plain", b"bench origin\n")


def test_policy_variants_turn_off_only_their_section(tmp_path: Path) -> None:
    policy = demo_policy(tmp_path, None)
    no_content = load_policy(without_section(policy, "content", "no-content.yaml"))
    intercept_all = load_policy(without_section(policy, "interception", "intercept-all.yaml"))
    shipped = load_policy(policy)
    assert build_analyser(shipped) is not None and build_analyser(no_content) is None
    assert no_content.policy.rules == shipped.policy.rules
    assert shipped.policy.interception != intercept_all.policy.interception
    assert intercept_all.policy.content == shipped.policy.content


def test_without_section_refuses_a_section_the_policy_lacks(tmp_path: Path) -> None:
    policy = demo_policy(tmp_path, None)
    with pytest.raises(SystemExit, match="could not take the nonesuch: section out"):
        without_section(policy, "nonesuch", "x.yaml")


@dataclass
class Config:
    name: str
    runs: dict[str, list[str]] = field(default_factory=dict)


def test_rounds_warm_up_unkept_then_rotate_the_first_configuration(capsys: pytest.CaptureFixture[str]) -> None:
    configs = [Config("a"), Config("b"), Config("c")]
    calls: list[tuple[str, str, float, bool]] = []

    def run(scenario: str, config: Config, duration: float, measured: bool) -> str:
        calls.append((scenario, config.name, duration, measured))
        return f"{scenario}/{config.name}/{len(calls)}"

    rounds(configs, ["x", "y"], run, rounds=3, duration=5.0, warmup=0.5, describe=str, scenario_name=str)
    assert calls[:6] == [(s, c, 0.5, False) for s in "xy" for c in "abc"]
    measured = [(s, c) for s, c, d, m in calls[6:] if m and d == 5.0]
    assert len(measured) == len(calls) - 6 == 18
    assert [c for s, c in measured if s == "x"] == list("abc" "bca" "cab")
    assert all(len(config.runs["x"]) == len(config.runs["y"]) == 3 for config in configs)
    assert capsys.readouterr().out.splitlines()[0] == "round 1  x          a x/a/7"


def cgroups_writable() -> bool:
    try:
        cpu_cap.hierarchy()
    except (cpu_cap.CpuCapError, OSError):
        return False
    return True


SPIN = "import os, time\nif os.fork() == 0:\n    while True: pass\nwhile True: pass\n"
"""A process that spins, and a child it started before being capped that spins too."""


@pytest.mark.skipif(not cgroups_writable(), reason="needs root and a cgroup hierarchy with the cpu controller")
def test_a_cap_holds_a_process_and_the_child_it_already_had_to_their_share() -> None:
    [cap] = cpu_cap.make_caps("bench-test", 1, 0.2)
    # A session of its own, so the child it forks goes with it.
    spinner = subprocess.Popen([sys.executable, "-c", SPIN], start_new_session=True)
    try:
        time.sleep(0.5)
        cap.add(spinner.pid)
        pids = [spinner.pid, *cpu_cap.descendants(spinner.pid)]
        assert len(pids) == 2 and sorted(cap.pids()) == sorted(pids)
        before, periods_before = sum(cpu_seconds(p) or 0.0 for p in pids), cap.throttled()
        time.sleep(2.0)
        used = (sum(cpu_seconds(p) or 0.0 for p in pids) - before) / 2.0
        periods, throttled = (a - b for a, b in zip(cap.throttled(), periods_before, strict=True))
        assert used <= 0.2 * 1.25, f"two spinning processes used {used:.2f} cores under a 0.2 cap"
        assert throttled > periods / 2
    finally:
        os.killpg(spinner.pid, signal.SIGKILL)
        spinner.wait()
        cap.remove()
    assert not cap.path.exists()


@pytest.mark.skipif(not cgroups_writable(), reason="needs root and a cgroup hierarchy with the cpu controller")
def test_a_cap_left_by_a_killed_bench_is_removed_by_the_next(tmp_path: Path) -> None:
    where = cpu_cap.hierarchy()
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    stale = where.root / f"bench-test-{int(gone.stdout)}-0"
    stale.mkdir()
    caps = cpu_cap.make_caps("bench-test", 1, 0.2)
    try:
        assert not stale.exists()
        assert caps[0].path.name == f"bench-test-{os.getpid()}-0"
    finally:
        for cap in caps:
            cap.remove()
