"""CAL installation rules and the transition offer, on the Clearinghouse core."""

from __future__ import annotations

import io
from collections.abc import Callable
from email import message_from_bytes
from email.message import EmailMessage
from email.policy import default

import pytest
from tslic.protocol.clock import parse_date
from tslic.protocol.codes import WIZARD_MESSAGE, group5, make_retail_code
from tslic.protocol.domain import ActivationMethod, CalProduct, Program
from tslic.protocol.errors import ErrorCode, ServiceError
from tslic.protocol.licenses import open_grant
from tslic.server.clearinghouse import purchases
from tslic.server.clearinghouse.core import Clearinghouse, new_code
from tslic.server.clearinghouse.installation import (
    Purchase,
    claim_keypack,
    install,
    install_by_hand,
)
from tslic.server.clearinghouse.phone import phone_session
from tslic.server.clearinghouse.rows import Entitlement, XpLicense
from tslic.server.clearinghouse.transition import TransitionResult, request_transition

from tests.clearinghouse.helpers import Helpers

DEV = CalProduct.W2003_DEVICE_CAL
USER = CalProduct.W2003_USER_CAL
XP1 = "BCDFG-HJKMP-QRTVW-XY234-6789B"
XP2 = "CCCCC-DDDDD-FFFFF-GGGGG-HHHHH"


def _refused(
    expected: ErrorCode, fn: Callable[..., object], *args: object, **kwargs: object
) -> ServiceError:
    with pytest.raises(ServiceError) as info:
        fn(*args, **kwargs)
    assert info.value.code is expected, info.value
    return info.value


def test_retail_pack_installs_once_with_a_grant_signed_by_the_root(
    ch: Clearinghouse, h: type[Helpers]
) -> None:
    lsid = h.activate(ch)
    pack = purchases.add_retail(ch, product=DEV, count=20, now=h.NOW)
    typed = group5(pack.retail_code).lower()  # hyphens and case do not matter
    grant, blob = install(
        ch,
        license_server_id=lsid,
        purchase=Purchase(program=Program.RETAIL, product=DEV, count=0, retail_code=typed),
        now=h.NOW,
    )
    opened = open_grant(blob, ch.root_cert)
    assert opened == grant
    assert (opened.count, opened.product, opened.license_server_id) == (20, DEV, lsid)
    # Another license server may not have it.
    other = h.activate(ch, name="LS2")
    again = Purchase(program=Program.RETAIL, product=DEV, count=0, retail_code=pack.retail_code)
    err = _refused(
        ErrorCode.ALREADY_REDEEMED, install, ch, license_server_id=other, purchase=again, now=h.NOW
    )
    assert "already been used" in err.message
    assert _retail(ch, pack.retail_code).used == 20
    assert len(ch.db.grants()) == 1


def test_a_retry_after_a_lost_reply_gets_the_same_grant(
    ch: Clearinghouse, h: type[Helpers]
) -> None:
    """The Clearinghouse committed, the reply was lost: the same server asks again."""
    lsid = h.activate(ch)
    other = h.activate(ch, name="LS2")
    code = purchases.add_retail(ch, product=DEV, count=20, now=h.NOW).retail_code
    p = Purchase(program=Program.RETAIL, product=DEV, count=20, retail_code=code)
    grant, blob = install(ch, license_server_id=lsid, purchase=p, now=h.NOW)
    # hours later, typed with hyphens, count 0 ("all of them"): the same grant, byte for byte
    retry = Purchase(program=Program.RETAIL, product=DEV, count=0, retail_code=group5(code))
    grant2, blob2 = install(ch, license_server_id=lsid, purchase=retry, now=h.NOW + 3_600_000)
    assert (grant2, blob2) == (grant, blob)
    assert open_grant(blob2, ch.root_cert).issued_at == h.NOW
    assert _retail(ch, code).used == 20
    assert len(ch.db.grants()) == 1
    assert [e["action"] for e in ch.db.events(lsid)][-2:] == ["install", "install-again"]
    # another server, another count, another product: still refused, nothing changes
    _refused(
        ErrorCode.ALREADY_REDEEMED, install, ch, license_server_id=other, purchase=p, now=h.NOW
    )
    fewer = Purchase(program=Program.RETAIL, product=DEV, count=5, retail_code=code)
    _refused(
        ErrorCode.ALREADY_REDEEMED, install, ch, license_server_id=lsid, purchase=fewer, now=h.NOW
    )
    wrong = Purchase(program=Program.RETAIL, product=USER, count=0, retail_code=code)
    _refused(
        ErrorCode.INVALID_LICENSE_CODE,
        install,
        ch,
        license_server_id=lsid,
        purchase=wrong,
        now=h.NOW,
    )
    assert len(ch.db.grants()) == 1


