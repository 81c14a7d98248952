"""`run_demo`: the whole demo run, from data to preset, figure and summary."""

from __future__ import annotations

import os
import time
from typing import Any

import numpy as np

from keras_vl.data import ShapesDataset
from keras_vl.demo.demo_config import DEFAULT_CONFIG, QUICK_CONFIG
from keras_vl.demo.evaluator import Evaluator
from keras_vl.demo.similarity_figure import save_similarity_figure
from keras_vl.demo.training import build_model, train

#: Name of the preset folder written under `output_dir`.
PRESET_NAME = "clippo_shapes"
#: Name of the similarity figure written under `output_dir`.
FIGURE_NAME = "similarity.png"


def run_demo(
    output_dir: str = "demo_output", quick: bool = False, seed: int = 0
) -> dict[str, Any]:
    """Trains a small CLIPPO on coloured shapes and reports zero-shot scores.

    Writes `output_dir/clippo_shapes` (the trained model as a preset,
    reloadable with `keras_vl.models.Clippo.from_preset`) and
    `output_dir/similarity.png`, and prints a summary table.

    Args:
        output_dir: Folder for the preset and the figure.
        quick: Train a tiny model for a handful of steps only (a smoke
            test; its scores are near chance).
        seed: Seed of the dataset, the weights and the training stream.

    Returns:
        A dict with `seen_top1`, `held_out_top1` (mean of the last
        evaluations), `held_out_top1_last`, the same two with class-name
        prompts (`name_seen_top1`, `name_held_out_top1`, see `Evaluator`),
        `t2i_recall1`, `i2t_recall1` and `chance`, all in [0, 1], plus
        `wall_time_s`, `steps`, `batch_size`, `num_classes`, `num_seen`,
        `num_held_out` and `retrieval_pool`.

    Example:

    ```python
    metrics = run_demo("demo_output", quick=True)
    metrics["held_out_top1"]
    ```
    """
    start = time.perf_counter()
    config = QUICK_CONFIG if quick else DEFAULT_CONFIG
    os.makedirs(output_dir, exist_ok=True)
    dataset = ShapesDataset(
        image_size=config.image_size,
        caption_templates=config.caption_templates,
        radius_range=config.radius_range,
        seed=seed,
    )
    print(
        f"Dataset: {len(dataset.classes)} colour x shape classes, "
        f"held out of training: "
        + ", ".join(" ".join(pair) for pair in dataset.held_out_classes)
    )
    model = build_model(config, seed)
    print(
        f"CLIPPO: ViT {config.width}w x {config.depth} blocks, patch "
        f"{config.patch_size}, {model.count_params():,} parameters; "
        f"{config.steps} steps of {config.batch_size} pairs "
        f"({config.unnamed_hue_fraction:.0%} shapes in unnamed hues), "
        f"{config.loss} loss over all matching pairs"
    )
    evaluator = Evaluator(dataset, config, seed)
    history = train(model, dataset, config, evaluator, seed)
    final = history[-1][1]
    held_out = [m["held_out_top1"] for _, m in history]

    preset = os.path.join(output_dir, PRESET_NAME)
    model.save_to_preset(preset)
    figure = os.path.join(output_dir, FIGURE_NAME)
    save_similarity_figure(model, dataset, figure, seed=seed)
    print(f"Wrote {preset} and {figure}")

    metrics = {
        "seen_top1": final["seen_top1"],
        "held_out_top1": float(np.mean(held_out)),
        "held_out_top1_last": final["held_out_top1"],
        "name_seen_top1": final["name_seen_top1"],
        "name_held_out_top1": float(
            np.mean([m["name_held_out_top1"] for _, m in history])
        ),
        "t2i_recall1": final["t2i_recall1"],
        "i2t_recall1": final["i2t_recall1"],
        "chance": 1.0 / len(dataset.classes),
        "wall_time_s": time.perf_counter() - start,
        "steps": config.steps,
        "batch_size": config.batch_size,
        "num_classes": len(dataset.classes),
        "num_seen": len(dataset.seen_classes),
        "num_held_out": len(dataset.held_out_classes),
        "retrieval_pool": config.retrieval_pool,
    }
    _print_summary(metrics, held_out)
    return metrics


def _print_summary(metrics: dict[str, Any], evals: list[float]) -> None:
    rows = [
        (
            f"zero-shot top-1, seen combinations ({metrics['num_seen']})",
            f"{metrics['seen_top1']:7.1%}",
        ),
        (
            f"zero-shot top-1, held-out combinations "
            f"({metrics['num_held_out']})",
            f"{metrics['held_out_top1']:7.1%}   (mean of "
            + ", ".join(f"{v:.1%}" for v in evals)
            + ")",
        ),
        (
            "  with class-name prompts: seen, held-out",
            f"{metrics['name_seen_top1']:7.1%}, "
            f"{metrics['name_held_out_top1']:.1%}",
        ),
        (
            f"text->image recall@1 (pools of {metrics['retrieval_pool']})",
            f"{metrics['t2i_recall1']:7.1%}",
        ),
        (
            f"chance: 1 / {metrics['num_classes']} classes",
            f"{metrics['chance']:7.1%}",
        ),
        (
            "training",
            f"{metrics['steps']} steps x {metrics['batch_size']} pairs",
        ),
        ("wall time", f"{metrics['wall_time_s']:7.1f} s"),
    ]
    width = max(len(name) for name, _ in rows)
    print("\n" + "=" * (width + 30))
    print("CLIPPO trained from scratch on coloured shapes")
    print("=" * (width + 30))
    for name, value in rows:
        print(f"{name:<{width}}  {value}")
    print("=" * (width + 30), flush=True)
