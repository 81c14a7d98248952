"""An interrupted `fit` resumed by `keras.callbacks.BackupAndRestore` ends
exactly where an uninterrupted one does.

Three epochs of a tiny Clippo and a tiny LiT: one run is stopped by an
exception at the end of epoch 2, then restarted with a fresh model and the
same callback; it must run epoch 3 only and end with weights and optimizer
state (`iterations`, moments, `skipped_steps`) bit-identical to a run that
was never interrupted. `shuffle=False`: `ContrastiveModel.fit` reshuffles
in-memory data every epoch, and a restarted run cannot replay the order an
uninterrupted one would have drawn for epoch 3.
"""

import keras
import numpy as np
import pytest
from conftest import to_numpy
from test_nonfinite_steps import (
    CAPTIONS,
    LENGTH,
    SIZE,
    VOCAB,
    tiny_clippo,
    tiny_lit,
)

ROWS, BATCH, EPOCHS = 8, 4, 3
MODELS = {"clippo": tiny_clippo, "lit": tiny_lit}


class Interrupt(Exception):
    pass


class InterruptAfterEpoch(keras.callbacks.Callback):
    def __init__(self, epoch):
        super().__init__()
        self.epoch = epoch

    def on_epoch_end(self, epoch, logs=None):
        if epoch + 1 == self.epoch:
            raise Interrupt(f"stopped after epoch {self.epoch}")


def data(name):
    rng = np.random.default_rng(0)
    if name == "lit":
        images = rng.uniform(-1, 1, (ROWS, SIZE, SIZE, 3)).astype("float32")
        return {
            "images": images,
            "token_ids": rng.integers(1, VOCAB, (ROWS, LENGTH)),
        }
    images = rng.integers(0, 256, (ROWS, SIZE, SIZE, 3), dtype=np.uint8)
    return {"images": images, "texts": CAPTIONS + CAPTIONS[::-1]}


def fresh_model(name):
    keras.utils.set_random_seed(0)  # The same initial weights every time.
    model = MODELS[name]()
    model.compile(learning_rate=3e-3)
    return model


def fit(model, name, callbacks):
    return model.fit(
        data(name),
        batch_size=BATCH,
        epochs=EPOCHS,
        shuffle=False,
        callbacks=callbacks,
        verbose=0,
    )


def state(model):
    return [to_numpy(v) for v in model.weights + model.optimizer.variables]


@pytest.mark.parametrize("name", sorted(MODELS))
def test_backup_and_restore_resumes_bit_identically(name, tmp_path):
    uninterrupted = fresh_model(name)
    fit(uninterrupted, name, [])

    backup = keras.callbacks.BackupAndRestore(backup_dir=str(tmp_path))
    with pytest.raises(Interrupt):
        fit(fresh_model(name), name, [backup, InterruptAfterEpoch(2)])

    resumed = fresh_model(name)
    history = fit(resumed, name, [backup])
    assert history.epoch == [2]  # Epoch 3 only.
    steps = EPOCHS * ROWS // BATCH
    assert int(to_numpy(resumed.optimizer.iterations)) == steps
    expected = state(uninterrupted)
    for a, b in zip(expected, state(resumed), strict=True):
        np.testing.assert_array_equal(a, b)
