"""The agent-facing runner: plan and run trainer actions as recorded jobs (torch-free).

`python -m runners <verb> ...` (see :mod:`runners.cli`) or the Python API in :mod:`runners.api`.
"""
