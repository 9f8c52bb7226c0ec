"""Running a plan on Prefect: local server and worker, apply (blocks, pool, deployments), run."""

import sys

# jsonschema, which Prefect imports, compiles 38 lark grammars at import when rfc3987-syntax is
# installed (a dependency's jsonschema[format] extra brings it): about 1.4 s of every command
# that runs a flow, for the "iri" string formats that neither Prefect nor Shipyard checks.
# Marked absent, jsonschema skips those two format checkers and imports in milliseconds.
sys.modules.setdefault("rfc3987_syntax", None)  # type: ignore[arg-type]
