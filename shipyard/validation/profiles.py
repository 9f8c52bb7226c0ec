"""Rules for `profile:` and `profiles:`."""

from __future__ import annotations

from collections.abc import Iterator

from shipyard.diagnostics import Diagnostic, did_you_mean, one_of
from shipyard.loader.source_map import SourceMap
from shipyard.spec import PipelineSpec


def check_profiles(spec: PipelineSpec, sm: SourceMap) -> Iterator[Diagnostic]:
    if spec.profile not in spec.profiles:
        yield Diagnostic(
            "E401",
            f"profile '{spec.profile}' is not defined under `profiles:`",
            sm.value_span(("profile",)),
            did_you_mean(spec.profile, spec.profiles) or one_of(sorted(spec.profiles)),
        )
    for name, profile in spec.profiles.items():
        if profile.kind == "embedded" and profile.dvc.remote and "://" in profile.dvc.remote:
            yield Diagnostic(
                "E402",
                f"profile '{name}' is embedded but its DVC remote '{profile.dvc.remote}' "
                "is an object store",
                sm.value_span(("profiles", name, "dvc", "remote")),
                "set `kind: scale-out` for profiles that use remote engines",
            )
