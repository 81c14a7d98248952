"""PaLI task: cached generation against plain decoding, samplers, stopping,
the response-only loss, mixed-length prompts, the ViT lock, `from_parts`,
presets and bad input."""

import keras
import keras_hub
import numpy as np
import pytest
from conftest import to_numpy
from model_contract import ContractTestCase
from pali_fixtures import (
    IMAGE,
    VOCAB,
    tiny_backbone,
    tiny_inputs,
    tiny_language,
    tiny_vision,
)

from keras_vl.models import PaLI, PaLIBackbone

MAX_LENGTH = 7


def prompts_of(x, rows=slice(None)):
    return {
        k: x[k][rows]
        for k in ("images", "encoder_token_ids", "encoder_padding_mask")
    }


@pytest.fixture(scope="module")
def model():
    keras.utils.set_random_seed(0)
    model = PaLI(tiny_backbone())
    model.compile(sampler="greedy")
    return model


@pytest.fixture(scope="module")
def greedy(model):
    """Greedy tokens for the two prompts of `tiny_inputs()`."""
    outputs = model.generate(
        prompts_of(tiny_inputs()), max_length=MAX_LENGTH, stop_token_ids=None
    )
    return outputs["decoder_token_ids"]


def uncached_greedy(model, x, length):
    """Argmax decoding by re-running the whole model at every step.

    The decoder input keeps one length (causal attention: the tokens not
    written yet do not change the earlier positions), so each step reuses
    the same shapes.
    """
    ids = np.zeros((len(x["images"]), length), "int32")
    inputs = {**prompts_of(x), "decoder_padding_mask": np.ones_like(ids, bool)}
    for step in range(1, length):
        logits = to_numpy(model({**inputs, "decoder_token_ids": ids}))
        ids[:, step] = logits[:, step - 1].argmax(-1)
    return ids


def test_cached_greedy_equals_uncached_argmax(model, greedy):
    expected = uncached_greedy(model, tiny_inputs(), MAX_LENGTH)
    assert greedy.shape == (2, MAX_LENGTH)
    np.testing.assert_array_equal(greedy, expected)
    assert (greedy[:, 0] == 0).all()  # starts from the start token


@pytest.mark.parametrize(
    "sampler",
    [
        keras_hub.samplers.BeamSampler(num_beams=1),
        keras_hub.samplers.TopKSampler(k=1),
    ],
    ids=["beam_1", "top_k_1"],
)
def test_one_candidate_samplers_equal_greedy(model, greedy, sampler):
    model.compile(sampler=sampler)
    try:
        outputs = model.generate(
            prompts_of(tiny_inputs()),
            max_length=MAX_LENGTH,
            stop_token_ids=None,
        )
    finally:
        model.compile(sampler="greedy")
    np.testing.assert_array_equal(outputs["decoder_token_ids"], greedy)


def test_stops_at_eos_and_pads_after(model, greedy):
    stop = int(greedy[0, 2])
    outputs = model.generate(
        prompts_of(tiny_inputs()), max_length=MAX_LENGTH, stop_token_ids=(stop,)
    )
    ids, mask = outputs["decoder_token_ids"], outputs["decoder_padding_mask"]
    for row in range(2):
        hits = np.flatnonzero(greedy[row, 1:] == stop)
        end = MAX_LENGTH if hits.size == 0 else hits[0] + 2
        np.testing.assert_array_equal(ids[row, :end], greedy[row, :end])
        np.testing.assert_array_equal(ids[row, end:], 0)
        np.testing.assert_array_equal(mask[row], np.arange(MAX_LENGTH) < end)
    # Row 0 does stop early: at the stop token's first appearance.
    first = 1 + np.flatnonzero(greedy[0, 1:] == stop)[0]
    assert first <= 2 and ids[0, first] == stop
    assert mask[0, first] and not mask[0, first + 1 :].any()


def test_mixed_length_prompts_equal_each_alone(model, greedy):
    x = tiny_inputs()
    logits = to_numpy(model(x))
    for row, length in ((0, 6), (1, 4)):
        alone = {k: v[row : row + 1] for k, v in x.items()}
        for key in ("encoder_token_ids", "encoder_padding_mask"):
            alone[key] = alone[key][:, :length]
        np.testing.assert_allclose(
            to_numpy(model(alone))[0], logits[row], atol=1e-5
        )
    # Generation too (the padded prompt; one more compiled shape).
    ids = model.generate(
        prompts_of(alone), max_length=MAX_LENGTH, stop_token_ids=None
    )["decoder_token_ids"]
    np.testing.assert_array_equal(ids[0], greedy[1])


