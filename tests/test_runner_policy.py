"""automl_policy: explicit value, request phrases (and negatives), schema availability, non-train actions."""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from runners.errors import RequestError
from runners.policy import off_phrase, resolve_policy
from runners.skill_info import load_skill_info

SKILL = load_skill_info()

OFF_REQUESTS = [
    "Train OI but turn off AutoML please",
    "disable AutoML and train for 5 epochs",
    "train the model, no HPO",
    "train without automl",
    "just a plain training run",
    "Plain Training on the new boards",
    "TURN OFF AUTOML",
    "switch AutoML off for this one",
    "skip the hyperparameter search",
    "train it w/o HPO",
    "don't use AutoML",
    "do not run hyperparameter tuning",
    "no hyper-parameter optimization this time",
    "automl: off",
    "Disable HPO.",
]
ON_REQUESTS = [
    "turn on AutoML",
    "train the optical inspection model",
    "enable AutoML and find the best margin",
    "train with HPO",
    "AutoML on, 20 trials",
    "don't disable AutoML",
    "no need to turn off automl",
    "train on the plain boards dataset",
    "use hyperparameter search",
    "no sweeps of my data folder",          # no AutoML topic named: the old broad patterns turned AutoML off
    "train without tuning the threshold",
    "skip the parameter tuning of the lights",
    "disable the progress bar, no sweeps",
    "avoid a plain run",
    "",
]


@pytest.mark.parametrize("request_text", OFF_REQUESTS)
def test_off_phrases_turn_automl_off(request_text):
    decision = resolve_policy("train", None, request_text, SKILL)
    assert decision.value == "off"
    assert off_phrase(request_text) is not None
    assert off_phrase(request_text).lower() in request_text.lower()
    assert "the request says" in decision.reason
    assert decision.as_dict()["phrase"] == off_phrase(request_text)   # the phrase that decided is recorded


@pytest.mark.parametrize("request_text", ON_REQUESTS)
def test_other_requests_keep_the_default_on(request_text):
    decision = resolve_policy("train", None, request_text, SKILL)
    assert off_phrase(request_text) is None
    assert decision.value == "on"
    assert "default for train" in decision.reason and "phrase" not in decision.as_dict()


def test_explicit_value_wins_over_the_request():
    assert resolve_policy("train", "on", "turn off AutoML", SKILL).value == "on"
    decision = resolve_policy("train", "off", "turn on AutoML", SKILL)
    assert (decision.value, decision.reason) == ("off", "explicit automl_policy=off")


@pytest.mark.parametrize("action", ["evaluate", "inference", "export", "gen_trt_engine", "dataset_convert"])
def test_non_train_actions_never_use_automl(action):
    decision = resolve_policy(action, "on", None, SKILL)
    assert decision.value == "off"
    assert "never uses AutoML" in decision.reason and "does not apply" in decision.reason


def test_missing_schemas_mean_off_with_the_documented_reason(tmp_path: Path):
    (tmp_path / "references").mkdir()
    shutil.copy(SKILL.skill_dir / "references" / "skill_info.yaml", tmp_path / "references" / "skill_info.yaml")
    bare = load_skill_info(tmp_path)
    for explicit in (None, "on"):
        decision = resolve_policy("train", explicit, None, bare)
        assert decision.value == "off"
        assert decision.reason.startswith("AutoML enabled but not runnable until schemas are generated")


def test_bad_explicit_value_is_a_request_error():
    with pytest.raises(RequestError, match="'on' or 'off'"):
        resolve_policy("train", "maybe", None, SKILL)
