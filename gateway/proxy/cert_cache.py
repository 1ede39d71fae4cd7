"""Keeps the certificates the gateway makes for intercepted hosts, for as many hosts as a school visits.

mitmproxy's certificate store keeps the last 100 certificates it made and forgets the oldest one by one, each time
comparing every stored entry with it (a SHA-256 of two certificates per entry). A school's devices reach far more
than 100 hosts in an hour, so past the hundredth the store signs a new certificate for a host it has already seen
(milliseconds of RSA on the event loop, for every such TLS connection) and pays the comparison on top. This part
sizes the store by `gateway_cert_cache` and has it forget a tenth of its oldest entries at once, by identity: a
host seen again within that many others keeps its certificate.

The size and the forgetting are set on mitmproxy's `CertStore` class, not on one store: mitmproxy's TLS config
makes its store after the gateway's parts have run their hooks when `confdir` is not set, and again when options
it depends on change.
"""

from __future__ import annotations

from mitmproxy import certs, ctx, exceptions

DEFAULT_SIZE = 5000


def expire_oldest_tenth(store: certs.CertStore, entry: certs.CertStoreEntry) -> None:
    """`CertStore.expire`: remember `entry`; past `STORE_CAP`, forget the oldest tenth in one pass."""
    store.expire_queue.append(entry)
    if len(store.expire_queue) <= store.STORE_CAP:
        return
    count = max(1, store.STORE_CAP // 10)
    gone = {id(old) for old in store.expire_queue[:count]}
    del store.expire_queue[:count]
    # Certificates given with --certs are not in the queue, so they stay.
    store.certs = {key: kept for key, kept in store.certs.items() if id(kept) not in gone}


class CertCache:
    def load(self, loader) -> None:  # type: ignore[no-untyped-def]
        loader.add_option(
            "gateway_cert_cache", int, DEFAULT_SIZE,
            "Certificates for intercepted hosts kept in memory (mitmproxy keeps 100): a host seen again within this "
            "many others is served the certificate made for it before, not a newly signed one.",
        )  # fmt: skip

    def configure(self, updated: set[str]) -> None:
        if "gateway_cert_cache" not in updated:
            return
        size = ctx.options.gateway_cert_cache
        if size < 100:
            raise exceptions.OptionsError(f"gateway_cert_cache must be at least 100 (mitmproxy's own), not {size}")
        certs.CertStore.STORE_CAP = size
        certs.CertStore.expire = expire_oldest_tenth  # type: ignore[method-assign]
