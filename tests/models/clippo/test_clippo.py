"""CLIPPO: fixture parity, user API, fit and preset round trip."""

import json

import keras
import numpy as np
import pytest
from conftest import load_npz, require_fixtures, to_numpy
from model_contract import (
    ContractTestCase,
    random_images,
    random_pixels,
    tiny_vit_kwargs,
)

from keras_vl.layers.text_renderer import TextRenderer
from keras_vl.models import (
    Clippo,
    ClippoBackbone,
    ClippoPreprocessor,
    ViTBackbone,
)
from tools import convert_big_vision

TOLERANCE = 1e-4


def contract_backbone():
    vit = ViTBackbone(
        **tiny_vit_kwargs(pool_type="map", num_classes=8, head_zeroinit=False)
    )
    return ClippoBackbone(vit, TextRenderer(image_size=32))


class ClippoContractTest(ContractTestCase):
    def test_backbone_contract(self):
        codepoints = np.array([[97, 98], [99, -1]], "int32")  # "ab", "c"
        inputs = {
            "images": random_images(),
            "texts": codepoints,
            # The second example trains as a text-text pair.
            "image_texts": np.stack([np.full(2, -1, "int32"), codepoints[0]]),
        }
        backbone = contract_backbone()
        self.run_backbone_contract(
            ClippoBackbone,
            {
                "vision_encoder": backbone.vision_encoder,
                "text_renderer": backbone.text_renderer,
            },
            inputs,
            {"image_embeddings": (2, 8), "text_embeddings": (2, 8)},
        )

    def test_task_contract(self):
        x = {"images": random_pixels(), "texts": ["a red circle", "Stern"]}
        # Targets are the positives matrix: each image's own text.
        positives = np.eye(2, dtype="float32")
        self.run_task_contract(
            Clippo,
            {
                "backbone": contract_backbone(),
                "preprocessor": ClippoPreprocessor(32, sequence_length=8),
            },
            (x, positives),
            {"image_embeddings": (2, 8), "text_embeddings": (2, 8)},
        )

    def test_preprocessor_contract(self):
        x = {
            "images": random_pixels(),
            "texts": ["abc", "Ünïcödé text longer than eight"],
            "image_texts": ["", "a sentence"],
        }
        output = self.run_preprocessor_contract(
            ClippoPreprocessor,
            {"image_size": 32, "sequence_length": 8},
            x,
            token_id_key="texts",
        )
        self.assertAllEqual(output["texts"][0], [97, 98, 99] + [-1] * 5)
        self.assertAllEqual(output["image_texts"][0], [-1] * 8)


def tiny_clippo(loss="softmax", image_size=32, sequence_length=24):
    vit = ViTBackbone(
        image_size=image_size,
        patch_size=16,
        width=32,
        depth=1,
        num_heads=2,
        mlp_dim=64,
        pool_type="map",
        num_classes=16,
        head_zeroinit=False,
    )
    backbone = ClippoBackbone(vit, TextRenderer(image_size=image_size))
    preprocessor = ClippoPreprocessor(image_size, sequence_length)
    return Clippo(backbone, preprocessor, loss=loss)


def pixel_batch(batch=4, size=32, seed=0):
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (batch, size, size, 3), dtype=np.uint8)


CAPTIONS = ["a red circle", "Ein blaues Quadrat", "un triangle vert", "星"]


@pytest.fixture(scope="module")
def converted_fixture(tmp_path_factory):
    root = require_fixtures("clippo")
    out = tmp_path_factory.mktemp("clippo") / "preset"
    convert_big_vision.main(
        [
            "--model",
            "clippo",
            "--checkpoint",
            str(root / "params.npz"),
            "--config",
            str(root / "config.json"),
            "--output",
            str(out),
            "--image-size",
            "64",
        ]
    )
    return root, out


def test_fixture_parity(converted_fixture):
    root, preset = converted_fixture
    model = Clippo.from_preset(str(preset))
    io = load_npz(root / "io.npz")
    texts = json.loads((root / "texts.json").read_text())

    # The renderer inside the model reproduces big_vision's text images.
    renderer = model.backbone.text_renderer
    rendered = to_numpy(renderer(renderer.codepoints(texts)))
    np.testing.assert_array_equal(rendered[..., 0], io["text_images_uint8"])

    zimg = model.encode_images(io["images"], preprocessed=True)
    ztxt = model.encode_texts(texts)
    assert np.abs(zimg - io["zimg"]).max() <= TOLERANCE
    assert np.abs(ztxt - io["ztxt"]).max() <= TOLERANCE
    assert (
        np.abs(
            model.encode_rendered_texts(io["texts"], preprocessed=True)
            - io["ztxt"]
        ).max()
        <= TOLERANCE
    )
    assert abs(float(to_numpy(model.logit_scale)) - 10.0) <= TOLERANCE
    logits = model.similarity(io["images"], texts, preprocessed=True)
    assert np.abs(logits - io["logits"]).max() <= 1e-3

    y_pred = model.backbone(
        {
            "images": io["images"],
            "texts": renderer.codepoints(texts),
            "image_texts": np.full((3, 1), -1, "int32"),
        }
    )
    loss = float(to_numpy(model.compute_loss(y_pred=y_pred)))
    assert abs(loss - float(io["loss"])) <= TOLERANCE


