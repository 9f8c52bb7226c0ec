"""Feature store runtime: the Feast repository compiled from the spec, training sets, online
lookups. `resolve` is pure (used by validation and the compiler); the rest imports Feast."""
