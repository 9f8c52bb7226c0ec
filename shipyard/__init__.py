"""Shipyard: one declarative pipelines.yaml compiled into Prometheus-monitored Prefect flows.

The public API is what `__all__` lists; everything else is internal and may change. Names are
imported on first use, so `import shipyard` stays cheap for flows and services.

```python
import shipyard

project = shipyard.load_project("pipelines.yaml")
print(project.render() if not project.ok else sorted(project.plan.steps))
```
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_EXPORTS = {
    "Diagnostic": "shipyard.diagnostics",
    "PipelineSpec": "shipyard.spec",
    "Plan": "shipyard.compiler",
    "Project": "shipyard.project",
    "ShipyardError": "shipyard.errors",
    "SpecError": "shipyard.errors",
    "StepBase": "shipyard.compiler",
    "compile_plan": "shipyard.compiler",
    "load_project": "shipyard.project",
    "load_spec": "shipyard.loader",
    "read_plan": "shipyard.compiler.plan",
    "validate": "shipyard.validation",
    "write_plan": "shipyard.compiler.plan",
}

__all__ = [
    "Diagnostic",
    "PipelineSpec",
    "Plan",
    "Project",
    "ShipyardError",
    "SpecError",
    "StepBase",
    "__version__",
    "compile_plan",
    "load_project",
    "load_spec",
    "read_plan",
    "validate",
    "write_plan",
]

if TYPE_CHECKING:
    from shipyard.compiler import Plan, StepBase, compile_plan
    from shipyard.compiler.plan import read_plan, write_plan
    from shipyard.diagnostics import Diagnostic
    from shipyard.errors import ShipyardError, SpecError
    from shipyard.loader import load_spec
    from shipyard.project import Project, load_project
    from shipyard.spec import PipelineSpec
    from shipyard.validation import validate


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'shipyard' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value
