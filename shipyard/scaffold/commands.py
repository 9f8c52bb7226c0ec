"""`shipyard init [DATA_FILE] [--name PROJECT] [--target COLUMN] [--force]`: a commented starter
pipelines.yaml inferred from a CSV or Parquet file, checked by the project's own validator."""

from __future__ import annotations

import argparse
import os
import re
import sys
from collections.abc import Callable
from pathlib import Path

from shipyard.errors import ShipyardError
from shipyard.scaffold.infer import READABLE, profile_frame, read_data
from shipyard.scaffold.render import Names, render_spec, slug
from shipyard.settings import DEFAULT_STATE_DIR

EXIT_OK, EXIT_SPEC = 0, 1
_PROJECT_NAME = re.compile(r"^[a-z][a-z0-9_-]*$")


def add_init_parser(
    add: Callable[..., argparse.ArgumentParser], command: Callable[[argparse.Namespace], int]
) -> None:
    """`init` with its arguments; `command(args)` writes the spec (no plan: there is none yet)."""
    p = add(
        "init",
        command,
        "write a commented starter pipelines.yaml inferred from a CSV or Parquet file",
    )
    p.add_argument(
        "data",
        nargs="?",
        metavar="DATA_FILE",
        help="the data file (default: the one .csv or .parquet file here or in data/)",
    )
    p.add_argument("--name", help="project name (default: the folder's name)")
    p.add_argument("--target", help="the label column: also writes a model that predicts it")
    p.add_argument("--force", action="store_true", help="overwrite an existing spec (kept as .bak)")


def init_command(args: argparse.Namespace) -> int:
    """Write the spec named by `-f` (default pipelines.yaml); 1 when it does not validate."""
    return init_project(
        Path(args.file), args.data, name=args.name, target=args.target, force=args.force
    )


def init_project(
    spec: Path,
    data: str | None,
    name: str | None = None,
    target: str | None = None,
    force: bool = False,
) -> int:
    """Infer, write and check the starter spec; see the module docstring."""
    spec = spec.absolute()
    folder = spec.parent
    if spec.exists() and not force:
        raise ShipyardError(
            f"'{spec.name}' already exists in {folder}; `shipyard init` does not overwrite it",
            hint="pass --force to replace it (the old one is kept as "
            f"{spec.name}.bak), or write elsewhere with `shipyard -f other.yaml init ...`",
        )
    data_file = _data_file(folder, data)
    shown = data if data is not None else os.path.relpath(data_file, Path.cwd())
    relative = _inside(folder, data_file, shown)
    project = _project_name(name, folder)
    profile = profile_frame(read_data(data_file, shown))
    names = Names(project=project, dataset=slug(data_file.stem), data_path=relative, source=shown)
    text = render_spec(profile, names, target)
    backup = _write(spec, text, keep_old=force)
    ignored = _ignore_state(folder)
    print(
        f"wrote {spec.name}: dataset '{names.dataset}' ({len(profile.columns)} columns, "
        f"{profile.rows} rows)" + (f", model '{slug(target)}'" if target else ", no model")
    )
    if backup is not None:
        print(f"the previous spec is in {backup.name}")
    if ignored:
        print(f"added {DEFAULT_STATE_DIR}/ (Shipyard's state) to .gitignore")
    return _check(spec)


def _data_file(folder: Path, data: str | None) -> Path:
    if data is not None:
        return Path(data).absolute()
    found = sorted(
        p.relative_to(folder).as_posix()
        for place in (folder, folder / "data")
        if place.is_dir()
        for p in place.iterdir()
        if p.is_file() and p.suffix.lower() in READABLE
    )
    if len(found) == 1:
        return folder / found[0]
    listed = ", ".join(found[:5])
    raise ShipyardError(
        "no data file given, and "
        + (f"{len(found)} candidates here: {listed}" if found else f"none found in {folder}"),
        hint="name the file: `shipyard init data.csv` (CSV or Parquet)",
    )


def _inside(folder: Path, data_file: Path, shown: str) -> str:
    """The data file's path relative to the spec's folder (the spec's `path:` is relative)."""
    try:
        return data_file.resolve().relative_to(folder.resolve()).as_posix()
    except ValueError:
        raise ShipyardError(
            f"data file '{shown}' is outside the project folder {folder}",
            hint="copy it into the folder (e.g. data/), then run `shipyard init` on the copy: "
            "a spec's paths stay inside its project (E209)",
        ) from None


def _project_name(name: str | None, folder: Path) -> str:
    if name is None:
        return slug(folder.name)
    if not _PROJECT_NAME.match(name) or len(name) > 63:
        raise ShipyardError(
            f"--name '{name}' is not a project name",
            hint=f"lowercase letters, digits, - and _, starting with a letter, e.g. {slug(name)}",
        )
    return name


def _write(spec: Path, text: str, keep_old: bool) -> Path | None:
    """Write through a temporary file; an existing spec is kept as `<name>.bak` first."""
    backup = None
    if keep_old and spec.exists():
        backup = spec.with_name(spec.name + ".bak")
        backup.write_bytes(spec.read_bytes())
    partial = spec.with_name(f".{spec.name}.tmp")
    partial.write_text(text, encoding="utf-8")
    partial.replace(spec)
    return backup


def _ignore_state(folder: Path) -> bool:
    """Add the state folder to .gitignore unless it is there; True when it was added."""
    gitignore = folder / ".gitignore"
    lines = gitignore.read_text(encoding="utf-8").splitlines() if gitignore.exists() else []
    wanted = {
        DEFAULT_STATE_DIR,
        f"{DEFAULT_STATE_DIR}/",
        f"/{DEFAULT_STATE_DIR}",
        f"/{DEFAULT_STATE_DIR}/",
    }
    if wanted & {line.strip() for line in lines}:
        return False
    head = "" if not lines or gitignore.read_text(encoding="utf-8").endswith("\n") else "\n"
    with gitignore.open("a", encoding="utf-8") as out:
        out.write(
            f"{head}# Shipyard's state: servers' databases, models, logs\n{DEFAULT_STATE_DIR}/\n"
        )
    return True


def _check(spec: Path) -> int:
    """Validate the written spec as `shipyard validate` does; its problems go to stderr."""
    from shipyard.project import load_project

    project = load_project(spec, compile=False)
    if project.diagnostics:
        print(project.render(), file=sys.stderr)
    if not project.ok:
        print(
            f"{spec.name} was written but does not validate: fix the lines above",
            file=sys.stderr,
        )
        return EXIT_SPEC
    print("next: `shipyard validate`, then `shipyard plan --offline`")
    return EXIT_OK
