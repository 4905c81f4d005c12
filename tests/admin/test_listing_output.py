"""client/admin/listing.py without a server: progressive output and streamed JSON."""

from __future__ import annotations

import io
import json

import pytest
from tslic.client.admin import listing
from tslic.protocol.domain import CalProduct, LicenseKind, LicenseStatus
from tslic.protocol.messages import Message
from tslic.protocol.messages.admin import AdminKeyPacks, AdminLicenses, AdminListLicenses
from tslic.protocol.messages.records import IssuedLicenseInfo


def _license(n: int, machine: str = "PC") -> IssuedLicenseInfo:
    return IssuedLicenseInfo(
        license_id=n, keypack_id=0, product=CalProduct.W2003_DEVICE_CAL,
        kind=LicenseKind.TEMPORARY, status=LicenseStatus.TEMPORARY, machine=machine,
        user="ann", hwid=bytes(32), terminal_server="TS1", issued_at=n, expires_at=0,
        validated=False,
    )  # fmt: skip


class FakeStream:
    """Answers each listing request with the next page; records what it was asked."""

    def __init__(self, pages: list[AdminLicenses], out: io.StringIO) -> None:
        self.pages = pages
        self.out = out
        self.asked: list[AdminListLicenses] = []
        self.seen_before_page: list[str] = []

    async def request(self, msg: Message) -> Message:
        assert isinstance(msg, AdminListLicenses)
        self.asked.append(msg)
        self.seen_before_page.append(self.out.getvalue())
        return self.pages[len(self.asked) - 1]


async def _run(pages: list[AdminLicenses], as_json: bool) -> tuple[str, FakeStream]:
    out = io.StringIO()
    stream = FakeStream(pages, out)
    writer = listing.Writer(as_json, out)
    await listing.list_licenses(writer, stream, AdminListLicenses(user="ann"))
    return out.getvalue(), stream


PAGES = [
    AdminLicenses(licenses=(_license(1), _license(2)), next_cursor=b"c1"),
    AdminLicenses(licenses=(_license(3, "EVIL\x1b[2J"),), next_cursor=b""),
]


async def test_json_is_one_document_written_page_by_page() -> None:
    text, stream = await _run(PAGES, as_json=True)
    doc = json.loads(text)
    assert [x["license_id"] for x in doc["licenses"]] == [1, 2, 3]
    assert doc["licenses"][2]["machine"] == "EVIL\x1b[2J"  # JSON escapes it itself
    # The second request carried the first page's cursor and the same filters, and the
    # first page was already written when it was sent.
    assert [a.cursor for a in stream.asked] == [b"", b"c1"]
    assert {a.user for a in stream.asked} == {"ann"}
    assert '"license_id": 2' in stream.seen_before_page[1]


async def test_text_lines_arrive_per_page_with_escaped_names_and_a_count() -> None:
    text, stream = await _run(PAGES, as_json=False)
    lines = text.splitlines()
    assert lines[0] == "Issued licenses"
    assert lines[-1] == "3 licenses"
    assert "EVIL\\x1b[2J" in lines[-2]
    assert "\x1b" not in text
    assert stream.seen_before_page[1].count("\n") == 4  # title, header, two rows


@pytest.mark.parametrize(("count", "text"), [(0, "0 licenses"), (1, "1 license")])
async def test_the_count_line_is_in_plain_words(count: int, text: str) -> None:
    page = AdminLicenses(licenses=tuple(_license(n) for n in range(count)), next_cursor=b"")
    out, _ = await _run([page], as_json=False)
    assert out.splitlines()[-1] == text


async def test_pages_refuse_a_reply_of_another_type() -> None:
    out = io.StringIO()
    stream = FakeStream([AdminLicenses(licenses=(), next_cursor=b"")], out)
    with pytest.raises(TypeError, match="AdminLicenses"):
        async for _ in listing.pages(stream, AdminListLicenses(), AdminKeyPacks):
            pass
