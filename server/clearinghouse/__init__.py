"""The emulated Microsoft Clearinghouse (`tslic clearinghouse`, issue 3).

Root of trust, entitlement catalogue, activation by the automatic, web and telephone methods,
CAL installation and the Windows XP transition offer. Modules: `catalogue` (SQLite store),
`core` (root and activation rules), `installation` (CALs and transition offer), `purchases`
(adding test purchases), `service` (the TCP conversation), `web` (the HTTP pages), `phone`
(the interactive telephone session), `cli` (the command). docs/CLEARINGHOUSE.md is the guide.
"""
