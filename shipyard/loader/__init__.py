"""YAML -> LoadedSpec with a source map (key path -> line:col); duplicate keys are errors."""

from shipyard.loader.load import DEFAULT_SPEC, LoadedSpec, load_spec, load_text
from shipyard.loader.source_map import SourceMap

__all__ = ["DEFAULT_SPEC", "LoadedSpec", "SourceMap", "load_spec", "load_text"]