def test_loss_on_response_tokens_only(model):
    x = tiny_inputs(seed=3)
    rng = np.random.default_rng(3)
    y = rng.integers(0, VOCAB, x["decoder_token_ids"].shape)
    weights = np.array([[0, 1, 1, 1, 0], [1, 1, 0, 0, 0]], "float32")
    logits = to_numpy(model(x)).astype("float64")
    log_probs = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
    token_loss = -np.take_along_axis(log_probs, y[..., None], -1)[..., 0]
    expected = (token_loss * weights).sum() / weights.sum()
    loss = model.evaluate(
        x, y, sample_weight=weights, verbose=0, return_dict=True
    )["loss"]
    np.testing.assert_allclose(loss, expected, rtol=1e-5)
    # Targets at unweighted positions do not matter.
    y2 = np.where(weights > 0, y, (y + 1) % VOCAB)
    loss2 = model.evaluate(
        x, y2, sample_weight=weights, verbose=0, return_dict=True
    )["loss"]
    np.testing.assert_allclose(loss2, loss, rtol=1e-6)
    # Without sample weights, the decoder padding mask weighs the tokens.
    x["decoder_padding_mask"] = weights > 0
    padded = model.evaluate(x, y, verbose=0, return_dict=True)["loss"]
    logits = to_numpy(model(x)).astype("float64")
    log_probs = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
    token_loss = -np.take_along_axis(log_probs, y[..., None], -1)[..., 0]
    expected = (token_loss * weights).sum() / weights.sum()
    np.testing.assert_allclose(padded, expected, rtol=1e-5)


def test_fit_with_frozen_pooled_vision_from_parts():
    """`from_parts` turns a pooled ViT into a token ViT (same weights);
    with the ViT locked, `fit` leaves it alone and trains the rest."""
    pooled = tiny_vision(pool_type="gap")
    model = PaLI.from_parts(
        pooled, tiny_language(), freeze_vision=True, max_encoder_length=12
    )
    vision = model.backbone.vision
    x = tiny_inputs()
    np.testing.assert_allclose(
        to_numpy(keras.ops.mean(vision(x["images"]), axis=1)),
        to_numpy(pooled(x["images"])),
        atol=1e-5,
    )
    before_vision = [to_numpy(v) for v in vision.weights]
    before_projection = to_numpy(model.backbone.image_projection.kernel)
    model.compile(optimizer=keras.optimizers.SGD(0.5), sampler="greedy")
    y = np.roll(x["decoder_token_ids"], -1, axis=1)
    history = model.fit(x, y, sample_weight=np.ones(y.shape), verbose=0)
    assert np.isfinite(history.history["loss"]).all()
    for old, new in zip(before_vision, vision.weights, strict=True):
        np.testing.assert_array_equal(old, to_numpy(new))
    assert not np.allclose(
        before_projection, to_numpy(model.backbone.image_projection.kernel)
    )


def test_from_parts_with_presets(tmp_path, model):
    vision = tiny_vision()
    language = tiny_language()
    vision.save_to_preset(str(tmp_path / "vision"))
    language.save_to_preset(str(tmp_path / "language"))
    loaded = PaLI.from_parts(
        str(tmp_path / "vision"), str(tmp_path / "language"), compile=False
    )
    x = tiny_inputs()
    built = PaLI(PaLIBackbone(vision, language), compile=False)
    # The projection is new in both: give them the same one.
    projection = built.backbone.image_projection
    loaded.backbone.image_projection.set_weights(projection.get_weights())
    expected = built(x)
    np.testing.assert_allclose(
        to_numpy(loaded(x)), to_numpy(expected), atol=1e-5
    )


class PaLIPresetTest(ContractTestCase):
    def test_task_preset_round_trip(self):
        task = PaLI(tiny_backbone())
        preset = self.save_preset(task, "pali")
        x = tiny_inputs()
        self.run_preset_test(
            PaLI,
            preset,
            x,
            expected_output=task(x),
            expected_output_shape=(2, 5, VOCAB),
        )
        self.run_serialization_test(task)


