"""Host normalisation, the combined domain and URL indexes, list files and their compiled caches."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np
import pytest

from gateway.lists.cache import (
    cache_paths,
    compile_list,
    load_compiled,
    load_domains,
    open_cache,
)
from gateway.lists.files import read_domain_file, read_url_file
from gateway.lists.hashing import HASH_DTYPE, hash_domain, hash_domains, sorted_unique
from gateway.lists.hosts import normalise_host, normalise_url_prefix, suffixes
from gateway.lists.index import DomainIndex, UrlIndex

REPO = Path(__file__).resolve().parents[1]
STARTER_LISTS = REPO / "policies" / "lists"


# --- host normalisation ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("Facebook.COM", "facebook.com"),
        ("www.facebook.com.", "www.facebook.com"),
        ("facebook.com:443", "facebook.com"),
        ("FACEBOOK.com.:8080", "facebook.com"),
        ("bücher.de", "xn--bcher-kva.de"),
        ("BÜCHER.de", "xn--bcher-kva.de"),
        ("xn--bcher-kva.de", "xn--bcher-kva.de"),
        ("straße.de", "xn--strae-oqa.de"),  # non-transitional, as browsers: ß is kept, not mapped to ss
        ("例え。テスト", "xn--r8jz45g.xn--zckzah"),  # ideographic full stop separates labels
        ("ＥＸＡＭＰＬＥ．com", "example.com"),  # full-width forms
        ("_video-bagarre.com", "_video-bagarre.com"),  # underscores are in real lists and resolve
        ("localhost", "localhost"),
        ("192.168.0.1", "192.168.0.1"),
        ("192.168.0.1:3128", "192.168.0.1"),
        ("2130706433", "127.0.0.1"),  # browsers read a numeric host as IPv4
        ("0x7f.1", "127.0.0.1"),
        ("0177.0.0.1", "127.0.0.1"),
        ("[::1]:443", "::1"),
        ("[2001:DB8::0001]", "2001:db8::1"),
        ("2606:4700:4700:0:0:0:0:1111", "2606:4700:4700::1111"),
    ],
)
def test_normalise_host(raw: str, expected: str) -> None:
    assert normalise_host(raw) == expected


@pytest.mark.parametrize(
    "raw",
    [
        "",
        ".",
        "a..b.com",
        ".example.com",
        "example.com..",
        "exa mple.com",
        " example.com",
        "example.com/path",
        "ex@mple.com",
        "exa!mple.com",
        "a" * 64 + ".com",
        ".".join(["abcdefghi"] * 26),  # 259 characters
        "example.com:",
        "example.com:99999",
        "example.com:80:80",
        "[::1",
        "[::1]x",
        "fe80::1%eth0",
        "1.2.3.256",
        "256.1.1.1",
        "1.2.3.4.5",
        "example.0x1f",  # ends in a number: an invalid IPv4 to a browser
        "exa\u200dmple.com",  # zero-width joiner
    ],
)
def test_normalise_host_rejects_malformed(raw: str) -> None:
    assert normalise_host(raw) is None


def test_suffixes_cut_at_label_boundaries_only() -> None:
    assert suffixes("a.b.example.com") == ["a.b.example.com", "b.example.com", "example.com", "com"]
    assert suffixes("localhost") == ["localhost"]
    assert "facebook.com" not in suffixes("notfacebook.com")
    # IP literals match exactly: 1.1.1 is not a "parent" of 1.1.1.1.
    assert suffixes("1.1.1.1") == ["1.1.1.1"]
    assert suffixes("2606:4700:4700::1111") == ["2606:4700:4700::1111"]


def test_url_prefix_normalisation() -> None:
    assert normalise_url_prefix("epicurious.com/community") == "epicurious.com/community"
    assert normalise_url_prefix("http://WWW.Example.COM:8080/Foo?x=1#frag") == "example.com/foo?x=1"
    assert normalise_url_prefix("example.com") == "example.com/"
    assert normalise_url_prefix("178.128.25.172/watch") == "178.128.25.172/watch"
    assert normalise_url_prefix("bad host.com/x") is None
    assert normalise_url_prefix("example.com/a b") is None


# --- hashing --------------------------------------------------------------------------------------------------


def test_hash_is_stable_and_batch_agrees() -> None:
    # A fixed value: caches written by one process are read by another, on another day.
    assert hash_domain("facebook.com") == int.from_bytes(
        __import__("hashlib").blake2b(b"facebook.com", digest_size=8).digest(), "little"
    )
    names = ["facebook.com", "x.com", "example.co.uk"]
    batch = hash_domains(names)
    assert batch.dtype == HASH_DTYPE
    assert batch.tolist() == [hash_domain(n) for n in names]
    assert sorted_unique(np.concatenate([batch, batch])).tolist() == sorted(set(batch.tolist()))
    assert hash_domains([]).tolist() == []
    with pytest.raises(ValueError, match="newline"):
        hash_domains(["a.com\nb.com"])


# --- DomainIndex ----------------------------------------------------------------------------------------------


def test_domain_index_matches_on_label_boundaries() -> None:
    index = DomainIndex.build(["social"], {"social": [["facebook.com"]]})
    assert index.match("www.facebook.com") == [("facebook.com", 1)]
    assert index.match("facebook.com") == [("facebook.com", 1)]
    assert index.match("notfacebook.com") == []
    assert index.match("facebook.com.evil.test") == []
    assert index.match("com") == []


def test_domain_index_masks_across_lists() -> None:
    names = ["social", "adult", "proxies", "never_intercept"]
    index = DomainIndex.build(
        names,
        {
            "social": [["facebook.com", "x.com"], hash_domains(["tiktok.com"])],
            "adult": [["xxx", "example-adult.test"]],
            "proxies": [["cloudflare-dns.com", "x.com", "1.1.1.1"]],
            "never_intercept": [["nhs.uk"]],
        },
    )
    social, adult, proxies, never = (1 << names.index(n) for n in names)
    assert index.names == tuple(names)
    assert len(index) == 8  # x.com is one entry held by two lists
    assert index.match("x.com") == [("x.com", social | proxies)]
    assert index.names_in(social | proxies) == ("social", "proxies")
    assert index.match("www.tiktok.com") == [("tiktok.com", social)]
    # Every matching suffix is reported, longest first.
    assert index.match("cdn.example-adult.test") == [("example-adult.test", adult)]
    assert index.match("a.b.xxx") == [("xxx", adult)]
    assert index.match("mozilla.cloudflare-dns.com") == [("cloudflare-dns.com", proxies)]
    assert index.match("1.1.1.1") == [("1.1.1.1", proxies)]
    assert index.match("www.nhs.uk") == [("nhs.uk", never)]
    assert index.match("bbc.co.uk") == []


def test_domain_index_nested_entries_in_different_lists() -> None:
    index = DomainIndex.build(["a", "b"], {"a": [["google.com"]], "b": [["mail.google.com"]]})
    assert index.match("x.mail.google.com") == [("mail.google.com", 2), ("google.com", 1)]


def test_domain_index_with_more_than_64_lists() -> None:
    names = [f"list{i}" for i in range(130)]
    index = DomainIndex.build(
        names, {"list0": [["a.test"]], "list64": [["a.test", "b.test"]], "list129": [["b.test"]]}
    )
    assert index.match("a.test") == [("a.test", 1 | 1 << 64)]
    assert index.match("www.b.test") == [("b.test", 1 << 64 | 1 << 129)]
    assert index.names_in(1 << 64 | 1 << 129) == ("list64", "list129")


def test_domain_index_normalises_strings_and_refuses_bad_ones() -> None:
    index = DomainIndex.build(["a"], {"a": [["WWW.Example.COM."]]})
    assert index.match("www.example.com") == [("www.example.com", 1)]
    with pytest.raises(ValueError, match="not a valid domain"):
        DomainIndex.build(["a"], {"a": [["bad domain"]]})
    with pytest.raises(ValueError, match="not named"):
        DomainIndex.build(["a"], {"b": [["x.com"]]})
    with pytest.raises(TypeError):
        DomainIndex.build(["a"], {"a": ["x.com"]})  # a string, not a sequence of sources


def test_empty_domain_index() -> None:
    index = DomainIndex.build(["a", "b"], {"a": [[]], "b": []})
    assert len(index) == 0
    assert index.match("anything.com") == []


def test_domain_index_is_compact() -> None:
    names = [f"list{i}" for i in range(5)]
    domains = [f"host{i}.example{i % 97}.com" for i in range(50_000)]
    index = DomainIndex.build(names, {name: [domains[i::5]] for i, name in enumerate(names)})
    assert len(index) == 50_000
    assert index.nbytes / len(index) <= 12
    assert index.match("www.host7.example7.com") == [("host7.example7.com", 1 << 2)]


# --- UrlIndex -------------------------------------------------------------------------------------------------


def test_url_index_host_suffix_and_path_prefix() -> None:
    index = UrlIndex.build(
        ["social", "adult"],
        {
            "social": ["epicurious.com/community", "www.example.com/Forum"],
            "adult": ["example.com/forum/adult", "178.128.25.172/watch"],
        },
    )
    assert len(index) == 4
    assert index.match("www.epicurious.com", "/community/recipes?page=2") == [("epicurious.com/community", 1)]
    assert index.match("epicurious.com", "/recipes") == []
    assert index.match("notepicurious.com", "/community") == []
    # The leading www. of an entry is dropped, so it also covers the bare domain; paths compare lower-case.
    assert index.match("example.com", "/FORUM/adult/x") == [("example.com/forum/adult", 2), ("example.com/forum", 1)]
    assert index.match("178.128.25.172", "/watch?v=1") == [("178.128.25.172/watch", 2)]
    assert index.match("x.178.128.25.172", "/watch") == []


def test_url_index_whole_host_entries_and_shared_entries() -> None:
    index = UrlIndex.build(["a", "b"], {"a": ["example.com", "example.com/x"], "b": ["example.com/x"]})
    assert index.match("example.com", "") == [("example.com/", 1)]
    assert index.match("sub.example.com", "/x/y") == [("example.com/x", 3), ("example.com/", 1)]
    assert not UrlIndex.build(["a"], {})
    with pytest.raises(ValueError, match="not a valid URL entry"):
        UrlIndex.build(["a"], {"a": ["bad host/x"]})


# --- list files -----------------------------------------------------------------------------------------------


def test_plain_list_file_with_comments_prefixes_and_bad_lines(tmp_path: Path) -> None:
    path = tmp_path / "social.txt"
    path.write_text(
        "# Social media\n"
        "\n"
        "Facebook.com\n"
        "*.instagram.com\n"
        ".twitter.com   # the old name\n"
        "x.com\r\n"
        "bad domain.com\n"
        "   \n"
        "facebook.com\n"
        "bücher.de\n"
        "exa!mple.com\n",
        encoding="utf-8",
    )
    parsed = read_domain_file(path)
    assert parsed.entries == ["facebook.com", "instagram.com", "twitter.com", "x.com", "xn--bcher-kva.de"]
    assert parsed.bad_count == 2
    assert [(b.line, b.text) for b in parsed.bad] == [(7, "bad domain.com"), (11, "exa!mple.com")]
    assert str(parsed.bad[0]) == f"{path}:7: not a valid domain: 'bad domain.com'"
    assert read_domain_file(path, distinct=False).entries.count("facebook.com") == 2


def test_list_file_with_undecodable_bytes_loses_only_that_line(tmp_path: Path) -> None:
    path = tmp_path / "list.txt"
    path.write_bytes(b"good.com\nbad\xff.com\nalso-good.com\n")
    parsed = read_domain_file(path)
    assert parsed.entries == ["good.com", "also-good.com"]
    assert [b.line for b in parsed.bad] == [2]


def test_url_file(tmp_path: Path) -> None:
    path = tmp_path / "urls"
    path.write_text("# comment\nepicurious.com/community\nWWW.Example.com/A\nbad host/x\n\nexample.com/a\n")
    parsed = read_url_file(path)
    assert parsed.entries == ["epicurious.com/community", "example.com/a"]
    assert parsed.bad_count == 1
    assert parsed.bad[0].line == 4


def test_starter_lists_parse_cleanly() -> None:
    files = sorted(STARTER_LISTS.glob("*.txt"))
    assert len(files) >= 15
    for path in files:
        parsed = read_domain_file(path)
        assert parsed.bad_count == 0, [str(b) for b in parsed.bad]
        assert path.read_text().startswith("#"), f"{path.name} has no header comment"
    assert read_domain_file(STARTER_LISTS / "illegal_iwf.txt").entries == []
    assert read_domain_file(STARTER_LISTS / "illegal_ctiru.txt").entries == []
    assert read_domain_file(STARTER_LISTS / "illegal_test.txt").entries == ["illegal-content.test"]


def test_starter_social_media_lists_cover_the_named_platforms() -> None:
    names = ["social_media_named", "social_media_other", "proxies_vpn_doh"]
    index = DomainIndex.build(
        names, {name: [load_domains(STARTER_LISTS / f"{name}.txt")] for name in names}
    )
    named, other, doh = 1, 2, 4
    named_hosts = ("www.facebook.com", "x.com", "pbs.twimg.com", "t.co", "www.instagram.com", "scontent.cdninstagram.com")
    for host in named_hosts:
        assert [m for _, m in index.match(host)] == [named], host
    for host in ("www.tiktok.com", "www.threads.net", "discord.gg", "web.whatsapp.com", "bsky.app"):
        assert [m for _, m in index.match(host)] == [other], host
    assert [m for _, m in index.match("mozilla.cloudflare-dns.com")] == [doh, doh]
    assert index.match("notfacebook.com") == []
    assert index.match("www.bbc.co.uk") == []
    # Small starter lists are parsed each time, not cached beside the policy.
    assert not cache_paths(STARTER_LISTS / "social_media_named.txt")[0].exists()


# --- compiled cache -------------------------------------------------------------------------------------------


def _big_list(path: Path, count: int) -> list[str]:
    domains = [f"host-{i}.example{i % 13}.org" for i in range(count)]
    path.write_text("# generated\n" + "\n".join(domains) + "\nnot valid!\n")
    return domains


def test_compiled_cache_is_written_reused_and_invalidated(tmp_path: Path) -> None:
    source = tmp_path / "big.txt"
    domains = _big_list(source, 20_000)
    array_path, meta_path = cache_paths(source)
    assert array_path == tmp_path / "big.txt.u64.npy"

    first = load_compiled(source)
    assert not first.from_cache
    assert len(first) == 20_000 and first.bad_count == 1
    assert array_path.exists() and meta_path.exists()

    second = load_compiled(source)
    assert second.from_cache
    assert second.bad_count == 1
    assert np.array_equal(second.hashes, first.hashes)
    assert int(hash_domain(domains[5])) in set(second.hashes.tolist())

    # Changing the source (size or mtime) makes the cache stale; it is rebuilt from the new text.
    source.write_text(source.read_text() + "added.example.net\n")
    third = load_compiled(source)
    assert not third.from_cache and len(third) == 20_001
    assert load_compiled(source).from_cache

    stat = source.stat()
    os.utime(source, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))
    assert open_cache(source) is None
    assert not load_compiled(source).from_cache


def test_cache_with_wrong_length_or_garbage_is_rebuilt(tmp_path: Path) -> None:
    source = tmp_path / "big.txt"
    _big_list(source, 1000)
    compile_list(source)
    array_path, _ = cache_paths(source)
    np.save(array_path, np.arange(5, dtype=HASH_DTYPE))
    assert open_cache(source) is None
    array_path.write_bytes(b"not numpy")
    rebuilt = load_compiled(source)
    assert not rebuilt.from_cache and len(rebuilt) == 1000
    assert load_compiled(source).from_cache


def test_cache_in_a_cache_dir_and_index_from_mapped_cache(tmp_path: Path) -> None:
    source = tmp_path / "lists" / "domains"
    source.parent.mkdir()
    _big_list(source, 5000)
    cache_dir = tmp_path / "cache"
    compile_list(source, cache_dir=cache_dir)
    assert not cache_paths(source)[0].exists()
    cached = load_compiled(source, cache_dir=cache_dir)
    assert cached.from_cache
    assert isinstance(cached.hashes, np.memmap)
    index = DomainIndex.build(["big"], {"big": [cached.hashes]})
    assert index.match("a.host-42.example3.org") == [("host-42.example3.org", 1)]


def test_read_only_folder_still_loads(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    source = tmp_path / "big.txt"
    _big_list(source, 100)
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("")
    with caplog.at_level(logging.WARNING):
        compiled = compile_list(source, cache_dir=blocker / "cache")
    assert len(compiled) == 100
    assert "compiled cache not saved" in caplog.text
