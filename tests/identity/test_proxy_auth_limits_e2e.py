"""Wrong proxy passwords are limited across workers: two real proxies sharing one spool folder, a pupil guessing
a teacher's password over both ports at once, with the attacker's spellings and forged headers, and the shared
record removed or made unusable under the running workers."""

from __future__ import annotations

import base64
import shutil
import subprocess
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from gateway.identity.credentials import hash_secret
from gateway.identity.directory import import_people
from gateway.identity.people import Person
from gateway.identity.sign_in_failures import FILE_NAME
from gateway.store.models.people import PersonRecord
from tests.support.clients import Fetched, curl
from tests.support.mitmdump import Mitmdump
from tests.support.policies import PROXY_AUTH_POLICY
from tests.support.slapd import LdapUser, Slapd

pytestmark = pytest.mark.e2e

GUESSER, TEACHER, DELETER, BREAKER, BURSTER = "127.0.0.60", "127.0.0.61", "127.0.0.62", "127.0.0.63", "127.0.0.64"
# Long enough for a loaded machine to send a device's ten guesses well inside it; the wait for it to pass is the
# slowest part of the test.
WINDOW = 12
ACCOUNT_LIMITED = "Too many wrong passwords for this account from this computer"
DEVICE_LIMITED = "Too many wrong passwords from this computer"


def basic(username: str, password: str, scheme: str = "Basic") -> dict[str, str]:
    return {"Proxy-Authorization": f"{scheme} {base64.b64encode(f'{username}:{password}'.encode()).decode()}"}


def wait(predicate: Callable[[], bool], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.2)
    return predicate()


def test_wrong_passwords_are_limited_across_workers(tmp_path: Path, mitmdump_proxy, origin_https, store_url: str,
                                                    store: sessionmaker[Session]) -> None:
    with store.begin() as s:
        import_people(s, [Person("mrp", "Raj Patel", "staff"), Person("ben", "Ben Smith", "pupil")])
        for username, password in (("mrp", "correct horse"), ("ben", "ben's own")):
            s.scalars(select(PersonRecord).where(PersonRecord.username == username)).one().password_hash = (
                hash_secret(password))
    (tmp_path / "lists").mkdir()
    policy = tmp_path / "policy.yaml"
    policy.write_text(PROXY_AUTH_POLICY)
    spool = tmp_path / "spool"
    options = {
        "gateway_policy": str(policy), "gateway_db": store_url, "gateway_spool": str(spool),
        "gateway_proxy_auth": "roster",
        "gateway_proxy_auth_clients": ",".join((GUESSER, TEACHER, DELETER, BREAKER, BURSTER)),
        "gateway_proxy_auth_window_seconds": WINDOW,
    }
    workers: list[Mitmdump] = [mitmdump_proxy(["addons/gateway.py"], options, origin=origin_https,
                                              ready_line="identity sources running") for _ in range(2)]

    def get(n: int, device: str, headers: dict[str, str], **kwargs: str) -> Fetched:
        return curl("http://learn.example/", proxy=workers[n % 2].proxy_url, source_address=device,
                    headers=headers | kwargs)

    started = time.monotonic()
    # The pupil guesses Mr Patel's password, alternating between the workers' ports: five wrong answers are
    # ordinary challenges, and from then on both workers refuse that device that account, with the reason.
    for n in range(5):
        wrong = get(n, GUESSER, basic("mrp", f"guess {n}"))
        assert wrong.status == 407 and ACCOUNT_LIMITED not in wrong.text
    for n in range(2):
        refused = get(n, GUESSER, basic("mrp", f"guess {n + 5}"))
        assert refused.status == 407 and ACCOUNT_LIMITED in refused.text
        assert refused.headers["proxy-authenticate"].startswith("Basic")
        # Even the right password: the guesser cannot find out whether a guess was right.
        assert ACCOUNT_LIMITED in get(n, GUESSER, basic("mrp", "correct horse")).text
    # Other spellings of the same account and the same scheme, and a forged client address, are the same device
    # trying the same account.
    assert ACCOUNT_LIMITED in get(0, GUESSER, basic("MRP", "correct horse", scheme="basic")).text
    assert ACCOUNT_LIMITED in get(1, GUESSER, basic(" Mrp ", "correct horse"),
                                  **{"X-Forwarded-For": TEACHER, "X-Real-IP": TEACHER}).text
    # HTTPS: the CONNECT is refused the same way.
    host, port = workers[1].proxy_url.split("//")[1].split(":")
    with pytest.raises(subprocess.CalledProcessError) as tunnel:
        curl("https://staffroom.example/", proxy=f"http://mrp:correct%20horse@{host}:{port}",
             ca=workers[1].ca_cert_path, source_address=GUESSER)
    assert b"CONNECT tunnel failed, response 407" in tunnel.value.stderr

    # Mr Patel, on his own computer, gets in at once on either port; the pupil can still use their own account.
    assert get(0, TEACHER, basic("mrp", "correct horse")).status == 200
    assert get(1, TEACHER, basic("mrp", "correct horse")).status == 200
    assert get(0, GUESSER, basic("ben", "ben's own")).status == 200

    # Guessing other accounts: ten wrong answers in the window stop the device for every account, its own too
    # (but for a password the same worker saw proved right from it a moment ago, which is no guess).
    for n, name in enumerate(("head", "admin", "bursar", "office", "it")):
        assert get(n, GUESSER, basic(name, "password1")).status == 407
    for headers in (basic("ben", "ben's own"), basic("mrp", "correct horse")):
        refused = get(1, GUESSER, headers, **{"X-Forwarded-For": TEACHER})
        assert refused.status == 407 and DEVICE_LIMITED in refused.text
    assert DEVICE_LIMITED in get(0, GUESSER, basic("mrp", "correct horse")).text
    assert time.monotonic() - started < WINDOW, "the machine was too slow to send the guesses inside the window"
    # Logged once per device and window by each worker, not once per refused request.
    for worker in workers:
        assert wait(lambda: f"{GUESSER} refused, too many wrong passwords from this device" in worker.output(), 5)
        assert worker.output().count(f"{GUESSER} refused, too many wrong passwords from this device") == 1

    # While the window runs, other devices try the attacks below.

    # The record removed under the running workers: it is made anew with both workers' counts.
    for n in range(3):
        assert get(n, DELETER, basic("deputy", f"guess {n}")).status == 407
    for name in (FILE_NAME, f"{FILE_NAME}-wal", f"{FILE_NAME}-shm"):
        (spool / name).unlink(missing_ok=True)
    outcomes = [get(n, DELETER, basic("deputy", f"guess {n + 3}")).text for n in range(4)]
    assert [ACCOUNT_LIMITED in text for text in outcomes] == [False, False, True, True]
    assert (spool / FILE_NAME).stat().st_mode & 0o077 == 0

    # The record made unusable (a folder in its place): each worker goes on counting its own attempts, so the
    # guesses still stop (at most twice the limit over two workers), and the right password still gets in.
    for n in range(4):
        assert get(n, BREAKER, basic("caretaker", f"guess {n}")).status == 407
    for name in (FILE_NAME, f"{FILE_NAME}-wal", f"{FILE_NAME}-shm"):
        (spool / name).unlink(missing_ok=True)
    (spool / FILE_NAME).mkdir()
    answered = [get(n, BREAKER, basic("caretaker", f"guess {n + 4}")).text for n in range(10)]
    assert all(ACCOUNT_LIMITED in text for text in answered[6:]), answered
    assert get(1, TEACHER, basic("ben", "ben's own")).status == 200
    for worker in workers:
        worker.wait_for_output(r"proxy sign-in limits: .* cannot be used")
    # Mended: the workers share one record again, with what they counted meanwhile.
    shutil.rmtree(spool / FILE_NAME)
    assert ACCOUNT_LIMITED in get(0, BREAKER, basic("caretaker", "guess 14")).text
    assert (spool / FILE_NAME).is_file()

    # Guesses sent all at once to both workers: each is written down before its password is checked, so no more
    # than the limit are checked however they race.
    with ThreadPoolExecutor(16) as pool:
        burst = list(pool.map(lambda n: get(n, BURSTER, basic("library", f"guess {n}")).text, range(16)))
    assert sum(ACCOUNT_LIMITED not in text for text in burst) == 5, burst

    # When the window has passed, the pupil's own password works again (a refused attempt does not count, so
    # asking again and again while refused does not push it back).
    assert wait(lambda: get(1, GUESSER, basic("ben", "ben's own")).status == 200, timeout=WINDOW + 10)


