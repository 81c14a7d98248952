"""The encode API that `ContrastiveModel` gives CLIPPO, LiT and LIMoE alike:
raw or model-ready images in any batch form, texts, padded batch buckets."""

import keras
import keras_hub
import numpy as np
import pytest
from model_contract import (
    IMAGE_SIZE as SIZE,
)
from model_contract import (
    tiny_limoe_kwargs,
    tiny_text_kwargs,
    tiny_vit_kwargs,
)
from PIL import Image

from keras_vl.layers import TextRenderer, TransformerEncoder
from keras_vl.models import (
    Clippo,
    ClippoBackbone,
    ClippoPreprocessor,
    LIMoE,
    LiT,
    LiTBackbone,
    LiTPreprocessor,
    TextTransformer,
    ViTBackbone,
)
from keras_vl.models.clippo.clippo import HOST_RENDER_ROWS
from keras_vl.models.limoe.limoe_backbone import LIMoEBackbone
from keras_vl.models.limoe.limoe_preprocessor import LIMoEPreprocessor

LENGTH = 6
VOCAB = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "a", "red", "blue", "circle"]
TEXTS = ["a red circle", "a blue circle", "red", "a", "blue blue"]


def clippo():
    vit = ViTBackbone(
        **tiny_vit_kwargs(pool_type="gap", num_classes=8, head_zeroinit=False)
    )
    backbone = ClippoBackbone(vit, TextRenderer(image_size=SIZE))
    return Clippo(backbone, ClippoPreprocessor(SIZE, 24))


def word_preprocessor(cls):
    tokenizer = keras_hub.tokenizers.WordPieceTokenizer(vocabulary=VOCAB)
    return cls(tokenizer, sequence_length=LENGTH, image_size=SIZE)


def lit():
    backbone = LiTBackbone(
        ViTBackbone(**tiny_vit_kwargs(pool_type="gap")),
        TextTransformer(
            **tiny_text_kwargs(vocab_size=len(VOCAB), sequence_length=LENGTH)
        ),
        image_projection_dim=8,
        text_projection_dim=8,
    )
    return LiT(backbone, word_preprocessor(LiTPreprocessor), lock="uu")


def limoe():
    backbone = LIMoEBackbone(
        **tiny_limoe_kwargs(
            vocabulary_size=len(VOCAB),
            sequence_length=LENGTH,
            num_experts=2,
            capacity_factor=8.0,  # No token is dropped: rows independent.
        )
    )
    return LIMoE(backbone, word_preprocessor(LIMoEPreprocessor))


FAMILIES = {"clippo": clippo, "lit": lit, "limoe": limoe}


@pytest.fixture(scope="module", params=sorted(FAMILIES))
def model(request):
    keras.utils.set_random_seed(0)
    return FAMILIES[request.param]()


def pixels(batch=3, size=40, seed=0):
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (batch, size, size, 3), dtype=np.uint8)


def model_ready(batch=3, seed=0):
    rng = np.random.default_rng(seed)
    return rng.uniform(-1, 1, (batch, SIZE, SIZE, 3)).astype("float32")


def eager(embed, inputs):
    """`embed` run once, eagerly, on exactly `inputs` (no padding)."""
    tensors = keras.tree.map_structure(keras.ops.convert_to_tensor, inputs)
    return keras.ops.convert_to_numpy(embed(tensors))


