"""tslic: an emulator of Windows 2000 / Windows Server 2003 Terminal Server Licensing.

Contract: this package only names its parts; importing it imports none of them. The parts
live in the repository's top-level folders and are reached here through relative symlinks
(`tslic/protocol -> ../protocol`, likewise `runtime`, `server`, `client` and `cli`, and
`tslic/PROTOCOL.md -> ../docs/PROTOCOL.md`, the one document read at run time), so a plain
checkout already is the package as installed: mypy, editors and import-graph tools resolve
`tslic.*` with no generated files, and setuptools builds the wheel and sdist from the same
paths, with real files. docs/DEVELOPING.md ("Layout") says why.
"""
