"""LiT: two towers, lock modes, training, cached features, presets."""

import keras
import keras_hub
import numpy as np
import pytest
from conftest import backend, to_numpy, train_sentencepiece
from model_contract import (
    ContractTestCase,
    random_images,
    random_pixels,
    tiny_text_kwargs,
    tiny_vit_kwargs,
)

from keras_vl.losses import softmax_contrastive_loss
from keras_vl.models import (
    LiT,
    LiTBackbone,
    LiTPreprocessor,
    TextTransformer,
    ViTBackbone,
)

VOCAB, LENGTH, SIZE, DIM = 64, 8, 32, 16
CAPTIONS = [
    "a red circle",
    "a blue square",
    "the green triangle is small",
    "one big yellow star",
    "two small purple hearts",
]
BERT_VOCAB = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "a", "red", "blue", "circle"]


@pytest.fixture(scope="module")
def spm_proto():
    return train_sentencepiece(CAPTIONS)


def sentence_piece(proto):
    # Built per test, after any seeding: TF's SentencePiece resource does
    # not survive `keras.utils.set_random_seed` (tf.random.set_seed).
    return keras_hub.tokenizers.SentencePieceTokenizer(proto=proto)


def contract_backbone_kwargs():
    return {
        "image_encoder": ViTBackbone(**tiny_vit_kwargs()),
        "text_encoder": TextTransformer(**tiny_text_kwargs()),
        "image_projection_dim": 8,
        "text_projection_dim": 8,
    }


class LiTContractTest(ContractTestCase):
    def test_backbone_contract(self):
        inputs = {
            "images": random_images(),
            "token_ids": np.arange(8, dtype="int32").reshape(2, 4),
        }
        self.run_backbone_contract(
            LiTBackbone,
            contract_backbone_kwargs(),
            inputs,
            {"image_embeddings": (2, 8), "text_embeddings": (2, 8)},
        )

    def test_task_contract(self):
        preprocessor = LiTPreprocessor(
            keras_hub.tokenizers.WordPieceTokenizer(
                vocabulary=BERT_VOCAB, lowercase=False
            ),
            sequence_length=4,
            image_size=32,
            eos="yes",
            add_bos=True,
        )
        x = {"images": random_pixels(), "texts": ["a red circle", "blue"]}
        # Targets are the positives matrix: each image's own text.
        positives = np.eye(2, dtype="float32")
        self.run_task_contract(
            LiT,
            {
                "backbone": LiTBackbone(**contract_backbone_kwargs()),
                "preprocessor": preprocessor,
                "lock": "Lu",
            },
            (x, positives),
            {"image_embeddings": (2, 8), "text_embeddings": (2, 8)},
        )


def tiny_vit(pool_type="gap", mlp_dim=64):
    return ViTBackbone(
        image_size=SIZE,
        patch_size=16,
        width=32,
        depth=1,
        num_heads=2,
        mlp_dim=mlp_dim,
        pool_type=pool_type,
    )


def tiny_text(vocab_size=VOCAB):
    return TextTransformer(
        vocab_size=vocab_size,
        sequence_length=LENGTH,
        width=32,
        depth=1,
        num_heads=2,
        mlp_dim=64,
    )


def tiny_resnet():
    return keras_hub.models.ResNetBackbone(
        input_conv_filters=[64],
        input_conv_kernel_sizes=[3],
        stackwise_num_filters=[64, 16],
        stackwise_num_blocks=[1, 1],
        stackwise_num_strides=[1, 2],
        block_type="basic_block",
    )


def tiny_bert():
    return keras_hub.models.BertBackbone(
        vocabulary_size=len(BERT_VOCAB),
        num_layers=1,
        num_heads=2,
        hidden_dim=32,
        intermediate_dim=64,
        max_sequence_length=LENGTH,
        dropout=0.0,
    )


def tiny_backbone(image=None, text=None, dim=DIM, **kwargs):
    return LiTBackbone(
        image or tiny_vit(),
        text or tiny_text(),
        image_projection_dim=dim,
        text_projection_dim=dim,
        **kwargs,
    )


def tiny_lit(proto, loss="softmax", lock="Lu", backbone=None):
    preprocessor = LiTPreprocessor(
        sentence_piece(proto), sequence_length=LENGTH, image_size=SIZE
    )
    return LiT(backbone or tiny_backbone(), preprocessor, lock, loss)


