"""Times `model.fit` steps: the path users train through.

One model-ready batch is placed on the device once (JAX) and yielded again
every step, so the timed step is Keras' own `fit` loop around the model's
`train_step`: batch fetch, dispatch, the step, metric and log updates. The
batch is already model-ready, so keras-hub's preprocessing wrapper around
`fit` (a tf.data or grain pipeline) is skipped; nothing here needs
TensorFlow.
"""

import time

import keras
import numpy as np


class StepTimer(keras.callbacks.Callback):
    """Times each `fit` step from batch begin to end, blocking on the loss."""

    def __init__(self):
        super().__init__()
        self.times: list[float] = []
        self._begin = 0.0

    def on_train_batch_begin(self, batch, logs=None):
        self._begin = time.perf_counter()

    def on_train_batch_end(self, batch, logs=None):
        float(np.asarray((logs or {}).get("loss", 0.0)))
        self.times.append(time.perf_counter() - self._begin)


def on_device(batch: dict) -> dict:
    """Places a numpy batch on the default JAX device once; other backends
    take numpy batches as they are."""
    if keras.backend.backend() != "jax":
        return batch
    import jax

    return {k: jax.device_put(v) for k, v in batch.items()}


class FitRunner:
    """Runs `fit` on one resident batch for a few steps at a time."""

    def __init__(self, model: keras.Model, batch: dict):
        self.model = model
        self.batch = on_device(batch)

    def run(self, steps: int) -> list[float]:
        def repeat():
            while True:
                yield (self.batch,)

        timer = StepTimer()
        keras.Model.fit(
            self.model,
            repeat(),
            steps_per_epoch=steps,
            epochs=1,
            shuffle=False,
            verbose=0,
            callbacks=[timer],
        )
        return timer.times
