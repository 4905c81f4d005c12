"""The license server's data-access layer: every SQL statement the server runs lives here.

Contract: each module holds named queries, plain synchronous functions over a
`sqlite3.Connection`, each named for what it answers or does, meant to run inside a `Store`
operation (so inside its transaction; `..store` owns transactions, durability and
checkpoints, and with `..group` is the only other place SQL appears, for BEGIN, COMMIT,
ROLLBACK and SAVEPOINT).
- `schema`: the tables (DDL) and their creation.
- `settings`: settings and blobs (`meta`, `blobs`), durable counters, the audit log, the
  License Server Security Group's local members, terminal-server certificates.
- `keypacks`: installed key packs and their pools.
- `licenses`: issued licenses and the per-user usage record.
Times are virtual epoch-ms. Rows leave this layer as the protocol's records
(`KeyPackInfo`, `IssuedLicenseInfo`, `UserUsage`) or as `licenses.LicenseRow`, so callers
never index a raw tuple. No query adds a statement or a round trip to the issuance path.
"""
