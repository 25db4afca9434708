"""One module per action, each exposing ``run(config, results_dir, status) -> dict``.

The result dict lists what the action wrote (``artifacts``) and what it measured (``metrics``). The CLI imports
the one it runs (``optical_inspection.actions.<action>``) when it runs it, so its planning path stays torch-free.
"""