def test_unknown_sampler(model):
    with pytest.raises(ValueError, match="sampler"):
        model.compile(sampler="no_such_sampler")
    with pytest.raises(ValueError, match="sampler"):
        model.compile(sampler=3)
    model.compile(sampler="greedy")


@pytest.mark.parametrize("max_length", [0, -3, 2.5])
def test_bad_max_length(model, max_length):
    with pytest.raises(ValueError, match="max_length"):
        model.generate(prompts_of(tiny_inputs()), max_length=max_length)


def test_tokenizer_vocabulary_larger_than_embedding():
    tokenizer = keras_hub.tokenizers.ByteTokenizer()  # 256 ids
    preprocessor = keras_hub.models.Seq2SeqLMPreprocessor(tokenizer=tokenizer)
    with pytest.raises(ValueError, match="vocabulary_size"):
        PaLI(tiny_backbone(), preprocessor=preprocessor, compile=False)


def test_wrong_backbone():
    with pytest.raises(TypeError, match="`backbone`"):
        PaLI(tiny_language())


def test_images_of_wrong_size(model):
    x = prompts_of(tiny_inputs())
    x["images"] = np.zeros((2, IMAGE + 8, IMAGE + 8, 3), "float32")
    with pytest.raises(ValueError, match="images"):
        model.generate(x, max_length=MAX_LENGTH, stop_token_ids=None)


def test_prompt_too_long(model):
    x = prompts_of(tiny_inputs(prompt=12))
    with pytest.raises(ValueError, match="max_encoder_length"):
        model.generate(x, max_length=MAX_LENGTH, stop_token_ids=None)


class StandInPreprocessor(keras_hub.models.Preprocessor):
    """The smallest preprocessor `generate` needs: byte-level prompts, the
    start token 0 padded to the output length, bytes back to strings."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.tokenizer = keras_hub.tokenizers.ByteTokenizer()

    def generate_preprocess(self, x, sequence_length=None):
        rows = [list(prompt.encode()) for prompt in x["prompts"]]
        length = max(map(len, rows))
        ids = np.array([r + [0] * (length - len(r)) for r in rows], "int32")
        decoder = np.zeros((len(rows), sequence_length), "int32")
        return {
            "images": x["images"],
            "encoder_token_ids": ids,
            "encoder_padding_mask": np.array(
                [[i < len(r) for i in range(length)] for r in rows]
            ),
            "decoder_token_ids": decoder,
            "decoder_padding_mask": np.arange(sequence_length)[None]
            < np.ones((len(rows), 1)),
        }

    def generate_postprocess(self, x):
        ids = keras.ops.convert_to_numpy(x["decoder_token_ids"])
        mask = keras.ops.convert_to_numpy(x["decoder_padding_mask"])
        return [
            self.tokenizer.detokenize(row[1:][valid[1:]].tolist())
            for row, valid in zip(ids, mask, strict=True)
        ]


def test_generate_returns_strings_through_a_preprocessor():
    keras.utils.set_random_seed(1)
    backbone = PaLIBackbone(tiny_vision(), tiny_language(vocabulary_size=260))
    model = PaLI(backbone, preprocessor=StandInPreprocessor())
    model.compile(sampler="greedy")
    images = tiny_inputs()["images"]
    prompts = ["caption en", "vqa"]
    texts = model.generate(
        {"images": images, "prompts": prompts},
        max_length=MAX_LENGTH,
        stop_token_ids=None,
    )
    assert isinstance(texts, list) and len(texts) == 2
    assert all(isinstance(t, str) for t in texts)
    # The same as decoding model-ready inputs without the preprocessor.
    model.preprocessor = None
    tokenizer = keras_hub.tokenizers.ByteTokenizer()
    for row, prompt in enumerate(prompts):
        ids = np.frombuffer(prompt.encode(), np.uint8).astype("int32")[None]
        out = model.generate(
            {
                "images": images[row : row + 1],
                "encoder_token_ids": ids,
                "encoder_padding_mask": np.ones_like(ids, bool),
            },
            max_length=MAX_LENGTH,
            stop_token_ids=None,
        )["decoder_token_ids"]
        assert texts[row] == tokenizer.detokenize(out[0, 1:].tolist())