def test_retail_partial_installs_never_exceed_the_pack(ch: Clearinghouse, h: type[Helpers]) -> None:
    lsid = h.activate(ch)
    code = purchases.add_retail(ch, product=USER, count=10, now=h.NOW).retail_code

    def buy(n: int) -> Purchase:
        return Purchase(program=Program.RETAIL, product=USER, count=n, retail_code=code)

    assert install(ch, license_server_id=lsid, purchase=buy(6), now=h.NOW)[0].count == 6
    err = _refused(
        ErrorCode.ENTITLEMENT_EXHAUSTED,
        install,
        ch,
        license_server_id=lsid,
        purchase=buy(5),
        now=h.NOW,
    )
    assert "4 license(s) left" in err.message
    assert install(ch, license_server_id=lsid, purchase=buy(4), now=h.NOW)[0].count == 4
    _refused(
        ErrorCode.ALREADY_REDEEMED, install, ch, license_server_id=lsid, purchase=buy(1), now=h.NOW
    )


@pytest.mark.parametrize(
    ("code", "reason"),
    [
        ("BCDFG-HJKMP", "has 25 characters"),
        ("ABCDE-HJKMP-QRTVW-XY234-6789B", "cannot contain 'A'"),
        (make_retail_code(b"never sold"), "not known to the Clearinghouse"),
    ],
)
def test_wrong_retail_codes_get_the_wizard_message_and_the_reason(
    ch: Clearinghouse, h: type[Helpers], code: str, reason: str
) -> None:
    lsid = h.activate(ch)
    p = Purchase(program=Program.RETAIL, product=DEV, count=1, retail_code=code)
    err = _refused(
        ErrorCode.INVALID_LICENSE_CODE, install, ch, license_server_id=lsid, purchase=p, now=h.NOW
    )
    assert err.message.startswith(WIZARD_MESSAGE)
    assert (
        "Licensing Wizard was unable to install the client license key pack. Please verify your"
        " entry and try this operation again." in err.message
    )
    assert "Message Number 0x13A7" in err.message
    assert reason in err.message


def test_a_code_for_another_product_is_refused(ch: Clearinghouse, h: type[Helpers]) -> None:
    lsid = h.activate(ch)
    code = purchases.add_retail(ch, product=DEV, count=5, now=h.NOW).retail_code
    p = Purchase(program=Program.RETAIL, product=USER, count=1, retail_code=code)
    err = _refused(
        ErrorCode.INVALID_LICENSE_CODE, install, ch, license_server_id=lsid, purchase=p, now=h.NOW
    )
    assert "is for Windows Server 2003 Terminal Server Per Device CAL" in err.message
    assert _retail(ch, code).used == 0


