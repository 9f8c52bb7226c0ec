"""Training runtime: data splits, search, evaluation, gates, registry."""
