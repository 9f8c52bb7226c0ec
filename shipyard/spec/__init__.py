"""pydantic models that mirror pipelines.yaml: data only, no behaviour."""

from shipyard.spec.base import Name, SpecModel, parse_duration
from shipyard.spec.datasets import DatasetSpec
from shipyard.spec.models import ModelSpec
from shipyard.spec.profiles import ProfileSpec
from shipyard.spec.root import PipelineSpec
from shipyard.spec.services import ServiceSpec

__all__ = [
    "DatasetSpec",
    "ModelSpec",
    "Name",
    "PipelineSpec",
    "ProfileSpec",
    "ServiceSpec",
    "SpecModel",
    "parse_duration",
]
