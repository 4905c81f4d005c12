"""`codec.trusted_builder` builds what the validating constructor builds, for every sample
message (every registered type) and the license body; it runs no checks (that is its point:
the license server builds its replies from values it has already validated), it applies the
same defaults, and it refuses a class whose defaults come from a factory."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import pytest
from tslic.protocol import Message
from tslic.protocol.codec import to_wire, trusted_builder
from tslic.protocol.domain import CalProduct, ClientOS, LicenseKind, LicensingMode
from tslic.protocol.messages.licensing import LicenseGranted
from tslic.protocol.messages.records import LicenseBody

from tests.protocol.helpers import sample_messages
from tests.protocol.samples import HWID, NOW


def _fields(obj: object) -> dict[str, object]:
    return {f.name: getattr(obj, f.name) for f in dataclasses.fields(obj)}  # type: ignore[arg-type]


def _factory_free(msg: Message) -> bool:
    return all(f.default_factory is dataclasses.MISSING for f in dataclasses.fields(msg))  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "msg", [m for m in sample_messages() if _factory_free(m)], ids=lambda m: type(m).__name__
)
def test_builds_what_the_constructor_builds(msg: Message) -> None:
    built = trusted_builder(type(msg))(**_fields(msg))
    assert type(built) is type(msg)
    assert built == msg
    assert to_wire(built) == to_wire(msg)
    for name, value in list(_fields(msg).items())[:1]:  # as frozen as the validated one
        with pytest.raises(dataclasses.FrozenInstanceError):
            setattr(built, name, value)


def test_the_license_body_with_its_defaults() -> None:
    values: dict[str, object] = {
        "license_id": 41, "kind": LicenseKind.TEMPORARY, "product": CalProduct.W2003_DEVICE_CAL,
        "hwid": HWID, "machine": "PC-Ünïcode", "user": "", "client_os": ClientOS.XP_HOME,
        "mode": LicensingMode.PER_DEVICE, "issuer": "LS1", "license_server_id": "x" * 35,
        "issued_at": NOW, "expires_at": NOW + 1,
    }  # fmt: skip
    built = trusted_builder(LicenseBody)(**values)
    assert built == LicenseBody(**values)  # type: ignore[arg-type]
    assert built.scope == "microsoft.com"
    granted = trusted_builder(LicenseGranted)(
        license=b"blob", license_id=41, kind=LicenseKind.TEMPORARY,
        product=CalProduct.W2003_DEVICE_CAL, expires_at=NOW,
    )  # fmt: skip
    assert (granted.upgraded, granted.event_ids) == (False, ())


def test_it_does_not_validate_and_needs_every_field() -> None:
    # What the validating constructor refuses (a 3-byte hardware id) it takes as given:
    # it is only for values already checked.
    short = trusted_builder(LicenseGranted)(
        license=b"", license_id=-1, kind=LicenseKind.TEMPORARY,
        product=CalProduct.W2003_DEVICE_CAL, expires_at=0,
    )  # fmt: skip
    assert short.license_id == -1
    with pytest.raises(TypeError, match="license_id"):
        trusted_builder(LicenseGranted)(license=b"")


@dataclass(frozen=True, slots=True, kw_only=True)
class _WithFactory:
    items: list[int] = field(default_factory=list)


def test_refuses_a_default_factory() -> None:
    with pytest.raises(TypeError, match="default factory"):
        trusted_builder(_WithFactory)
