"""Training steps with a non-finite loss or gradient never reach the weights.

`ContrastiveTraining.compile(skip_non_finite_steps=True)` (the default)
wraps the optimizer in `SkipNonFiniteOptimizer`. Through `fit`, compiled as
Keras compiles it by default (`jit_compile="auto"`) on every backend, a
batch holding a NaN pixel, or a loss forced to infinity, must leave the
weights and the optimizer's state bit-identical and count one skipped step
in the logs; the next clean batch trains as usual. With the option off the
same batch turns the weights into NaN (so these tests can fail). Data
parallelism (JAX `DataParallel`, TF `MirroredStrategy`) is covered in
`test_contrastive_distributed.py`.
"""

import keras
import numpy as np
import pytest
from conftest import to_numpy
from model_contract import tiny_text_kwargs, tiny_vit_kwargs

from keras_vl.layers.text_renderer import TextRenderer
from keras_vl.models import (
    Clippo,
    ClippoBackbone,
    ClippoPreprocessor,
    LiT,
    LiTBackbone,
    TextTransformer,
    ViTBackbone,
)
from keras_vl.models.skip_non_finite_optimizer import SkipNonFiniteOptimizer

BATCH, SIZE, LENGTH, VOCAB = 4, 32, 8, 64
CAPTIONS = ["a red circle", "Ein blaues Quadrat", "un triangle vert", "星"]


def tiny_vit(**kwargs):
    return ViTBackbone(
        **tiny_vit_kwargs(image_size=SIZE, width=32, mlp_dim=64, **kwargs)
    )


def tiny_clippo(model_cls=Clippo):
    vit = tiny_vit(pool_type="map", num_classes=16, head_zeroinit=False)
    backbone = ClippoBackbone(vit, TextRenderer(image_size=SIZE))
    return model_cls(backbone, ClippoPreprocessor(SIZE, LENGTH))


def tiny_lit():
    """LiT fed model-ready images and token ids (no preprocessor)."""
    text = TextTransformer(
        **tiny_text_kwargs(
            vocab_size=VOCAB, sequence_length=LENGTH, width=32, mlp_dim=64
        )
    )
    backbone = LiTBackbone(
        tiny_vit(pool_type="gap"),
        text,
        image_projection_dim=16,
        text_projection_dim=16,
    )
    model = LiT(backbone, None, "Lu")
    model.preprocessor = None  # LiT makes one by default.
    return model


class InfiniteLoss(Clippo):
    """A model whose loss is infinite, with finite gradients."""

    def compute_loss(self, *args, **kwargs):
        return super().compute_loss(*args, **kwargs) + float("inf")


MODELS = {"clippo": tiny_clippo, "lit": tiny_lit}


def batch(name, nan=False, seed=0):
    rng = np.random.default_rng(seed)
    if name == "lit":
        images = rng.uniform(-1, 1, (BATCH, SIZE, SIZE, 3)).astype("float32")
        texts = {"token_ids": rng.integers(1, VOCAB, (BATCH, LENGTH))}
    else:
        images = rng.uniform(0, 255, (BATCH, SIZE, SIZE, 3)).astype("float32")
        texts = {"texts": CAPTIONS}
    if nan:
        images[1, 3, 5, 0] = np.nan
    return {"images": images, **texts}


def fit_once(model, x):
    history = model.fit(x, batch_size=BATCH, shuffle=False, verbose=0)
    return {key: values[-1] for key, values in history.history.items()}


def state(model):
    """Weights and the inner optimizer's variables, as numpy copies."""
    optimizer = model.optimizer
    optimizer = getattr(optimizer, "inner_optimizer", optimizer)
    return [to_numpy(v).copy() for v in model.weights + optimizer.variables]


def identical(a, b):
    return all(
        np.array_equal(x, y, equal_nan=True) for x, y in zip(a, b, strict=True)
    )


@pytest.mark.parametrize("name", sorted(MODELS))
def test_nan_batch_is_skipped_then_training_resumes(name):
    keras.utils.set_random_seed(0)
    model = MODELS[name]()
    model.compile(optimizer=keras.optimizers.Adam(1e-3))
    assert isinstance(model.optimizer, SkipNonFiniteOptimizer)
    logs = fit_once(model, batch(name))
    assert logs["skipped_steps"] == 0
    before = state(model)

    logs = fit_once(model, batch(name, nan=True))
    assert np.isnan(logs["loss"])
    assert logs["skipped_steps"] == 1
    assert identical(before, state(model))  # Weights, moments, iterations.
    assert int(to_numpy(model.optimizer.iterations)) == 1

    logs = fit_once(model, batch(name, seed=1))
    assert np.isfinite(logs["loss"]) and logs["skipped_steps"] == 1
    assert int(to_numpy(model.optimizer.iterations)) == 2
    after = state(model)
    assert not identical(before, after)
    assert all(np.isfinite(x).all() for x in after)


@pytest.mark.parametrize("skip", [True, False])
def test_lit_cached_features_model_skips_too(skip):
    keras.utils.set_random_seed(0)
    lit = tiny_lit()
    lit.compile(skip_non_finite_steps=skip)
    model = lit.cached_features_model()
    assert isinstance(model.optimizer, SkipNonFiniteOptimizer) is skip
    rng = np.random.default_rng(0)
    features = rng.normal(size=(BATCH, lit.backbone.image_feature_dim))
    features[2, 0] = np.nan
    tokens = rng.integers(1, VOCAB, (BATCH, LENGTH))
    model.optimizer.build(model.trainable_variables)
    before = state(model)
    logs = fit_once(model, {"image_features": features, "token_ids": tokens})
    if skip:
        assert logs["skipped_steps"] == 1
        assert identical(before, state(model))
    else:
        assert any(np.isnan(x).any() for x in state(model))


def test_infinite_loss_is_skipped():
    keras.utils.set_random_seed(0)
    model = tiny_clippo(InfiniteLoss)
    model.compile(optimizer=keras.optimizers.Adam(1e-3))
    model.optimizer.build(model.trainable_variables)
    before = state(model)
    logs = fit_once(model, batch("clippo"))
    assert logs["loss"] == np.inf and logs["skipped_steps"] == 1
    assert identical(before, state(model))


@pytest.mark.parametrize("name", sorted(MODELS))
def test_without_skipping_nan_reaches_the_weights(name):
    keras.utils.set_random_seed(0)
    model = MODELS[name]()
    model.compile(
        optimizer=keras.optimizers.Adam(1e-3), skip_non_finite_steps=False
    )
    assert not isinstance(model.optimizer, SkipNonFiniteOptimizer)
    logs = fit_once(model, batch(name, nan=True))
    assert "skipped_steps" not in logs
    assert any(np.isnan(to_numpy(w)).any() for w in model.trainable_weights)


@pytest.mark.parametrize("skip", [True, False])
def test_compile_config_keeps_the_option(skip):
    model = tiny_clippo()
    model.compile(
        optimizer=keras.optimizers.SGD(0.5), skip_non_finite_steps=skip
    )
    config = model.get_compile_config()
    assert config["skip_non_finite_steps"] is skip

    restored = tiny_clippo()
    restored.compile_from_config(config)
    assert restored.skip_non_finite_steps is skip
    optimizer = restored.optimizer
    assert isinstance(optimizer, SkipNonFiniteOptimizer) is skip
    inner = optimizer.inner_optimizer if skip else optimizer
    assert isinstance(inner, keras.optimizers.SGD)
    assert float(to_numpy(inner.learning_rate)) == 0.5
