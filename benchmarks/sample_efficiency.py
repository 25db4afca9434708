"""Learning curve on DeepPCB held out by board group: how many labelled pairs the template defaults need.

    python benchmarks/sample_efficiency.py [--sizes 0,100,300,600,2000,all] [--inits scratch,pretrained]
        [--minutes 2,10] [--baselines classical,Siamese_3] [--threads 2] [--set dotted.key=json ...]

Splits as in ``benchmarks/train_eval.py`` (train groups 00041, 13000, 20085, 77000; validation 50600 for the
threshold; test 44000, 92000: boards never seen in training). A size N trains on the first N rows of a fixed
shuffle of the training split (natural defect share, ~25 %); size 0 is zero-shot (the bundled weights, no
training, threshold calibrated on the validation PASS pairs). Each cell trains with the spec template's defaults
(only the data, the tile size, ``train.max_time_minutes`` and, for scratch, ``train.pretrained_model_path:
null`` set; ``--set`` overrides keys, e.g. to compare candidate defaults) in its own process, then runs the
evaluate action on the test groups. A second threshold check calibrates as a user on the inspected product
would: the threshold at ``train.target_false_alarm`` of the PASS pairs of the even-numbered boards of the test
groups (inference action), the false alarm then measured on their odd-numbered boards (evaluate action with that
threshold); the validation group 50600 is another board design, whose PASS scores run higher. Baselines:
``classical`` (a registration-tolerant image difference, no training) and ``Siamese_3`` (TAO's network and
recipe) on the largest size under each budget.

Prints the table and writes ``table.md``, ``results.jsonl`` (cells already there are reused; ``--fresh`` reruns)
and ``learning_curve.png`` under ``benchmarks/out/sample_efficiency`` (git-ignored).
"""
from __future__ import annotations

import argparse
import csv
import hashlib
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from train_eval import GROUPS, WINDOW, _seconds, convert

REPO = Path(__file__).resolve().parents[1]
ALL_PAIRS = 22412  # rows of the converted training groups
SHIFT = 3  # the classical difference tolerates this many pixels of misregistration


def subset_csv(folder: Path, size: int | None, out: Path, pass_only: bool = False) -> Path:
    """The first ``size`` rows (all when None) of a fixed shuffle of the training CSV, as its own CSV; with
    ``pass_only`` only their PASS rows (every real defect removed)."""
    import numpy as np

    with open(folder / "dataset.csv", newline="") as fh:
        rows = list(csv.reader(fh))
    header, body = rows[0], rows[1:]
    order = np.random.default_rng(0).permutation(len(body))
    label = header.index("label")
    picked = [body[i] for i in order[: size or len(body)] if not pass_only or body[i][label] == "PASS"]
    path = out / f"train_{size or 'all'}{'_pass_only' if pass_only else ''}.csv"
    if not path.is_file():
        out.mkdir(parents=True, exist_ok=True)
        with open(path, "w", newline="") as fh:
            csv.writer(fh).writerows([header] + picked)
    return path


def board_halves(folder: Path, out: Path) -> dict[str, Path]:
    """The test split's rows by board: ``calibrate`` (even board numbers) and ``check`` (odd), as CSVs beside it."""
    with open(folder / "dataset.csv", newline="") as fh:
        rows = list(csv.reader(fh))
    header, body = rows[0], rows[1:]
    name = header.index("object_name")  # DeepPCB crops: <board number>_<crop>
    halves = {"calibrate": 0, "check": 1}
    paths = {}
    for half, parity in halves.items():
        paths[half] = out / f"test_boards_{half}.csv"
        if not paths[half].is_file():
            out.mkdir(parents=True, exist_ok=True)
            picked = [r for r in body if int(r[name].split("_")[0]) % 2 == parity]
            with open(paths[half], "w", newline="") as fh:
                csv.writer(fh).writerows([header] + picked)
    return paths


