"""Building the demo's small CLIPPO and training it with `fit`."""

from __future__ import annotations

import keras

from keras_vl.data import ShapesDataset
from keras_vl.demo.demo_config import DemoConfig
from keras_vl.demo.evaluator import Evaluator
from keras_vl.demo.training_batches import training_data
from keras_vl.layers import TextRenderer
from keras_vl.models import (
    Clippo,
    ClippoBackbone,
    ClippoPreprocessor,
    ViTBackbone,
)


def build_model(config: DemoConfig, seed: int = 0) -> Clippo:
    """Builds and compiles a randomly initialised small CLIPPO.

    Args:
        config: Model size and optimiser settings.
        seed: Seed of the weight initialisation.

    Returns:
        A compiled `keras_vl.models.Clippo`.

    Example:

    ```python
    model = build_model(QUICK_CONFIG, seed=0)
    model.count_params()
    ```
    """
    keras.utils.set_random_seed(seed)
    vit = ViTBackbone(
        image_size=config.image_size,
        patch_size=config.patch_size,
        width=config.width,
        depth=config.depth,
        num_heads=config.num_heads,
        mlp_dim=config.mlp_dim,
        posemb=config.posemb,
        pool_type=config.pool_type,
        num_classes=config.out_dim,
        head_zeroinit=False,
    )
    renderer = TextRenderer(
        image_size=config.image_size,
        font_size=config.font_size,
    )
    backbone = ClippoBackbone(vit, renderer)
    preprocessor = ClippoPreprocessor(
        image_size=config.image_size,
        sequence_length=config.sequence_length,
    )
    model = Clippo(
        backbone,
        preprocessor,
        loss=config.loss,
        temperature_init=config.temperature_init,
    )
    warmup = min(config.warmup_steps, config.steps - 1)
    # Linear warmup to the peak, then cosine decay to zero at the end.
    schedule = keras.optimizers.schedules.CosineDecay(
        initial_learning_rate=0.0,
        decay_steps=max(config.steps - warmup, 1),
        warmup_target=config.learning_rate,
        warmup_steps=warmup,
    )
    model.compile(learning_rate=schedule, weight_decay=config.weight_decay)
    return model


def train(
    model: Clippo,
    dataset: ShapesDataset,
    config: DemoConfig,
    evaluator: Evaluator,
    seed: int = 0,
    verbose: int = 1,
) -> list[tuple[int, dict[str, float]]]:
    """Trains `model` for `config.steps` steps with `fit`.

    Args:
        model: A compiled `Clippo`.
        dataset: The `ShapesDataset`.
        config: Steps, batch size and evaluation schedule.
        evaluator: An `Evaluator` run at the last evaluation points.
        seed: Seed of the training stream.
        verbose: `fit` verbosity: 1 for a progress bar, 2 for one line per
            evaluation interval.

    Returns:
        The `(step, metrics)` of each evaluation, in order.

    Example:

    ```python
    history = train(model, dataset, QUICK_CONFIG, evaluator)
    step, metrics = history[-1]
    ```
    """
    train_data = training_data(dataset, config, seed)
    history: list[tuple[int, dict[str, float]]] = []
    num_epochs = config.steps // config.eval_every
    # One Keras epoch per evaluation interval; the stream is endless and
    # `fit` keeps iterating it across epochs, so no batch repeats.
    model.fit(
        train_data,
        epochs=num_epochs,
        steps_per_epoch=config.eval_every,
        callbacks=[_EvaluateLast(evaluator, config, history)],
        shuffle=False,
        verbose=verbose,
    )
    return history


class _EvaluateLast(keras.callbacks.Callback):
    """Evaluates after each of the last `num_evals` epochs and appends
    `(step, metrics)` to `history`."""

    def __init__(self, evaluator: Evaluator, config: DemoConfig, history):
        super().__init__()
        self.evaluator = evaluator
        self.eval_every = config.eval_every
        num_epochs = config.steps // config.eval_every
        self.first = max(num_epochs - config.num_evals, 0)
        self.history = history

    def on_epoch_end(self, epoch, logs=None):
        if epoch < self.first:
            return
        metrics = self.evaluator(self.model)
        step = (epoch + 1) * self.eval_every
        self.history.append((step, metrics))
        # The progress bar prints `logs` after this callback, so the
        # scores appear on the epoch's line.
        if logs is not None:
            logs.update(metrics)