def test_open_license_within_the_entitlement(ch: Clearinghouse, h: type[Helpers]) -> None:
    lsid = h.activate(ch)
    purchases.add_open(
        ch,
        product=DEV,
        count=10,
        now=h.NOW,
        license_number="12345678",
        authorization_number="ABCDE12345FGHIJ",
    )

    def buy(n: int, auth: str = "abcde12345fghij") -> Purchase:
        return Purchase(
            program=Program.OPEN_LICENSE,
            product=DEV,
            count=n,
            license_number="12345678",
            authorization_number=auth,
        )

    assert (
        install(ch, license_server_id=lsid, purchase=buy(7), now=h.NOW)[0].program
        is Program.OPEN_LICENSE
    )
    _refused(
        ErrorCode.ENTITLEMENT_EXHAUSTED,
        install,
        ch,
        license_server_id=lsid,
        purchase=buy(4),
        now=h.NOW,
    )
    err = _refused(
        ErrorCode.INVALID_LICENSE_CODE,
        install,
        ch,
        license_server_id=lsid,
        purchase=buy(1, "ABCDE12345FGHIK"),
        now=h.NOW,
    )
    assert "not known" in err.message
    err = _refused(
        ErrorCode.INVALID_LICENSE_CODE,
        install,
        ch,
        license_server_id=lsid,
        purchase=buy(1, "SHORT"),
        now=h.NOW,
    )
    assert "15 letters or digits" in err.message
    _refused(
        ErrorCode.MISSING_REQUIRED_INFO,
        install,
        ch,
        license_server_id=lsid,
        purchase=buy(0),
        now=h.NOW,
    )


@pytest.mark.parametrize(
    "program",
    [
        Program.SELECT,
        Program.ENTERPRISE_AGREEMENT,
        Program.CAMPUS_AGREEMENT,
        Program.SCHOOL_AGREEMENT,
    ],
)
def test_agreement_programs(ch: Clearinghouse, h: type[Helpers], program: Program) -> None:
    lsid = h.activate(ch)
    purchases.add_agreement(
        ch, program=program, product=USER, count=3, now=h.NOW, agreement_number="7654321"
    )
    p = Purchase(program=program, product=USER, count=3, agreement_number="7654321")
    assert install(ch, license_server_id=lsid, purchase=p, now=h.NOW)[0].count == 3
    _refused(
        ErrorCode.ENTITLEMENT_EXHAUSTED, install, ch, license_server_id=lsid, purchase=p, now=h.NOW
    )
    other = next(x for x in purchases.AGREEMENT_PROGRAMS if x is not program)
    wrong = Purchase(program=other, product=USER, count=1, agreement_number="7654321")
    err = _refused(
        ErrorCode.INVALID_LICENSE_CODE,
        install,
        ch,
        license_server_id=lsid,
        purchase=wrong,
        now=h.NOW,
    )
    assert f"belongs to {program.label}" in err.message
    bad = Purchase(program=program, product=USER, count=1, agreement_number="765432")
    err = _refused(
        ErrorCode.INVALID_LICENSE_CODE, install, ch, license_server_id=lsid, purchase=bad, now=h.NOW
    )
    assert "exactly 7 digits" in err.message


def test_install_needs_a_live_activation(ch: Clearinghouse, h: type[Helpers]) -> None:
    code = purchases.add_retail(ch, product=DEV, count=5, now=h.NOW).retail_code
    p = Purchase(program=Program.RETAIL, product=DEV, count=1, retail_code=code)
    _refused(
        ErrorCode.UNKNOWN_LICENSE_SERVER,
        install,
        ch,
        license_server_id=new_code(),
        purchase=p,
        now=h.NOW,
    )
    lsid = h.activate(ch)
    ch.deactivate(
        license_server_id=lsid, method=ActivationMethod.AUTOMATIC, contact=h.CONTACT, now=h.NOW
    )
    err = _refused(
        ErrorCode.UNKNOWN_LICENSE_SERVER, install, ch, license_server_id=lsid, purchase=p, now=h.NOW
    )
    assert "deactivated" in err.message
    assert _retail(ch, code).used == 0


def test_2003_cals_cannot_go_on_a_2000_license_server(ch: Clearinghouse, h: type[Helpers]) -> None:
    lsid = h.activate(ch, version=2000)
    code = purchases.add_retail(ch, product=DEV, count=5, now=h.NOW).retail_code
    p = Purchase(program=Program.RETAIL, product=DEV, count=1, retail_code=code)
    err = _refused(
        ErrorCode.KEYPACK_NOT_SUPPORTED, install, ch, license_server_id=lsid, purchase=p, now=h.NOW
    )
    assert "0x13A7" in err.message
    w2000 = purchases.add_retail(
        ch, product=CalProduct.W2000_TS_CAL, count=5, now=h.NOW
    ).retail_code
    ok = Purchase(
        program=Program.RETAIL, product=CalProduct.W2000_TS_CAL, count=0, retail_code=w2000
    )
    assert install(ch, license_server_id=lsid, purchase=ok, now=h.NOW)[0].count == 5


