"""PaLIPreprocessor: T5 packing of prompts and responses, targets and
sample weights, generation, tf.data, presets and bad input; PaLI's
prompts."""

import keras
import keras_hub
import numpy as np
import pytest
import tensorflow as tf
from conftest import to_numpy
from model_contract import ContractTestCase, random_pixels
from pali_fixtures import tiny_backbone, tiny_language

from keras_vl.data import ShapeQuestions, shape_vocabulary_proto
from keras_vl.models.pali.pali_preprocessor import (
    PROMPT_TEMPLATES,
    PaLIPreprocessor,
    format_prompt,
)

CAPTION = "Generate the alt_text in EN"
QUESTION = "Answer in FR: où est la forme ?"
# Their pieces in the shapes vocabulary (the leading "▁" marks a space).
CAPTION_PIECES = ["▁Generate", "▁the", "▁alt", "_", "text", "▁in", "▁EN"]
QUESTION_PIECES = [
    "▁Answer",
    "▁in",
    "▁FR",
    ":",
    "▁où",
    "▁est",
    "▁la",
    "▁forme",
    "▁?",
]
PAD, EOS = 0, 1


@pytest.fixture(scope="module")
def proto():
    return shape_vocabulary_proto()


def t5_tokenizer(proto):
    # A new tokenizer per test: TF's SentencePiece resource does not survive
    # a later `keras.utils.set_random_seed`.
    return keras_hub.tokenizers.T5Tokenizer(proto=proto)


def piece_ids(tokenizer, pieces):
    return [int(tokenizer.token_to_id(piece)) for piece in pieces]


def numpy_tree(outputs):
    return keras.tree.map_structure(to_numpy, outputs)


def test_hand_checked_example(proto):
    tokenizer = t5_tokenizer(proto)
    preprocessor = PaLIPreprocessor(
        tokenizer,
        encoder_sequence_length=10,
        decoder_sequence_length=5,
        image_size=8,
    )
    pixels = np.zeros((3, 8, 8, 3), "uint8")
    pixels[1] = 255
    x, y, sample_weight = numpy_tree(
        preprocessor(
            {
                "images": pixels,
                "prompts": [CAPTION, QUESTION, CAPTION],
                "responses": ["a red circle", "en haut à gauche", "rouge"],
            }
        )
    )
    caption = piece_ids(tokenizer, CAPTION_PIECES)
    question = piece_ids(tokenizer, QUESTION_PIECES)
    # Prompt, EOS, padding; the 9-token question fills all 10 with EOS.
    assert x["encoder_token_ids"].tolist() == [
        caption + [EOS, PAD, PAD],
        question + [EOS],
        caption + [EOS, PAD, PAD],
    ]
    assert x["encoder_padding_mask"].tolist() == [
        [True] * 8 + [False] * 2,
        [True] * 10,
        [True] * 8 + [False] * 2,
    ]
    a, red, circle = piece_ids(tokenizer, ["▁a", "▁red", "▁circle"])
    en, haut, at, left = piece_ids(tokenizer, ["▁en", "▁haut", "▁à", "▁gauche"])
    (rouge,) = piece_ids(tokenizer, ["▁rouge"])
    # [start = pad] + response + [EOS], padded to 6, then split in two.
    assert x["decoder_token_ids"].tolist() == [
        [PAD, a, red, circle, EOS],
        [PAD, en, haut, at, left],
        [PAD, rouge, EOS, PAD, PAD],
    ]
    assert x["decoder_padding_mask"].tolist() == [
        [True] * 5,
        [True] * 5,
        [True, True, True, False, False],
    ]
    assert y.tolist() == [
        [a, red, circle, EOS, PAD],
        [en, haut, at, left, EOS],
        [rouge, EOS, PAD, PAD, PAD],
    ]
    # One exactly on the response's tokens and its EOS.
    assert sample_weight.dtype == np.float32
    assert sample_weight.tolist() == [
        [1.0, 1.0, 1.0, 1.0, 0.0],
        [1.0, 1.0, 1.0, 1.0, 1.0],
        [1.0, 1.0, 0.0, 0.0, 0.0],
    ]
    assert x["encoder_token_ids"].dtype == np.int32
    assert x["decoder_token_ids"].dtype == np.int32 and y.dtype == np.int32
    assert x["encoder_padding_mask"].dtype == bool
    assert x["decoder_padding_mask"].dtype == bool
    # Pixels 0 and 255 map to the ends of [-1, 1].
    assert x["images"].dtype == np.float32 and x["images"].shape == (
        3,
        8,
        8,
        3,
    )
    assert x["images"][0].max() == -1.0 and x["images"][1].min() == 1.0


