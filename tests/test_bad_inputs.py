"""A catalogue of bad inputs to the public API.

Every case calls one public function, class or method with one bad
argument and expects a ValueError or TypeError from keras_vl itself (not
from a backend, tf.data or numpy deep inside) whose message names the
argument. Tiny models are built once per module, on first use.
"""

import contextlib
import functools
import io

import keras
import keras_hub
import numpy as np
import pytest
from model_contract import (
    IMAGE_SIZE,
    random_pixels,
    tiny_limoe_kwargs,
    tiny_text_kwargs,
    tiny_vit_kwargs,
)

from keras_vl import cli, data, evaluation, layers, losses, models
from keras_vl.convert import checkpoint, huggingface

WORDS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "a", "red", "blue", "circle"]
TEXTS = ["a red circle", "a blue circle"]
PALI_VOCAB = 16


def word_preprocessor(cls):
    """A LiT or LIMoE preprocessor over the catalogue's word vocabulary."""
    return cls(
        keras_hub.tokenizers.WordPieceTokenizer(vocabulary=WORDS),
        sequence_length=4,
        image_size=IMAGE_SIZE,
    )


class TinyModels:
    """One tiny model of each family, built when a case first needs it."""

    @functools.cached_property
    def vit(self):
        return models.ViTBackbone(**tiny_vit_kwargs())

    @functools.cached_property
    def clippo(self):
        vit = models.ViTBackbone(
            **tiny_vit_kwargs(pool_type="map", num_classes=8)
        )
        renderer = layers.TextRenderer(image_size=IMAGE_SIZE)
        return models.Clippo(
            models.ClippoBackbone(vit, renderer),
            models.ClippoPreprocessor(IMAGE_SIZE, sequence_length=8),
        )

    @functools.cached_property
    def lit(self):
        backbone = models.LiTBackbone(
            models.ViTBackbone(**tiny_vit_kwargs()),
            models.TextTransformer(**tiny_text_kwargs(vocab_size=len(WORDS))),
            image_projection_dim=8,
            text_projection_dim=8,
        )
        preprocessor = word_preprocessor(models.LiTPreprocessor)
        return models.LiT(backbone, preprocessor)

    @functools.cached_property
    def limoe(self):
        backbone = models.LIMoEBackbone(
            **tiny_limoe_kwargs(vocabulary_size=len(WORDS), num_experts=2)
        )
        preprocessor = word_preprocessor(models.LIMoEPreprocessor)
        return models.LIMoE(backbone, preprocessor)

    @functools.cached_property
    def pali(self):
        vision = models.ViTBackbone(
            image_size=16,
            patch_size=8,
            width=16,
            depth=1,
            num_heads=2,
            pool_type="none",
        )
        language = models.PaLILanguageModel(
            vocabulary_size=PALI_VOCAB,
            hidden_dim=16,
            intermediate_dim=32,
            num_heads=2,
            num_encoder_layers=1,
            num_decoder_layers=1,
        )
        backbone = models.PaLIBackbone(vision, language, max_encoder_length=8)
        return models.PaLI(backbone, compile=False)

    @functools.cached_property
    def compiled_lit(self):
        model = self.lit
        model.compile()
        return model

    @functools.cached_property
    def compiled_clippo(self):
        model = self.clippo
        model.compile()
        return model


def pairs(images=2, texts=2):
    return {"images": random_pixels(images), "texts": (TEXTS * 4)[:texts]}


def pali_inputs(rows=1, token=1, **overrides):
    return {
        "images": np.zeros((rows, 16, 16, 3), "float32"),
        "encoder_token_ids": np.full((rows, 4), token, "int32"),
        "encoder_padding_mask": np.ones((rows, 4), bool),
        **overrides,
    }


def mesh(*axis_names):
    """A 1 x 2 device mesh description (layout maps need no devices)."""
    return keras.distribution.DeviceMesh(
        (1, 2), list(axis_names), ["cpu:0", "cpu:1"]
    )


def embeddings(rows=2, dim=4):
    rng = np.random.default_rng(0)
    z = rng.normal(size=(rows, dim)).astype("float32")
    return z / np.linalg.norm(z, axis=1, keepdims=True)


