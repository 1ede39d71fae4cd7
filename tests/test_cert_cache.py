"""A host seen again gets the certificate the gateway made for it before, however many other hosts came between
(up to `gateway_cert_cache`), not a newly signed one: a real mitmproxy certificate store in the gateway's Master."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from cryptography import x509
from mitmproxy import certs, exceptions, options

from gateway.proxy.cert_cache import CertCache
from gateway.proxy.master import GatewayMaster


def serials_seen_twice(confdir: Path, hosts: int, size: int | None = None) -> tuple[int, int, int]:
    """The serials of the first host's certificate, of it again after `hosts` others, and of a --certs certificate
    asked for after them all."""

    async def go() -> tuple[int, int, int]:
        master = GatewayMaster(options.Options())
        master.options.update(confdir=str(confdir))
        master.add_parts([CertCache()])
        if size is not None:
            master.options.update(gateway_cert_cache=size)
        store = master.addons.get("tlsconfig").certstore
        # As mitmproxy loads a certificate given with --certs: never made by the store, so never forgotten.
        made = certs.dummy_cert(store.default_privatekey, store.default_ca._cert, "own.school.example",
                                [x509.DNSName("own.school.example")])  # fmt: skip
        own = certs.CertStoreEntry(made, store.default_privatekey, None, [])
        store.add_cert(own, "own.school.example")

        def cert(name: str) -> certs.Cert:
            return store.get_cert(name, [x509.DNSName(name)]).cert

        first = cert("first.example.org")
        for i in range(hosts):
            cert(f"host{i}.example.org")
        again, kept = cert("first.example.org"), store.get_cert("own.school.example", []).cert
        await master.done()
        return first.serial, again.serial, kept.serial if kept == own.cert else -1

    return asyncio.run(go())


@pytest.fixture(autouse=True)
def mitmproxy_store_class():
    # The part sizes mitmproxy's CertStore class for the process; give the next test mitmproxy's own.
    cap, expire = certs.CertStore.STORE_CAP, certs.CertStore.expire
    yield
    certs.CertStore.STORE_CAP, certs.CertStore.expire = cap, expire


def test_a_host_seen_again_after_hundreds_of_others_keeps_its_certificate(tmp_path):
    first, again, kept = serials_seen_twice(tmp_path, 300)
    assert again == first
    assert kept != -1


def test_past_the_size_the_oldest_are_made_again_and_given_certificates_stay(tmp_path):
    first, again, kept = serials_seen_twice(tmp_path, 150, size=100)
    assert again != first
    assert kept != -1


def test_a_size_below_mitmproxys_own_is_refused(tmp_path):
    with pytest.raises(exceptions.OptionsError, match="at least 100"):
        serials_seen_twice(tmp_path, 0, size=10)