def pixel_batch(batch=4, size=SIZE, seed=0):
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (batch, size, size, 3), dtype=np.uint8)


def images_batch(batch=4, seed=0):
    rng = np.random.default_rng(seed)
    return rng.uniform(-1, 1, (batch, SIZE, SIZE, 3)).astype("float32")


def token_batch(batch=4, seed=0):
    rng = np.random.default_rng(seed)
    return rng.integers(0, VOCAB, (batch, LENGTH)).astype("int32")


def weights_of(layer):
    return [to_numpy(v).copy() for v in layer.weights]


def same(before, layer):
    return all(
        np.array_equal(a, to_numpy(v))
        for a, v in zip(before, layer.weights, strict=True)
    )


def unit(x):
    return x / (np.linalg.norm(x, axis=-1, keepdims=True) + 1e-8)


def dense(layer, x):
    return x @ to_numpy(layer.kernel) + to_numpy(layer.bias)


def test_backbone_with_vit_and_text_transformer():
    vit, text = tiny_vit(), tiny_text()
    backbone = tiny_backbone(vit, text)
    images, tokens = images_batch(), token_batch()
    out = backbone({"images": images, "token_ids": tokens})
    z_img = to_numpy(out["image_embeddings"])
    z_txt = to_numpy(out["text_embeddings"])
    assert z_img.shape == z_txt.shape == (4, DIM)
    assert z_img.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(z_txt, axis=1), 1.0, atol=1e-5)
    features = to_numpy(vit(images))
    np.testing.assert_allclose(
        to_numpy(backbone.image_features(images)), features, atol=1e-6
    )
    expected = unit(dense(backbone.image_projection, features))
    np.testing.assert_allclose(z_img, expected, atol=1e-5)
    expected = unit(dense(backbone.text_projection, to_numpy(text(tokens))))
    np.testing.assert_allclose(z_txt, expected, atol=1e-5)
    np.testing.assert_allclose(
        to_numpy(backbone.embed_texts(tokens)), z_txt, atol=1e-6
    )
    assert backbone.image_encoder is vit and backbone.text_encoder is text
    assert backbone.image_feature_dim == 32 and backbone.embedding_dim == DIM
    assert backbone.text_input_names == ("token_ids",)
    assert backbone.image_size == (SIZE, SIZE)

    config = backbone.get_config()
    restored = LiTBackbone.from_config(config)
    assert restored.get_config() == config
    restored.set_weights(backbone.get_weights())
    out2 = restored({"images": images, "token_ids": tokens})
    np.testing.assert_array_equal(to_numpy(out2["image_embeddings"]), z_img)


def test_keras_hub_resnet_and_bert_towers():
    resnet, bert = tiny_resnet(), tiny_bert()
    backbone = tiny_backbone(resnet, bert)
    assert set(backbone.text_input_names) == {
        "token_ids",
        "segment_ids",
        "padding_mask",
    }
    assert backbone.max_text_length == LENGTH
    assert backbone.image_size is None  # ResNet takes any size.
    tokenizer = keras_hub.tokenizers.WordPieceTokenizer(vocabulary=BERT_VOCAB)
    preprocessor = LiTPreprocessor(
        tokenizer,
        sequence_length=6,
        image_size=SIZE,
        eos="yes",
        add_bos=True,
        padding_mask=True,
    )
    bert_weights = weights_of(bert)
    model = LiT(backbone, preprocessor, lock="LU")
    assert same(bert_weights, bert)  # "U" keeps pretrained weights.
    assert not resnet.trainable and bert.trainable

    images = images_batch()
    feature_map = to_numpy(resnet(images))  # [B, h, w, C]
    np.testing.assert_allclose(
        to_numpy(backbone.image_features(images)),
        feature_map.mean(axis=(1, 2)),
        atol=1e-5,
    )
    texts = ["a red circle", "blue", "a a a a a a a a", "red"]
    inputs = model.text_inputs(texts)
    assert inputs["token_ids"][0].tolist() == [2, 4, 5, 7, 3, 0]
    assert inputs["padding_mask"][0].tolist() == [1, 1, 1, 1, 1, 0]
    cls = to_numpy(bert(inputs)["sequence_output"])[:, 0]
    np.testing.assert_allclose(
        model.encode_texts(texts),
        unit(dense(backbone.text_projection, cls)),
        atol=1e-5,
    )
    # Over one batch, the dict of text inputs runs compiled, padded.
    np.testing.assert_allclose(
        model.encode_texts(texts, batch_size=3),
        model.encode_texts(texts),
        atol=1e-5,
    )
    np.testing.assert_allclose(
        model.encode_images(images, preprocessed=True, batch_size=3),
        model.encode_images(images, preprocessed=True),
        atol=1e-5,
    )

    # Locked: batch norm keeps its moving statistics in a training pass.
    x = {"images": images, **inputs}
    train = to_numpy(backbone(x, training=True)["image_embeddings"])
    infer = to_numpy(backbone(x, training=False)["image_embeddings"])
    np.testing.assert_array_equal(train, infer)
    LiT(backbone, preprocessor, lock="UU")
    train = to_numpy(backbone(x, training=True)["image_embeddings"])
    assert np.abs(train - infer).max() > 1e-3  # Batch statistics now.


