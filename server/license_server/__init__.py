"""The Terminal Server license server daemon (`tslic server`): storage, activation,
issuance, the licensing and admin conversations, metrics. See docs/LICENSE_SERVER.md."""
