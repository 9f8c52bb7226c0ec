"""Runtime for datasets: reading files, checking expectations (GX), versioning (DVC)."""
