"""`shipyard init`: a starter pipelines.yaml inferred from a data file."""