def test_image_pooling_modes():
    vit = tiny_vit(pool_type="none")
    images = images_batch()
    tokens = to_numpy(vit(images))  # [B, 4, 32]
    expected = {
        "auto": tokens.mean(axis=1),
        "avg": tokens.mean(axis=1),
        "max": tokens.max(axis=1),
        "first": tokens[:, 0],
    }
    for pooling, value in expected.items():
        backbone = tiny_backbone(vit, image_pooling=pooling)
        np.testing.assert_allclose(
            to_numpy(backbone.image_features(images)), value, atol=1e-6
        )
    with pytest.raises(ValueError, match="'none'` needs pooled features"):
        tiny_backbone(vit, image_pooling="none")
    with pytest.raises(ValueError, match="already outputs pooled features"):
        tiny_backbone(tiny_vit("gap"), image_pooling="avg")
    conv = keras.Sequential(
        [keras.Input((SIZE, SIZE, 3)), keras.layers.Conv2D(8, 4, 4)]
    )
    with pytest.raises(ValueError, match="'first'` applies to tokens"):
        tiny_backbone(conv, image_pooling="first")
    backbone = tiny_backbone(conv, image_pooling="max")
    np.testing.assert_allclose(
        to_numpy(backbone.image_features(images)),
        to_numpy(conv(images)).max(axis=(1, 2)),
        atol=1e-6,
    )
    with pytest.raises(ValueError, match="image_pooling"):
        tiny_backbone(image_pooling="cls")


def test_towers_without_feature_output():
    inputs = keras.Input((SIZE, SIZE, 3))
    flat = keras.layers.Flatten()(inputs)
    logits = keras.Model(inputs, {"logits": keras.layers.Dense(4)(flat)})
    with pytest.raises(ValueError, match="none of them is a feature output"):
        tiny_backbone(logits)
    pair = keras.Model(inputs, [flat, flat])
    with pytest.raises(ValueError, match="2 outputs"):
        tiny_backbone(pair)
    labels = keras.Model(inputs, keras.ops.argmax(flat, axis=-1))
    with pytest.raises(ValueError, match="must output float features"):
        tiny_backbone(labels)
    with pytest.raises(TypeError, match="image_encoder"):
        tiny_backbone(image=lambda x: x)

    class Subclassed(keras.Model):
        def call(self, x):
            return keras.ops.mean(x, axis=(1, 2))

    with pytest.raises(ValueError, match="image_shape"):
        tiny_backbone(Subclassed())
    backbone = tiny_backbone(Subclassed(), image_shape=(SIZE, SIZE, 3))
    assert backbone.image_feature_dim == 3
    with pytest.raises(ValueError, match="same width"):
        LiTBackbone(tiny_vit(), tiny_text(), image_projection_dim=8)
    with pytest.raises(ValueError, match="text_projection_dim"):
        LiTBackbone(tiny_vit(), tiny_text(), 8, text_projection_dim=0)


