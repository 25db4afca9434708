"""Optical inspection: Siamese golden-image defect inspection, TAO Optical Inspection compatible."""

__version__ = "0.1.0"
