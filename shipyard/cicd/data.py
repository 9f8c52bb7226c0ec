"""`shipyard ci pull-data`: a fresh checkout's data files, from the DVC pointers it holds.

A CI job starts from the repository: the datasets' `<file>.dvc` pointers are there, their bytes
are not. This brings back exactly the version each committed pointer names, from the profile's
DVC remote (the same pull `shipyard data restore` does), so that the data checks and the
training of the pipeline read what the commit says. A file already there is left alone.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from shipyard.compiler import DatasetStep, Plan
from shipyard.errors import ShipyardError
from shipyard.secrets import redact_url

if TYPE_CHECKING:
    from shipyard.data.versioning import DvcStore


def pull_data(plan: Plan, say: Callable[[str], None] = print) -> int:
    """Pull each dataset file that is missing and has a pointer; 0 when every dataset with a
    pointer has its file."""
    from shipyard.data.versioning import pointer_path

    project_dir = Path(plan.runtime.project_dir)
    wanted: list[tuple[DatasetStep, Path, str]] = []
    for step in plan.steps_of(DatasetStep):
        if step.path is None:  # a SQL dataset: read from its database, nothing to pull
            continue
        file = project_dir / step.path
        pointer = pointer_path(file)
        if file.exists():
            say(f"{step.name}: {step.path} is there")
        elif not pointer.is_file():
            say(
                f"{step.name}: no {step.path} and no {pointer.name} in the checkout: "
                "nothing to pull"
            )
        else:
            wanted.append((step, file, pointer.read_text(encoding="utf-8")))
    if not wanted:
        return 0
    store = _store(plan)
    for step, file, recorded in wanted:
        store.checkout(file, recorded, resource=step.id)
        say(f"{step.name}: pulled {step.path} from {redact_url(store.remote_url)}")
    return 0


def _store(plan: Plan) -> DvcStore:
    """The profile's DVC store; a remote that is a folder the job does not have is refused."""
    from shipyard.data.versioning import DvcStore
    from shipyard.secrets import resolve

    remote = plan.blocks.dvc_remote
    if "://" not in remote.url and not Path(remote.url).is_dir():
        raise ShipyardError(
            f"profile '{plan.profile}': the DVC remote is the folder {remote.url}, which this "
            "machine does not have, so the datasets' files cannot be pulled",
            hint="give the profile a remote the CI reaches (`dvc: {remote: s3://...}`), or "
            "commit the data files",
        )
    options = {k: resolve(v) or "" for k, v in remote.options.items()}
    return DvcStore(
        Path(plan.runtime.project_dir), Path(plan.runtime.state_dir), remote.url, options
    )
