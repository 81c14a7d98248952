"""`save_to_preset` refuses NaN or infinite weights unless allowed, and
`from_preset` warns about them, for every keras_vl backbone and task (the
check lives in `keras_vl.models.finite_presets`): here a Clippo task and a
ViT backbone."""

import keras
import numpy as np
import pytest
from conftest import to_numpy
from model_contract import tiny_vit_kwargs

from keras_vl.layers.text_renderer import TextRenderer
from keras_vl.models import (
    Clippo,
    ClippoBackbone,
    ClippoPreprocessor,
    ViTBackbone,
)


def tiny_vit():
    return ViTBackbone(
        **tiny_vit_kwargs(
            width=32,
            mlp_dim=64,
            pool_type="map",
            num_classes=16,
            head_zeroinit=False,
        )
    )


def tiny_clippo():
    backbone = ClippoBackbone(tiny_vit(), TextRenderer(image_size=32))
    return Clippo(backbone, ClippoPreprocessor(32, 8))


def poison(model, value):
    """Puts `value` into one entry of the model's first kernel and returns
    that weight's path."""
    weight = next(w for w in model.weights if w.path.endswith("kernel"))
    array = to_numpy(weight).copy()
    array.flat[3] = value
    weight.assign(array)
    return weight.path


@pytest.mark.parametrize("value", [np.nan, np.inf])
@pytest.mark.parametrize(
    "build, cls", [(tiny_clippo, Clippo), (tiny_vit, ViTBackbone)]
)
def test_non_finite_weights_refused_then_warned(build, cls, value, tmp_path):
    model = build()
    path = poison(model, value)
    with pytest.raises(ValueError, match=path):
        model.save_to_preset(str(tmp_path / "refused"))
    assert not (tmp_path / "refused" / "model.weights.h5").exists()

    model.save_to_preset(str(tmp_path / "allowed"), allow_non_finite=True)
    with pytest.warns(UserWarning, match=path):
        restored = cls.from_preset(str(tmp_path / "allowed"))
    for a, b in zip(model.weights, restored.weights, strict=True):
        np.testing.assert_array_equal(to_numpy(a), to_numpy(b))


def test_finite_weights_round_trip_silently(tmp_path, recwarn):
    model = tiny_vit()
    model.save_to_preset(str(tmp_path))
    ViTBackbone.from_preset(str(tmp_path))
    assert not [w for w in recwarn if "non-finite" in str(w.message)]
    assert keras.ops.all(keras.ops.isfinite(model.weights[0]))


def test_trained_task_reloads_without_optimizer_state(tmp_path, recwarn):
    model = tiny_clippo()
    model.compile(learning_rate=1e-2)
    pixels = np.random.default_rng(0).integers(0, 256, (4, 32, 32, 3))
    data = {"images": pixels.astype("uint8"), "texts": list("abcd")}
    model.fit(data, batch_size=4, epochs=1, verbose=0)
    assert int(to_numpy(model.optimizer.iterations)) == 1
    model.save_to_preset(str(tmp_path))

    restored = Clippo.from_preset(str(tmp_path))
    messages = [str(w.message) for w in recwarn]
    assert not [m for m in messages if "optimizer" in m], messages
    assert len(model.weights) == len(restored.weights)
    for a, b in zip(model.weights, restored.weights, strict=True):
        np.testing.assert_array_equal(to_numpy(a), to_numpy(b))
    # Training moved the task's own weight (the temperature) off its init.
    assert float(to_numpy(restored.log_temperature)[0]) != np.log(10.0)
