"""LiTPreprocessor from a vocabulary file: the released models' rules."""

import keras_hub
import numpy as np
import pytest
from conftest import to_numpy, train_sentencepiece

from keras_vl.models import LiTPreprocessor
from keras_vl.models.lit.lit_preprocessor import tokenizer_from_vocabulary

# [PAD]=0 [UNK]=1 [CLS]=2 [SEP]=3, then the words from 4.
WORDS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "a", "photo", "of", "cafe", ","]
WORDS += ["cat", "##s", "the"]


def ids(preprocessor, texts):
    return to_numpy(preprocessor({"texts": texts})["token_ids"]).tolist()


@pytest.fixture(scope="module")
def word_vocabulary(tmp_path_factory):
    path = tmp_path_factory.mktemp("vocab") / "LiT-tiny.txt"
    path.write_text("\n".join(WORDS) + "\n")
    return path


def train_vocabulary(path, **ids):
    spm = pytest.importorskip("sentencepiece")
    corpus = ["a photo of a cat", "A Photo Of The Cats", "the cafe"]
    path.write_bytes(train_sentencepiece(corpus, **ids))
    processor = spm.SentencePieceProcessor()
    processor.LoadFromSerializedProto(path.read_bytes())
    return processor


@pytest.fixture(scope="module")
def sentencepiece_vocabulary(tmp_path_factory):
    # EOS 2 and PAD 0, so that SigLIP's padding with 1 is told apart from
    # padding with EOS (the real T5 vocabularies have EOS = 1).
    path = tmp_path_factory.mktemp("spm") / "tiny.model"
    processor = train_vocabulary(path, pad_id=0, unk_id=3, eos_id=2, bos_id=-1)
    return path, processor


def test_bert_rules_are_vision_transformers(word_vocabulary):
    # vit_jax's BertTokenizer: lowercased and accents stripped, [CLS] first,
    # no [SEP], cut to 16 and padded with 0.
    preprocessor = LiTPreprocessor.from_vocabulary(
        word_vocabulary, "bert", sequence_length=6
    )
    assert ids(preprocessor, ["A Photo, of CAFÉ", "cats", ""]) == [
        [2, 4, 5, 8, 6, 7],
        [2, 9, 10, 0, 0, 0],
        [2, 0, 0, 0, 0, 0],
    ]
    # Longer texts keep [CLS] and the first five tokens.
    assert ids(preprocessor, ["the cat of the cafe, a photo"]) == [
        [2, 11, 9, 6, 11, 7]
    ]
    assert isinstance(
        preprocessor.tokenizer, keras_hub.tokenizers.WordPieceTokenizer
    )


def test_lit_sentencepiece_rules_keep_case(sentencepiece_vocabulary):
    path, spm = sentencepiece_vocabulary
    preprocessor = LiTPreprocessor.from_vocabulary(
        path, "lit_sentencepiece", sequence_length=8
    )
    texts = ["A Photo Of The Cats", "a photo of a cat the cafe the cat"]
    expected = []
    for text in texts:
        # vit_jax: EOS appended, cut to 7, padded with EOS to 8.
        pieces = (spm.encode(text) + [2])[:7]
        expected.append(pieces + [2] * (8 - len(pieces)))
    assert ids(preprocessor, texts) == expected
    assert expected[0][-1] == 2 and len(spm.encode(texts[1])) > 7
    # The case is kept: "A Photo" and "a photo" are different pieces.
    assert spm.encode("A Photo") != spm.encode("a photo")


def test_siglip_rules_lowercase_and_pad_with_one(sentencepiece_vocabulary):
    path, spm = sentencepiece_vocabulary
    preprocessor = LiTPreprocessor.from_vocabulary(
        path, "siglip", sequence_length=10, image_size=32
    )
    short = spm.encode("the cat")
    long = spm.encode("a photo of a cat the cafe the cat")
    assert len(short) < 8 and len(long) > 9
    assert ids(
        preprocessor, ["The CAT", "a photo of a cat THE CAFE the cat"]
    ) == [
        short + [2] + [1] * (9 - len(short)),
        long[:9] + [2],
    ]
    assert preprocessor.image_size == (32, 32)


def test_vocabulary_path_as_tokenizer(
    word_vocabulary, sentencepiece_vocabulary
):
    by_path = LiTPreprocessor(str(word_vocabulary), sequence_length=4)
    assert isinstance(
        by_path.tokenizer, keras_hub.tokenizers.WordPieceTokenizer
    )
    # Sticky EOS with [SEP] = 3, padded with it.
    assert ids(by_path, ["a cat"]) == [[4, 9, 3, 3]]
    by_path = LiTPreprocessor(sentencepiece_vocabulary[0])
    assert isinstance(
        by_path.tokenizer, keras_hub.tokenizers.SentencePieceTokenizer
    )
    with pytest.raises(ValueError, match=r"\.txt.*\.model.*vocab\.json"):
        tokenizer_from_vocabulary("vocab.json")
    with pytest.raises(ValueError, match="does not exist"):
        LiTPreprocessor("missing.model")
    with pytest.raises(TypeError, match="path"):
        tokenizer_from_vocabulary(3)
    with pytest.raises(ValueError, match="`rules` must be one of"):
        LiTPreprocessor.from_vocabulary(word_vocabulary, "clip")


def test_token_ids_pad_with_the_tokenizers_pad_id(word_vocabulary):
    # A vocabulary without an EOS: sticky padding falls back to its [PAD].
    no_eos = keras_hub.tokenizers.WordPieceTokenizer(
        vocabulary=["[UNK]", "a", "[PAD]", "cat"]
    )
    preprocessor = LiTPreprocessor(no_eos, sequence_length=4)
    assert ids(preprocessor, [[1, 3], [3]]) == [[1, 3, 2, 2], [3, 2, 2, 2]]
    # Without a tokenizer the id stays unknown and must be passed.
    with pytest.raises(ValueError, match="pad_id"):
        LiTPreprocessor(sequence_length=4)({"texts": [[1, 3]]})
    padded = LiTPreprocessor(sequence_length=4, pad_id=7)
    assert ids(padded, [[1, 3]]) == [[1, 3, 7, 7]]
    assert np.asarray(ids(padded, [[1, 3, 5, 6]])).shape == (1, 4)
