"""tslic.server.directory: the emulated Active Directory daemon (`tslic directory`).

Contract: `topology` reads the TOML forest description, `store` keeps what changes at run time
(published enterprise license servers, registered addresses, computer accounts) in SQLite,
`service` answers Conversation.DIRECTORY (`changes` checks and describes computer-account
changes for it), and `cli` runs the daemon and the one-shot client commands. docs/DIRECTORY.md
describes the file format and the commands.
"""

from __future__ import annotations

from .service import DirectoryService
from .topology import Topology, TopologyError, load_topology, parse_topology

__all__ = ["DirectoryService", "Topology", "TopologyError", "load_topology", "parse_topology"]
