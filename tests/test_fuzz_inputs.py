"""Property-based fuzzing of the three text inputs a user hands us: the spec YAML, the runner's --overrides JSON
and a split's dataset.csv. Whatever the bytes, only our documented errors come out (no traceback-type exception),
nothing hangs (a per-example alarm fails the example after 10 s) and nothing is written outside the tmp folder."""
from __future__ import annotations

import os
import signal
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import dataset_spec
from optical_inspection.data.table import read_split
from optical_inspection.errors import OIError
from optical_inspection.spec import load_spec, validate_dict
from runners.api import plan_job
from runners.errors import RunnerError
from runners.specbuild import parse_overrides

EXAMPLE_LIMIT_S = 10
FUZZ = settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                         HealthCheck.too_slow])


class ExampleHung(Exception):
    """Not one of our error types: an example that runs past EXAMPLE_LIMIT_S fails the test."""


@contextmanager
def time_guard(seconds: int = EXAMPLE_LIMIT_S) -> Iterator[None]:
    def expire(signum, frame):
        raise ExampleHung(f"an example ran for more than {seconds} s")
    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def snapshot(folder: Path) -> set[str]:
    return {str(p.relative_to(folder)) for p in folder.rglob("*")}


@pytest.fixture
def sandbox(tmp_path, monkeypatch) -> Iterator[Path]:
    """cwd = an empty tmp folder; afterwards neither it nor the repository has gained a file."""
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    repo = Path(__file__).resolve().parents[1]
    before = {p for p in os.listdir(repo)}
    yield work
    assert snapshot(work) == set(), f"files written into the working folder: {sorted(snapshot(work))[:5]}"
    assert set(os.listdir(repo)) == before


# ---------------------------------------------------------------- spec YAML

_KEYS = st.sampled_from(["results_dir", "train", "dataset", "model", "evaluate", "num_epochs", "optim", "lr",
                         "batch_size", "input_map", "<<", "${train}", "???", "0", "null", "a.b"])
_SCALARS = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=True, allow_infinity=True),
                     st.text(max_size=20), st.sampled_from(["???", "${results_dir}", "${nope.x}", ".inf", "~"]))
_TREES = st.recursive(_SCALARS, lambda kids: st.one_of(st.lists(kids, max_size=4),
                                                       st.dictionaries(_KEYS, kids, max_size=4)), max_leaves=30)
_YAML_BITS = st.sampled_from(["train:", "  num_epochs: 1", "  num_epochs: 2", "&a [*a]", "*a", "a: &x [1, 2]",
                              "b: [*x, *x]", "- 1", "{", "}", "[", "? ", ": ", "!!python/object:os.system", "\t",
                              "dataset:", "  batch_size: .nan", "%YAML 1.1", "---", "...", "'", '"', "\x00", "\ufeff",
                              "train: ${train}", "model: [1, 2]", "  - ???"])


@st.composite
def spec_texts(draw) -> str:
    import yaml

    if draw(st.booleans()):
        return yaml.safe_dump(draw(st.dictionaries(_KEYS, _TREES, max_size=5)), allow_unicode=True)
    lines = draw(st.lists(st.one_of(_YAML_BITS, st.text(max_size=15)), max_size=12))
    return "\n".join(lines)


@FUZZ
@given(text=spec_texts(), action=st.sampled_from([None, "train", "evaluate", "export"]))
def test_fuzz_spec_yaml_loader(text, action, sandbox):
    spec = sandbox.parent / "spec.yaml"
    spec.write_text(text, encoding="utf-8", errors="surrogatepass")
    with time_guard():
        try:
            load_spec(spec, [], action=action)
        except OIError:
            pass


# ---------------------------------------------------------------- --overrides JSON

_JSON_BITS = st.sampled_from(['{', '}', '[', ']', ':', ',', '"epochs"', '"train.optim.lr"', '"dataset.input_map"',
                              'NaN', 'Infinity', '-Infinity', '1e999', '-0', '1' * 30, 'null', 'true', '"???"',
                              '"${results_dir}"', '"a.b.c.d"', '"\\u0000"', ' '])
_OVERRIDE_KEYS = st.sampled_from(["epochs", "batch_size", "image_size", "train.optim.lr", "train.num_epochs",
                                  "dataset.input_map", "model_type", "train", "results_dir", "bogus", "a.b.c",
                                  "train.optim", "encryption_key", "automl.enabled"])


@st.composite
def override_texts(draw) -> str:
    import json

    if draw(st.booleans()):
        value = draw(st.dictionaries(_OVERRIDE_KEYS, _TREES, max_size=4))
        return json.dumps(value)  # may hold NaN/Infinity: Python writes them
    return "".join(draw(st.lists(st.one_of(_JSON_BITS, st.text(max_size=6)), max_size=20)))


@FUZZ
@given(text=override_texts())
def test_fuzz_runner_overrides(text, sandbox):
    with time_guard():
        try:
            plan_job("train", overrides=parse_overrides(text), automl_policy="off", jobs_root=sandbox / "jobs")
        except RunnerError:
            pass


# ---------------------------------------------------------------- dataset.csv

_CELLS = st.one_of(st.text(max_size=12), st.sampled_from(["PASS", "pass ", "nan", "", "..", "/abs", "C:\\x", "a/../b",
                                                           "boards/b0", "golden", "C1@1", '"q,uoted"', "\x00",
                                                           "\r", "é", "a" * 300]))
_HEADERS = st.sampled_from(["input_path,golden_path,label,object_name", "input_path,golden_path,object_name",
                            "input_path;golden_path;label;object_name", "input_path\tgolden_path", "", "\ufeffa,b"])


@st.composite
def csv_texts(draw) -> str:
    header = draw(_HEADERS)
    rows = draw(st.lists(st.lists(_CELLS, min_size=0, max_size=6), max_size=8))
    body = "\n".join(",".join(row) for row in rows)
    return f"{header}\n{body}" if draw(st.booleans()) else header + draw(st.text(max_size=40))


@pytest.fixture(scope="module")
def split_config():
    return validate_dict(dataset_spec("unused.csv", "unused"), None).dataset


@FUZZ
@given(text=csv_texts(), require_label=st.booleans())
def test_fuzz_dataset_csv_reader(text, require_label, sandbox, split_config):
    csv_path = sandbox.parent / "dataset.csv"
    csv_path.write_text(text, encoding="utf-8", errors="surrogatepass")
    images = sandbox.parent / "images"
    images.mkdir(exist_ok=True)
    with time_guard():
        try:
            read_split(csv_path, images, split_config, require_label=require_label)
        except OIError:
            pass