def test_a_limited_device_costs_the_directory_nothing(tmp_path: Path, mitmdump_proxy, origin_http,
                                                      store_url: str) -> None:
    teacher = LdapUser("mrp", "Raj Patel", "staff", "correct horse battery")
    (tmp_path / "lists").mkdir()
    policy = tmp_path / "policy.yaml"
    policy.write_text(PROXY_AUTH_POLICY)
    with Slapd(tmp_path / "slapd", [teacher]) as directory:
        spec = (f"ldap:127.0.0.1:{directory.port}:{directory.admin_dn}:{directory.admin_password}:"
                f"{directory.people()}?search_filter_key=uid")
        proxy = mitmdump_proxy(["addons/gateway.py"], {
            "gateway_policy": str(policy), "gateway_db": store_url, "gateway_spool": str(tmp_path / "spool"),
            "gateway_proxy_auth": spec, "gateway_proxy_auth_clients": f"{GUESSER},{TEACHER}",
        }, origin=origin_http, ready_line="identity sources running")

        def get(device: str, password: str) -> Fetched:
            return curl("http://learn.example/", proxy=proxy.proxy_url, source_address=device,
                        headers=basic("mrp", password))

        for n in range(5):
            assert get(GUESSER, f"guess {n}").status == 407
        # With the directory gone, an attempt it were asked about would be an outage (logged); the limited device
        # is refused for being limited, without a word to the directory.
        directory.stop()
        refused = get(GUESSER, teacher.password)
        assert refused.status == 407 and ACCOUNT_LIMITED in refused.text
        assert "the directory cannot check passwords" not in proxy.output()
        assert get(TEACHER, teacher.password).status == 407
        proxy.wait_for_output("the directory cannot check passwords")