def test_long_response_is_cut_and_still_ends(proto):
    tokenizer = t5_tokenizer(proto)
    preprocessor = PaLIPreprocessor(
        tokenizer, encoder_sequence_length=10, decoder_sequence_length=4
    )
    response = "a red circle at the top left"  # 7 tokens
    x, y, sample_weight = numpy_tree(
        preprocessor(
            {
                "images": np.zeros((1, 8, 8, 3), "uint8"),
                "prompts": [CAPTION],
                "responses": [response],
            }
        )
    )
    a, red, circle = piece_ids(tokenizer, ["▁a", "▁red", "▁circle"])
    # The first decoder_sequence_length - 1 = 3 tokens, then EOS.
    assert x["decoder_token_ids"].tolist() == [[PAD, a, red, circle]]
    assert y.tolist() == [[a, red, circle, EOS]]
    assert sample_weight.tolist() == [[1.0] * 4]


def test_sample_weight_marks_exactly_the_response(proto):
    tokenizer = t5_tokenizer(proto)
    preprocessor = PaLIPreprocessor(
        tokenizer, encoder_sequence_length=12, decoder_sequence_length=12
    )
    batch = ShapeQuestions(image_size=16).sample(16, seed=0)
    x, y, sample_weight = numpy_tree(preprocessor(batch))
    for i, response in enumerate(batch["responses"]):
        n = len(tokenizer.tokenize(response))
        assert sample_weight[i].tolist() == [1.0] * (n + 1) + [0.0] * (
            12 - n - 1
        )
        assert y[i, n] == EOS and (y[i, n + 1 :] == PAD).all()
        # The targets are the decoder inputs shifted left by one.
        np.testing.assert_array_equal(y[i, :-1], x["decoder_token_ids"][i, 1:])
        # The start token, the response and its EOS.
        assert x["decoder_padding_mask"][i].sum() == n + 2


def test_tf_data_map_equals_eager(proto):
    preprocessor = PaLIPreprocessor(
        t5_tokenizer(proto),
        encoder_sequence_length=12,
        decoder_sequence_length=10,
        image_size=16,
    )
    data = ShapeQuestions(image_size=32, seed=3)
    (batch,) = data.as_numpy_batches(batch_size=6, num_batches=1, seed=1)
    eager = numpy_tree(preprocessor(batch))
    dataset = data.as_tf_dataset(batch_size=6, num_batches=1, seed=1)
    mapped = next(iter(dataset.map(preprocessor)))
    mapped = keras.tree.map_structure(lambda t: t.numpy(), mapped)
    for got, want in zip(
        keras.tree.flatten(mapped), keras.tree.flatten(eager), strict=True
    ):
        assert got.dtype == want.dtype
        np.testing.assert_array_equal(got, want)