def test_lock_modes(spm_proto):
    vit, text = tiny_vit(), tiny_text()
    backbone = tiny_backbone(vit, text)
    for lock in ("lu", "LUu", "", "Lx", None):
        with pytest.raises(ValueError, match="`lock` must be two letters"):
            tiny_lit(spm_proto, lock=lock, backbone=backbone)
    vit_weights, text_weights = weights_of(vit), weights_of(text)
    projection = weights_of(backbone.text_projection)

    model = tiny_lit(spm_proto, lock="LU", backbone=backbone)
    assert model.backbone is backbone and model.lock == "LU"
    assert not vit.trainable and text.trainable
    assert same(vit_weights, vit) and same(text_weights, text)
    trainable = {id(v) for v in model.trainable_variables}
    assert not trainable & {id(v) for v in vit.weights}
    assert {id(v) for v in text.trainable_weights} <= trainable
    assert id(model.log_temperature) in trainable

    # "u": fresh random weights, in the same variables.
    model = tiny_lit(spm_proto, lock="Lu", backbone=backbone)
    assert same(vit_weights, vit) and not same(text_weights, text)
    assert not same(projection, backbone.text_projection)
    assert model.backbone.text_encoder is text

    tiny_lit(spm_proto, lock="UL", backbone=backbone)
    assert vit.trainable and not text.trainable
    tiny_lit(spm_proto, lock="uu", backbone=backbone)
    assert vit.trainable and text.trainable
    assert not same(vit_weights, vit)


@pytest.mark.parametrize("loss", ["softmax", "sigmoid"])
def test_fit_trains_text_side_only(spm_proto, loss):
    keras.utils.set_random_seed(0)
    model = tiny_lit(spm_proto, loss=loss)
    model.compile(learning_rate=3e-3)
    vit, text = model.backbone.image_encoder, model.backbone.text_encoder
    vit_weights, text_weights = weights_of(vit), weights_of(text)
    t = float(to_numpy(model.log_temperature)[0])
    texts = [f"{CAPTIONS[i % 5]} {i}" for i in range(16)]
    history = model.fit(
        {"images": pixel_batch(16, seed=1), "texts": texts},
        batch_size=8,
        epochs=3,
        verbose=0,
    )
    losses = history.history["loss"]
    assert losses[-1] < losses[0]
    assert {"i2t_accuracy", "t2i_accuracy"} <= set(history.history)
    assert same(vit_weights, vit)  # Bit-identical: locked.
    assert not same(text_weights, text)
    assert float(to_numpy(model.log_temperature)[0]) != t
    if loss == "sigmoid":
        assert float(to_numpy(model.logit_bias)[0]) != -10.0


def _count_image_mlp_matmuls(jaxpr, width):
    """dot_generals touching a tensor with an axis of size `width`."""
    count = 0
    for eqn in jaxpr.eqns:
        if eqn.primitive.name == "dot_general" and any(
            width in getattr(v.aval, "shape", ()) for v in eqn.invars
        ):
            count += 1
        for param in eqn.params.values():
            for sub in param if isinstance(param, list | tuple) else [param]:
                if hasattr(sub, "consts") and hasattr(sub, "jaxpr"):
                    count += _count_image_mlp_matmuls(sub.jaxpr, width)
                elif hasattr(sub, "eqns"):
                    count += _count_image_mlp_matmuls(sub, width)
    return count


