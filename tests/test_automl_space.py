"""AutoML search space: built from the train keys of the config key index, sampled define-by-run (no training here)."""
from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import numpy as np
import optuna
import pytest

from optical_inspection.config import AutoML, spec_field
from optical_inspection.config.fields import Int, section
from optical_inspection.config.walk import KeyIndex, action_index
from runners.automl.space import build_search_space, condition_holds
from runners.errors import RequestError
from runners.skill_info import load_skill_info

REPO = Path(__file__).resolve().parents[1]
SCHEMA = action_index("train")
SCHEMA_FILE = json.loads((REPO / "schemas" / "train.schema.json").read_text())
AUG = "dataset.augmentation_config"

optuna.logging.set_verbosity(optuna.logging.WARNING)


def sample_many(space, n: int, base: dict | None = None, seed: int = 0) -> list[dict]:
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=seed))
    out = []
    for _ in range(n):
        trial = study.ask()
        out.append(space.sample(trial, base or {}))
        study.tell(trial, 0.0)
    return out


def test_default_space_is_the_schemas_default_list():
    space = build_search_space(SCHEMA)
    keys = [p.key for p in space.params]
    assert keys and sorted(keys) == sorted(SCHEMA_FILE["automl_default_parameters"])
    by_key = {p.key: p for p in space.params}
    lr = by_key["train.optim.lr"]
    assert (lr.kind, lr.log) == ("float", True)
    channels = by_key["model.base_channels"]
    assert channels.kind == "categorical" and all(v & (v - 1) == 0 for v in channels.options)
    # a key is sampled after the keys its conditions read
    for i, param in enumerate(space.params):
        assert all(k not in keys[i:] for k in param.when)


def test_learning_rate_is_log_distributed():
    space = build_search_space(SCHEMA, ["train.optim.lr"])
    lrs = np.array([c["train.optim.lr"] for c in sample_many(space, 1500)])
    assert lrs.min() >= 1e-4 and lrs.max() <= 1e-2
    # uniform in log10 over [-4, -2]: every decile of log10(lr) holds ~10% (a linear scale puts ~90% above 1e-3)
    u = np.sort((np.log10(lrs) + 4.0) / 2.0)
    ks = np.max(np.abs(u - (np.arange(1, len(u) + 1) / len(u))))
    assert ks < 0.05
    assert 0.45 < np.mean(lrs < 1e-3) < 0.55


def test_conditional_keys_never_appear_when_their_condition_is_false():
    space = build_search_space(SCHEMA)
    configs = sample_many(space, 300)
    seen_on = Counter()
    for cfg in configs:
        assert "train.optim.momentum" not in cfg          # default optimiser is AdamW: momentum is dead
        sub = [k for k in cfg if k.startswith(AUG + ".random_")]
        if not cfg[f"{AUG}.augment"]:
            assert sub == []
            continue
        for block, probs in (("random_flip", ("hflip_probability", "vflip_probability")),
                             ("random_rotate", ("rotate_probability",)),
                             ("random_color", ("brightness", "contrast", "saturation", "hue", "color_probability"))):
            enabled = cfg[f"{AUG}.{block}.enable"]
            for name in probs:
                assert (f"{AUG}.{block}.{name}" in cfg) == enabled
            seen_on[block] += enabled
    assert min(seen_on.values()) > 20                     # the conditional keys are sampled when allowed


def test_conditions_read_the_base_spec_for_keys_not_searched():
    space = build_search_space(SCHEMA, ["train.optim.momentum", f"{AUG}.random_flip.hflip_probability"])
    off = {"dataset": {"augmentation_config": {"augment": False}}}
    assert sample_many(space, 5, off) == [{}] * 5         # AdamW (default) and augment off: nothing to sample
    assert all(set(c) == {f"{AUG}.random_flip.hflip_probability"} for c in sample_many(space, 5))  # augment on
    base = {"train": {"optim": {"type": "SGD"}}, "dataset": {"augmentation_config": {"augment": True}}}
    for cfg in sample_many(space, 20, base):
        assert set(cfg) == {"train.optim.momentum", f"{AUG}.random_flip.hflip_probability"}
        assert 0.5 <= cfg["train.optim.momentum"] <= 0.99


def test_option_weights_set_the_prior_and_conditions_follow_the_decoded_choice():
    space = build_search_space(
        SCHEMA, ["train.optim.type", "train.optim.momentum"],
        {"train.optim.type": {"options": ["Adam", "SGD"], "option_weights": [3, 1]}})
    configs = sample_many(space, 800)
    share_sgd = np.mean([c["train.optim.type"] == "SGD" for c in configs])
    assert 0.2 < share_sgd < 0.3
    assert all(("train.optim.momentum" in c) == (c["train.optim.type"] == "SGD") for c in configs)