def test_web_and_phone_installs_give_a_keypack_code_redeemed_once(
    ch: Clearinghouse, h: type[Helpers]
) -> None:
    lsid = h.activate(ch)
    other = h.activate(ch, name="LS2")
    code = purchases.add_retail(ch, product=DEV, count=5, now=h.NOW).retail_code
    p = Purchase(program=Program.RETAIL, product=DEV, count=0, retail_code=code)
    ticket, grant = install_by_hand(
        ch, license_server_id=lsid, purchase=p, now=h.NOW, method=ActivationMethod.TELEPHONE
    )
    assert len(ticket) == 41
    assert ticket.count("-") == 6
    err = _refused(
        ErrorCode.INVALID_LICENSE_CODE,
        claim_keypack,
        ch,
        license_server_id=other,
        code=ticket,
        now=h.NOW,
    )
    assert "another license server" in err.message
    blob = claim_keypack(ch, license_server_id=lsid, code=ticket.lower(), now=h.NOW)
    assert open_grant(blob, ch.root_cert) == grant
    # the retail code itself is spent by the hand install: another server is refused, this
    # one is handed the same grant again (its license server stores a grant_id once)
    _refused(
        ErrorCode.ALREADY_REDEEMED, install, ch, license_server_id=other, purchase=p, now=h.NOW
    )
    assert install(ch, license_server_id=lsid, purchase=p, now=h.NOW)[0] == grant
    mistyped = ("C" if ticket[0] != "C" else "D") + ticket[1:]
    _refused(
        ErrorCode.INVALID_CONFIRMATION_CODE,
        claim_keypack,
        ch,
        license_server_id=lsid,
        code=mistyped,
        now=h.NOW,
    )


# --- the transition offer -------------------------------------------------------------------


def _retail(ch: Clearinghouse, code: str | None) -> Entitlement:
    assert code is not None
    found = ch.db.retail(code)
    assert found is not None, f"no retail pack {code}"
    return found


def _xp_row(ch: Clearinghouse, key: str) -> XpLicense:
    found = ch.db.xp(key.replace("-", ""))
    assert found is not None, f"no XP license {key}"
    return found


def _xp(
    ch: Clearinghouse,
    key: str,
    acquired: str,
    channel: str = "retail",
    program: Program | None = None,
    agreement_number: str = "",
) -> None:
    purchases.add_xp(
        ch,
        product_key=key,
        acquired_at=parse_date(acquired),
        channel=channel,
        program=program,
        agreement_number=agreement_number,
    )


def _transition(
    ch: Clearinghouse,
    keys: str,
    now: str,
    email: str = "it@contoso.com",
    confirm: str | None = None,
) -> TransitionResult:
    return request_transition(
        ch,
        product=USER,
        email=email,
        confirm=email if confirm is None else confirm,
        keys_text=keys,
        now=parse_date(now),
    )


@pytest.mark.parametrize(("acquired", "eligible"), [("2003-04-23", True), ("2003-04-24", False)])
def test_transition_acquisition_boundary(ch: Clearinghouse, acquired: str, eligible: bool) -> None:
    _xp(ch, XP1, acquired)
    if eligible:
        assert _transition(ch, XP1.replace("-", ""), "2005-01-01").count == 1
    else:
        err = _refused(ErrorCode.TRANSITION_NOT_ELIGIBLE, _transition, ch, XP1, "2005-01-01")
        assert "24 April 2003" in err.message


@pytest.mark.parametrize(("now", "open_"), [("2007-06-30T23:59:59", True), ("2007-07-01", False)])
def test_transition_offer_end_boundary(
    ch: Clearinghouse, h: type[Helpers], now: str, open_: bool
) -> None:
    _xp(ch, XP1, "2002-01-01")
    if open_:
        result = _transition(ch, XP1, now)
        lsid = h.activate(ch)
        p = Purchase(program=Program.RETAIL, product=USER, count=0, transition_token=result.token)
        grant, _ = install(ch, license_server_id=lsid, purchase=p, now=parse_date(now))
        assert grant.count == 1
    else:
        err = _refused(ErrorCode.TRANSITION_OFFER_ENDED, _transition, ch, XP1, now)
        assert "30 June 2007" in err.message
        assert _xp_row(ch, XP1).redeemed_at is None


