"""Backups of all a project's state: one archive with a manifest, listed, verified and restored.

`archive.py` writes and verifies the archive, `parts.py` snapshots each piece of state (SQLite
through the online backup API, PostgreSQL through pg_dump, folders as they are), `store.py`
keeps archives in a directory or an S3 prefix, `retention.py` picks the backups to prune,
`restore.py` puts a verified backup back with a roll back on any error, `commands.py` is the
CLI.
"""