def test_raw_pixels_match_preprocessed(converted_fixture):
    _, preset = converted_fixture
    model = Clippo.from_preset(str(preset))
    pixels = pixel_batch(2, 64)
    preprocessed = pixels.astype("float32") / 255 * 2 - 1
    np.testing.assert_allclose(
        model.encode_images(pixels),
        model.encode_images(preprocessed, preprocessed=True),
        atol=1e-5,
    )
    # Other resolutions are resized by the preprocessor.
    assert model.encode_images(pixel_batch(2, 80)).shape == (2, 32)


def test_outputs_are_normalised_and_multilingual():
    model = tiny_clippo()
    texts = ["hello", "Привет", "مرحبا", "こんにちは", "שלום", "🙂", ""]
    z = model.encode_texts(texts)
    assert z.shape == (len(texts), 16)
    np.testing.assert_allclose(np.linalg.norm(z, axis=1), 1.0, atol=1e-5)
    # Different scripts render differently, so they embed differently;
    # the default font has the upper planes, so an emoji is not blank.
    assert len({tuple(np.round(row, 5)) for row in z}) == len(texts)
    assert np.abs(z[5] - z[6]).max() > 1e-3


def test_inputs_over_one_batch_run_compiled_and_agree():
    model = tiny_clippo()
    images = pixel_batch(batch=5)
    texts = ["a red circle", "Привет", "", "blue", "a green star"]
    # One batch: eager. Batches of 2: compiled, the last one padded.
    for encode, inputs in [
        (model.encode_images, images),
        (model.encode_texts, texts),
    ]:
        eager = encode(inputs)
        compiled = encode(inputs, batch_size=2)
        assert compiled.shape == eager.shape == (5, 16)
        assert compiled.dtype == np.float32
        np.testing.assert_allclose(compiled, eager, atol=1e-5)
    # The compiled encoder shares the model's weights: it sees updates.
    before = model.encode_texts(texts, batch_size=2)
    head = model.backbone.vision_encoder.get_layer("head")
    head.kernel.assign(head.kernel * 2.0 + 0.1)
    after = model.encode_texts(texts, batch_size=2)
    np.testing.assert_allclose(after, model.encode_texts(texts), atol=1e-5)
    assert np.abs(after - before).max() > 1e-3
    with pytest.raises(ValueError, match="batch_size"):
        model.encode_texts(texts, batch_size=0)


def test_preprocessor_numpy_and_tf_data_agree():
    import tensorflow as tf

    preprocessor = ClippoPreprocessor(image_size=32, sequence_length=8)
    pixels = pixel_batch(3)
    texts = ["abc", "Ünïcödé text longer than eight", ""]
    eager = preprocessor({"images": pixels, "texts": texts})
    ds = (
        tf.data.Dataset.from_tensor_slices({"images": pixels, "texts": texts})
        .batch(3)
        .map(preprocessor)
    )
    batch = next(iter(ds))
    for key in ("images", "texts", "image_texts"):
        np.testing.assert_allclose(to_numpy(eager[key]), batch[key].numpy())
    codepoints = to_numpy(eager["texts"])
    assert codepoints.shape == (3, 8)
    assert list(codepoints[0]) == [97, 98, 99] + [-1] * 5
    assert list(codepoints[2]) == [-1] * 8
    images = to_numpy(eager["images"])
    assert images.min() >= -1.0 and images.max() <= 1.0


def test_training_and_inference_render_texts_alike():
    """`encode_texts` decodes with NumPy, the preprocessor with tf.strings:
    both must give the renderer the same pixels, exotic input included."""
    model = tiny_clippo(sequence_length=12)
    texts = [
        "UPPER lower",
        "",
        "A\u0301 e\u0301",  # combining accents
        "日本語 😀👍🏽",
        b"\xff\xfeab\xc3",  # invalid UTF-8
        "x" * 30,
    ]
    inference = model.text_codepoints(texts)
    training = to_numpy(
        model.preprocessor({"images": pixel_batch(6), "texts": texts})["texts"]
    )
    render = model.backbone.render
    np.testing.assert_array_equal(
        to_numpy(render(inference)), to_numpy(render(training))
    )
    with pytest.raises(ValueError, match="'texts' must hold valid Unicode"):
        model.preprocessor({"images": pixel_batch(1), "texts": ["\ud800"]})


