"""Zero-shot: the bundled pretrained weights (synthetic pairs only, no DeepPCB training) on every DeepPCB crop.

    python benchmarks/zero_shot.py [--checkpoint pretrained] [--threads 2]

Converts ``../shared/datasets/deeppcb-trainval`` as ``benchmarks/train_eval.py`` does (128-px crops of all seven
board groups: 27,492 pairs), decodes each crop once, scores every pair with the network in eval mode and prints
AUROC and recall at 1 % / 0.1 % false alarm over all crops, per board group and per defect kind (each kind
against all PASS pairs).
"""
from __future__ import annotations

import argparse
import csv
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from train_eval import convert


def load_crops(folders: dict[str, Path]) -> dict[str, np.ndarray]:
    """Grey uint8 test/golden crops [N, 128, 128], labels and groups of every converted split."""
    from PIL import Image

    tests, goldens, labels, groups = [], [], [], []
    for folder in folders.values():
        with open(folder / "dataset.csv", newline="") as fh:
            for row in csv.DictReader(fh):
                name = row["object_name"] + ".jpg"
                tests.append(np.asarray(Image.open(folder / "images" / row["input_path"] / name).convert("L")))
                goldens.append(np.asarray(Image.open(folder / "images" / row["golden_path"] / name).convert("L")))
                labels.append(row["label"])
                groups.append(row["group"])
    return {"test": np.stack(tests), "golden": np.stack(goldens), "label": np.array(labels),
            "group": np.array(groups)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", default="pretrained")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    import torch

    from optical_inspection.models.checkpoint import load_checkpoint
    from optical_inspection.models.denormals import flush_denormals
    from optical_inspection.models.metrics import auroc, recall_at_false_alarm
    from optical_inspection.models.pretrain import normalise

    torch.set_num_threads(args.threads)
    crops = load_crops(convert(Path(__file__).resolve().parent / "out" / "train_eval"))
    model, _ = load_checkpoint(args.checkpoint)
    model.eval()
    test, golden = torch.from_numpy(crops["test"])[:, None], torch.from_numpy(crops["golden"])[:, None]
    t0 = time.perf_counter()
    with torch.inference_mode(), flush_denormals():
        s = np.concatenate([model.score(normalise(test[i:i + 512]), normalise(golden[i:i + 512])).numpy()
                            for i in range(0, len(test), 512)])
    y = (crops["label"] != "PASS").astype(np.float64)

    def line(name: str, scores: np.ndarray, labels: np.ndarray) -> str:
        return (f"{name:<10} {len(scores):>6} pairs  AUROC {auroc(scores, labels):.4f}  recall at 1 % / 0.1 % false "
                f"alarm {recall_at_false_alarm(scores, labels, 0.01):.3f} / "
                f"{recall_at_false_alarm(scores, labels, 0.001):.3f}")

    print(f"scored {len(s)} pairs in {time.perf_counter() - t0:.0f} s")
    print(line("all", s, y))
    for group in sorted(set(crops["group"])):
        m = crops["group"] == group
        print(line(group, s[m], y[m]))
    for kind in sorted(set(crops["label"]) - {"PASS"}):
        m = (crops["label"] == kind) | (y == 0)
        print(line(kind, s[m], y[m]))


if __name__ == "__main__":
    main()
