"""What counts as an image or video in a request body (pure): by type, by form part, by signature whatever the
type claims, and as text; and what does not (a comment, a form of text fields)."""

from __future__ import annotations

import pytest

from gateway.content.uploads import Unreadable, find_media, media_in_headers, sniff

SIGNATURES = {
    b"\xff\xd8\xff\xdb": "image/jpeg",
    b"\x89PNG\r\n\x1a\n\x00\x00": "image/png",
    b"GIF89a\x01\x00": "image/gif",
    b"RIFF\x10\x00\x00\x00WEBPVP8 ": "image/webp",
    b"\x00\x00\x00\x18ftypheic\x00\x00": "image/heic",
    b"\x00\x00\x00\x1cftypavif\x00\x00": "image/avif",
    b"\x00\x00\x00\x20ftypisom\x00\x00": "video/mp4",
    b"\x00\x00\x00\x14ftypqt  \x00\x00": "video/quicktime",
    b"\x00\x00\x00\x08wide\x00\x00": "video/quicktime",
    b"\x1a\x45\xdf\xa3\x9f\x42\x86\x81": "video/webm",
}


@pytest.mark.parametrize(("head", "media"), list(SIGNATURES.items()))
def test_signatures(head: bytes, media: str) -> None:
    assert sniff(head) == media
    found = find_media("application/octet-stream", head + b"\x00" * 100)
    assert found is not None and (found.media, found.detected_by) == (media, "signature")


def test_text_is_not_media() -> None:
    assert sniff(b"BMW drivers club") is None
    assert find_media("application/x-www-form-urlencoded", b"comment=what+a+lovely+day") is None
    assert find_media("application/json", b'{"text": "see you at 9:00"}') is None
    assert find_media("text/plain", b"") is None


def test_declared_types_and_text_pictures() -> None:
    assert find_media("Image/PNG; charset=binary", b"anything").media == "image/png"  # type: ignore[union-attr]
    assert media_in_headers("video/mp4") is not None and media_in_headers("application/octet-stream") is None
    assert find_media("application/json", b'{"src": "data:image/png;base64,iVBOR"}') is not None
    assert find_media("application/x-www-form-urlencoded", b"photo=%2F9j%2F4AAQSkZJRg") is not None
    assert find_media("application/x-www-form-urlencoded", b"img=data%3Aimage%2Fjpeg%3Bbase64") is not None


def form(*parts: bytes, boundary: bytes = b"b0undary") -> bytes:
    return b"".join(b"--" + boundary + b"\r\n" + p + b"\r\n" for p in parts) + b"--" + boundary + b"--\r\n"


def test_form_parts() -> None:
    text = b'Content-Disposition: form-data; name="caption"\r\n\r\nhello'
    jpeg = b'Content-Disposition: form-data; name="f"; filename="x.dat"\r\nContent-Type: text/plain\r\n\r\n\xff\xd8\xff\xe0'
    named = b'Content-Disposition: form-data; name="f"; filename="holiday.MOV"\r\n\r\nzzzz'
    assert find_media("multipart/form-data; boundary=b0undary", form(text)) is None
    found = find_media('multipart/form-data; boundary="b0undary"', form(text, jpeg))
    assert found is not None and (found.media, found.filename) == ("image/jpeg", "x.dat")
    found = find_media("multipart/form-data; boundary=b0undary", form(text, named))
    assert found is not None and (found.media, found.detected_by) == ("video/quicktime", "form part file name")
    with pytest.raises(Unreadable):
        find_media("multipart/form-data", form(text))
    with pytest.raises(Unreadable):
        find_media("multipart/form-data; boundary=other", form(text))
