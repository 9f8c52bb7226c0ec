"""Prefect block types: Shipyard's connections and the applied plan; configuration only, no logic.

Register them with `prefect block register -f blocks/connections.py` (or `shipyard apply`,
which also saves one document of each per profile, named in the compiled plan).
"""