@pytest.mark.parametrize("loss", ["softmax", "sigmoid"])
def test_fit_reduces_loss(loss):
    keras.utils.set_random_seed(0)
    model = tiny_clippo(loss=loss)
    model.compile(learning_rate=1e-3)
    pixels = pixel_batch(8, seed=1)
    texts = [f"caption number {i}" for i in range(8)]
    # One batch seen repeatedly: the model must fit it.
    history = model.fit(
        {"images": pixels, "texts": texts},
        batch_size=8,
        epochs=12,
        verbose=0,
    )
    losses = history.history["loss"]
    assert losses[-1] < 0.85 * losses[0]
    assert {"i2t_accuracy", "t2i_accuracy"} <= set(history.history)
    if loss == "sigmoid":
        assert model.logit_bias is not None


def test_fit_reshuffles_arrays_every_epoch():
    """keras-hub's `Task.fit` batches arrays in order; a contrastive model
    reshuffles them every epoch (Keras' `shuffle=True`), so its batches
    draw new negatives. `validation_split` holds out the last rows."""
    from keras_vl.losses import softmax_contrastive_loss

    keras.utils.set_random_seed(0)
    model = tiny_clippo()
    model.compile(optimizer=keras.optimizers.SGD(learning_rate=0.0))
    x = {
        "images": pixel_batch(16, seed=3),
        "texts": [f"caption {i // 4}" for i in range(16)],
    }
    images = model.encode_images(x["images"])
    texts = model.encode_texts(x["texts"])
    scale = float(np.exp(to_numpy(model.log_temperature))[0])

    def batch_loss(rows):
        loss = softmax_contrastive_loss(images[rows], texts[rows], scale)
        return float(to_numpy(loss))

    in_order = np.mean([batch_loss(slice(i, i + 4)) for i in (0, 4, 8, 12)])
    history = model.fit(x, batch_size=4, epochs=2, shuffle=False, verbose=0)
    np.testing.assert_allclose(history.history["loss"], [in_order] * 2, 1e-5)
    shuffled = model.fit(x, batch_size=4, epochs=3, verbose=0)
    losses = shuffled.history["loss"]
    assert min(abs(loss - in_order) for loss in losses) > 1e-4
    assert np.ptp(losses) > 1e-4  # a new order every epoch
    history = model.fit(x, batch_size=4, validation_split=0.25, verbose=0)
    np.testing.assert_allclose(
        history.history["val_loss"], [batch_loss(slice(12, 16))], 1e-5
    )


@pytest.mark.parametrize("loss", ["softmax", "sigmoid"])
def test_fit_with_positives_as_targets(loss):
    """`y` marks which texts describe which images: the loss `fit`
    reports is the loss with those positives, not the diagonal one."""
    from keras_vl.losses import (
        sigmoid_contrastive_loss,
        softmax_contrastive_loss,
    )

    keras.utils.set_random_seed(0)
    model = tiny_clippo(loss=loss)
    model.compile(optimizer=keras.optimizers.SGD(learning_rate=0.0))
    pixels = pixel_batch(6, seed=2)
    texts = ["a red circle", "a red shape", "a blue star"] * 2
    positives = np.zeros((6, 6), bool)
    positives[[0, 0, 3, 3], [1, 3, 0, 4]] = True
    x = {"images": pixels, "texts": texts}
    images = model.encode_images(pixels)
    captions = model.encode_texts(texts)
    scale = float(np.exp(to_numpy(model.log_temperature))[0])
    if loss == "softmax":
        expected = [
            softmax_contrastive_loss(images, captions, scale, p)
            for p in (positives, None)
        ]
    else:
        bias = float(to_numpy(model.logit_bias)[0])
        expected = [
            sigmoid_contrastive_loss(images, captions, scale, bias, p)
            for p in (positives, None)
        ]
    expected = [float(to_numpy(e)) for e in expected]
    assert abs(expected[0] - expected[1]) > 1e-3
    for y, want in ((positives, expected[0]), (None, expected[1])):
        history = model.fit(x, y, batch_size=6, shuffle=False, verbose=0)
        np.testing.assert_allclose(history.history["loss"][0], want, 1e-5)
    with pytest.raises(ValueError, match="positives matrix"):
        model.fit(x, {"positives": positives}, batch_size=6, verbose=0)


