"""`dataset_convert`: raw AOI exports (TAO's factory-PCB layout) or DeepPCB -> pair CSVs (+ images for DeepPCB)."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from ..config import ExperimentConfig
from ..config.dataset_convert import DatasetConvertConfig
from ..errors import DataError
from ..status import StatusLogger


def run(config: ExperimentConfig, results_dir: Path, status: StatusLogger) -> dict[str, Any]:
    cfg = config.dataset_convert
    if not cfg.data_convert_output_dir:
        raise DataError("dataset_convert.data_convert_output_dir must be set (the folder receiving the CSVs)")
    if cfg.format == "deeppcb":
        return _deeppcb(cfg, cfg.data_convert_output_dir, status)
    from ..data.convert_factory import convert_factory

    status.write("RUNNING", f"Converting factory-PCB export {cfg.root_dataset_dir}")
    result = convert_factory(cfg)
    kpi = {f"{split}_{k}": v for split, counts in result["counts"].items() for k, v in counts.items()}
    return {"artifacts": result["artifacts"], "kpi": kpi}


def _deeppcb(cfg: DatasetConvertConfig, out_dir: str, status: StatusLogger) -> dict[str, Any]:
    from ..data.convert_deeppcb import convert_deeppcb

    d = cfg.deeppcb
    if not d.root_dir:
        raise DataError("dataset_convert.deeppcb.root_dir must be set (the DeepPCB folder holding PCBData/)")
    status.write("RUNNING", f"Converting DeepPCB {d.root_dir} (window {d.window_size}, seed {d.seed})")
    out = convert_deeppcb(d.root_dir, out_dir, split_list=d.split_list, groups=list(d.groups),
                          window_size=d.window_size, jitter=d.jitter, pass_per_fail=d.pass_per_fail, seed=d.seed,
                          boards=d.boards)
    status.write("RUNNING", f"Wrote {out['pairs']} pairs ({out['fail']} defect, {out['pass']} PASS) from "
                 f"{out['source_images']} DeepPCB images. Train with dataset.input_map: null, image_ext: .jpg, "
                 f"image_height = image_width = {d.window_size}.")
    artifacts = {"dataset_csv": str(out["csv_path"]), "images_dir": str(out["images_dir"]),
                 "boxes_csv": str(out["boxes_path"])}
    if out["boards_dir"] is not None:
        artifacts["boards_dir"] = str(out["boards_dir"])
    return {"artifacts": artifacts,
            "kpi": {"pairs": out["pairs"], "fail_pairs": out["fail"], "pass_pairs": out["pass"],
                    "source_images": out["source_images"]}}
