"""Whole-board inspection on DeepPCB, held out by board group: boxes scored with DeepPCB's protocol.

    python benchmarks/board_inspection.py [--checkpoint PATH] [--threads 2] [--minutes 12] [--max-boards N]
        [--type-views 1]

1. Without ``--checkpoint``: converts ``../shared/datasets/deeppcb-trainval`` into 128-px crops by board group
   (train 00041, 13000, 20085, 77000; val 50600; test 44000, 92000; ``train_eval.convert``) and trains Compact
   on the train groups (``train_eval.model_spec``, tuned recipe) under ``--minutes``; its dense map learns from
   the conversion's ``boxes.csv`` (``dataset.train_dataset.boxes_path``).
2. Inspects every test-group board (640x640 pairs) with the inspect action's BoardInspector (registration on),
   timing registration + network + boxes on ``--threads`` torch threads, images decoded beforehand.
3. Scores the boxes (optical_inspection.boards.box_metrics): DeepPCB protocol (IoU > 0.33, greedy per image by
   confidence) class-free AP over every box, and the F-score of the boxes above a score cut chosen for the best
   F-score on the validation group's boards (50600), as are ``inspect.min_box_side`` and ``inspect.nms_iou``
   (best class-free AP there); the class-aware DeepPCB mAP (boxes typed by the network's
   defect-type head: it learns DeepPCB's six kinds from the crop labels) and its F-score; COCO-style mAP@0.5.
4. The same boards with each test image shifted by up to 8 px and rotated by up to 1 degree (its boxes moved
   alike): registration robustness.
5. ``inspect.boxes: difference``: boxes from the registered pixel difference, kept and scored by the network's
   map (also on the moved boards); the difference and the map boxes submitted per kind as multi-class detectors
   do (scored P(defect) x P(kind), the likeliest one, two or three kinds); and the classical baseline alone: the
   same boxes scored by the mean difference.
6. On the held-out FAIL crops: how often the heat map's peak lies inside a defect box of the crop.
Everything is written under ``benchmarks/out/board_inspection`` (git-ignored); one JSON line per figure set.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))
from train_eval import DEEPPCB, GROUPS, convert, model_spec  # noqa: E402

OUT = REPO / "benchmarks" / "out" / "board_inspection"
SHIFT, ROTATION = 8.0, 1.0
SIDES = (0, 32, 40, 48)  # inspect.min_box_side candidates (DeepPCB frames defects in boxes of ~30-55 px)
NMS_IOUS = (1.0, 0.5, 0.33, 0.2, 0.1)  # inspect.nms_iou candidates


def train_checkpoint(minutes: float, epochs: int) -> Path:
    from optical_inspection.cli import run_action
    from optical_inspection.spec import validate_dict

    folders = convert(OUT)
    spec = model_spec("Compact", folders, OUT / "Compact", minutes, epochs)
    if run_action("train", validate_dict(spec, "train")) != 0:
        sys.exit(f"training failed; see {OUT / 'Compact' / 'train' / 'status.json'}")
    return OUT / "Compact" / "train" / "oi_model_latest.pth"


def test_boards(max_boards: int | None, split: str = "test") -> tuple[list, list]:
    """(boards: (test, golden) uint8 tensors [C, H, W], truth: [K, 5] x1 y1 x2 y2 type) of a split's groups."""
    import torch

    from optical_inspection.data.convert_deeppcb import read_boxes, read_listing
    from optical_inspection.data.images import decode_image

    entries = read_listing(DEEPPCB, "trainval.txt", GROUPS[split])[:max_boards]
    boards, truth = [], []
    for e in entries:
        pair = [torch.from_numpy(decode_image(str(p))[0].transpose(2, 0, 1).copy()) for p in (e.test, e.template)]
        if pair[0].shape[0] != pair[1].shape[0]:
            pair = [p.expand(3, -1, -1).contiguous() for p in pair]
        boards.append(tuple(pair))
        truth.append(read_boxes(e.boxes))
    return boards, truth


def _best_on_val(inspector, key: str, values: tuple, detect, boards: list, truth: list, name: str):
    """The value of ``inspector.<key>`` with the best class-free AP on the validation boards."""
    ap = {}
    for value in values:
        setattr(inspector, key, value)
        ap[value] = round(report(run_detector(detect, boards)[0], truth)["class_free_ap"], 4)
    best = max(ap, key=lambda v: ap[v])
    print(f"{name}: validation class-free AP by inspect.{key} {ap}; chosen {best}", flush=True)
    return best