def test_generate_preprocess_and_postprocess_round_trip(proto):
    preprocessor = PaLIPreprocessor(
        t5_tokenizer(proto),
        encoder_sequence_length=10,
        decoder_sequence_length=6,
        image_size=8,
    )
    prompts = [CAPTION, QUESTION]
    responses = ["une étoile verte en haut", "en bas à droite"]
    images = np.zeros((2, 8, 8, 3), "uint8")
    inputs = numpy_tree(
        preprocessor.generate_preprocess(
            {"images": images, "prompts": prompts, "lang": ["EN", "FR"]}
        )
    )
    assert sorted(inputs) == [
        "decoder_padding_mask",
        "decoder_token_ids",
        "encoder_padding_mask",
        "encoder_token_ids",
        "images",
    ]
    assert inputs["decoder_token_ids"].tolist() == [[PAD] * 6] * 2
    assert inputs["decoder_padding_mask"].tolist() == [[True] + [False] * 5] * 2
    train_x, _, _ = numpy_tree(
        preprocessor(
            {"images": images, "prompts": prompts, "responses": responses}
        )
    )
    # The encoder half is the same as for training.
    for key in ("encoder_token_ids", "encoder_padding_mask", "images"):
        np.testing.assert_array_equal(inputs[key], train_x[key])
    # `generate(max_length=...)` passes the decoder length as
    # `sequence_length`.
    longer = preprocessor.generate_preprocess(
        {"images": images, "prompts": prompts}, sequence_length=9
    )
    assert tuple(longer["decoder_token_ids"].shape) == (2, 9)

    # A generated sequence: start token, the response, EOS, then anything.
    tokenizer = preprocessor.tokenizer
    generated = np.zeros((2, 12), "int32")
    for i, response in enumerate(responses):
        ids = [int(t) for t in tokenizer.tokenize(response)]
        generated[i, 1 : len(ids) + 1] = ids
        generated[i, len(ids) + 1] = EOS
        generated[i, len(ids) + 2 :] = ids[0]  # after EOS: dropped
    assert preprocessor.generate_postprocess(generated) == responses
    mask = np.ones((2, 12), bool)
    assert (
        preprocessor.generate_postprocess(
            {"decoder_token_ids": generated, "decoder_padding_mask": mask}
        )
        == responses
    )
    # The mask drops what it marks as padding; one sequence gives one str.
    mask[0, 3:] = False
    (first, second) = preprocessor.generate_postprocess(
        {"decoder_token_ids": generated, "decoder_padding_mask": mask}
    )
    assert first == "une étoile" and second == responses[1]
    assert preprocessor.generate_postprocess(generated[1]) == responses[1]
    # Unbatched: one image and one prompt.
    single = preprocessor.generate_preprocess(
        {"images": images[0], "prompts": QUESTION}
    )
    assert tuple(single["encoder_token_ids"].shape) == (10,)
    assert tuple(single["decoder_token_ids"].shape) == (6,)


class PaLIPreprocessorContractTest(ContractTestCase):
    def test_preprocessor_contract(self):
        proto = shape_vocabulary_proto()
        init_kwargs = {
            "tokenizer": t5_tokenizer(proto),
            "encoder_sequence_length": 12,
            "decoder_sequence_length": 6,
            "image_size": (16, 24),
            "value_range": (0.0, 1.0),
            "vocabulary_size": 300,
        }
        x = {
            "images": random_pixels(batch=3),
            "prompts": [CAPTION, QUESTION, "Answer in EN: what shape is it?"],
            "responses": ["a red circle", "en haut", "star"],
        }
        x_out, y, sample_weight = self.run_preprocessor_contract(
            PaLIPreprocessor, init_kwargs, x, token_id_key="decoder_token_ids"
        )
        self.assertEqual(tuple(x_out["images"].shape), (3, 16, 24, 3))
        self.assertEqual(tuple(x_out["encoder_token_ids"].shape), (3, 12))
        self.assertEqual(tuple(y.shape), (3, 6))
        self.assertAllEqual(sample_weight[1], [1.0, 1.0, 1.0, 0.0, 0.0, 0.0])


