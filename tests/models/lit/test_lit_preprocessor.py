"""LiTPreprocessor: big_vision's EOS rules, images, tf.data, bad input."""

import keras_hub
import numpy as np
import pytest
from conftest import to_numpy, train_sentencepiece
from model_contract import ContractTestCase, random_pixels

from keras_vl.models import LiTPreprocessor

# [PAD]=0 [UNK]=1 [CLS]=2 [SEP]=3, then words from 4.
VOCAB = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "a", "red", "blue", "circle"]


def word_piece(**kwargs):
    return keras_hub.tokenizers.WordPieceTokenizer(
        vocabulary=VOCAB, lowercase=False, **kwargs
    )


def ids(preprocessor, texts, key="token_ids"):
    return to_numpy(preprocessor({"texts": texts})[key]).tolist()


@pytest.fixture(scope="module")
def spm_proto():
    return train_sentencepiece(
        ["a red circle", "a blue square", "two small green stars"], 30
    )


@pytest.fixture
def sentence_piece(spm_proto):
    # A new tokenizer per test: TF's SentencePiece resource does not survive
    # a later `keras.utils.set_random_seed` (tf.random.set_seed).
    return keras_hub.tokenizers.SentencePieceTokenizer(proto=spm_proto)


def test_sticky_eos_is_big_vision_rule():
    # Sticky: cut to length - 1, always end in EOS, pad with EOS.
    preprocessor = LiTPreprocessor(word_piece(), sequence_length=4)
    assert ids(preprocessor, ["a", "a red circle", "a red blue circle a"]) == [
        [4, 3, 3, 3],
        [4, 5, 7, 3],
        [4, 5, 6, 3],
    ]
    assert preprocessor.special_token_id("eos") == 3
    assert preprocessor.special_token_id("pad") == 3
    # Explicit pad id (big_vision's `pad_value`).
    preprocessor = LiTPreprocessor(word_piece(), sequence_length=4, pad_id=0)
    assert ids(preprocessor, ["a"]) == [[4, 3, 0, 0]]


def test_yes_and_none_eos_and_bert_inputs():
    preprocessor = LiTPreprocessor(word_piece(), sequence_length=4, eos="yes")
    assert ids(preprocessor, ["a", "a red circle", "a red blue circle"]) == [
        [4, 3, 0, 0],
        [4, 5, 7, 3],
        [4, 5, 6, 7],
    ]
    preprocessor = LiTPreprocessor(word_piece(), sequence_length=4, eos="none")
    assert ids(preprocessor, ["a", "a red blue circle a"]) == [
        [4, 0, 0, 0],
        [4, 5, 6, 7],
    ]
    # BERT: [CLS] text [SEP] [PAD]..., with a padding mask and segments.
    bert = LiTPreprocessor(
        word_piece(),
        sequence_length=5,
        eos="yes",
        add_bos=True,
        padding_mask=True,
    )
    out = bert({"texts": ["a red", "a red blue circle a"]})
    assert to_numpy(out["token_ids"]).tolist() == [
        [2, 4, 5, 3, 0],
        [2, 4, 5, 6, 7],
    ]
    assert to_numpy(out["padding_mask"]).tolist() == [
        [1, 1, 1, 1, 0],
        [1, 1, 1, 1, 1],
    ]
    assert to_numpy(out["segment_ids"]).tolist() == [[0] * 5] * 2


def test_sentence_piece_ids_and_lowercasing(sentence_piece):
    preprocessor = LiTPreprocessor(sentence_piece, sequence_length=6)
    # The special ids come from the vocabulary: </s> = 1, pads with it.
    assert preprocessor.special_token_id("eos") == 1
    assert preprocessor.special_token_id("pad") == 1
    expected = list(sentence_piece.tokenize("a red")) + [1]
    expected += [1] * (6 - len(expected))
    assert ids(preprocessor, ["A Red"]) == [expected]
    cased = LiTPreprocessor(sentence_piece, sequence_length=6, lower=False)
    assert ids(cased, ["A Red"]) != [expected]
    assert (
        LiTPreprocessor(
            sentence_piece, sequence_length=6, eos="yes"
        ).special_token_id("pad")
        == 0
    )  # The vocabulary's <pad>.


