"""The emulated terminal server (`tslic agent`): discovery, grace period, the RDP licensing
exchange, the TS <-> license server calls, the event log and the persisted state."""
