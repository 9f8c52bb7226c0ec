"""The façade over the pure phases: load -> validate -> compile, in one call.

`load_project("pipelines.yaml")` is what the CLI, the demo, the benches and the flows' stale
check use; nothing else strings the phases together.

```python
from shipyard import load_project

project = load_project("pipelines.yaml")
if project.ok:
    plan = project.plan
    print(sorted(plan.steps))
else:
    print(project.render())
```
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from shipyard.diagnostics import Diagnostic, render_json, render_text, sort_diagnostics
from shipyard.errors import SpecError
from shipyard.loader import DEFAULT_SPEC, LoadedSpec, load_spec
from shipyard.spec import PipelineSpec
from shipyard.validation import validate

if TYPE_CHECKING:
    from shipyard.compiler import Plan


@dataclass(frozen=True)
class Project:
    """A loaded spec with every problem found in it and, when it has none, its plan."""

    loaded: LoadedSpec
    diagnostics: list[Diagnostic] = field(default_factory=list)
    plan: Plan | None = None
    compiled: bool = True
    """False when loaded with `compile=False` (`shipyard validate`): no plan is made."""

    @property
    def spec(self) -> PipelineSpec | None:
        return self.loaded.spec

    @property
    def ok(self) -> bool:
        """The spec validated (and compiled, when it was compiled)."""
        return (
            self.loaded.spec is not None
            and not self.errors
            and (self.plan is not None or not self.compiled)
        )

    @property
    def errors(self) -> list[Diagnostic]:
        return [d for d in self.diagnostics if d.is_error]

    def render(self, fmt: str = "text") -> str:
        """The diagnostics as `FILE:LINE:COL: error[CODE] ...` text, or as JSON."""
        if fmt == "json":
            return render_json(self.diagnostics)
        return render_text(self.diagnostics, {self.loaded.display_name: self.loaded.text})

    def require_plan(self) -> Plan:
        """The plan, or SpecError carrying every diagnostic rendered."""
        if self.plan is None:
            raise SpecError(self.render())
        return self.plan

    def counts(self) -> dict[str, int]:
        """What the spec declares, by noun: {'dataset': 1, 'feature view': 2, 'model': 1, ...}."""
        return self.loaded.spec.counts() if self.loaded.spec is not None else {}


def load_project(
    path: str | Path = DEFAULT_SPEC,
    *,
    env: Mapping[str, str] | None = None,
    profile: str | None = None,
    compile: bool = True,
) -> Project:
    """Load, validate and (when valid) compile a spec file. Never raises for the file's problems.

    Args:
        path: The spec file.
        env: Variables for `${VAR}` interpolation (default: the process environment).
        profile: Compile for this profile instead of the one the spec selects (a flow run
            compares the applied plan with the spec under the plan's own profile).
        compile: False to stop after validation (`shipyard validate`: the compiler is not
            even imported).
    """
    loaded = load_spec(path, env)
    if profile is not None and loaded.spec is not None and profile in loaded.spec.profiles:
        loaded.spec = loaded.spec.model_copy(update={"profile": profile})
    diagnostics = validate(loaded)
    if not compile:
        return Project(loaded, diagnostics, compiled=False)
    if loaded.spec is None or any(d.is_error for d in diagnostics):
        return Project(loaded, diagnostics)
    from shipyard.compiler import PlanError, compile_plan

    try:
        plan = compile_plan(loaded.spec, loaded.root_dir, loaded.secrets, loaded.path.name)
    except PlanError as exc:
        return Project(loaded, sort_diagnostics([*diagnostics, *exc.diagnostics]))
    return Project(loaded, diagnostics, plan)
