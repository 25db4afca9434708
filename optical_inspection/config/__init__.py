"""Config dataclasses: the single source of truth for every spec key (torch-free)."""
from .actions import ACTIONS, ACTION_SECTIONS, SHARED_SECTIONS
from .experiment import ExperimentConfig
from .fields import AutoML, spec_field

__all__ = ["ACTIONS", "ACTION_SECTIONS", "SHARED_SECTIONS", "AutoML", "ExperimentConfig", "spec_field"]
