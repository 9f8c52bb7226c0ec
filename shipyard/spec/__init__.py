"""pydantic models that mirror pipelines.yaml: data only, no behaviour."""

from shipyard.spec.base import Name, SpecModel, parse_duration
from shipyard.spec.datasets import DatasetSpec
from shipyard.spec.models import ModelSpec
from shipyard.spec.profiles import ProfileSpec
from shipyard.spec.root import PipelineSpec

__all__ = [
    "DatasetSpec",
    "ModelSpec",
    "Name",
    "PipelineSpec",
    "ProfileSpec",
    "SpecModel",
    "parse_duration",
]