def board_calibration(spec: dict, results: Path, halves: dict[str, Path], target: float) -> dict:
    """Threshold at ``target`` false alarm on the calibration boards' PASS pairs (inference action), then the
    evaluate action on the other boards with it: the false alarm and recall a user calibrating on the line sees."""
    import copy

    import numpy as np

    from optical_inspection.cli import run_action
    from optical_inspection.models.metrics import threshold_at_false_alarm
    from optical_inspection.spec import validate_dict

    images = spec["dataset"]["test_dataset"]["images_dir"]
    infer = copy.deepcopy(spec)
    infer["dataset"]["infer_dataset"] = {"csv_path": str(halves["calibrate"]), "images_dir": images}
    infer["inference"] = {"checkpoint": spec["evaluate"]["checkpoint"], "batch_size": 64,
                          "results_dir": str(results / "board_calibration" / "inference")}
    if run_action("inference", validate_dict(infer, "inference")) != 0:
        sys.exit(f"inference failed; see {results / 'board_calibration'}")
    with open(results / "board_calibration" / "inference" / "inference.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    passes = np.array([float(r["siamese_score"]) for r in rows if r["label"] == "PASS"])
    threshold = threshold_at_false_alarm(passes, target)
    check = copy.deepcopy(spec)
    check["dataset"]["test_dataset"] = {"csv_path": str(halves["check"]), "images_dir": images}
    check["evaluate"].update({"threshold": threshold, "results_dir": str(results / "board_calibration" / "evaluate")})
    if run_action("evaluate", validate_dict(check, "evaluate")) != 0:
        sys.exit(f"evaluate failed; see {results / 'board_calibration'}")
    metrics = json.loads((results / "board_calibration" / "evaluate" / "metrics.json").read_text())
    return {"board_cal_threshold": threshold, "board_cal_false_alarm": metrics["false_alarm"],
            "board_cal_recall": metrics["defect_accuracy"], "board_cal_pass_pairs": int(passes.size)}


def cell_spec(folders: dict[str, Path], train_csv: Path, results: Path, model: str, init: str, minutes: float,
              overrides: dict) -> dict:
    """What a user writes from the template: data, size, budget (and the init); nothing else unless ``--set``."""
    from optical_inspection.spec import set_dotted

    def split(name: str, csv_path: Path | None = None) -> dict[str, str]:
        return {"csv_path": str(csv_path or folders[name] / "dataset.csv"), "images_dir": str(folders[name] / "images")}

    train = split("train", train_csv)
    if (folders["train"] / "boxes.csv").is_file() and "_pass_only" not in train_csv.name:
        train["boxes_path"] = str(folders["train"] / "boxes.csv")  # dataset_convert's boxes, as the runner passes
    spec = {
        "results_dir": str(results), "model": {"model_type": model},
        "dataset": {"train_dataset": train, "validation_dataset": split("val"),
                    "test_dataset": split("test"), "infer_dataset": split("test"), "input_map": None,
                    "image_height": WINDOW, "image_width": WINDOW},
        "train": {"max_time_minutes": minutes or None, "progress_bar": False},
        "evaluate": {"checkpoint": str(results / "train" / "oi_model_latest.pth"), "batch_size": 64},
    }
    if model != "Compact":  # TAO's recipe for its own network (as train_eval.py runs it)
        spec["model"].update({"margin": 2.0, "embedding_vectors": 5})
        spec["train"].update({"optim": {"type": "Adam", "lr": 5e-4, "weight_decay": 0.0, "lr_scheduler": "none"},
                              "pretrained_model_path": None})
    elif init == "scratch":
        spec["train"]["pretrained_model_path"] = None
    for key, value in overrides.items():
        set_dotted(spec, key, value)
    return spec


def child(args: argparse.Namespace) -> None:
    """One cell: train (unless zero-shot) and evaluate; print one RESULT line."""
    import torch

    from optical_inspection.cli import run_action
    from optical_inspection.models.checkpoint import load_checkpoint
    from optical_inspection.spec import validate_dict
    from optical_inspection.status import read_status

    torch.set_num_threads(args.threads)
    cell = json.loads(args.child)
    out = Path(args.out)
    folders = {s: out.parent / "train_eval" / "deeppcb" / s for s in GROUPS}
    results = out / "runs" / cell["key"]
    train_csv = Path(cell["train_csv"]) if cell["train_csv"] else None
    spec = cell_spec(folders, train_csv or folders["train"] / "dataset.csv", results, cell["model"], cell["init"],
                     cell["minutes"], cell["overrides"])
    figures: dict = {}
    if cell["model"] == "classical difference":
        figures.update(classical(folders))
    elif cell["size"] == 0:
        spec["evaluate"]["checkpoint"] = "pretrained"
    else:
        t0 = time.time()
        config = validate_dict(spec, "train")
        if run_action("train", config) != 0:
            sys.exit(f"training failed; see {results / 'train' / 'status.json'}")
        records = [r for r in read_status(results / "train" / "status.json")
                   if r.get("message") == "Training loop in progress"]
        seconds = sum(_seconds(r["time_per_epoch"]) for r in records)
        _, meta = load_checkpoint(results / "train" / "oi_model_latest.pth")
        figures["train_peak_rss_mib"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
        figures.update({"epochs": len(records), "steps": meta["step"], "train_seconds": round(seconds, 1),
                        "train_wall_seconds": round(time.time() - t0, 1),
                        "train_pairs_per_s": round(meta["step"] * config.dataset.batch_size / max(seconds, 1e-9), 1)})
    if cell["model"] != "classical difference":
        figures.update(_evaluate(spec, results))
        target = validate_dict(spec, "evaluate").train.target_false_alarm
        figures.update(board_calibration(spec, results, board_halves(folders["test"], out / "subsets"), target))
    figures["peak_rss_mib"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    print("RESULT " + json.dumps(figures), flush=True)


def _evaluate(spec: dict, results: Path) -> dict:
    """The evaluate action on the test groups: AUROC, recalls and the false alarm at the model's threshold."""
    from optical_inspection.cli import run_action
    from optical_inspection.spec import validate_dict

    if run_action("evaluate", validate_dict(spec, "evaluate")) != 0:
        sys.exit(f"evaluate failed; see {results / 'evaluate' / 'status.json'}")
    metrics = json.loads((results / "evaluate" / "metrics.json").read_text())
    keys = ("auroc", "recall_at_fa_1pct", "recall_at_fa_0_1pct", "false_alarm", "threshold", "defect_type_accuracy")
    return {k: metrics[k] for k in keys if k in metrics}


def classical(folders: dict[str, Path]) -> dict:
    """A registration-tolerant image difference: per pixel the smallest |test - golden shifted| over shifts up
    to SHIFT px (both lightly blurred), then the largest 3x3 mean of it is the pair's score; the threshold at
    1 % false alarm of the validation PASS pairs."""
    import numpy as np
    import torch
    import torch.nn.functional as F

    from optical_inspection.data.datamodule import OIDataModule
    from optical_inspection.models.metrics import all_metrics, threshold_at_false_alarm
    from optical_inspection.spec import validate_dict

    spec = cell_spec(folders, folders["train"] / "dataset.csv", Path("/tmp/unused"), "Compact", "scratch", 1.0, {})
    data = OIDataModule(validate_dict(spec, "evaluate"))

    def scores(split: str) -> tuple[np.ndarray, np.ndarray]:
        ds = data.dataset(split)
        out = []
        for start in range(0, len(ds), 256):
            rows = torch.arange(start, min(start + 256, len(ds)))
            test, golden = ds.decoded.pairs(rows)
            t, g = (F.avg_pool2d(x.float().mean((1, 2))[:, None] / 255, 3, 1, 1) for x in (test, golden))
            gp = F.pad(g, [SHIFT] * 4, mode="replicate")
            h, w = t.shape[-2:]
            best = torch.full_like(t, 1e9)
            for dy in range(2 * SHIFT + 1):
                for dx in range(2 * SHIFT + 1):
                    best = torch.minimum(best, (t - gp[..., dy:dy + h, dx:dx + w]).abs())
            out.append(F.avg_pool2d(best, 3, 1).amax((1, 2, 3)).numpy())
        return np.concatenate(out), ds.table.labels

    val_s, val_y = scores("val")
    test_s, test_y = scores("test")
    m = all_metrics(test_s, test_y, threshold_at_false_alarm(val_s[val_y == 0], 0.01))
    return {k: m[k] for k in ("auroc", "recall_at_fa_1pct", "recall_at_fa_0_1pct", "false_alarm", "threshold")}


def run_cell(args: argparse.Namespace, cell: dict) -> dict:
    cmd = [sys.executable, __file__, "--child", json.dumps(cell), "--threads", str(args.threads), "--out", args.out]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=dict(os.environ, PYTHONUNBUFFERED="1"))
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
    if proc.returncode != 0 or not lines:
        sys.stderr.write(proc.stdout[-3000:] + proc.stderr[-3000:])
        sys.exit(f"cell {cell['key']} failed (exit {proc.returncode})")
    return json.loads(lines[-1][len("RESULT "):])


def cells(args: argparse.Namespace, folders: dict[str, Path], out: Path, overrides: dict) -> list[dict]:
    sizes = [None if s == "all" else int(s) for s in args.sizes.split(",")]
    minutes = [float(m) for m in args.minutes.split(",")]
    tag = hashlib.sha256(json.dumps(overrides, sort_keys=True).encode()).hexdigest()[:8] if overrides else "defaults"
    todo = []
    if 0 in sizes:
        todo.append({"model": "Compact", "init": "pretrained", "size": 0, "minutes": 0.0})
    for size in [s for s in sizes if s != 0]:
        for budget in minutes:
            for init in args.inits.split(","):
                for pass_only in ([False, True] if args.pass_only else [False]):
                    todo.append({"model": "Compact", "init": init, "size": size, "minutes": budget,
                                 "pass_only": pass_only})
    largest = sizes[-1]
    for base in [b for b in args.baselines.split(",") if b and b != "classical"]:
        for budget in minutes:
            todo.append({"model": base, "init": "scratch", "size": largest, "minutes": budget})
    for c in todo:
        c["overrides"] = overrides if c["model"] == "Compact" else {}
        c.setdefault("pass_only", False)
        c["train_csv"] = (str(subset_csv(folders["train"], c["size"], out / "subsets", c["pass_only"]))
                          if c["size"] != 0 else "")
        c["key"] = (f"{c['model']}_{c['init']}_{c['size'] if c['size'] is not None else 'all'}"
                    f"{'_pass_only' if c['pass_only'] else ''}_{c['minutes']:g}min_"
                    f"{tag if c['model'] == 'Compact' else 'tao'}")
    return todo


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="0,100,300,600,2000,all", help="training pairs; 0 = zero-shot")
    parser.add_argument("--inits", default="scratch,pretrained")
    parser.add_argument("--minutes", default="2,10", help="training budgets (train.max_time_minutes)")
    parser.add_argument("--baselines", default="classical,Siamese_3")
    parser.add_argument("--pass-only", action="store_true",
                        help="also train each size with its real defects removed (PASS pairs + synthetic defects)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--set", action="append", default=[], metavar="KEY=JSON", help="override a spec key")
    parser.add_argument("--fresh", action="store_true", help="rerun cells already in results.jsonl")
    parser.add_argument("--out", default=str(REPO / "benchmarks" / "out" / "sample_efficiency"))
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args)
        return
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    folders = convert(out.parent / "train_eval")
    overrides = {k: json.loads(v) for k, v in (s.split("=", 1) for s in args.set)}
    done_path = out / "results.jsonl"
    done = {} if args.fresh or not done_path.is_file() else {
        r["key"]: r for r in map(json.loads, done_path.read_text().splitlines())}
    rows = []
    if "classical" in args.baselines.split(","):
        cell = {"key": "classical", "model": "classical difference", "init": "-", "size": 0, "minutes": 0.0,
                "overrides": {}, "train_csv": ""}
        rows.append(done.get("classical") or {**cell, **run_cell(args, cell)})
    for cell in cells(args, folders, out, overrides):
        row = done.get(cell["key"]) or {**{k: v for k, v in cell.items() if k != "train_csv"}, **run_cell(args, cell)}
        rows.append(row)
        print(json.dumps(row), flush=True)
    with open(done_path, "w") as fh:
        merged = {**done, **{r["key"]: r for r in rows}}
        fh.writelines(json.dumps(r) + "\n" for r in merged.values())
    every = sorted(merged.values(), key=_order)  # this run's cells and those stored by earlier runs
    table = _table(every)
    print(table)
    (out / "table.md").write_text(table + "\n")
    _plot(every, out / "learning_curve.png")
    print(f"wrote {out / 'table.md'} and {out / 'learning_curve.png'}")


