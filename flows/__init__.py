"""Prefect flows, one verb each; thin wiring over the runtime libraries in `shipyard/`."""
