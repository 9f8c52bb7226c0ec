"""Prefect block types for Shipyard's connections: configuration only, no logic.

Register them with `prefect block register -m blocks.connections` (or `shipyard apply`, which
also saves one document of each per profile, named in the compiled plan).
"""