def test_transition_token_cannot_be_installed_after_the_offer_ended(
    ch: Clearinghouse, h: type[Helpers]
) -> None:
    _xp(ch, XP1, "2002-01-01")
    token = _transition(ch, XP1, "2007-06-30").token
    lsid = h.activate(ch)
    p = Purchase(program=Program.RETAIL, product=USER, count=0, transition_token=token)
    _refused(
        ErrorCode.TRANSITION_OFFER_ENDED,
        install,
        ch,
        license_server_id=lsid,
        purchase=p,
        now=parse_date("2007-07-01"),
    )


def test_transition_method2_writes_an_email_and_each_xp_license_counts_once(
    ch: Clearinghouse, h: type[Helpers]
) -> None:
    _xp(ch, XP1, "2002-05-01")
    _xp(ch, XP2, "2003-01-15", channel="oem")
    result = _transition(ch, f"{XP1}\n\n{XP2.replace('-', '').lower()}\n", "2004-06-01")
    assert result.count == 2
    msg = message_from_bytes(result.message_path.read_bytes(), policy=default)
    assert isinstance(msg, EmailMessage)
    assert msg["To"] == "it@contoso.com"
    assert result.message_path.parent.name == "outbox"
    body = msg.get_content()
    assert f"License token: {result.token}" in body
    # each XP license once, even in a later request
    err = _refused(ErrorCode.ALREADY_REDEEMED, _transition, ch, XP2, "2004-06-02")
    assert "already been redeemed" in err.message
    # the token installs once, for its product and count
    lsid = h.activate(ch)
    wrong = Purchase(program=Program.RETAIL, product=DEV, count=0, transition_token=result.token)
    _refused(
        ErrorCode.INVALID_LICENSE_CODE,
        install,
        ch,
        license_server_id=lsid,
        purchase=wrong,
        now=h.NOW,
    )
    p = Purchase(program=Program.RETAIL, product=USER, count=2, transition_token=result.token)
    grant, blob = install(ch, license_server_id=lsid, purchase=p, now=h.NOW)
    assert open_grant(blob, ch.root_cert).count == 2
    # the pack says it came from the transition offer, not from a retail purchase
    assert "transition offer (KB 823313)" in grant.description
    assert "Retail Purchase" not in grant.description
    # a mistyped token is called a token, not a license code
    typo = Purchase(program=Program.RETAIL, product=USER, count=2, transition_token="BBBBB")
    err = _refused(
        ErrorCode.INVALID_LICENSE_CODE, install, ch, license_server_id=lsid, purchase=typo,
        now=h.NOW,
    )  # fmt: skip
    assert "license token" in err.message
    assert "license code" not in err.message
    # a retry by the same server (lost reply) gets the same grant; another server is refused
    assert install(ch, license_server_id=lsid, purchase=p, now=h.NOW + 1) == (grant, blob)
    other = h.activate(ch, name="LS2")
    err = _refused(
        ErrorCode.ALREADY_REDEEMED, install, ch, license_server_id=other, purchase=p, now=h.NOW
    )
    assert "already been used" in err.message
    assert [g["source"] for g in ch.db.grants()].count(
        f"transition:{result.token.replace('-', '')}"
    ) == 1


