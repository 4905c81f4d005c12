"""The shape of the manifest `prepare` writes (schema "tslic-conformance/1/manifest").

Contract: types only. docs/CONFORMANCE.md §2 describes the keys; which ones a manifest has
depends on the role (hence `total=False`). A run reads the file back as decoded JSON and
checks each value where a case uses it (`Context.manifest` is `dict[str, Unvalidated]`).
"""

from __future__ import annotations

from typing import TypedDict


class OpenLicense(TypedDict):
    license_number: str
    authorization_number: str
    count: int


class Agreement(TypedDict):
    program: str
    number: str
    count: int


class RetailPack(TypedDict):
    code: str
    count: int


class Purchases(TypedDict):
    """What a Clearinghouse target is set up with (its `target_setup` registers them)."""

    product: str
    open_license: OpenLicense
    agreement: Agreement
    retail: RetailPack
    xp_eligible: list[str]  # product keys acquired 2003-04-23
    xp_ineligible: str  # acquired 2003-04-24


class PlayedClearinghouse(TypedDict):
    """The Clearinghouse the suite plays for a license-server target."""

    address: str
    root_key: str
    retail_codes: dict[str, list[str | int]]  # code -> [product, count]


class Manifest(TypedDict, total=False):
    schema: str
    role: str
    clock_file: str
    license_servers: dict[str, str]  # agent: name -> the address its double binds
    directory: dict[str, str]  # agent: address, domain, site
    target_command: list[str]
    fresh_agent_command: list[str]  # agent: a second terminal server the suite starts itself
    target_setup: list[list[str]]  # clearinghouse: the purchases' registration commands
    status_command: str
    events_command: str
    suite_command: list[str]
    admin_credential: str
    clearinghouse: PlayedClearinghouse
    trust_root: str  # license server and agent: the suite's Clearinghouse root (PEM)
    root_key: str  # agent: that root's key, which activates the license servers it plays
    purchases: Purchases
    web: str