def _order(r: dict) -> tuple:
    size = 10**9 if r["size"] is None else r["size"]
    return (r["model"] != "classical difference", r["model"], bool(r.get("overrides")), bool(r.get("pass_only")),
            r["minutes"], r["init"], size)


def _name(r: dict) -> str:
    """Compact's series: init, PASS only, overrides, budget."""
    extra = "".join(f", {k.split('.')[-1]}={v}" for k, v in (r.get("overrides") or {}).items())
    return f"Compact {r['init']}{' PASS only' if r.get('pass_only') else ''}{extra}, {r['minutes']:g} min"


def _table(rows: list[dict]) -> str:
    head = ("| model | init | pairs | budget min | epochs | train s | pairs/s | AUROC | recall@1%FA | recall@0.1%FA "
            "| test false alarm % at calibrated threshold | same, calibrated on other boards of the test groups |")
    lines = [head, "|" + "---|" * 12]
    for r in rows:
        size = ("all" if r["size"] is None else str(r["size"])) + (" PASS only" if r.get("pass_only") else "")
        init = r["init"] + "".join(f", {k}={v}" for k, v in (r.get("overrides") or {}).items())
        lines.append(f"| {r['model']} | {init} | {size} | {r['minutes']:g} | {r.get('epochs', '-')} | "
                     f"{r.get('train_seconds', '-')} | {r.get('train_pairs_per_s', '-')} | {r['auroc']:.4f} | "
                     f"{r['recall_at_fa_1pct']:.3f} | {r['recall_at_fa_0_1pct']:.3f} | {r['false_alarm']:.2f} | "
                     f"{_percent(r.get('board_cal_false_alarm'))} |")
    return "\n".join(lines)


