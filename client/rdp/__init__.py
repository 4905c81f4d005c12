"""The emulated RDP client (`tslic connect`): an MSLicensing-like store and the client side of
the licensing exchange."""