def truth_table(truth: list, class_free: bool):
    from optical_inspection.boards.box_metrics import Boxes
    from optical_inspection.data.convert_deeppcb import DEFECT_TYPES

    image = np.concatenate([np.full(len(t), i) for i, t in enumerate(truth)])
    boxes = np.concatenate([t[:, :4] for t in truth]).astype(float)
    kinds = np.concatenate([t[:, 4] for t in truth])
    labels = np.full(len(kinds), "defect") if class_free else np.array([DEFECT_TYPES[int(k)] for k in kinds])
    return Boxes.make(image, boxes, labels)


def run_detector(detect, boards: list) -> tuple[object, float]:
    """(detection Boxes, boards/s) of ``detect(test, golden) -> (boxes [K, 4], scores [K], types [K])`` over
    ``boards``."""
    from optical_inspection.boards.box_metrics import Boxes

    detect(*boards[0])  # warm-up
    images, xyxy, scores, kinds = [], [], [], []
    start = time.perf_counter()
    for i, (test, golden) in enumerate(boards):
        boxes, score, types = detect(test, golden)
        images.append(np.full(len(boxes), i))
        xyxy.append(np.asarray(boxes, dtype=float).reshape(-1, 4))
        scores.append(np.asarray(score, dtype=float))
        kinds += list(types)
    rate = len(boards) / (time.perf_counter() - start)
    return Boxes.make(np.concatenate(images), np.concatenate(xyxy), np.array(kinds, dtype=object).astype(str),
                      np.concatenate(scores)), rate


def best_min_score(dets, truth: list) -> float:
    """The box score threshold with the best F-score (chosen on the validation group's boards)."""
    from optical_inspection.boards.box_metrics import detection_report

    table = truth_table(truth, class_free=True)
    dets = _untyped(dets)
    candidates = np.unique(np.quantile(dets.score, np.linspace(0, 1, 201))) if len(dets) else np.zeros(0)
    f = [detection_report(dets.where(dets.score >= c), table)["f_score"] for c in candidates]
    return float(candidates[int(np.argmax(f))]) if len(candidates) else 0.0


def report(dets, truth: list, min_score: float = 0.0) -> dict:
    """AP over every box; F-score, precision and recall of the boxes scoring at least ``min_score``."""
    from optical_inspection.boards.box_metrics import detection_report

    typed = bool(len(dets)) and not (dets.cls == "defect").all()
    free = detection_report(_untyped(dets), truth_table(truth, class_free=True))
    table = truth_table(truth, class_free=not typed)
    full = detection_report(dets, table)
    kept = detection_report(dets.where(dets.score >= min_score), table)
    kept_free = detection_report(_untyped(dets.where(dets.score >= min_score)), truth_table(truth, class_free=True))
    return {"min_score": min_score, "class_free_ap": free["class_free_ap"],
            "deeppcb_map": full["map"] if typed else "n/a (no defect-type head: every box is typed 'defect')",
            "ap_per_class": full["ap_per_class"] if typed else None,
            "f_score": kept["f_score"], "class_free_f_score": kept_free["f_score"], "precision": kept["precision"],
            "recall": kept["recall"], "coco_map50": full["coco_map50"], "detections": kept["num_detections"],
            "truth_boxes": full["num_truth"]}


def _untyped(dets):
    """The same detections, every one typed 'defect' (class-free scoring)."""
    from optical_inspection.boards.box_metrics import Boxes

    return Boxes(dets.image, dets.xyxy, np.full(len(dets), "defect"), dets.score)


def perturbed(boards: list, truth: list, seed: int = 0) -> tuple[list, list]:
    """Each test image moved by a random shift (|dx|, |dy| <= 8 px) and rotation (|angle| <= 1 deg); the boxes
    moved alike (bounding box of the moved corners)."""
    from optical_inspection.boards.registration import Transform, warp

    rng = np.random.default_rng(seed)
    out_boards, out_truth = [], []
    for (test, golden), boxes in zip(boards, truth):
        t = Transform(*rng.uniform(-SHIFT, SHIFT, 2), rng.uniform(-ROTATION, ROTATION))
        out_boards.append((warp(test, t), golden))
        _, h, w = test.shape
        a = math.radians(t.angle)
        corners = boxes[:, [0, 1, 2, 1, 0, 3, 2, 3]].reshape(-1, 4, 2).astype(float) - [w / 2, h / 2]
        x = math.cos(a) * corners[..., 0] - math.sin(a) * corners[..., 1] + w / 2 + t.dx
        y = math.sin(a) * corners[..., 0] + math.cos(a) * corners[..., 1] + h / 2 + t.dy
        moved = np.stack([x.min(1), y.min(1), x.max(1), y.max(1)], 1).clip(0, [w, h, w, h])
        out_truth.append(np.c_[moved, boxes[:, 4]])
    return out_boards, out_truth


