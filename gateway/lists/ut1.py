"""Importing the UT1 categorised blocklists (Université Toulouse Capitole, CC BY-SA 4.0) into the gateway's list folder.

The source is a UT1 tree (one folder per category holding `domains`, `urls`, `usage`), a tarball of one (the
official `blacklists.tar.gz`, with its top `blacklists/` folder), or an http(s) URL of such a tarball. Each
category is written normalised, with the compiled cache of its domains, to a hidden temporary folder and renamed
into place, so a category is either the old import or the new one, never half of either.

Links are never followed, from a folder or a tarball (UT1's tarball has alias links such as `porn -> adult`),
and a tarball with a member naming a path outside itself is refused whole.
"""

from __future__ import annotations

import gzip
import os
import re
import shutil
import tarfile
import tempfile
import urllib.error
import urllib.request
import zlib
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from gateway.lists.cache import save_cache
from gateway.lists.files import BadLine, read_domain_file, read_url_file
from gateway.lists.hashing import hash_domains, sorted_unique

CATEGORY_FILES = ("domains", "urls", "usage")
DOWNLOAD_TIMEOUT_SECONDS = 120
_CATEGORY_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*").fullmatch


class Ut1ImportError(Exception):
    """The source cannot be imported; nothing was changed for any category not yet reported."""


@dataclass(frozen=True, slots=True)
class CategoryReport:
    name: str
    domains: int
    urls: int
    # The first line of `usage`: `black` or `white` for most categories.
    usage: str
    bad: tuple[BadLine, ...]
    bad_count: int


@dataclass(frozen=True, slots=True)
class ImportReport:
    source: str
    into: Path
    categories: dict[str, CategoryReport]
    # Members not imported and why (links, odd names).
    skipped: tuple[str, ...]

    @property
    def domains(self) -> int:
        return sum(c.domains for c in self.categories.values())

    @property
    def urls(self) -> int:
        return sum(c.urls for c in self.categories.values())

    @property
    def bad_count(self) -> int:
        return sum(c.bad_count for c in self.categories.values())


def import_ut1(source: str | Path, into: Path, categories: Collection[str] | None = None) -> ImportReport:
    """Import UT1 categories (all, or those named) from a folder, tarball or URL into `into/<category>/`."""
    into = Path(into)
    skipped: list[str] = []
    with tempfile.TemporaryDirectory(prefix="gateway-ut1-") as work_dir:
        work = Path(work_dir)
        text = str(source)
        if text.lower().startswith(("http://", "https://")):
            base = _extract_tar(_download(text, work / "download"), work / "tree", skipped, text)
        else:
            path = Path(source)
            if not path.exists():
                raise Ut1ImportError(f"no such file or directory: {path}")
            if path.is_dir():
                base = path
            else:
                base = _extract_tar(path, work / "tree", skipped, text)
        root = _find_root(base, text)
        found = _categories(root, skipped)
        if categories is not None:
            missing = sorted(set(categories) - set(found))
            if missing:
                raise Ut1ImportError(f"category not found in {text}: {', '.join(missing)}")
            found = {name: found[name] for name in categories}
        into.mkdir(parents=True, exist_ok=True)
        reports = {name: _import_category(name, found[name], into) for name in sorted(found)}
    return ImportReport(text, into, reports, tuple(skipped))


def _download(url: str, target: Path) -> Path:
    try:
        with urllib.request.urlopen(url, timeout=DOWNLOAD_TIMEOUT_SECONDS) as response, open(target, "wb") as out:
            shutil.copyfileobj(response, out, 1 << 20)
    except urllib.error.HTTPError as exc:
        raise Ut1ImportError(f"could not download {url}: HTTP {exc.code} {exc.reason}") from exc
    except urllib.error.URLError as exc:
        raise Ut1ImportError(f"could not download {url}: {exc.reason}") from exc
    except (OSError, ValueError) as exc:
        raise Ut1ImportError(f"could not download {url}: {exc}") from exc
    return target