def test_text_text_and_mixed_batches():
    model = tiny_clippo()
    renderer = model.backbone.text_renderer
    first = ["the first sentence.", "another one"]
    second = ["and what follows.", "and its follower"]
    # A text-text batch: the first sentence takes the image slot.
    x = model.preprocessor({"texts": second, "image_texts": first})
    out = model.backbone(x)
    expected = model.backbone.embed_codepoints(renderer.codepoints(first))
    np.testing.assert_allclose(
        to_numpy(out["image_embeddings"]), to_numpy(expected), atol=1e-5
    )
    # A mixed batch: an empty image_text keeps the image.
    pixels = pixel_batch(2)
    x = model.preprocessor(
        {"images": pixels, "texts": second, "image_texts": ["", first[1]]}
    )
    out = to_numpy(model.backbone(x)["image_embeddings"])
    np.testing.assert_allclose(
        out[0], model.encode_images(pixels[:1])[0], atol=1e-5
    )
    np.testing.assert_allclose(out[1], to_numpy(expected)[1], atol=1e-5)


def test_preset_round_trip(tmp_path):
    model = tiny_clippo(loss="sigmoid")
    model.log_temperature.assign([1.5])
    model.save_to_preset(str(tmp_path / "clippo"))
    restored = Clippo.from_preset(str(tmp_path / "clippo"))
    assert restored.loss_type == "sigmoid"
    assert restored.preprocessor.sequence_length == 24
    pixels = pixel_batch(2)
    np.testing.assert_array_equal(
        restored.similarity(pixels, CAPTIONS),
        model.similarity(pixels, CAPTIONS),
    )
    backbone = ClippoBackbone.from_preset(str(tmp_path / "clippo"))
    assert backbone.get_config() == model.backbone.get_config()


def test_bad_inputs():
    model = tiny_clippo()
    with pytest.raises(ValueError, match="images"):
        model.encode_images(np.zeros((2, 32, 32), "uint8"))
    with pytest.raises(ValueError, match="images"):
        model.encode_images(np.zeros((0, 32, 32, 3), "uint8"))
    with pytest.raises(ValueError, match="texts"):
        model.encode_texts([])
    with pytest.raises(TypeError, match="texts"):
        model.encode_texts([1, 2])
    with pytest.raises(ValueError, match="same batch size"):
        model.preprocessor({"images": pixel_batch(3), "texts": ["a", "b"]})
    with pytest.raises(ValueError, match="'texts'"):
        model.preprocessor({"images": pixel_batch(2)})
    with pytest.raises(ValueError, match="RGB"):
        model.preprocessor(
            {"images": np.zeros((2, 8, 8, 4)), "texts": ["a", "b"]}
        )
    with pytest.raises(ValueError, match="loss"):
        Clippo(model.backbone, loss="hinge")
    with pytest.raises(TypeError, match="ClippoBackbone"):
        Clippo(model.backbone.vision_encoder)
    with pytest.raises(ValueError, match="image_size"):
        ClippoBackbone(
            model.backbone.vision_encoder, TextRenderer(image_size=64)
        )


def test_corrupted_preset_names_the_problem(tmp_path):
    model = tiny_clippo()
    model.save_to_preset(str(tmp_path / "p"))
    (tmp_path / "p" / "model.weights.h5").write_bytes(b"not an h5 file")
    with pytest.raises((OSError, ValueError)):
        Clippo.from_preset(str(tmp_path / "p"))


def test_preset_carries_its_glyph_table(tmp_path):
    from keras_vl.utils.glyph_table import GlyphTable

    hex_file = tmp_path / "tiny.hex"
    hex_file.write_text("0061:" + "FF" * 16 + "\n")  # 'a' = solid block
    table = GlyphTable.from_hex_files([hex_file])
    vit = ViTBackbone(
        image_size=32,
        patch_size=16,
        width=32,
        depth=1,
        num_heads=2,
        mlp_dim=64,
        pool_type="map",
        num_classes=16,
        head_zeroinit=False,
    )
    backbone = ClippoBackbone(
        vit, TextRenderer(image_size=32, glyph_table=table)
    )
    model = Clippo(backbone, ClippoPreprocessor(32, 8))
    model.save_to_preset(str(tmp_path / "preset"))

    for restored in (
        Clippo.from_preset(str(tmp_path / "preset")).backbone,
        ClippoBackbone.from_preset(str(tmp_path / "preset")),
    ):
        renderer = restored.text_renderer
        image = to_numpy(renderer(renderer.codepoints(["ab"])))[0, :16, :, 0]
        # The solid 'a' is 8 columns wide; 'b' has no glyph in this font.
        assert (image[:, :8] == 0).all()
        assert (image[:, 8:] == 127).all()
