"""AutoML for the train action: an Optuna search over the train schema's AutoML metadata (torch-free).

- :mod:`.space` builds the search space from the train keys of the config key index (their AutoML metadata).
- :mod:`.settings` reads the spec's ``automl.*`` keys; :mod:`.study` builds sampler, pruner and storage and
  recovers trials a killed process left running; :mod:`.driver` runs N trials at once.
- :mod:`.trial_job` trains one configuration as a child train job and feeds its per-epoch metric to Optuna.
- :mod:`.results` writes ``best_rec.json``, ``trials.csv`` and the plots; :mod:`.job` ties it together for
  the runner (``runners/automl_bridge.py`` hands policy-on train jobs to it; ``python -m runners.automl JOB``
  runs a detached one).
- :mod:`.handoff` is what later jobs take from an AutoML parent: best_rec's checkpoint, or its study to continue.

Only :mod:`.study`, :mod:`.driver`, :mod:`.results`, :mod:`.trial_job` and :mod:`.job` import Optuna; nothing here
imports torch.
"""