def kind_ranked(inspector, top: int, source: str):
    """``source`` (map or difference) boxes as the DeepPCB protocol takes typed detections: ``inspect.kinds_per_box``
    rows per box (its ``top`` likeliest kinds), ranked by P(defect) x P(kind), as multi-class detectors submit
    them."""
    from optical_inspection.boards.detect import typed_rows

    def detect(test, golden):
        inspector.boxes = source
        try:
            boxes, scores, kinds, probs = typed_rows(inspector.inspect(test, golden), inspector.types, top)
        finally:
            inspector.boxes = "map"
        return boxes, scores * np.nan_to_num(probs, nan=1.0), kinds

    return detect


def classical(register: bool = True, max_rotation: float = 1.5):
    """The classical baseline: registered grey difference → opening, closing → connected components → boxes
    (optical_inspection.boards.difference, as inspect's boxes: difference), scored by the mean difference."""
    from optical_inspection.boards.difference import difference_boxes
    from optical_inspection.boards.registration import Transform, estimate, is_negligible, warp

    def detect(test, golden):
        transform = estimate(test, golden, max_rotation) if register else Transform()
        golden = golden if is_negligible(transform) else warp(golden, transform)
        boxes, score = difference_boxes(test, golden)
        return boxes.numpy(), score.numpy(), ["defect"] * len(boxes)

    return detect


