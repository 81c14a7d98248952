"""Tests for the LIMoE task and its preprocessor: losses, routing metrics
in `fit`, encoders, `routing_summary`, presets and keras-hub's contract."""

import keras
import keras_hub
import numpy as np
import pytest
from conftest import to_numpy
from model_contract import (
    IMAGE_SIZE,
    PATCH_SIZE,
    ContractTestCase,
    random_pixels,
)

from keras_vl.evaluation import ZeroShotClassifier
from keras_vl.losses import softmax_contrastive_loss
from keras_vl.models.limoe.limoe import LIMoE
from keras_vl.models.limoe.limoe_backbone import LIMoEBackbone
from keras_vl.models.limoe.limoe_preprocessor import LIMoEPreprocessor

VOCAB = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "a", "red", "blue", "circle"]
VOCAB += ["square", "big", "small", "green"]
SEQUENCE_LENGTH = 5
TEXTS = ["a red circle", "a big blue square", "small green", "a"]
NUM_EXPERTS = 4


def tokenizer():
    return keras_hub.tokenizers.WordPieceTokenizer(vocabulary=VOCAB)


def backbone_kwargs(**overrides):
    return {
        "vocabulary_size": len(VOCAB),
        "sequence_length": SEQUENCE_LENGTH,
        "image_size": IMAGE_SIZE,
        "patch_size": PATCH_SIZE,
        "width": 16,
        "depth": 2,
        "num_heads": 2,
        "mlp_dim": 32,
        "out_dim": 8,
        "num_experts": NUM_EXPERTS,
        "capacity_factor": 4.0,  # no token is ever dropped
        "local_entropy_weight": (0.1, 0.2),
        "global_entropy_weight": (0.3, 0.4),
        "entropy_threshold": np.log(NUM_EXPERTS).item(),
        **overrides,
    }


def preprocessor():
    return LIMoEPreprocessor(
        tokenizer(), sequence_length=SEQUENCE_LENGTH, image_size=IMAGE_SIZE
    )


@pytest.fixture(scope="module")
def model():
    keras.utils.set_random_seed(0)
    return LIMoE(LIMoEBackbone(**backbone_kwargs()), preprocessor())


def data(batch=4, seed=0):
    return {
        "images": random_pixels(batch, seed=seed),
        "texts": np.asarray((TEXTS * batch)[:batch]),
    }


def test_preprocessor_tokens_end_and_padding():
    out = preprocessor()({"texts": ["a red circle", "a big blue square x"]})
    # [SEP] = 3 ends every text; [PAD] = 0 pads; cut to length - 1 first.
    assert to_numpy(out["token_ids"]).tolist() == [
        [4, 5, 7, 3, 0],
        [4, 9, 6, 8, 3],
    ]
    assert to_numpy(out["padding_mask"]).tolist() == [
        [True, True, True, True, False],
        [True, True, True, True, True],
    ]
    images = preprocessor()({"images": np.full((1, 64, 64, 3), 255, "uint8")})
    image = to_numpy(images["images"])
    assert image.shape == (1, IMAGE_SIZE, IMAGE_SIZE, 3)
    np.testing.assert_allclose(image, 1.0, atol=1e-5)


def test_preprocessor_rejects_bad_input():
    with pytest.raises(ValueError, match="same batch size"):
        preprocessor()({"images": random_pixels(2), "texts": ["a"] * 3})
    with pytest.raises(ValueError, match="sequence_length"):
        LIMoEPreprocessor(tokenizer(), sequence_length=0)
    with pytest.raises(ValueError, match="'images' and/or 'texts'"):
        preprocessor()({"pixels": random_pixels(2)})


def test_compute_loss_adds_auxiliary_and_entropy_losses(model):
    x = model.preprocessor(data())
    y_pred = model(x)
    loss = to_numpy(model.compute_loss(x=x, y_pred=y_pred, training=False))
    contrastive = to_numpy(
        softmax_contrastive_loss(
            y_pred["image_embeddings"],
            y_pred["text_embeddings"],
            model.logit_scale,
        )
    )
    extra = sum(float(to_numpy(v)) for v in model.losses)
    # Auxiliary (one per sparse layer) and entropy losses are all there.
    assert len(model.losses) == 2
    assert extra > 0
    np.testing.assert_allclose(loss, contrastive + extra, rtol=1e-5)


def test_fit_reports_routing_metrics(model):
    model.compile(learning_rate=1e-3)
    history = model.fit(data(8), batch_size=4, epochs=1, verbose=0).history
    assert np.isfinite(history["loss"][-1])
    for name in ("image", "text"):
        experts = history[f"{name}_experts"][-1]
        assert 1.0 <= experts <= NUM_EXPERTS + 1e-4
        # Capacity for every token: nothing dropped.
        assert history[f"{name}_dropped"][-1] == pytest.approx(0.0, abs=1e-6)
    assert history["moe_auxiliary_loss"][-1] > 0
    assert history["moe_entropy_loss"][-1] > 0
    # The recorded shares are those of real tokens: they sum to 1 (k = 1).
    layer = model.backbone.moe_mlps[0]
    np.testing.assert_allclose(
        to_numpy(layer.utilization_stat).sum(axis=1), 1.0, atol=1e-5
    )


