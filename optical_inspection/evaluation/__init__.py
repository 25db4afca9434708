"""What evaluate and inference share once a model scores pairs: scoring a split, defect maps and the plots.

Running a model (PyTorch, ONNX Runtime, TensorRT) and exporting one stay in :mod:`optical_inspection.deploy`.
"""