@pytest.mark.parametrize("lock", ["Lu", "Uu"])
def test_no_gradient_through_locked_tower(spm_proto, lock):
    mlp_dim = 80  # Only the image tower has an axis this wide.
    backbone = tiny_backbone(tiny_vit(mlp_dim=mlp_dim))
    model = tiny_lit(spm_proto, lock=lock, backbone=backbone)
    locked = lock[0] == "L"
    raw = {"images": pixel_batch(), "texts": CAPTIONS[:4]}
    x = model.preprocessor(raw)
    image_vars = backbone.image_encoder.weights
    text_vars = backbone.text_encoder.trainable_weights

    def loss_of(out):
        return softmax_contrastive_loss(
            out["image_embeddings"], out["text_embeddings"], 10.0
        )

    if backend() == "torch":
        import torch

        with torch.enable_grad():
            features = backbone.image_features(x["images"], training=True)
            z_txt = backbone.embed_texts(x["token_ids"], training=True)
        assert features.requires_grad != locked and z_txt.requires_grad
        model.fit(raw, batch_size=4, epochs=1, verbose=0)
        grads = [v.value.grad for v in image_vars]
        assert all(g is None for g in grads) == locked
        assert all(v.value.grad is not None for v in text_vars)
    elif backend() == "tensorflow":
        import tensorflow as tf

        with tf.GradientTape() as tape:
            loss = loss_of(backbone(x, training=True))
        # Non-trainable variables are not watched: no gradient path.
        grads = tape.gradient(loss, [v.value for v in image_vars + text_vars])
        assert all(g is None for g in grads[: len(image_vars)]) == locked
        assert all(g is not None for g in grads[len(image_vars) :])
    else:
        import jax

        trainable = [v.value for v in backbone.trainable_variables]
        frozen = [v.value for v in backbone.non_trainable_variables]

        def loss_fn(trainable):
            out, _ = backbone.stateless_call(
                trainable, frozen, x, training=True
            )
            return loss_of(out)

        forward = jax.make_jaxpr(loss_fn)(trainable).jaxpr
        backward = jax.make_jaxpr(jax.grad(loss_fn))(trainable).jaxpr
        n_forward = _count_image_mlp_matmuls(forward, mlp_dim)
        n_backward = _count_image_mlp_matmuls(backward, mlp_dim)
        assert n_forward == 2  # The image MLP's two matmuls.
        # Locked: the gradient program only replays the forward pass.
        assert (n_backward == n_forward) == locked


def test_cached_features_train_the_lit_model(spm_proto):
    import tensorflow as tf

    model = tiny_lit(spm_proto)
    backbone = model.backbone
    pixels = pixel_batch(8, seed=2)
    texts = CAPTIONS[:4] * 2
    features = model.precompute_image_features(pixels, batch_size=4)
    assert features.shape == (8, 32) and features.dtype == np.float32
    images = model.preprocessor({"images": pixels[:4]})["images"]
    np.testing.assert_allclose(
        features[:4], to_numpy(backbone.image_features(images)), atol=1e-5
    )
    # A training dataset works as it is; only its images are read.
    dataset = tf.data.Dataset.from_tensor_slices(
        {"images": pixels, "texts": texts}
    ).batch(4)
    np.testing.assert_allclose(
        model.precompute_image_features(dataset), features, atol=1e-6
    )

    cached = model.cached_features_model()
    assert cached is model.cached_features_model()
    assert cached.log_temperature is model.log_temperature
    shared = {id(v) for v in cached.trainable_variables}
    assert {id(v) for v in backbone.text_encoder.weights} <= shared
    assert id(backbone.image_projection.kernel) in shared
    assert not shared & {id(v) for v in backbone.image_encoder.weights}

    # Same weights, same batch: the same loss as the full model.
    inputs = model.text_inputs(texts[:4])
    x = model.preprocessor({"images": pixels[:4], "texts": texts[:4]})
    full = model.compute_loss(y_pred=backbone(x))
    y_pred = cached({"image_features": features[:4], **inputs})
    np.testing.assert_allclose(
        to_numpy(cached.compute_loss(y_pred=y_pred)),
        to_numpy(full),
        atol=1e-5,
    )

    vit_weights = weights_of(backbone.image_encoder)
    text_weights = weights_of(backbone.text_encoder)
    before = model.similarity(pixels[:4], texts[:4])
    history = model.fit_cached(features, texts, batch_size=4, verbose=0)
    assert np.isfinite(history.history["loss"][0])
    assert same(vit_weights, backbone.image_encoder)
    assert not same(text_weights, backbone.text_encoder)
    assert np.abs(model.similarity(pixels[:4], texts[:4]) - before).max() > 0

    with pytest.raises(ValueError, match=r"\[N, 32\]"):
        model.fit_cached(features[:, :8], texts)
    with pytest.raises(ValueError, match="pair up"):
        model.fit_cached(features, texts[:3])
    unlocked = tiny_lit(spm_proto, lock="UU", backbone=backbone)
    with pytest.raises(ValueError, match="locked image tower"):
        unlocked.cached_features_model()