def _extract_tar(archive: Path, dest: Path, skipped: list[str], label: str) -> Path:
    """Extract only the category files of a UT1 tarball, refusing it whole if any member escapes it."""
    dest.mkdir()
    try:
        tar = tarfile.open(archive, "r:*")
    except (tarfile.TarError, EOFError, zlib.error, gzip.BadGzipFile) as exc:
        raise Ut1ImportError(f"{label} is not a UT1 tree or tarball (.tar, .tar.gz, .tar.bz2, .tar.xz)") from exc
    try:
        with tar:
            for member in tar:
                parts = PurePosixPath(member.name).parts
                if member.name.startswith("/") or ".." in parts:
                    raise Ut1ImportError(
                        f"unsafe tarball {label}: member {member.name!r} points outside it; nothing imported"
                    )
                if member.issym() or member.islnk():
                    skipped.append(f"{member.name}: link, not followed")
                    continue
                if not member.isfile() or len(parts) not in (2, 3) or parts[-1] not in CATEGORY_FILES:
                    continue
                if not all(_CATEGORY_NAME(p) for p in parts[:-1]):
                    skipped.append(f"{member.name}: not a category name")
                    continue
                target = dest.joinpath(*parts)
                target.parent.mkdir(parents=True, exist_ok=True)
                extracted = tar.extractfile(member)
                if extracted is None:
                    continue
                with extracted, open(target, "wb") as out:
                    shutil.copyfileobj(extracted, out, 1 << 20)
    except (tarfile.TarError, EOFError, zlib.error, gzip.BadGzipFile) as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise Ut1ImportError(f"{label} is a damaged tarball ({reason}); nothing imported") from exc
    return dest


def _find_root(base: Path, name: str) -> Path:
    """The folder holding the categories: the source itself or its one subfolder (UT1's `blacklists/`)."""
    if _has_categories(base):
        return base
    candidates = [d for d in _real_subdirs(base) if _has_categories(d)]
    if len(candidates) == 1:
        return candidates[0]
    raise Ut1ImportError(f"{name} is not a UT1 tree (no category folders holding domains or urls files)")


def _categories(root: Path, skipped: list[str]) -> dict[str, Path]:
    found = {}
    with os.scandir(root) as entries:
        for entry in entries:
            if entry.is_symlink():
                skipped.append(f"{entry.name}: link, not followed")
            elif entry.is_dir() and _is_category(Path(entry.path)):
                if _CATEGORY_NAME(entry.name):
                    found[entry.name] = Path(entry.path)
                else:
                    skipped.append(f"{entry.name}: not a category name")
    return found


def _has_categories(folder: Path) -> bool:
    return any(_is_category(d) for d in _real_subdirs(folder))


def _real_subdirs(folder: Path) -> list[Path]:
    return sorted(d for d in folder.iterdir() if d.is_dir() and not d.is_symlink())


def _is_category(folder: Path) -> bool:
    return any(_regular_file(folder / name) for name in ("domains", "urls"))


def _regular_file(path: Path) -> bool:
    return path.is_file() and not path.is_symlink()


def _import_category(name: str, source: Path, into: Path) -> CategoryReport:
    domains = read_domain_file(source / "domains") if _regular_file(source / "domains") else None
    urls = read_url_file(source / "urls") if _regular_file(source / "urls") else None
    usage = (source / "usage").read_bytes() if _regular_file(source / "usage") else None
    staging = Path(tempfile.mkdtemp(prefix=f".{name}.importing-", dir=into))
    try:
        staging.chmod(0o755)
        if domains is not None:
            _write_lines(staging / "domains", domains.entries)
            save_cache(staging / "domains", sorted_unique(hash_domains(domains.entries)), domains.bad_count)
        if urls is not None:
            _write_lines(staging / "urls", urls.entries)
        if usage is not None:
            (staging / "usage").write_bytes(usage)
        _replace_folder(staging, into / name)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    parsed = [p for p in (domains, urls) if p is not None]
    return CategoryReport(
        name=name,
        domains=len(domains.entries) if domains else 0,
        urls=len(urls.entries) if urls else 0,
        usage=_first_line(usage),
        bad=tuple(b for p in parsed for b in p.bad),
        bad_count=sum(p.bad_count for p in parsed),
    )


def _write_lines(path: Path, lines: list[str]) -> None:
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")


def _first_line(usage: bytes | None) -> str:
    for line in (usage or b"").decode("utf-8", errors="replace").splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            return line.strip()
    return ""


def _replace_folder(new: Path, final: Path) -> None:
    """Put a fully written folder in place of `final`; the old one stays whole until the new one is there."""
    if not (final.exists() or final.is_symlink()):
        os.rename(new, final)
        return
    old = Path(tempfile.mkdtemp(prefix=f".{final.name}.old-", dir=final.parent))
    old.rmdir()
    os.rename(final, old)
    try:
        os.rename(new, final)
    except BaseException:
        os.rename(old, final)
        raise
    if old.is_symlink() or not old.is_dir():
        old.unlink()
    else:
        shutil.rmtree(old)
