"""AutoML for the train action: an Optuna search over the train schema's AutoML metadata (torch-free).

- :mod:`.schema_keys` flattens the generated train schema; :mod:`.space` builds the search space from it.
- :mod:`.settings` reads the spec's ``automl.*`` keys; :mod:`.study` builds sampler, pruner and storage and
  recovers trials a killed process left running; :mod:`.driver` runs N trials at once.
- :mod:`.trial_job` trains one configuration as a child train job and feeds its per-epoch metric to Optuna.
- :mod:`.results` writes ``best_rec.json``, ``trials.csv`` and the plots; :mod:`.job` ties it together for
  the runner.
"""