def test_preset_round_trip(spm_proto, tmp_path):
    model = tiny_lit(spm_proto, loss="sigmoid")
    model.log_temperature.assign([1.5])
    model.save_to_preset(str(tmp_path / "lit"))
    assert (tmp_path / "lit" / "assets" / "tokenizer").is_dir()
    restored = LiT.from_preset(str(tmp_path / "lit"))
    assert restored.lock == "Lu" and restored.loss_type == "sigmoid"
    tokenizer = restored.preprocessor.tokenizer
    assert tokenizer.get_vocabulary() == (
        model.preprocessor.tokenizer.get_vocabulary()
    )
    pixels = pixel_batch()
    # Strings go through the restored tokenizer; "u" re-initialisation
    # at construction is undone by the weights loaded after it.
    np.testing.assert_array_equal(
        restored.similarity(pixels, CAPTIONS[1:]),
        model.similarity(pixels, CAPTIONS[1:]),
    )
    backbone = LiTBackbone.from_preset(str(tmp_path / "lit"))
    assert backbone.get_config() == model.backbone.get_config()


def test_encode_texts_from_token_ids(spm_proto):
    model = tiny_lit(spm_proto)
    # Batches of 4 throughout: JAX compiles each eager op per shape.
    inputs = model.text_inputs(CAPTIONS[:4])
    ids = [
        row[: list(row).index(1) + 1].tolist() for row in inputs["token_ids"]
    ]
    from_strings = model.encode_texts(CAPTIONS[:4])
    np.testing.assert_allclose(model.encode_texts(ids), from_strings, atol=1e-6)
    np.testing.assert_allclose(
        model.encode_texts(inputs), from_strings, atol=1e-6
    )
    single = model.text_inputs(CAPTIONS[0])["token_ids"]
    np.testing.assert_array_equal(single, inputs["token_ids"][:1])
    logits = model.similarity(pixel_batch(), CAPTIONS[:4])
    expected = 10.0 * model.encode_images(pixel_batch()) @ from_strings.T
    np.testing.assert_allclose(logits, expected, atol=1e-4)


def test_bad_inputs(spm_proto):
    backbone = tiny_backbone()
    tokenizer = sentence_piece(spm_proto)

    def lit(**kwargs):
        config = dict(sequence_length=LENGTH, image_size=SIZE)
        return LiT(backbone, LiTPreprocessor(tokenizer, **{**config, **kwargs}))

    with pytest.raises(ValueError, match="longer than the text tower's posit"):
        lit(sequence_length=LENGTH + 1)
    with pytest.raises(ValueError, match="must equal the text tower's input"):
        lit(sequence_length=LENGTH - 2)
    with pytest.raises(ValueError, match="image_size"):
        lit(image_size=64)
    small = tiny_backbone(text=tiny_text(vocab_size=10))
    with pytest.raises(ValueError, match=r"vocabulary \(\d+ tokens\) is larg"):
        LiT(small, LiTPreprocessor(tokenizer, LENGTH, SIZE))
    bert = tiny_backbone(text=tiny_bert())
    with pytest.raises(ValueError, match="padding_mask=True"):
        LiT(bert, LiTPreprocessor(sequence_length=LENGTH, image_size=SIZE))
    with pytest.raises(TypeError, match="LiTBackbone"):
        LiT(backbone.image_encoder)
    with pytest.raises(ValueError, match="loss"):
        LiT(backbone, loss="hinge")

    model = lit()
    with pytest.raises(ValueError, match="images"):
        model.encode_images(np.zeros((2, SIZE, SIZE), "uint8"))
    with pytest.raises(ValueError, match="empty"):
        model.encode_images(np.zeros((0, SIZE, SIZE, 3), "uint8"))
    with pytest.raises(ValueError, match="empty"):
        model.encode_texts([])
    with pytest.raises(TypeError, match="texts"):
        model.encode_texts([1.5, 2.5])
    with pytest.raises(ValueError, match="longer than sequence_length"):
        model.encode_texts([[3] * (LENGTH + 1)])
    with pytest.raises(ValueError, match="misses"):
        model.encode_texts({"ids": np.zeros((1, LENGTH), "int32")})
    untokenized = LiT(backbone)  # Default preprocessor: token ids only.
    with pytest.raises(ValueError, match="no `tokenizer`"):
        untokenized.encode_texts(["a red circle"])
    assert untokenized.encode_texts(token_batch()).shape == (4, DIM)
