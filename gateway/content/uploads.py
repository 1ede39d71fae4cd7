"""Is a request body an image or a video? Pure: headers and bytes in, what was found out.

A body is media when its Content-Type says image/* or video/*, when a multipart form part does (by its type, its
file name or its first bytes), or when its first bytes are an image or video format's signature whatever the
Content-Type claims (a photo sent as application/octet-stream is still a photo). Pictures sent as text are found
too: `data:image/…` URLs and base64 that starts like a JPEG, PNG, GIF or MP4 file, in JSON or form fields.

Only what is cheap is read: the first bytes of the body and of each form part (part boundaries are found with one
`bytes.find` each, in C); never a copy of the body.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# Bytes of a body (or of a form part) that the signature check reads.
HEAD_BYTES = 64
# A part's headers longer than this are not headers a browser writes: the form is unreadable.
MAX_PART_HEADERS = 8 * 1024

_ISO_IMAGE_BRANDS = {b"heic", b"heix", b"hevc", b"hevx", b"heim", b"heis", b"mif1", b"msf1", b"avif", b"avis"}
_QUICKTIME_ATOMS = {b"moov", b"mdat", b"wide", b"free", b"skip", b"pnot"}
_MEDIA_EXTENSIONS = {
    "jpg": "image/jpeg", "jpeg": "image/jpeg", "png": "image/png", "gif": "image/gif", "webp": "image/webp",
    "heic": "image/heic", "heif": "image/heic", "avif": "image/avif", "bmp": "image/bmp", "tif": "image/tiff",
    "tiff": "image/tiff", "mp4": "video/mp4", "m4v": "video/mp4", "mov": "video/quicktime", "webm": "video/webm",
    "mkv": "video/x-matroska", "avi": "video/x-msvideo", "3gp": "video/3gpp",
}  # fmt: skip
# Pictures carried as text: a data URL (plain or form-encoded), or base64 starting like a media file.
_TEXT_MEDIA = re.compile(
    rb"data:(image|video)/|data%3A(image|video)%2F"
    rb"|[\"'=:]\s*(/9j/|iVBORw0KGgo|R0lGODlh|R0lGODdh|AAAA[A-Za-z0-9+/]{2}ZnR5c)"
    rb"|[\"'=:]\s*%2F9j%2F",
    re.IGNORECASE,
)
_BOUNDARY = re.compile(r"""boundary=(?:"([^"]{1,70})"|([^\s;,]{1,70}))""", re.IGNORECASE)
_PART_TYPE = re.compile(rb"^content-type:\s*([^\s;]+)", re.IGNORECASE | re.MULTILINE)
_PART_FILENAME = re.compile(rb"""filename\*?=(?:UTF-8'')?"?([^";\r\n]*)""", re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class Media:
    """An image or video found in a body: its type, how it was known, and a form part's file name."""

    media: str
    detected_by: str
    filename: str | None = None

    @property
    def kind(self) -> str:
        return self.media.partition("/")[0]


class Unreadable(ValueError):
    """A body that says it is a form (or is compressed) but cannot be read as one: not inspected, so not passed."""


def sniff(head: bytes) -> str | None:
    """The media type the first bytes of a file say, or None."""
    if head.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if head.startswith((b"GIF87a", b"GIF89a")):
        return "image/gif"
    if head.startswith(b"RIFF") and head[8:12] == b"WEBP":
        return "image/webp"
    if head.startswith(b"RIFF") and head[8:12] == b"AVI ":
        return "video/x-msvideo"
    if head.startswith(b"\x1a\x45\xdf\xa3"):
        return "video/webm"
    if head.startswith((b"II*\x00", b"MM\x00*")):
        return "image/tiff"
    # "BM", the file size, then four reserved zero bytes: "BM" alone starts too much ordinary text.
    if head.startswith(b"BM") and head[6:10] == b"\x00\x00\x00\x00":
        return "image/bmp"
    if head[4:8] == b"ftyp":
        brand = head[8:12]
        if brand in _ISO_IMAGE_BRANDS:
            return "image/avif" if brand in (b"avif", b"avis") else "image/heic"
        return "video/quicktime" if brand == b"qt  " else "video/mp4"
    if head[4:8] in _QUICKTIME_ATOMS:
        return "video/quicktime"
    return None


def _declared(content_type: str) -> str:
    return content_type.partition(";")[0].strip().lower()


def _is_media_type(media: str) -> bool:
    return media.startswith(("image/", "video/"))


def find_media(content_type: str, body: bytes) -> Media | None:
    """The image or video in a whole request body, or None. Raises Unreadable for a form whose parts cannot be
    found (no boundary, or a boundary that never appears)."""
    declared = _declared(content_type)
    if _is_media_type(declared):
        return Media(declared, "content-type")
    if declared.startswith("multipart/"):
        return _in_form(content_type, body)
    sniffed = sniff(body[:HEAD_BYTES])
    if sniffed is not None:
        return Media(sniffed, "signature")
    if _TEXT_MEDIA.search(body):
        return Media("image/*", "text")
    return None


def media_in_headers(content_type: str) -> Media | None:
    """What the headers alone say: for a body too large to read."""
    declared = _declared(content_type)
    return Media(declared, "content-type") if _is_media_type(declared) else None


def _in_form(content_type: str, body: bytes) -> Media | None:
    found = _BOUNDARY.search(content_type)
    if found is None:
        raise Unreadable("a multipart body without a boundary")
    delimiter = b"--" + (found.group(1) or found.group(2)).encode("latin-1")
    start = body.find(delimiter)
    if start < 0:
        raise Unreadable("the multipart boundary is not in the body")
    while True:
        start += len(delimiter)
        if body[start : start + 2] == b"--":
            return None
        headers_end = body.find(b"\r\n\r\n", start, start + MAX_PART_HEADERS)
        if headers_end < 0:
            raise Unreadable("a form part whose headers never end")
        headers = body[start:headers_end]
        content = headers_end + 4
        following = body.find(delimiter, content)
        end = len(body) if following < 0 else following
        media = _part_media(headers, body[content : min(end, content + HEAD_BYTES)], body, content, end)
        if media is not None:
            return media
        if following < 0:
            # A form cut short: what was sent has been read.
            return None
        start = following


def _part_media(headers: bytes, head: bytes, body: bytes, content: int, end: int) -> Media | None:
    name_match = _PART_FILENAME.search(headers)
    filename = name_match.group(1).decode("utf-8", "replace")[:255] if name_match else None
    type_match = _PART_TYPE.search(headers)
    declared = type_match.group(1).decode("latin-1").lower() if type_match else ""
    if _is_media_type(declared):
        return Media(declared, "form part type", filename)
    sniffed = sniff(head)
    if sniffed is not None:
        return Media(sniffed, "form part signature", filename)
    if filename:
        extension = filename.rpartition(".")[2].lower()
        if extension in _MEDIA_EXTENSIONS:
            return Media(_MEDIA_EXTENSIONS[extension], "form part file name", filename)
    if _TEXT_MEDIA.search(body, content, end):
        return Media("image/*", "form part text", filename)
    return None