def test_overrides_shorthands_and_integer_steps():
    space = build_search_space(SCHEMA, ["lr", "batch_size"], {"lr": {"low": 1e-5, "high": 1e-3},
                                                              "batch_size": {"options": [8, 32]}},
                               shorthands=load_skill_info().shorthand_keys)
    by_key = {p.key: p for p in space.params}
    assert (by_key["train.optim.lr"].low, by_key["train.optim.lr"].high) == (1e-5, 1e-3)
    assert by_key["dataset.batch_size"].options == (8, 32)
    @section
    class Probe:
        n: Int = spec_field(4, description="A count.", ge=1,
                            automl=AutoML(enabled=True, low=3, high=20, math_cond="multiple_of:4"))

    values = {c["n"] for c in sample_many(build_search_space(KeyIndex(Probe)), 60)}
    assert values == {4, 8, 12, 16, 20}


def test_every_bad_setting_is_reported_at_once():
    with pytest.raises(RequestError) as err:
        build_search_space(
            SCHEMA,
            ["train.optim.lrr", "automl.seed", "train.seed", "train.optim.lr", "train.optim.type",
             "model.base_channels", "train.optim.weight_decay"],
            {"train.optim.lr": {"low": -1.0},
             "train.optim.type": {"options": ["Lion", "Adam"]},
             "model.base_channels": {"low": 9, "high": 15},
             "train.optim.weight_decay": {"low": 0.0},
             "dataset.batch_size": {"options": [8, 16]}})
    text = "\n".join(err.value.problems)
    for needle in ("'train.optim.lrr' is not a train spec key; did you mean 'train.optim.lr'",
                   "'automl.seed' is an AutoML setting",
                   "train.seed: 'train.seed' has an open search range",
                   "automl.parameter_ranges.train.optim.lr: low -1.0 is outside",
                   "['Lion'] not allowed",
                   "must be a power of two",
                   "a log-scale range needs low > 0",
                   "automl.parameter_ranges.dataset.batch_size: 'dataset.batch_size' is not searched"):
        assert needle in text, needle
    assert len(err.value.problems) == 8


def test_a_single_option_is_refused():
    with pytest.raises(RequestError, match="needs at least 2 options"):
        build_search_space(SCHEMA, ["model.model_type"], {"model.model_type": {"options": ["Compact"]}})


def test_condition_matching_is_type_strict():
    assert condition_holds(True, True) and not condition_holds(1, True) and not condition_holds(True, 1)
    assert condition_holds("Siamese", ["Siamese", "Siamese_3"]) and not condition_holds("Compact", ["Siamese"])
    assert condition_holds(2.0, 2)


def test_plan_reports_search_space_problems_before_anything_runs(tmp_path):
    from optical_inspection.data.synthetic import make_synthetic_split
    from runners.api import plan_job

    make_synthetic_split(tmp_path / "split", 4, lights=(), size=16)
    data = {"train_datasets": str(tmp_path / "split"), "eval_dataset": str(tmp_path / "split")}
    overrides = {"automl.parameters": ["lr", "train.optim.momentum", "model.margn"],
                 "automl.parameter_ranges": {"lr": {"low": 0.0, "high": 0.1}}}
    with pytest.raises(RequestError) as err:
        plan_job("train", jobs_root=tmp_path / "jobs", automl_policy="on", overrides=overrides, data=data)
    text = "\n".join(err.value.problems)
    assert "did you mean 'model.margin'" in text and "a log-scale range needs low > 0" in text
    overrides = {"automl.parameters": ["lr", "train.optim.momentum"]}
    with pytest.raises(RequestError, match="'train.optim.momentum' is only searched when"):
        plan_job("train", jobs_root=tmp_path / "jobs", automl_policy="on", overrides=overrides, data=data)
    with pytest.raises(RequestError, match="hyperband spends train.num_epochs as its budget"):
        plan_job("train", jobs_root=tmp_path / "jobs", automl_policy="on", data=data,
                 overrides={"automl.parameters": ["epochs", "lr"], "automl.algorithm": "hyperband"})
    overrides["train.optim.type"] = "SGD"
    plan = plan_job("train", jobs_root=tmp_path / "jobs", automl_policy="on", overrides=overrides, data=data)
    assert plan.automl_policy.value == "on"
    assert not (tmp_path / "jobs").exists()                       # planning writes nothing
