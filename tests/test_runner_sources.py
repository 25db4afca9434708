"""Data sources: local folders, images.tar.gz (wrappers detected, extracted once into the content-addressed
cache) and S3 against moto's standalone server on localhost (real HTTP, IAM auth enforced)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from runner_support import REPO, TRAIN_OVERRIDES, admin_client, enforce_auth, moto_server, s3_user
from runners.api import plan_job, run_job
from runners.cache import ContentCache
from runners.errors import DataSourceError
from runners.skill_info import load_skill_info
from runners.sources import resolve_sources
from splits import archive_split, runner_split

BUCKET = "oi-data"


@pytest.fixture(scope="module")
def base_split(tmp_path_factory) -> Path:
    return runner_split(tmp_path_factory.mktemp("src") / "split", 6, seed=3)


@pytest.mark.parametrize("arcname", ["images", "images/images", "./images"])
def test_archive_is_extracted_once_and_its_wrapper_detected(base_split, tmp_path, arcname):
    folder = archive_split(base_split, tmp_path / "split", arcname)
    cache = ContentCache(tmp_path / "cache")
    skill = load_skill_info()
    data = {"train_datasets": [str(folder)]}
    planned, _ = resolve_sources("train", data, skill, cache, materialize=False)
    assert dict((k, v) for k, v, _ in planned)["dataset.train_dataset.images_dir"].startswith("<extracted at run")
    assert not cache.root.exists(), "plan extracts nothing"
    done, resolved = resolve_sources("train", data, skill, cache, materialize=True)
    images = Path(dict((k, v) for k, v, _ in done)["dataset.train_dataset.images_dir"])
    assert (images / "golden").is_dir() and (images / "boards").is_dir()
    assert images.is_relative_to(cache.root / "extracted")
    stamp = images.stat().st_mtime_ns
    again, _ = resolve_sources("train", data, skill, cache, materialize=True)
    assert dict((k, v) for k, v, _ in again)["dataset.train_dataset.images_dir"] == str(images)
    assert images.stat().st_mtime_ns == stamp, "the same archive content is not extracted twice"
    assert "extracted into" in resolved["train_datasets"][0]["how"]


def test_unsafe_archive_is_refused_with_a_clear_error(base_split, tmp_path):
    import io
    import tarfile

    folder = tmp_path / "evil"
    folder.mkdir()
    (folder / "dataset.csv").write_bytes((base_split / "dataset.csv").read_bytes())
    with tarfile.open(folder / "images.tar.gz", "w:gz") as tar:
        info = tarfile.TarInfo("../escape.txt")
        info.size = 2
        tar.addfile(info, io.BytesIO(b"hi"))
    with pytest.raises(DataSourceError, match="refusing to extract"):
        resolve_sources("train", {"train_datasets": [str(folder)]}, load_skill_info(),
                        ContentCache(tmp_path / "cache"), materialize=True)
    assert not (tmp_path / "escape.txt").exists()


def test_a_training_folder_with_boxes_csv_fills_boxes_path(base_split, tmp_path):
    skill, cache = load_skill_info(), ContentCache(tmp_path / "cache")
    data = {"train_datasets": [str(base_split)], "eval_dataset": [str(base_split)]}
    keys = dict((k, v) for k, v, _ in resolve_sources("train", data, skill, cache, materialize=False)[0])
    assert keys["dataset.train_dataset.boxes_path"] == str(base_split / "boxes.csv")
    assert not any("validation_dataset.boxes" in k for k in keys)  # only training learns from boxes
    bare = archive_split(base_split, tmp_path / "bare")  # dataset.csv and images.tar.gz, no boxes.csv
    keys = dict((k, v) for k, v, _ in resolve_sources("train", {"train_datasets": [str(bare)]}, skill, cache,
                                                       materialize=False)[0])
    assert "dataset.train_dataset.boxes_path" not in keys


def test_every_unreadable_location_and_the_other_problems_are_reported_at_once(base_split, tmp_path):
    with pytest.raises(DataSourceError) as err:
        plan_job("train", jobs_root=tmp_path / "jobs", automl_policy="off",
                 data={"train_datasets": str(tmp_path / "nope"), "eval_dataset": str(tmp_path / "gone")},
                 overrides={"epoch": 3, "train.optim.lr": -1})
    problems = err.value.problems
    assert err.value.exit_code == 4 and len(problems) == 4, problems
    assert f"data location '{tmp_path / 'nope'}' does not exist" in problems[0]
    assert f"data location '{tmp_path / 'gone'}' does not exist" in problems[1]
    assert "epoch: unknown key for train; did you mean 'epochs'?" in problems
    assert any(p.startswith("train.optim.lr: -1") for p in problems)
    assert not (tmp_path / "jobs").exists(), "a refused plan writes nothing"


@pytest.mark.parametrize("layout", ["csv only", "empty images/", "images elsewhere"])
def test_a_split_whose_csv_names_folders_that_are_not_there_is_refused_at_plan(base_split, tmp_path, layout):
    folder = tmp_path / "split"
    folder.mkdir()
    (folder / "dataset.csv").write_bytes((base_split / "dataset.csv").read_bytes())
    if layout == "empty images/":
        (folder / "images").mkdir()
    if layout == "images elsewhere":
        (tmp_path / "pictures").symlink_to(base_split / "images")
    with pytest.raises(DataSourceError) as err:
        plan_job("train", jobs_root=tmp_path / "jobs", automl_policy="off",
                 data={"train_datasets": str(folder), "eval_dataset": str(base_split)})
    assert err.value.exit_code == 4
    assert err.value.problems[0].startswith(f"{folder}: the image folders dataset.csv names (e.g. '")
    assert f"put the images under {folder}/images/" in err.value.problems[0]


# ---------------------------------------------------------------- S3 (moto standalone server)

@pytest.fixture(scope="module")
def s3(tmp_path_factory, base_split):
    """A moto server with a bucket holding train/ and val/ splits (images.tar.gz + dataset.csv), then IAM auth on."""
    with moto_server() as url:
        key = s3_user(url, "runner")
        client = admin_client(url, "s3")
        client.create_bucket(Bucket=BUCKET)
        staging = tmp_path_factory.mktemp("s3staging")
        for prefix, seed, arcname in (("train", 3, "images/images"), ("val", 4, "images")):
            split = archive_split(runner_split(staging / f"{prefix}_src", 6, seed=seed), staging / prefix, arcname)
            for name in ("dataset.csv", "images.tar.gz"):
                client.upload_file(str(split / name), BUCKET, f"{prefix}/{name}")
        client.put_object(Bucket=BUCKET, Key="csvonly/dataset.csv", Body=b"input_path,golden_path,label,object_name\n")
        loose = runner_split(staging / "loose_src", 6, seed=5)              # dataset.csv + loose objects under images/
        for path in sorted(p for p in loose.rglob("*") if p.is_file()):
            client.upload_file(str(path), BUCKET, f"loose/{path.relative_to(loose).as_posix()}")
        client.put_object(Bucket=BUCKET, Key="loose/images/", Body=b"")  # a folder marker, as consoles create
        client.upload_file(str(loose / "dataset.csv"), BUCKET, "evil/dataset.csv")
        client.put_object(Bucket=BUCKET, Key="evil/images/boards/../../escape.png", Body=b"x")
        enforce_auth(url)
        yield {"url": url, "key_id": key["AccessKeyId"], "secret": key["SecretAccessKey"], "loose": loose}


@pytest.fixture
def aws_env(s3, monkeypatch):
    for var in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("AWS_ENDPOINT_URL", s3["url"])
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", s3["key_id"])
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", s3["secret"])
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent/credentials")
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent/config")
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    return monkeypatch


def test_s3_train_job_runs_end_to_end_and_writes_no_credentials(aws_env, s3, tmp_path):
    jobs = tmp_path / "jobs"
    data = {"train_datasets": f"s3://{BUCKET}/train", "eval_dataset": f"s3://{BUCKET}/val"}
    planned = plan_job("train", jobs_root=jobs, automl_policy="off", data=data, overrides=TRAIN_OVERRIDES)
    assert planned.draft.get("dataset.train_dataset.csv_path").startswith("<downloaded at run time from s3://")
    record = run_job("train", jobs_root=jobs, automl_policy="off", data=data,
                     overrides={**TRAIN_OVERRIDES, "epochs": 1})
    assert record.status == "success", Path(record.log_path).read_text()[-3000:]
    images = Path(record.decisions["spec_values"]["dataset.train_dataset.images_dir"]["value"])
    assert images.name == "images" and images.parent.name == "images", "the images/images wrapper is found"
    assert images.is_relative_to(jobs / ".cache" / "extracted")
    csv_path = Path(record.decisions["spec_values"]["dataset.train_dataset.csv_path"]["value"])
    assert csv_path.parent.parent == jobs / ".cache" / "objects" and len(csv_path.parent.name) == 64
    secrets = (s3["key_id"].encode(), s3["secret"].encode())
    leaks = [p for p in jobs.rglob("*") if p.is_file() and any(s in p.read_bytes() for s in secrets)]
    assert leaks == []
    mtime = csv_path.stat().st_mtime_ns
    again = plan_job("train", jobs_root=jobs, automl_policy="off", data=data, overrides=TRAIN_OVERRIDES)
    assert again.data_sources["train_datasets"][0]["location"] == f"s3://{BUCKET}/train"
    cache = ContentCache(jobs / ".cache")
    done, _ = resolve_sources("train", {"train_datasets": [f"s3://{BUCKET}/train"]}, load_skill_info(), cache, True)
    assert dict((k, v) for k, v, _ in done)["dataset.train_dataset.csv_path"] == str(csv_path)
    assert csv_path.stat().st_mtime_ns == mtime, "a cached object is not downloaded again"


def test_s3_loose_images_are_mirrored_once_and_train_from_the_cache(aws_env, s3, tmp_path):
    jobs = tmp_path / "jobs"
    data = {"train_datasets": f"s3://{BUCKET}/loose", "eval_dataset": f"s3://{BUCKET}/val"}
    planned = plan_job("train", jobs_root=jobs, automl_policy="off", data=data, overrides=TRAIN_OVERRIDES)
    assert planned.data_sources["train_datasets"][0]["how"] == "s3 dataset.csv + images/ (downloaded by run)"
    assert not (jobs / ".cache" / "mirrors").exists(), "plan downloads nothing"
    record = run_job("train", jobs_root=jobs, automl_policy="off", data=data,
                     overrides={**TRAIN_OVERRIDES, "epochs": 1})
    assert record.status == "success", Path(record.log_path).read_text()[-3000:]
    images = Path(record.decisions["spec_values"]["dataset.train_dataset.images_dir"]["value"])
    assert images.parent == jobs / ".cache" / "mirrors"                  # the images/ prefix, mirrored
    files = sorted(p for p in images.rglob("*") if p.is_file())
    source = s3["loose"] / "images"
    assert [p.relative_to(images) for p in files] == sorted(p.relative_to(source) for p in source.rglob("*")
                                                            if p.is_file())
    assert all(p.read_bytes() == (source / p.relative_to(images)).read_bytes() for p in files)
    stamps = [p.stat().st_mtime_ns for p in files]
    cache = ContentCache(jobs / ".cache")
    done, _ = resolve_sources("train", {"train_datasets": [f"s3://{BUCKET}/loose"]}, load_skill_info(), cache, True)
    assert dict((k, v) for k, v, _ in done)["dataset.train_dataset.images_dir"] == str(images)
    assert [p.stat().st_mtime_ns for p in files] == stamps, "an unchanged prefix is not downloaded again"
    assert not list((jobs / ".cache" / "mirrors").glob(".*")), "no temp folder left behind"


def test_s3_object_with_an_unsafe_key_is_refused_and_nothing_is_written(aws_env, tmp_path):
    cache = ContentCache(tmp_path / "cache")
    with pytest.raises(DataSourceError, match=r"boards/\.\./\.\./escape\.png: refusing to download"):
        resolve_sources("train", {"train_datasets": [f"s3://{BUCKET}/evil"]}, load_skill_info(), cache, True)
    assert not (cache.root / "mirrors").exists()
    assert not list(tmp_path.rglob("escape.png"))


def test_a_failed_mirror_leaves_no_folder_and_is_filled_again_next_time(tmp_path):
    cache = ContentCache(tmp_path)

    def broken(folder: Path) -> None:
        (folder / "half.png").write_bytes(b"x")
        raise DataSourceError("s3://b/images/next.png: S3 request failed")

    with pytest.raises(DataSourceError, match="S3 request failed"):
        cache.mirrored("origin", broken)
    assert [p.name for p in (tmp_path / "mirrors").iterdir() if not p.name.endswith(".lock")] == []
    folder = cache.mirrored("origin", lambda f: (f / "whole.png").write_bytes(b"y"))
    assert [p.name for p in folder.iterdir()] == ["whole.png"]
    assert cache.mirrored("origin", broken) == folder                    # filled once, never again


@pytest.mark.parametrize("uri, message", [
    ("s3://no-such-bucket/train", "bucket 'no-such-bucket' does not exist"),
    (f"s3://{BUCKET}/missing",
     f"s3://{BUCKET}/missing/dataset.csv does not exist (found under s3://{BUCKET}/missing/: nothing)"),
    (f"s3://{BUCKET}/csvonly", "no images archive (images.tar.gz / images.tgz / images.tar) and no images/ folder "
                               "next to dataset.csv"),
])
def test_s3_missing_bucket_or_key_is_a_clear_error(aws_env, tmp_path, uri, message):
    with pytest.raises(DataSourceError) as err:
        plan_job("train", jobs_root=tmp_path, data={"train_datasets": uri})
    assert message in str(err.value)


@pytest.mark.parametrize("key_id, secret, code", [
    (None, "wrong-secret", "SignatureDoesNotMatch"),
    ("AKIAUNKNOWNKEY000000", "whatever-secret", "InvalidAccessKeyId"),
])
def test_s3_bad_credentials_are_a_clear_error_without_the_values(aws_env, s3, tmp_path, key_id, secret, code):
    aws_env.setenv("AWS_ACCESS_KEY_ID", key_id or s3["key_id"])
    aws_env.setenv("AWS_SECRET_ACCESS_KEY", secret)
    with pytest.raises(DataSourceError) as err:
        plan_job("train", jobs_root=tmp_path, data={"train_datasets": f"s3://{BUCKET}/train"})
    assert f"the AWS credentials were rejected ({code})" in str(err.value)
    assert secret not in str(err.value)


def test_s3_cli_exit_code_and_missing_credentials(aws_env, tmp_path):
    done = subprocess.run([sys.executable, "-m", "runners", "plan", "train", "--jobs-root", str(tmp_path),
                           "--data", "train_datasets=s3://no-such-bucket/x"], capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": str(REPO)})
    assert done.returncode == 4
    answer = json.loads(done.stdout)
    assert "bucket 'no-such-bucket' does not exist" in answer["problems"][0]           # data problems come first
    assert any(p.startswith("dataset.validation_dataset.csv_path: a value is required") for p in answer["problems"])
    aws_env.delenv("AWS_ACCESS_KEY_ID")
    aws_env.delenv("AWS_SECRET_ACCESS_KEY")
    with pytest.raises(DataSourceError, match="no AWS credentials found"):
        plan_job("train", jobs_root=tmp_path, data={"train_datasets": f"s3://{BUCKET}/train"})
