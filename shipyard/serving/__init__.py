"""Model serving: the generic BentoML service and what it is built from."""