def test_uint8_and_float_pixels_agree(model):
    images = pixels()
    z = model.encode_images(images)
    assert z.shape == (3, 8) and z.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(z, axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(
        model.encode_images(images.astype("float32")), z, atol=1e-6
    )


def test_unit_range_floats_warn(model):
    with pytest.warns(UserWarning, match=r"\[0, 255\]"):
        model.encode_images(pixels() / 255.0)


@pytest.mark.parametrize(
    "images",
    [pixels(size=SIZE), pixels(size=SIZE).astype("float32")],
    ids=["uint8", "float_0_255"],
)
def test_raw_pixels_marked_preprocessed_raise(model, images):
    with pytest.raises(ValueError, match="`images`"):
        model.encode_images(images, preprocessed=True)


def test_bad_image_batches_raise(model):
    with pytest.raises(ValueError, match="`images` is empty"):
        model.encode_images([])
    with pytest.raises(ValueError, match="`images` must be"):
        model.encode_images(np.zeros((2, 3, SIZE, SIZE, 3), "uint8"))
    with pytest.raises(ValueError, match="`images` must be"):
        model.encode_images(np.zeros((2, SIZE, SIZE, 4), "uint8"))
    with pytest.raises(TypeError, match="`images`"):
        model.encode_images(np.zeros((1, SIZE, SIZE, 3), bool))
    with pytest.raises(ValueError, match=r"\[0, 255\]"):
        model.encode_images(np.full((1, SIZE, SIZE, 3), 300, "int32"))


def test_single_image_is_a_batch_of_one(model):
    image = pixels(batch=1)
    z = model.encode_images(image[0])
    assert z.shape == (1, 8)
    np.testing.assert_allclose(z, model.encode_images(image), atol=1e-5)


def test_images_of_different_sizes(model):
    arrays = [pixels(1, 40, seed=1)[0], pixels(1, 24, seed=2)[0][:20]]
    expected = np.concatenate([model.encode_images(a[None]) for a in arrays])
    pil_images = [Image.fromarray(a) for a in arrays]
    np.testing.assert_allclose(
        model.encode_images(pil_images), expected, atol=1e-5
    )
    np.testing.assert_allclose(model.encode_images(arrays), expected, atol=1e-5)
    # A PIL image alone is one image.
    np.testing.assert_allclose(
        model.encode_images(pil_images[1]), expected[1:], atol=1e-5
    )
    with pytest.raises(ValueError, match="same|model's size"):
        model.encode_images(
            [model_ready(1)[0], model_ready(1)[0][:16]], preprocessed=True
        )


@pytest.mark.parametrize("rows", [1, 3, 5, 7])
def test_padded_batches_match_eager_results(model, rows):
    images = model_ready(rows, seed=rows)
    np.testing.assert_allclose(
        model.encode_images(images, preprocessed=True, batch_size=4),
        eager(model.backbone.embed_images, images),
        atol=1e-5,
    )
    texts = (TEXTS * 2)[:rows]
    # CLIPPO embeds rendered code points; the others embed token ids.
    backbone = model.backbone
    embed = getattr(backbone, "embed_codepoints", None) or backbone.embed_texts
    np.testing.assert_allclose(
        model.encode_texts(texts, batch_size=4),
        eager(embed, model._model_texts(texts)),
        atol=1e-5,
    )


def test_similarity_is_scaled_cosine(model):
    images = pixels()
    cosines = model.encode_images(images) @ model.encode_texts(TEXTS).T
    np.testing.assert_allclose(
        model.similarity(images, TEXTS, scaled=False), cosines, atol=1e-6
    )
    scale = float(keras.ops.convert_to_numpy(model.logit_scale))
    assert scale == pytest.approx(10.0)
    np.testing.assert_allclose(
        model.similarity(images, TEXTS), scale * cosines, atol=1e-5
    )


def test_sigmoid_similarity_adds_the_bias():
    model = clippo()
    sigmoid = Clippo(model.backbone, model.preprocessor, loss="sigmoid")
    images = pixels()
    cosines = sigmoid.similarity(images, TEXTS, scaled=False)
    np.testing.assert_allclose(
        sigmoid.similarity(images, TEXTS), 10.0 * cosines - 10.0, atol=1e-5
    )


def test_rendered_texts_are_encoded_from_raw_pixels():
    model = clippo()
    renderer = model.backbone.text_renderer
    rendered = keras.ops.convert_to_numpy(
        renderer(renderer.codepoints(TEXTS[:2]))
    )
    assert rendered.dtype == np.uint8
    np.testing.assert_allclose(
        model.encode_rendered_texts(rendered),
        model.encode_texts(TEXTS[:2]),
        atol=1e-5,
    )
    with pytest.raises(ValueError, match="`images`"):
        model.encode_rendered_texts(rendered, preprocessed=True)


def test_few_texts_render_on_the_host(monkeypatch):
    """CLIPPO renders up to `HOST_RENDER_ROWS` texts in numpy and more with
    the renderer's compiled program; the embeddings agree."""
    model = clippo()
    hosted = []
    render_numpy = TextRenderer.render_numpy

    def counted(self, codepoints):
        hosted.append(len(codepoints))
        return render_numpy(self, codepoints)

    monkeypatch.setattr(TextRenderer, "render_numpy", counted)
    texts = (TEXTS * 4)[: HOST_RENDER_ROWS + 1]
    many = model.encode_texts(texts, batch_size=2 * HOST_RENDER_ROWS)
    assert hosted == []
    few = model.encode_texts(texts[:5])
    assert hosted == [8]  # Padded to the batch bucket.
    np.testing.assert_allclose(few, many[:5], atol=1e-6)


def test_one_trace_per_batch_bucket(monkeypatch):
    """Batches of 3 to 8 rows, at batch_size=8, are padded to 4 or 8 rows:
    JAX traces the encoder once per bucket, not once per batch size."""
    model = clippo()
    traces = []
    call = TransformerEncoder.call

    def counted(self, *args, **kwargs):
        traces.append(args[0].shape[0])
        return call(self, *args, **kwargs)

    monkeypatch.setattr(TransformerEncoder, "call", counted)
    sizes = [3, 4, 5, 6, 7, 8, 3]
    for rows in sizes:
        model.encode_images(model_ready(rows), True, batch_size=8)
    backend = keras.backend.backend()
    if backend == "jax":
        assert traces == [4, 8]
    elif backend == "tensorflow":  # tf.function may relax the batch axis.
        assert 1 <= len(traces) <= 2
    else:  # Eager: every batch runs, each padded to its bucket.
        assert traces == [4, 4, 8, 8, 8, 8, 4]
