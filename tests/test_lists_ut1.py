"""UT1 import from a folder, a tarball and a URL, its safety checks, and the `gateway lists` commands."""

from __future__ import annotations

import functools
import http.server
import io
import os
import subprocess
import sys
import tarfile
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from gateway.lists.cache import load_compiled
from gateway.lists.files import read_domain_file
from gateway.lists.index import DomainIndex
from gateway.lists.ut1 import Ut1ImportError, import_ut1

REPO = Path(__file__).resolve().parents[1]
REAL_UT1 = REPO.parent / "shared" / "data" / "ut1"

TREE = {
    "social_networks/domains": "facebook.com\nWWW.Instagram.COM\nbad domain\n",
    "social_networks/urls": "epicurious.com/community\n",
    "social_networks/usage": "black\n",
    "vpn/domains": "nordvpn.com\n",
    "vpn/usage": "black\nvpn\n",
    "liste_blanche/domains": "wikipedia.org\n",
    "liste_blanche/usage": "white\n",
}


def _write_tree(root: Path, files: dict[str, str] = TREE) -> Path:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


def _tarball(path: Path, files: dict[str, str], prefix: str = "blacklists/") -> Path:
    with tarfile.open(path, "w:gz" if path.name.endswith(".gz") else "w") as tar:
        for name, text in files.items():
            data = text.encode()
            info = tarfile.TarInfo(prefix + name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


def _add_link(tar_path: Path, name: str, target: str, *, hard: bool = False) -> None:
    with tarfile.open(tar_path, "a") as tar:
        info = tarfile.TarInfo(name)
        info.type = tarfile.LNKTYPE if hard else tarfile.SYMTYPE
        info.linkname = target
        tar.addfile(info)


def _assert_imported(into: Path) -> None:
    assert (into / "social_networks" / "domains").read_text() == "facebook.com\nwww.instagram.com\n"
    assert (into / "social_networks" / "urls").read_text() == "epicurious.com/community\n"
    assert (into / "vpn" / "usage").read_text() == "black\nvpn\n"
    compiled = load_compiled(into / "social_networks" / "domains")
    assert compiled.from_cache and len(compiled) == 2
    index = DomainIndex.build(["social"], {"social": [compiled.hashes]})
    assert index.match("m.facebook.com") == [("facebook.com", 1)]
    assert index.match("notfacebook.com") == []


def test_import_from_folder(tmp_path: Path) -> None:
    source = _write_tree(tmp_path / "ut1")
    into = tmp_path / "var" / "lists" / "ut1"
    report = import_ut1(source, into)
    assert sorted(report.categories) == ["liste_blanche", "social_networks", "vpn"]
    social = report.categories["social_networks"]
    assert (social.domains, social.urls, social.usage, social.bad_count) == (2, 1, "black", 1)
    assert social.bad[0].line == 3
    assert report.categories["liste_blanche"].usage == "white"
    assert (report.domains, report.urls, report.bad_count) == (4, 1, 1)
    _assert_imported(into)
    assert sorted(p.name for p in into.iterdir()) == ["liste_blanche", "social_networks", "vpn"]


def test_import_selected_categories_and_reimport_replaces(tmp_path: Path) -> None:
    source = _write_tree(tmp_path / "ut1")
    into = tmp_path / "lists"
    report = import_ut1(source, into, ["vpn"])
    assert list(report.categories) == ["vpn"]
    assert sorted(p.name for p in into.iterdir()) == ["vpn"]

    (into / "vpn" / "stale-file").write_text("from an older import")
    (source / "vpn" / "domains").write_text("nordvpn.com\nexpressvpn.com\n")
    import_ut1(source, into, ["vpn"])
    assert (into / "vpn" / "domains").read_text() == "nordvpn.com\nexpressvpn.com\n"
    assert not (into / "vpn" / "stale-file").exists()
    assert len(load_compiled(into / "vpn" / "domains")) == 2
    assert sorted(p.name for p in into.iterdir()) == ["vpn"]


def test_unknown_category_changes_nothing(tmp_path: Path) -> None:
    source = _write_tree(tmp_path / "ut1")
    into = tmp_path / "lists"
    with pytest.raises(Ut1ImportError, match="category not found in .*: nope"):
        import_ut1(source, into, ["vpn", "nope"])
    assert not into.exists()


def test_import_from_tarball_with_top_folder_and_links(tmp_path: Path) -> None:
    # UT1's tarball carries alias links (porn -> adult); they are reported, never followed.
    plain = _tarball(tmp_path / "blacklists.tar", TREE)
    _add_link(plain, "blacklists/porn", "vpn")
    _add_link(plain, "blacklists/vpn/urls", "/etc/passwd")
    _add_link(plain, "blacklists/adult/domains", "../vpn/domains", hard=True)
    into = tmp_path / "lists"
    report = import_ut1(plain, into)
    assert sorted(report.categories) == ["liste_blanche", "social_networks", "vpn"]
    assert "blacklists/porn: link, not followed" in report.skipped
    assert "blacklists/vpn/urls: link, not followed" in report.skipped
    assert not (into / "vpn" / "urls").exists()
    _assert_imported(into)

    into_gz = tmp_path / "lists-gz"
    import_ut1(_tarball(tmp_path / "blacklists.tar.gz", TREE), into_gz)
    _assert_imported(into_gz)


def test_import_from_tarball_without_top_folder(tmp_path: Path) -> None:
    tar_path = _tarball(tmp_path / "ut1.tar.gz", TREE, prefix="./")
    into = tmp_path / "lists"
    import_ut1(tar_path, into, ["social_networks", "vpn"])
    _assert_imported(into)


@pytest.mark.parametrize("bad_name", ["../escaped/domains", "blacklists/../../escaped/domains", "/tmp/abs/domains"])
def test_tarball_with_path_traversal_is_refused_whole(tmp_path: Path, bad_name: str) -> None:
    files = dict(TREE)
    tar_path = tmp_path / "evil.tar"
    with tarfile.open(tar_path, "w") as tar:
        for name, text in [*((f"blacklists/{k}", v) for k, v in files.items()), (bad_name, "evil.com\n")]:
            data = text.encode()
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    into = tmp_path / "work" / "lists"
    with pytest.raises(Ut1ImportError, match="unsafe tarball .* points outside it; nothing imported"):
        import_ut1(tar_path, into)
    assert not into.exists()
    assert not (tmp_path / "work" / "escaped").exists()
    assert not (tmp_path / "escaped").exists()
    assert not Path("/tmp/abs/domains").exists()


def test_symlinks_in_a_folder_are_not_followed(tmp_path: Path) -> None:
    source = _write_tree(tmp_path / "ut1")
    secret = tmp_path / "secret"
    secret.mkdir()
    (secret / "domains").write_text("private.example\n")
    os.symlink(secret, source / "alias")
    os.symlink(tmp_path / "secret" / "domains", source / "vpn" / "urls")
    into = tmp_path / "lists"
    report = import_ut1(source, into)
    assert "alias" not in report.categories
    assert "alias: link, not followed" in report.skipped
    assert not (into / "vpn" / "urls").exists()


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda p: p / "missing", "no such file or directory"),
        (lambda p: _write_tree(p / "not-ut1", {"readme/notes.txt": "x"}), "is not a UT1 tree"),
        (lambda p: (p / "junk.tar.gz").write_bytes(b"\x1f\x8b not really gzip") and p / "junk.tar.gz",
         "is not a UT1 tree or tarball"),
    ],
)
def test_bad_sources(tmp_path: Path, make, message: str) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(Ut1ImportError, match=message):
        import_ut1(make(tmp_path), tmp_path / "lists")
    assert not (tmp_path / "lists").exists()