def peak_in_box_rate(checkpoint: Path) -> dict:
    """Share of the held-out FAIL crops whose heat-map peak lies inside one of the crop's defect boxes."""
    import csv

    import torch

    from optical_inspection.data.convert_deeppcb import read_boxes
    from optical_inspection.data.images import decode_image
    from optical_inspection.models.checkpoint import load_checkpoint

    folder = convert(OUT)["test"]  # reused when already there (also when --checkpoint skipped training)
    model, meta = load_checkpoint(str(checkpoint))
    mean, std = (torch.tensor(meta["dataset"][k]).view(1, 3, 1, 1) for k in ("rgb_input_mean", "rgb_input_std"))
    rows = [r for r in csv.DictReader((folder / "dataset.csv").open()) if r["label"] != "PASS"]
    listing = {}
    hits, found = [], []
    for start in range(0, len(rows), 64):
        chunk = rows[start:start + 64]
        sides = []
        for col in ("input_path", "golden_path"):
            arrays = [decode_image(str(folder / "images" / r[col] / f"{r['object_name']}.jpg"))[0] for r in chunk]
            t = torch.from_numpy(np.stack([np.broadcast_to(a, a.shape[:2] + (3,)) for a in arrays])).permute(0, 3, 1, 2)
            sides.append((t.float() / 255 - mean) / std)
        with torch.inference_mode():
            score, maps = model.score_and_map(*sides)
        w = maps.shape[2]
        peak = maps.reshape(len(chunk), -1).argmax(1).numpy()
        for r, p, s in zip(chunk, peak, score.numpy()):
            stem = r["object_name"].rsplit("_", 1)[0]
            key = (r["group"], stem)
            if key not in listing:
                group = DEEPPCB / "PCBData" / f"group{r['group']}"
                listing[key] = read_boxes(group / f"{r['group']}_not" / f"{stem}.txt")
            x, y = p % w + int(r["crop_x"]), p // w + int(r["crop_y"])
            b = listing[key]
            hits.append(bool(((b[:, 0] <= x) & (x <= b[:, 2]) & (b[:, 1] <= y) & (y <= b[:, 3])).any()))
            found.append(bool(s > (meta.get("threshold") or 0.0)))
    hits_np, found_np = np.array(hits), np.array(found)
    return {"fail_crops": len(hits), "peak_in_box": float(hits_np.mean()),
            "peak_in_box_of_detected": float(hits_np[found_np].mean()) if found_np.any() else float("nan"),
            "detected": float(found_np.mean())}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", help="Compact checkpoint trained on the train groups (default: train one)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--minutes", type=float, default=12.0)
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--max-boards", type=int, default=None)
    parser.add_argument("--type-views", type=int, default=1, help="inspect.type_views: views averaged per box's kind")
    args = parser.parse_args()
    if not DEEPPCB.is_dir():
        sys.exit(f"DeepPCB not found at {DEEPPCB}")
    import torch

    from optical_inspection.actions.inspect import load_inspector
    from optical_inspection.spec import validate_dict

    torch.set_num_threads(args.threads)
    checkpoint = Path(args.checkpoint) if args.checkpoint else train_checkpoint(args.minutes, args.epochs)
    boards, truth = test_boards(args.max_boards)
    load = os.getloadavg()[0]
    split = {"csv_path": str(DEEPPCB / "trainval.txt"), "images_dir": str(DEEPPCB)}  # unused: boards come decoded
    config = validate_dict({"results_dir": str(OUT / "inspect"), "inspect": {"checkpoint": str(checkpoint)},
                            "dataset": {"input_map": None, "image_height": 128, "image_width": 128,
                                        "inspect_dataset": split}}, "inspect")
    inspector = load_inspector(config)
    inspector.type_views = args.type_views

    def network(test, golden):
        result = inspector.inspect(test, golden)
        return result.boxes, result.scores, result.types

    figures = {"boards": len(boards), "threads": args.threads, "load_avg_1min_at_start": load,
               "checkpoint": str(checkpoint), "type_views": args.type_views}
    def hybrid(test, golden):
        inspector.boxes = "difference"
        try:
            return network(test, golden)
        finally:
            inspector.boxes = "map"

    val_boards, val_truth = test_boards(args.max_boards, "val")
    side, nms = {}, {}
    for name, detect in (("network", network), ("hybrid", hybrid)):  # inspect.min_box_side, nms_iou: on 50600
        inspector.nms_iou = 1.0
        side[name] = _best_on_val(inspector, "min_box_side", SIDES, detect, val_boards, val_truth, name)
        inspector.min_box_side = side[name]
        nms[name] = _best_on_val(inspector, "nms_iou", NMS_IOUS, detect, val_boards, val_truth, name)
    cut = {}
    for name, detect in (("network", network), ("hybrid", hybrid), ("classical", classical())):
        inspector.min_box_side, inspector.nms_iou = side.get(name, 0), nms.get(name, 1.0)
        cut[name] = best_min_score(run_detector(detect, val_boards)[0], val_truth)
    figures.update({"min_box_side": side, "nms_iou": nms})
    inspector.min_box_side, inspector.nms_iou = side["network"], nms["network"]
    dets, rate = run_detector(network, boards)
    print("RESULT " + json.dumps({"method": "compact_map", **figures, "boards_per_s": rate,
                                  **report(dets, truth, cut["network"])}), flush=True)
    moved, moved_truth = perturbed(boards, truth)
    dets, rate = run_detector(network, moved)
    print("RESULT " + json.dumps({"method": "compact_map_shift8_rot1", **figures, "boards_per_s": rate,
                                  **report(dets, moved_truth, cut["network"])}), flush=True)
    inspector.register = False
    dets, rate = run_detector(network, moved)
    print("RESULT " + json.dumps({"method": "compact_map_shift8_rot1_unregistered", **figures, "boards_per_s": rate,
                                  **report(dets, moved_truth, cut["network"])}), flush=True)
    inspector.register = True
    inspector.min_box_side, inspector.nms_iou = side["hybrid"], nms["hybrid"]
    dets, rate = run_detector(hybrid, boards)
    print("RESULT " + json.dumps({"method": "compact_difference_boxes", **figures, "boards_per_s": rate,
                                  **report(dets, truth, cut["hybrid"])}), flush=True)
    dets, rate = run_detector(hybrid, moved)
    print("RESULT " + json.dumps({"method": "compact_difference_boxes_shift8_rot1", **figures,
                                  "boards_per_s": rate, **report(dets, moved_truth, cut["hybrid"])}), flush=True)
    for name, boxes in (("hybrid", "difference"), ("network", "map")):
        inspector.min_box_side, inspector.nms_iou = side[name], nms[name]
        for top in (1, 2, 3):  # typed boxes ranked by P(defect) x P(kind): the likeliest kind per box, two or three
            ranked = kind_ranked(inspector, top, boxes)
            cut_ranked = best_min_score(run_detector(ranked, val_boards)[0], val_truth)
            dets, rate = run_detector(ranked, boards)
            method = f"compact_{'difference' if boxes == 'difference' else 'map'}_boxes_kind_ranked_top{top}"
            print("RESULT " + json.dumps({"method": method, **figures, "boards_per_s": rate,
                                          **report(dets, truth, cut_ranked)}), flush=True)
    dets, rate = run_detector(classical(), boards)
    print("RESULT " + json.dumps({"method": "classical_difference", **figures, "boards_per_s": rate,
                                  **report(dets, truth, cut["classical"])}), flush=True)
    print("RESULT " + json.dumps({"method": "heatmap_peak_on_fail_crops", **peak_in_box_rate(checkpoint)}),
          flush=True)
    print(f"load average (1 min) at the end: {os.getloadavg()[0]:.2f}", flush=True)


if __name__ == "__main__":
    main()