def test_preset_round_trip_keeps_vocabulary_and_lengths(proto, tmp_path):
    preprocessor = PaLIPreprocessor(
        t5_tokenizer(proto),
        encoder_sequence_length=11,
        decoder_sequence_length=7,
        image_size=(12, 20),
        value_range=(0.0, 2.0),
        vocabulary_size=256,
    )
    preset = str(tmp_path / "preset")
    tiny_backbone(tiny_language(vocabulary_size=256)).save_to_preset(preset)
    preprocessor.save_to_preset(preset)
    loaded = PaLIPreprocessor.from_preset(preset)
    assert type(loaded) is PaLIPreprocessor
    assert loaded.tokenizer.proto == proto
    assert loaded.encoder_sequence_length == 11
    assert loaded.decoder_sequence_length == 7
    assert loaded.image_size == (12, 20)
    assert loaded.value_range == (0.0, 2.0)
    assert loaded.vocabulary_size == 256
    batch = ShapeQuestions(image_size=16).sample(4, seed=2)
    for got, want in zip(
        keras.tree.flatten(numpy_tree(loaded(batch))),
        keras.tree.flatten(numpy_tree(preprocessor(batch))),
        strict=True,
    ):
        np.testing.assert_array_equal(got, want)


def test_prompt_too_long_raises_eagerly_and_stops_tf_data(proto):
    preprocessor = PaLIPreprocessor(
        t5_tokenizer(proto), encoder_sequence_length=9
    )
    images = np.zeros((2, 8, 8, 3), "uint8")
    # The question takes 9 tokens plus EOS: one too many.
    batch = {
        "images": images,
        "prompts": [CAPTION, QUESTION],
        "responses": ["rouge", "vert"],
    }
    with pytest.raises(ValueError, match="'prompts'.*encoder_sequence_length"):
        preprocessor(batch)
    with pytest.raises(ValueError, match="'prompts'"):
        preprocessor.generate_preprocess(
            {"images": images, "prompts": [QUESTION, CAPTION]}
        )
    dataset = tf.data.Dataset.from_tensor_slices(batch).batch(2)
    with pytest.raises(tf.errors.InvalidArgumentError, match="must fit"):
        next(iter(dataset.map(preprocessor)))
    # The same prompts fit with one more position.
    preprocessor.encoder_sequence_length = 10
    next(iter(dataset.map(preprocessor)))


def test_bad_inputs(proto):
    preprocessor = PaLIPreprocessor(
        t5_tokenizer(proto), encoder_sequence_length=12
    )
    images = np.zeros((2, 8, 8, 3), "uint8")
    prompts = [CAPTION, QUESTION]
    good = {"images": images, "prompts": prompts, "responses": ["a", "b"]}
    with pytest.raises(ValueError, match="'responses'"):
        preprocessor({"images": images, "prompts": prompts})
    with pytest.raises(ValueError, match="missing \\['prompts'\\]"):
        preprocessor({"images": images, "responses": ["a", "b"]})
    with pytest.raises(ValueError, match="'images'"):
        preprocessor({**good, "images": np.zeros((2, 8, 8), "uint8")})
    with pytest.raises(ValueError, match="'images'"):
        preprocessor({**good, "images": np.zeros((2, 8, 8, 1), "uint8")})
    with pytest.raises(ValueError, match="'prompts' must not be empty"):
        preprocessor({"images": images[:0], "prompts": [], "responses": []})
    with pytest.raises(TypeError, match="'prompts' must be strings"):
        preprocessor({**good, "prompts": [1, 2]})
    with pytest.raises(TypeError, match="'responses' must be strings"):
        preprocessor({**good, "responses": np.zeros(2)})
    with pytest.raises(ValueError, match="'prompts' must be a batch"):
        preprocessor({**good, "prompts": [prompts, prompts]})
    with pytest.raises(ValueError, match="same batch size"):
        preprocessor({**good, "responses": ["a", "b", "c"]})
    with pytest.raises(ValueError, match="both be batches"):
        preprocessor({**good, "images": images[0]})
    with pytest.raises(ValueError, match="Unexpected input keys"):
        preprocessor({**good, "texts": prompts})
    with pytest.raises(ValueError, match="y=None"):
        preprocessor(good, np.zeros((2, 4)))
    with pytest.raises(ValueError, match="takes no 'responses'"):
        preprocessor.generate_preprocess(good)
    with pytest.raises(ValueError, match="expects a dict"):
        preprocessor(prompts)
    with pytest.raises(ValueError, match="decoder_token_ids"):
        preprocessor.generate_postprocess({"token_ids": [[0, 1]]})
    with pytest.raises(ValueError, match="must be ints"):
        preprocessor.generate_postprocess(np.zeros((2, 3), "float32"))
    # The task metadata of the data module is accepted and dropped.
    x, _, _ = preprocessor(
        {**good, "task": ["caption"] * 2, "lang": ["EN"] * 2}
    )
    assert "task" not in x and "lang" not in x