# (id, call on the TinyModels, expected error, name in the message)
def cli_error(argv):
    """Runs the `keras-vl` command; its one-line user error (status 2)
    comes back as a ValueError, for the table."""
    stderr = io.StringIO()
    with contextlib.redirect_stderr(stderr):
        status = cli.main(argv)
    if status == 2:
        raise ValueError(stderr.getvalue())


CASES = [
    # --- layers ---
    (
        "patch_size_zero",
        lambda m: layers.PatchEmbedding(8, 0),
        ValueError,
        "patch_size",
    ),
    (
        "rms_norm_negative_epsilon",
        lambda m: layers.RMSNorm(epsilon=-1.0),
        ValueError,
        "epsilon",
    ),
    (
        "position_embedding_unknown",
        lambda m: layers.PositionEmbedding("xyz"),
        ValueError,
        "posemb",
    ),
    (
        "encoder_depth_negative",
        lambda m: layers.TransformerEncoder(depth=-1, mlp_dim=8, num_heads=2),
        ValueError,
        "depth",
    ),
    (
        "encoder_size_unknown",
        lambda m: layers.encoder_size("Huge/7"),
        ValueError,
        "variant",
    ),
    (
        "renderer_font_size_zero",
        lambda m: layers.TextRenderer(font_size=0),
        ValueError,
        "font_size",
    ),
    (
        "renderer_image_size_str",
        lambda m: layers.TextRenderer(image_size="a"),
        TypeError,
        "image_size",
    ),
    (
        "renderer_brightness_256",
        lambda m: layers.TextRenderer(text_brightness=256),
        ValueError,
        "text_brightness",
    ),
    (
        "renderer_lower_not_bool",
        lambda m: layers.TextRenderer(lower="yes"),
        TypeError,
        "lower",
    ),
    (
        "render_text_ints",
        lambda m: layers.render_text([1, 2], image_size=32),
        TypeError,
        "texts",
    ),
    (
        "render_text_nested",
        lambda m: layers.render_text([["a"]], image_size=32),
        TypeError,
        "texts",
    ),
    (
        "render_text_2d_array",
        lambda m: layers.render_text(np.array([["a"]]), image_size=32),
        ValueError,
        "texts",
    ),
    (
        "mlp_block_dropout_2",
        lambda m: layers.MlpBlock(8, dropout_rate=2.0),
        ValueError,
        "dropout_rate",
    ),
    (
        "transformer_encoder_remat_string",
        lambda m: layers.TransformerEncoder(1, 2, 8, remat="yes"),
        TypeError,
        "remat",
    ),
    (
        "vit_remat_none",
        lambda m: models.ViTBackbone(**tiny_vit_kwargs(), remat=None),
        TypeError,
        "remat",
    ),
    (
        "map_head_heads_zero",
        lambda m: layers.MAPHead(0, 8),
        ValueError,
        "num_heads",
    ),
    (
        "moe_router_experts_zero",
        lambda m: layers.MoeRouter(num_experts=0, num_selected_experts=1),
        ValueError,
        "num_experts",
    ),
    # --- losses ---
    (
        "softmax_loss_batch_mismatch",
        lambda m: losses.softmax_contrastive_loss(
            embeddings(3), embeddings(2), 10.0
        ),
        ValueError,
        "embeddings",
    ),
    (
        "softmax_loss_rank_1",
        lambda m: losses.softmax_contrastive_loss(
            embeddings(2)[0], embeddings(2)[0], 10.0
        ),
        ValueError,
        "embeddings",
    ),
    (
        "sigmoid_loss_dim_mismatch",
        lambda m: losses.sigmoid_contrastive_loss(
            embeddings(2, 4), embeddings(2, 5), 10.0, -10.0
        ),
        ValueError,
        "embeddings",
    ),
    (
        "softmax_loss_vector_scale",
        lambda m: losses.softmax_contrastive_loss(
            embeddings(), embeddings(), np.ones(2, "float32")
        ),
        ValueError,
        "logit_scale",
    ),
    (
        "sigmoid_loss_matrix_bias",
        lambda m: losses.sigmoid_contrastive_loss(
            embeddings(), embeddings(), 10.0, np.ones((1, 1), "float32")
        ),
        ValueError,
        "logit_bias",
    ),
    (
        "logit_scale_negative_max",
        lambda m: losses.logit_scale_from_log(0.0, max_scale=-1.0),
        ValueError,
        "max_scale",
    ),
    (
        "positive_mask_strings",
        lambda m: losses.positive_mask(np.full((2, 2), "yes")),
        TypeError,
        "positives",
    ),
    (
        "accuracy_rank_1",
        lambda m: losses.image_to_text_accuracy(np.ones(3)),
        ValueError,
        "logits",
    ),
    (
        "entropy_threshold_negative",
        lambda m: losses.check_entropy_threshold(-1.0, 4),
        ValueError,
        "threshold",
    ),
    # --- backbones ---
    (
        "vit_patch_larger_than_image",
        lambda m: models.ViTBackbone(**tiny_vit_kwargs(patch_size=64)),
        ValueError,
        "patch_size",
    ),
    (
        "vit_unknown_pool",
        lambda m: models.ViTBackbone(**tiny_vit_kwargs(pool_type="max")),
        ValueError,
        "pool_type",
    ),
    (
        "vit_from_unknown_variant",
        lambda m: models.ViTBackbone.from_variant("Z/3"),
        ValueError,
        "variant",
    ),
    (
        "text_transformer_vocab_zero",
        lambda m: models.TextTransformer(**tiny_text_kwargs(vocab_size=0)),
        ValueError,
        "vocab_size",
    ),
    (
        "clippo_backbone_image_size_mismatch",
        lambda m: models.ClippoBackbone(
            m.clippo.backbone.vision_encoder, layers.TextRenderer(image_size=64)
        ),
        ValueError,
        "image_size",
    ),
    (
        "limoe_backbone_moe_layers_out_of_range",
        lambda m: models.LIMoEBackbone(
            vocabulary_size=8,
            sequence_length=4,
            image_size=32,
            patch_size=16,
            width=16,
            depth=2,
            num_heads=2,
            mlp_dim=32,
            out_dim=8,
            num_experts=2,
            moe_layers=(5,),
        ),
        ValueError,
        "moe_layers",
    ),
    (
        "pali_language_vocab_zero",
        lambda m: models.PaLILanguageModel(
            vocabulary_size=0,
            hidden_dim=8,
            intermediate_dim=8,
            num_heads=2,
            num_encoder_layers=1,
            num_decoder_layers=1,
        ),
        ValueError,
        "vocabulary_size",
    ),
    (
        "lit_backbone_text_encoder_str",
        lambda m: models.LiTBackbone(m.vit, "bert"),
        TypeError,
        "text_encoder",
    ),
    (
        "lit_backbone_negative_projection",
        lambda m: models.LiTBackbone(
            m.vit,
            models.TextTransformer(**tiny_text_kwargs()),
            image_projection_dim=-3,
        ),
        ValueError,
        "image_projection_dim",
    ),
    (
        "pali_backbone_pooled_vision",
        lambda m: models.PaLIBackbone(m.vit, m.pali.backbone.language_model),
        ValueError,
        "vision",
    ),
    (
        "pali_backbone_encoder_shorter_than_image",
        lambda m: models.PaLIBackbone(
            m.pali.backbone.vision,
            m.pali.backbone.language_model,
            max_encoder_length=2,
        ),
        ValueError,
        "max_encoder_length",
    ),
    (
        "layout_map_of_a_shape",
        lambda m: models.LIMoEBackbone.get_layout_map((4, 2)),
        TypeError,
        "device_mesh",
    ),
    (
        "layout_map_unknown_model_axis",
        lambda m: models.PaLIBackbone.get_layout_map(mesh("batch", "tensor")),
        ValueError,
        "model_parallel_dim_name",
    ),
    (
        "layout_map_unknown_data_axis",
        lambda m: models.ViTBackbone.get_layout_map(mesh("data", "model")),
        ValueError,
        "data_parallel_dim_name",
    ),
    (
        "layout_map_one_axis_for_both",
        lambda m: models.ClippoBackbone.get_layout_map(
            mesh("batch", "model"), data_parallel_dim_name="model"
        ),
        ValueError,
        "data_parallel_dim_name",
    ),
    # --- tasks ---
    (
        "clippo_unknown_loss",
        lambda m: models.Clippo(m.clippo.backbone, loss="hinge"),
        ValueError,
        "loss",
    ),
    (
        "clippo_temperature_zero",
        lambda m: models.Clippo(m.clippo.backbone, temperature_init=0.0),
        ValueError,
        "temperature_init",
    ),
    (
        "clippo_wrong_backbone",
        lambda m: models.Clippo(m.vit),
        TypeError,
        "backbone",
    ),
    (
        "lit_unknown_lock",
        lambda m: models.LiT(m.lit.backbone, lock="XY"),
        ValueError,
        "lock",
    ),
    (
        "clippo_encode_images_rank_3",
        lambda m: m.clippo.encode_images(np.zeros((2, 32, 32), "uint8")),
        ValueError,
        "images",
    ),
    (
        "clippo_encode_images_empty",
        lambda m: m.clippo.encode_images(np.zeros((0, 32, 32, 3), "uint8")),
        ValueError,
        "images",
    ),
    (
        "clippo_encode_images_strings",
        lambda m: m.clippo.encode_images(np.full((1, 32, 32, 3), "a")),
        TypeError,
        "images",
    ),
    (
        "clippo_encode_texts_empty",
        lambda m: m.clippo.encode_texts([]),
        ValueError,
        "texts",
    ),
    (
        "clippo_encode_texts_ints",
        lambda m: m.clippo.encode_texts([1, 2]),
        TypeError,
        "texts",
    ),
    (
        "clippo_encode_batch_size_zero",
        lambda m: m.clippo.encode_texts(["a"], batch_size=0),
        ValueError,
        "batch_size",
    ),
    (
        "lit_encode_texts_empty",
        lambda m: m.lit.encode_texts([]),
        ValueError,
        "texts",
    ),
    (
        "lit_encode_texts_floats",
        lambda m: m.lit.encode_texts(np.zeros((2, 3), "float32")),
        TypeError,
        "texts",
    ),
    (
        "lit_encode_texts_ids_out_of_vocabulary",
        lambda m: m.lit.encode_texts([[1, 2, 99]]),
        ValueError,
        "texts",
    ),
    (
        "lit_encode_texts_negative_ids",
        lambda m: m.lit.encode_texts([[1, -5]]),
        ValueError,
        "texts",
    ),
    (
        "lit_encode_images_rank_2",
        lambda m: m.lit.encode_images(np.zeros((32, 32))),
        ValueError,
        "images",
    ),
    (
        "limoe_encode_texts_dict_missing",
        lambda m: m.limoe.encode_texts(
            {"token_ids": np.zeros((1, 4), "int32")}
        ),
        ValueError,
        "texts",
    ),
    (
        "limoe_encode_texts_dict_out_of_vocabulary",
        lambda m: m.limoe.encode_texts(
            {
                "token_ids": np.full((1, 4), 99, "int32"),
                "padding_mask": np.ones((1, 4), bool),
            }
        ),
        ValueError,
        "token_ids",
    ),
    (
        "limoe_encode_images_empty",
        lambda m: m.limoe.encode_images(np.zeros((0, 32, 32, 3))),
        ValueError,
        "images",
    ),
    (
        "clippo_similarity_texts_none",
        lambda m: m.clippo.similarity(random_pixels(1), None),
        TypeError,
        "texts",
    ),
    (
        "pali_wrong_backbone",
        lambda m: models.PaLI(m.vit),
        TypeError,
        "backbone",
    ),
    (
        "pali_unknown_sampler",
        lambda m: m.pali.compile(sampler="psychic"),
        ValueError,
        "sampler",
    ),
    (
        "pali_generate_max_length_zero",
        lambda m: m.pali.generate(pali_inputs(), max_length=0),
        ValueError,
        "max_length",
    ),
    (
        "pali_generate_inputs_not_a_dict",
        lambda m: m.pali.generate([1, 2], max_length=4),
        TypeError,
        "inputs",
    ),
    (
        "pali_generate_inputs_missing_images",
        lambda m: m.pali.generate(
            {"encoder_token_ids": np.ones((1, 4), "int32")}, max_length=4
        ),
        ValueError,
        "images",
    ),
    (
        "pali_generate_token_ids_out_of_vocabulary",
        lambda m: m.pali.generate(pali_inputs(token=PALI_VOCAB), max_length=4),
        ValueError,
        "encoder_token_ids",
    ),
    (
        "pali_generate_rows_mismatch",
        lambda m: m.pali.generate(
            pali_inputs(2, images=np.zeros((3, 16, 16, 3), "float32")),
            max_length=4,
        ),
        ValueError,
        "images",
    ),
    # --- preprocessors ---
    (
        "pali_preprocessor_not_a_tokenizer",
        lambda m: models.PaLIPreprocessor(object()),
        TypeError,
        "tokenizer",
    ),
    (
        "clippo_preprocessor_batch_mismatch",
        lambda m: m.clippo.preprocessor(pairs(3, 2)),
        ValueError,
        "texts",
    ),
    (
        "clippo_preprocessor_rgba",
        lambda m: m.clippo.preprocessor(
            {"images": np.zeros((2, 8, 8, 4)), "texts": TEXTS}
        ),
        ValueError,
        "images",
    ),
    (
        "clippo_preprocessor_unknown_key",
        lambda m: m.clippo.preprocessor({**pairs(), "labels": [0, 1]}),
        ValueError,
        "labels",
    ),
    (
        "clippo_preprocessor_texts_ints",
        lambda m: m.clippo.preprocessor(
            {"images": random_pixels(2), "texts": np.array([1, 2])}
        ),
        TypeError,
        "texts",
    ),
    (
        "clippo_preprocessor_sequence_length_zero",
        lambda m: models.ClippoPreprocessor(32, sequence_length=0),
        ValueError,
        "sequence_length",
    ),
    (
        "lit_preprocessor_unknown_eos",
        lambda m: models.LiTPreprocessor(sequence_length=4, eos="maybe"),
        ValueError,
        "eos",
    ),
    (
        "lit_preprocessor_batch_mismatch",
        lambda m: m.lit.preprocessor(pairs(2, 3)),
        ValueError,
        "texts",
    ),
    (
        "lit_preprocessor_ids_too_long",
        lambda m: m.lit.preprocessor({"texts": np.ones((1, 9), "int32")}),
        ValueError,
        "texts",
    ),
    (
        "limoe_preprocessor_sequence_length_zero",
        lambda m: models.LIMoEPreprocessor(sequence_length=0),
        ValueError,
        "sequence_length",
    ),
    (
        "limoe_preprocessor_no_inputs",
        lambda m: m.limoe.preprocessor({"pixels": random_pixels(2)}),
        ValueError,
        "images",
    ),
    # --- training ---
    (
        "clippo_fit_image_text_mismatch",
        lambda m: m.compiled_clippo.fit(pairs(4, 3), verbose=0),
        ValueError,
        "texts",
    ),
    (
        "clippo_evaluate_image_text_mismatch",
        lambda m: m.compiled_clippo.evaluate(pairs(4, 3), verbose=0),
        ValueError,
        "texts",
    ),
    (
        "clippo_predict_image_text_mismatch",
        lambda m: m.clippo.predict(pairs(4, 3), verbose=0),
        ValueError,
        "texts",
    ),
    (
        "clippo_fit_batch_size_one",
        lambda m: m.compiled_clippo.fit(pairs(2, 2), batch_size=1, verbose=0),
        ValueError,
        "batch_size",
    ),
    (
        "clippo_fit_validation_split_one",
        lambda m: m.compiled_clippo.fit(
            pairs(4, 4), validation_split=1.0, verbose=0
        ),
        ValueError,
        "validation_split",
    ),
    (
        "clippo_fit_targets_dict",
        lambda m: m.compiled_clippo.compute_loss(
            y={"a": 1},
            y_pred={
                "image_embeddings": embeddings(),
                "text_embeddings": embeddings(),
            },
        ),
        ValueError,
        "y",
    ),
    (
        "lit_fit_token_ids_out_of_vocabulary",
        lambda m: m.compiled_lit.fit(
            {"images": random_pixels(2), "texts": np.full((2, 3), 99)},
            verbose=0,
        ),
        ValueError,
        "texts",
    ),
    (
        "lit_evaluate_batch_size_one",
        lambda m: m.compiled_lit.evaluate(pairs(), batch_size=1, verbose=0),
        ValueError,
        "batch_size",
    ),
    (
        "limoe_predict_image_text_mismatch",
        lambda m: m.limoe.predict(pairs(2, 3), verbose=0),
        ValueError,
        "texts",
    ),
    # --- evaluation ---
    (
        "recall_dim_mismatch",
        lambda m: evaluation.retrieval_recall(
            embeddings(2, 4), embeddings(2, 5)
        ),
        ValueError,
        "embeddings",
    ),
    (
        "recall_k_zero",
        lambda m: evaluation.retrieval_recall(
            embeddings(), embeddings(), ks=(0,)
        ),
        ValueError,
        "ks",
    ),
    (
        "recall_index_out_of_range",
        lambda m: evaluation.retrieval_recall(
            embeddings(), embeddings(), text_to_image_index=[0, 7]
        ),
        ValueError,
        "text_to_image_index",
    ),
    (
        "zero_shot_no_classes",
        lambda m: evaluation.ZeroShotClassifier(m.clippo, [], ["{}"]),
        ValueError,
        "class_names",
    ),
    (
        "zero_shot_template_without_slot",
        lambda m: evaluation.ZeroShotClassifier(m.clippo, ["cat"], ["a cat"]),
        ValueError,
        "templates",
    ),
    (
        "zero_shot_not_a_model",
        lambda m: evaluation.ZeroShotClassifier(object(), ["cat"], ["{}"]),
        TypeError,
        "model",
    ),
    # --- data ---
    (
        "shapes_image_size_tiny",
        lambda m: data.ShapesDataset(image_size=4),
        ValueError,
        "image_size",
    ),
    (
        "shapes_unknown_shape",
        lambda m: data.ShapesDataset(shapes=["blob"]),
        ValueError,
        "shapes",
    ),
    (
        "shapes_sample_negative",
        lambda m: data.ShapesDataset().sample(-1),
        ValueError,
        "`n`",
    ),
    (
        "shapes_unknown_split",
        lambda m: data.ShapesDataset().class_ids("test"),
        ValueError,
        "split",
    ),
    (
        "questions_unknown_language",
        lambda m: data.ShapeQuestions(languages=("xx",)),
        ValueError,
        "languages",
    ),
    # --- converters ---
    (
        "npz_missing_file",
        lambda m: checkpoint.load_npz_checkpoint("/nonexistent/ckpt.npz"),
        FileNotFoundError,
        "ckpt.npz",
    ),
    (
        "safetensors_missing_file",
        lambda m: huggingface.read_weights("/nonexistent/model.safetensors"),
        ValueError,
        "model.safetensors",
    ),
    # --- CLI ---
    (
        "cli_render_image_size_zero",
        lambda m: cli_error(
            ["render", "hi", "-o", "/tmp/x.png", "--image-size", "0"]
        ),
        ValueError,
        "--image-size",
    ),
]


@pytest.fixture(scope="module")
def tiny():
    keras.utils.set_random_seed(0)
    return TinyModels()


@pytest.mark.parametrize(
    "call, error, name",
    [case[1:] for case in CASES],
    ids=[case[0] for case in CASES],
)
def test_bad_input_raises_a_clear_error(tiny, call, error, name):
    with pytest.raises(error, match=name) as raised:
        call(tiny)
    # Raised by keras_vl (or Python) itself, not a backend's internals.
    module = type(raised.value).__module__.split(".")[0]
    assert module in ("builtins", "keras_vl"), raised.value


def test_fit_warns_when_only_the_last_batch_is_one_pair(tiny, monkeypatch):
    # The check runs before training, which is not needed here.
    monkeypatch.setattr(keras_hub.models.Task, "fit", lambda *a, **k: None)
    with pytest.warns(UserWarning, match="single pair"):
        tiny.compiled_clippo.fit(pairs(3, 3), batch_size=2, verbose=0)
    with pytest.warns(UserWarning, match="single pair"):
        tiny.compiled_clippo.fit(pairs(5, 5), batch_size=4, shuffle=False)