def test_truncated_tarball(tmp_path: Path) -> None:
    big = {"adult/domains": "".join(f"host{i}.example.com\n" for i in range(20000)), "adult/usage": "black\n"}
    tar_path = _tarball(tmp_path / "big.tar.gz", big)
    data = tar_path.read_bytes()
    tar_path.write_bytes(data[: len(data) // 2])
    with pytest.raises(Ut1ImportError, match="damaged tarball"):
        import_ut1(tar_path, tmp_path / "lists")
    assert not (tmp_path / "lists").exists()


@pytest.fixture
def http_root(tmp_path: Path) -> Iterator[tuple[Path, str]]:
    root = tmp_path / "www"
    root.mkdir()
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
    handler.log_message = lambda *args, **kwargs: None  # type: ignore[attr-defined]
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield root, f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_import_from_url(tmp_path: Path, http_root: tuple[Path, str]) -> None:
    root, base = http_root
    _tarball(root / "blacklists.tar.gz", TREE)
    into = tmp_path / "lists"
    report = import_ut1(f"{base}/blacklists.tar.gz", into)
    assert report.source == f"{base}/blacklists.tar.gz"
    _assert_imported(into)

    with pytest.raises(Ut1ImportError, match=r"could not download .*missing.tar.gz: HTTP 404"):
        import_ut1(f"{base}/missing.tar.gz", tmp_path / "other")
    assert not (tmp_path / "other").exists()


@pytest.mark.skipif(not REAL_UT1.is_dir(), reason=f"real UT1 lists not present at {REAL_UT1}")
def test_import_real_ut1_social_networks(tmp_path: Path) -> None:
    before = sorted(p.name for p in (REAL_UT1 / "social_networks").iterdir())
    report = import_ut1(REAL_UT1, tmp_path / "ut1", ["social_networks"])
    # The source is only read: no cache or temporary file is left in it.
    assert sorted(p.name for p in (REAL_UT1 / "social_networks").iterdir()) == before
    category = report.categories["social_networks"]
    source_lines = [
        line for line in (REAL_UT1 / "social_networks" / "domains").read_text().splitlines() if line.strip()
    ]
    assert category.domains + category.bad_count >= len(set(source_lines)) - 5
    assert category.domains > 500
    index = DomainIndex.build(["social"], {"social": [load_compiled(tmp_path / "ut1/social_networks/domains").hashes]})
    imported = read_domain_file(tmp_path / "ut1/social_networks/domains").entries
    assert index.match("www." + imported[0]) == [(imported[0], 1)]
    assert (tmp_path / "ut1/social_networks/usage").read_text().strip() == "black"


# --- the `gateway lists` commands -----------------------------------------------------------------------------


def _gateway(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run(
        [sys.executable, "-m", "gateway", "lists", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=60
    )


def test_cli_import_and_stats(tmp_path: Path) -> None:
    tar_path = _tarball(tmp_path / "blacklists.tar.gz", TREE)
    done = _gateway("import", str(tar_path), "--category", "social_networks", "--category", "vpn", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "imported 2 categories: 3 domains, 1 urls, 1 bad lines skipped, into var/lists/ut1" in done.stdout
    assert "bad line:" in done.stderr and ":3: not a valid domain: 'bad domain'" in done.stderr
    _assert_imported(tmp_path / "var" / "lists" / "ut1")

    stats = _gateway("stats", "var/lists/ut1", cwd=tmp_path)
    assert stats.returncode == 0, stats.stderr
    lines = stats.stdout.splitlines()
    assert lines[0].split() == ["social_networks", "2", "domains", "1", "urls"]
    assert lines[1].split() == ["vpn", "1", "domains", "0", "urls"]
    assert lines[-1] == "2 lists: 3 domains, 1 urls"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("import", "nowhere"), "Error: no such file or directory: nowhere"),
        (("import", "ut1/vpn"), "Error: ut1/vpn is not a UT1 tree (no category folders holding domains or urls files)"),
        (
            ("import", "junk.tar.gz"),
            "Error: junk.tar.gz is not a UT1 tree or tarball (.tar, .tar.gz, .tar.bz2, .tar.xz)",
        ),
        (("import", "ut1", "--category", "nope"), "Error: category not found in ut1: nope"),
        (("stats", "nowhere"), "Error: no such directory: nowhere"),
    ],
)
def test_cli_errors_are_one_line_with_exit_code_2(tmp_path: Path, args: tuple[str, ...], message: str) -> None:
    (tmp_path / "junk.tar.gz").write_bytes(b"not a tarball at all")
    _write_tree(tmp_path / "ut1")
    done = _gateway(*args, cwd=tmp_path)
    assert done.returncode == 2
    assert done.stderr.strip() == message
    assert not (tmp_path / "var").exists()