def test_encoders_match_the_joint_forward_pass(model):
    x = model.preprocessor(data())
    joint = model(x)
    images = model.encode_images(data()["images"])
    texts = model.encode_texts(list(data()["texts"]))
    np.testing.assert_allclose(
        images, to_numpy(joint["image_embeddings"]), atol=1e-5
    )
    np.testing.assert_allclose(
        texts, to_numpy(joint["text_embeddings"]), atol=1e-5
    )
    logits = model.similarity(data()["images"], ["a red circle", "a"])
    assert logits.shape == (4, 2)


def test_routing_summary(model):
    summary = model.routing_summary(data()["images"], list(TEXTS))
    assert summary["layers"].tolist() == [1]
    image, text = summary["image"], summary["text"]
    num_image_tokens = (IMAGE_SIZE // PATCH_SIZE) ** 2
    assert image["expert"].shape == (1, 4, num_image_tokens)
    assert text["probs"].shape == (1, 4, SEQUENCE_LENGTH, NUM_EXPERTS)
    np.testing.assert_allclose(
        image["gate"], image["probs"].max(axis=-1), rtol=1e-6
    )
    np.testing.assert_array_equal(
        image["expert"], image["probs"].argmax(axis=-1)
    )
    # Counts cover the real tokens only: 4 + 5 + 3 + 2 text tokens.
    assert text["mask"].sum() == 14
    assert text["counts"].sum() == 14
    assert image["counts"].sum() == 4 * num_image_tokens
    with pytest.raises(ValueError, match="same batch size"):
        model.routing_summary(data()["images"], TEXTS[:3])


def test_zero_shot_classifier(model):
    names = ["red circle", "blue square", "green"]
    classifier = ZeroShotClassifier(model, names, templates=("a {}",))
    images = data()["images"]
    expected = model.similarity(images, [f"a {n}" for n in names])
    np.testing.assert_array_equal(
        classifier.predict(images), expected.argmax(axis=1)
    )


def test_preset_round_trip_keeps_tokenizer(model, tmp_path):
    path = str(tmp_path / "limoe_preset")
    model.save_to_preset(path)
    restored = LIMoE.from_preset(path)
    assert isinstance(restored.backbone, LIMoEBackbone)
    assert restored.preprocessor.tokenizer.get_vocabulary() == VOCAB
    images = data()["images"]
    np.testing.assert_allclose(
        restored.encode_images(images), model.encode_images(images), atol=1e-6
    )
    np.testing.assert_allclose(
        restored.encode_texts(TEXTS), model.encode_texts(TEXTS), atol=1e-6
    )
    backbone = LIMoEBackbone.from_preset(path)
    assert backbone.moe_layer_indices == model.backbone.moe_layer_indices


def test_bad_arguments_are_rejected():
    backbone = LIMoEBackbone(**backbone_kwargs())
    with pytest.raises(
        TypeError, match="`backbone` of LIMoE must be a LIMoEBackbone.*object"
    ):
        LIMoE(object())
    with pytest.raises(ValueError, match="sequence_length"):
        LIMoE(
            backbone,
            LIMoEPreprocessor(tokenizer(), sequence_length=3),
        )
    with pytest.raises(ValueError, match="loss"):
        LIMoE(backbone, preprocessor(), loss="hinge")


def test_sigmoid_loss_trains():
    keras.utils.set_random_seed(1)
    model = LIMoE(
        LIMoEBackbone(**backbone_kwargs(depth=1, moe_layers=[0])),
        preprocessor(),
        loss="sigmoid",
    )
    model.compile(learning_rate=1e-3)
    history = model.fit(data(4), batch_size=4, epochs=1, verbose=0).history
    assert np.isfinite(history["loss"][-1])
    assert "image_experts" in history


class LIMoEContractTest(ContractTestCase):
    def test_preprocessor_contract(self):
        self.run_preprocessor_contract(
            LIMoEPreprocessor,
            {
                "tokenizer": tokenizer(),
                "sequence_length": SEQUENCE_LENGTH,
                "image_size": IMAGE_SIZE,
            },
            data(2),
            token_id_key="token_ids",
        )

    def test_task_contract(self):
        self.run_task_contract(
            LIMoE,
            {
                "backbone": LIMoEBackbone(**backbone_kwargs()),
                "preprocessor": preprocessor(),
            },
            # keras-hub's task test needs targets: the positives matrix.
            (data(2), np.eye(2, dtype="float32")),
            {"image_embeddings": (2, 8), "text_embeddings": (2, 8)},
        )