def test_bad_arguments(proto):
    tokenizer = t5_tokenizer(proto)
    with pytest.raises(ValueError, match="vocabulary_size=100"):
        PaLIPreprocessor(tokenizer, vocabulary_size=100)
    PaLIPreprocessor(tokenizer, vocabulary_size=256)  # exactly enough
    with pytest.raises(ValueError, match="encoder_sequence_length"):
        PaLIPreprocessor(tokenizer, encoder_sequence_length=0)
    with pytest.raises(ValueError, match="decoder_sequence_length"):
        PaLIPreprocessor(tokenizer, decoder_sequence_length=2.5)
    with pytest.raises(ValueError, match="image_size"):
        PaLIPreprocessor(tokenizer, image_size=(0, 8))
    with pytest.raises(ValueError, match="value_range"):
        PaLIPreprocessor(tokenizer, value_range=1.0)
    with pytest.raises(TypeError, match="tokenizer"):
        PaLIPreprocessor("spm.model")
    with pytest.raises(ValueError, match="sequence_length"):
        PaLIPreprocessor(
            keras_hub.tokenizers.T5Tokenizer(proto=proto, sequence_length=8)
        )
    # A vocabulary without T5's special pieces cannot pack sequences.
    word_piece = keras_hub.tokenizers.WordPieceTokenizer(
        vocabulary=["[PAD]", "[UNK]", "a"]
    )
    with pytest.raises(ValueError, match="<pad>"):
        PaLIPreprocessor(word_piece)(
            {"images": np.zeros((8, 8, 3)), "prompts": "a", "responses": "a"}
        )


def test_plain_sentence_piece_tokenizer_finds_t5_ids(proto):
    tokenizer = keras_hub.tokenizers.SentencePieceTokenizer(proto=proto)
    preprocessor = PaLIPreprocessor(tokenizer)
    assert (preprocessor.pad_token_id, preprocessor.end_token_id) == (0, 1)


def test_format_prompt():
    assert PROMPT_TEMPLATES == {
        "caption": "Generate the alt_text in {lang}",
        "vqa": "Answer in {lang}: {question}",
    }
    assert format_prompt("caption", "EN") == CAPTION
    assert format_prompt("caption", "fr") == "Generate the alt_text in FR"
    assert format_prompt("vqa", "FR", "où est la forme ?") == QUESTION
    assert format_prompt("vqa", "pt-br", "what?") == "Answer in PT-BR: what?"
    with pytest.raises(ValueError, match="`task` must be one of"):
        format_prompt("ocr", "EN")
    with pytest.raises(ValueError, match="`question`"):
        format_prompt("vqa", "EN")
    with pytest.raises(ValueError, match="`question`"):
        format_prompt("vqa", "EN", "  ")
    with pytest.raises(ValueError, match="takes no `question`"):
        format_prompt("caption", "EN", "what?")
    with pytest.raises(ValueError, match="`lang`"):
        format_prompt("caption", "English please")
    with pytest.raises(ValueError, match="`lang`"):
        format_prompt("caption", None)
