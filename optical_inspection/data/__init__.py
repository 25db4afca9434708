"""Pairs of test/golden images: CSV splits, preprocessing, augmentation, caching, archives and converters.

Import the submodules directly (``optical_inspection.data.table``, ``.preprocess``, ``.datamodule`` ...);
this package imports nothing heavy on its own.
"""