def _percent(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def _plot(rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    x_of = lambda r: ALL_PAIRS if r["size"] is None else max(r["size"], 30)  # noqa: E731  zero-shot drawn at 30
    fig, ax = plt.subplots(figsize=(7, 4.5))
    series: dict[str, list] = {}
    for r in rows:
        if r["model"] == "Compact" and r["size"] != 0:
            series.setdefault(_name(r), []).append(r)
    for name, rs in series.items():
        rs = sorted(rs, key=x_of)
        ax.plot([x_of(r) for r in rs], [r["auroc"] for r in rs], marker="o", label=name)
    for r in rows:
        if r["size"] == 0 or r["model"] not in ("Compact",):
            label = "zero-shot (bundled weights)" if r["model"] == "Compact" else f"{r['model']} {r['minutes']:g} min"
            ax.scatter([x_of(r) if r["model"] != "classical difference" else 30], [r["auroc"]], marker="x", label=label)
    ax.set_xscale("log")
    ax.set_xlabel(f"labelled training pairs (log scale; all = {ALL_PAIRS:,}; zero-shot and baselines at 30)")
    ax.set_ylabel("held-out AUROC (groups 44000, 92000)")
    ax.set_ylim(max(0.5, min(r["auroc"] for r in rows) - 0.01), 1.0)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


if __name__ == "__main__":
    main()