def test_transition_form_errors_change_nothing(ch: Clearinghouse) -> None:
    _xp(ch, XP1, "2002-05-01")
    _xp(ch, XP2, "2002-05-01", channel="volume", program=Program.SELECT, agreement_number="1234567")
    err = _refused(
        ErrorCode.INVALID_FIELD, _transition, ch, XP1, "2004-01-01", confirm="it@contoso.org"
    )
    assert "do not match" in err.message
    _refused(ErrorCode.MISSING_REQUIRED_INFO, _transition, ch, XP1, "2004-01-01", email="")
    _refused(ErrorCode.MISSING_REQUIRED_INFO, _transition, ch, "  \n", "2004-01-01")
    err = _refused(
        ErrorCode.TRANSITION_NOT_ELIGIBLE, _transition, ch, f"{XP1}\n{XP2}", "2004-01-01"
    )
    assert "method 1" in err.message
    err = _refused(
        ErrorCode.INVALID_LICENSE_CODE,
        _transition,
        ch,
        f"{XP1}\nBBBBB-BBBBB-BBBBB-BBBBB-BBBBB",
        "2004-01-01",
    )
    assert "Product key 2" in err.message
    err = _refused(ErrorCode.INVALID_LICENSE_CODE, _transition, ch, "BBBBB-BBBBB", "2004-01-01")
    assert "Product key 1" in err.message
    _refused(ErrorCode.ALREADY_REDEEMED, _transition, ch, f"{XP1}\n{XP1}", "2004-01-01")
    assert _xp_row(ch, XP1).redeemed_at is None
    assert not (ch.data_dir / "outbox").exists() or not list((ch.data_dir / "outbox").iterdir())


def test_transition_method1_volume_licenses_add_to_the_agreement(
    ch: Clearinghouse, h: type[Helpers]
) -> None:
    lsid = h.activate(ch)
    purchases.add_agreement(
        ch, program=Program.SELECT, product=DEV, count=2, now=h.NOW, agreement_number="1234567"
    )
    _xp(ch, XP1, "2003-04-23", channel="volume", program=Program.SELECT, agreement_number="1234567")
    _xp(ch, XP2, "2003-04-24", channel="volume", program=Program.SELECT, agreement_number="1234567")

    def buy(n: int) -> Purchase:
        return Purchase(program=Program.SELECT, product=DEV, count=n, agreement_number="1234567")

    # 2 bought + 1 eligible XP license (the other was acquired on 24 April 2003)
    _refused(
        ErrorCode.ENTITLEMENT_EXHAUSTED,
        install,
        ch,
        license_server_id=lsid,
        purchase=buy(4),
        now=h.NOW,
    )
    assert install(ch, license_server_id=lsid, purchase=buy(3), now=h.NOW)[0].count == 3
    assert _xp_row(ch, XP1).redeemed_at == h.NOW
    _refused(
        ErrorCode.ENTITLEMENT_EXHAUSTED,
        install,
        ch,
        license_server_id=lsid,
        purchase=buy(1),
        now=h.NOW,
    )


def test_transition_method1_ends_with_the_offer(ch: Clearinghouse, h: type[Helpers]) -> None:
    lsid = h.activate(ch)
    _xp(ch, XP1, "2002-01-01", channel="volume", program=Program.SELECT, agreement_number="1234567")
    p = Purchase(program=Program.SELECT, product=DEV, count=1, agreement_number="1234567")
    _refused(
        ErrorCode.INVALID_LICENSE_CODE,
        install,
        ch,
        license_server_id=lsid,
        purchase=p,
        now=parse_date("2007-07-01"),
    )
    assert (
        install(ch, license_server_id=lsid, purchase=p, now=parse_date("2007-06-30"))[0].count == 1
    )


def test_a_transition_token_installed_by_telephone(ch: Clearinghouse, h: type[Helpers]) -> None:
    _xp(ch, XP1, "2002-05-01")
    token = _transition(ch, XP1, "2004-06-01").token
    mail = next((ch.data_dir / "outbox").glob("*.eml")).read_bytes()
    assert b"Content-Transfer-Encoding: 7bit" in mail  # plain text a person can read
    lsid = h.activate(ch)
    # menu 4, the License Server ID, program 7 (token), the token, product 3 (User CAL), all
    answers = f"4\n{lsid}\n7\n{token}\n3\n\n5\n"
    out = io.StringIO()
    assert phone_session(ch, lambda: h.NOW, io.StringIO(answers), out) == 0
    code = out.getvalue().split("License key pack code: ")[1].split()[0]
    grant = open_grant(
        claim_keypack(ch, license_server_id=lsid, code=code, now=h.NOW), ch.root_cert
    )
    assert grant.count == 1
    assert grant.product is USER