def test_token_id_inputs():
    preprocessor = LiTPreprocessor(sequence_length=4, pad_id=0)
    assert ids(preprocessor, [[5, 6], [7, 8, 9, 1]]) == [
        [5, 6, 0, 0],
        [7, 8, 9, 1],
    ]
    assert ids(preprocessor, np.array([[1, 2, 3]])) == [[1, 2, 3, 0]]
    with pytest.raises(ValueError, match="longer than sequence_length=4"):
        preprocessor({"texts": np.ones((2, 5), "int32")})
    # Full-length ids need no pad id.
    assert ids(LiTPreprocessor(sequence_length=2), [[3, 4]]) == [[3, 4]]
    with pytest.raises(ValueError, match="pad_id"):
        LiTPreprocessor(sequence_length=3)({"texts": [[3, 4]]})
    # A [B, L] id batch masks the pad id.
    masked = LiTPreprocessor(sequence_length=3, pad_id=0, padding_mask=True)
    assert ids(masked, np.array([[5, 0, 0]]), "padding_mask") == [[1, 0, 0]]


def test_images_value_range_resize_and_standardisation():
    pixels = np.zeros((2, 40, 40, 3), "uint8")
    pixels[:, :, :20] = 255
    out = to_numpy(LiTPreprocessor(image_size=40)({"images": pixels})["images"])
    assert out.shape == (2, 40, 40, 3) and out.dtype == np.float32
    assert out.min() == -1.0 and out.max() == 1.0
    resized = LiTPreprocessor(image_size=(16, 24))({"images": pixels})
    assert tuple(resized["images"].shape) == (2, 16, 24, 3)
    kept = LiTPreprocessor(image_size=None)({"images": pixels[:, :30]})
    assert tuple(kept["images"].shape) == (2, 30, 40, 3)
    mean, std = (0.5, 0.25, 0.0), (0.5, 0.25, 1.0)
    standard = LiTPreprocessor(image_size=40, mean=mean, std=std)
    image = to_numpy(standard({"images": pixels})["images"])[0, 0, 0]
    np.testing.assert_allclose(image, [1.0, 3.0, 1.0], atol=1e-6)
    unit = LiTPreprocessor(image_size=40, value_range=(0, 1))
    assert to_numpy(unit({"images": pixels})["images"]).max() == 1.0


class LiTPreprocessorContractTest(ContractTestCase):
    def test_preprocessor_contract(self):
        # A BERT-style setup ([CLS] text [SEP], padding mask, ImageNet
        # standardisation, non-square resize): every option round-trips.
        init_kwargs = {
            "tokenizer": word_piece(),
            "sequence_length": 5,
            "image_size": (16, 24),
            "mean": (0.5, 0.5, 0.5),
            "std": (0.2, 0.2, 0.2),
            "eos": "yes",
            "add_bos": True,
            "pad_id": 0,
            "padding_mask": True,
        }
        x = {
            "images": random_pixels(batch=3),
            "texts": ["a red circle", "blue", ""],
        }
        output = self.run_preprocessor_contract(
            LiTPreprocessor, init_kwargs, x, token_id_key="token_ids"
        )
        self.assertAllEqual(
            output["token_ids"],
            [[2, 4, 5, 7, 3], [2, 6, 3, 0, 0], [2, 3, 0, 0, 0]],
        )
        self.assertAllEqual(output["padding_mask"][1], [1, 1, 1, 0, 0])
        self.assertEqual(tuple(output["images"].shape), (3, 16, 24, 3))


def test_bad_arguments_and_inputs():
    with pytest.raises(ValueError, match="eos"):
        LiTPreprocessor(eos="always")
    with pytest.raises(ValueError, match="sequence_length"):
        LiTPreprocessor(sequence_length=0)
    with pytest.raises(ValueError, match="image_size"):
        LiTPreprocessor(image_size=(0, 3))
    with pytest.raises(ValueError, match="both `mean` and `std`"):
        LiTPreprocessor(mean=0.5)
    with pytest.raises(ValueError, match="sequence_length"):
        LiTPreprocessor(word_piece(sequence_length=8))
    with pytest.raises(TypeError, match="tokenizer"):
        LiTPreprocessor(tokenizer=3)
    preprocessor = LiTPreprocessor(word_piece(), sequence_length=4)
    with pytest.raises(ValueError, match="'images' and/or 'texts'"):
        preprocessor({"captions": ["a"]})
    with pytest.raises(ValueError, match="same batch size"):
        preprocessor({"images": np.zeros((3, 8, 8, 3)), "texts": ["a", "b"]})
    with pytest.raises(ValueError, match="images"):
        preprocessor({"images": np.zeros((8, 8))})
    with pytest.raises(TypeError, match="texts"):
        preprocessor({"texts": np.zeros((2, 3), "float32")})
    with pytest.raises(ValueError, match="no `tokenizer`"):
        LiTPreprocessor(sequence_length=4)({"texts": ["a red"]})
    no_eos = keras_hub.tokenizers.WordPieceTokenizer(
        vocabulary=VOCAB[:3] + VOCAB[4:]
    )
    with pytest.raises(ValueError, match="eos_id"):
        LiTPreprocessor(no_eos, sequence_length=4)({"texts": ["a"]})
