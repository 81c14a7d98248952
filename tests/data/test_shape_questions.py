"""ShapeQuestions: seeded captions and VQA in English and French that
describe the drawn images, the shapes data's held-out split, and a tiny
vocabulary that tokenizes every string losslessly."""

import keras_hub
import numpy as np
import pytest

from keras_vl.data import (
    COLORS,
    LANGUAGES,
    QUESTION_TASKS,
    ShapeQuestions,
    ShapesDataset,
    shape_vocabulary_proto,
)
from keras_vl.data.shape_questions import (
    QUESTIONS,
    all_texts,
    answer,
    describe_shape,
    prompt,
)
from keras_vl.models.pali.pali_preprocessor import format_prompt

TEXT_KEYS = ("prompts", "responses", "task", "lang")


@pytest.fixture(scope="module")
def proto():
    return shape_vocabulary_proto()


def test_seeded_samples_and_batches_are_reproducible():
    data = ShapeQuestions(image_size=24, seed=5)
    first = data.sample(12, seed=3, with_labels=True)
    again = ShapeQuestions(image_size=24, seed=5).sample(
        12, seed=3, with_labels=True
    )
    np.testing.assert_array_equal(first["images"], again["images"])
    np.testing.assert_array_equal(first["labels"], again["labels"])
    for key in TEXT_KEYS:
        assert first[key] == again[key]
    other = data.sample(12, seed=4)
    assert other["responses"] != first["responses"]
    assert not np.array_equal(other["images"], first["images"])
    other_dataset = ShapeQuestions(image_size=24, seed=6).sample(12, seed=3)
    assert not np.array_equal(other_dataset["images"], first["images"])

    batches = list(data.as_numpy_batches(batch_size=5, num_batches=2, seed=1))
    replay = list(data.as_numpy_batches(batch_size=5, num_batches=2, seed=1))
    assert len(batches) == 2 and sorted(batches[0]) == sorted(
        ["images", *TEXT_KEYS]
    )
    for batch, same in zip(batches, replay, strict=True):
        np.testing.assert_array_equal(batch["images"], same["images"])
        for key in TEXT_KEYS:
            np.testing.assert_array_equal(batch[key], same[key])
    assert batches[0]["prompts"].dtype.kind == "U"
    assert not np.array_equal(batches[0]["images"], batches[1]["images"])


def test_tf_dataset_yields_the_numpy_batches_in_utf8():
    data = ShapeQuestions(image_size=16, seed=2)
    numpy_batches = list(
        data.as_numpy_batches(
            batch_size=8, num_batches=2, seed=7, with_labels=True
        )
    )
    dataset = data.as_tf_dataset(
        batch_size=8, num_batches=2, seed=7, with_labels=True
    )
    tf_batches = list(dataset.as_numpy_iterator())
    assert len(tf_batches) == 2
    for got, want in zip(tf_batches, numpy_batches, strict=True):
        np.testing.assert_array_equal(got["images"], want["images"])
        np.testing.assert_array_equal(got["labels"], want["labels"])
        for key in TEXT_KEYS:
            decoded = [value.decode("utf-8") for value in got[key]]
            assert decoded == want[key].tolist()
    # Without labels by default.
    (element,) = data.as_tf_dataset(batch_size=2, num_batches=1).take(1)
    assert sorted(element) == sorted(["images", *TEXT_KEYS])
    assert tuple(element["images"].shape) == (2, 16, 16, 3)


def test_splits_are_the_shapes_datasets_and_held_out_never_trains():
    data = ShapeQuestions(image_size=16, seed=1)
    shapes = ShapesDataset(image_size=16, seed=1)
    assert data.held_out_classes == shapes.held_out_classes
    assert data.seen_classes == shapes.seen_classes
    held = set(data.held_out_classes)
    assert held  # the default diagonal: one combination per colour
    train = data.sample(400, split="train", seed=0, with_labels=True)
    pairs = {data.classes[i] for i in train["labels"]}
    assert not pairs & held
    assert pairs == set(data.seen_classes)  # every seen class shows up
    # No English caption of the training split names a held-out pair.
    for task, lang, response in zip(
        train["task"], train["lang"], train["responses"], strict=True
    ):
        if task == "caption" and lang == "EN":
            words = response.split()
            assert (words[1], words[2]) not in held
    test = data.sample(100, split="held_out", seed=0, with_labels=True)
    assert {data.classes[i] for i in test["labels"]} == held
    # A custom held-out set carries over too.
    custom = ShapeQuestions(held_out=[("blue", "star")])
    assert custom.held_out_classes == [("blue", "star")]
    with pytest.raises(ValueError, match="nothing is held out"):
        ShapeQuestions(held_out=None).sample(1, split="held_out")


def _drawn_attributes(image, palette):
    """(colour name, row third, column third, distance to the nearest
    third boundary) read back from the pixels of one image."""
    pixels = image.astype(np.float32)
    border = np.concatenate(
        [pixels[0], pixels[-1], pixels[:, 0], pixels[:, -1]]
    )
    background = np.median(border, axis=0)
    distance = np.linalg.norm(pixels - background, axis=-1)
    inside = distance > 40.0
    names = list(palette)
    rgb = np.array([palette[name] for name in names], np.float32)
    mean = pixels[distance > 60.0].mean(axis=0)
    color = names[int(np.argmin(np.linalg.norm(rgb - mean, axis=1)))]
    # Every shape is symmetric about its centre, so the centroid of its
    # pixels is the centre.
    rows, cols = np.nonzero(inside)
    size = image.shape[0]
    y, x = (rows.mean() + 0.5) / size, (cols.mean() + 0.5) / size
    third = [0 if v < 0.4 else 2 if v > 0.6 else 1 for v in (y, x)]
    margin = min(abs(v - b) for v in (y, x) for b in (0.4, 0.6))
    return color, third[0], third[1], margin


def test_answers_describe_the_drawn_images():
    colors = ["red", "green", "blue", "yellow", "white", "purple"]
    shapes = ["circle", "square", "triangle", "star", "cross", "diamond"]
    data = ShapeQuestions(
        image_size=48, colors=colors, shapes=shapes, held_out=None, seed=4
    )
    batch = data.sample(240, split="all", seed=9, with_labels=True)
    palette = {name: COLORS[name] for name in colors}
    checked = {task: 0 for task in QUESTION_TASKS}
    for i, label in enumerate(batch["labels"]):
        color, row, col, margin = _drawn_attributes(batch["images"][i], palette)
        print(margin)
        class_color, shape = data.classes[label]
        assert color == class_color
        if margin < 0.03:
            continue  # too close to a boundary to read back reliably
        task, lang = batch["task"][i], batch["lang"][i]
        expected = answer(task, color, shape, lang, row, col)
        assert batch["responses"][i] == expected, (i, task, lang)
        assert batch["prompts"][i] == prompt(task, lang)
        checked[task] += 1
    # Every task and both languages were drawn and checked.
    assert min(checked.values()) >= 30, checked
    assert set(batch["lang"]) == set(LANGUAGES)


def test_wording_english_and_french_agreement():
    # Masculine and feminine nouns take agreeing articles and adjectives.
    assert describe_shape("red", "circle", "EN", 0, 0) == (
        "a red circle at the top left"
    )
    assert describe_shape("green", "star", "FR", 0, 1) == (
        "une étoile verte en haut"
    )
    assert describe_shape("green", "square", "FR", 1, 1) == (
        "un carré vert au centre"
    )
    assert describe_shape("white", "cross", "FR", 2, 2) == (
        "une croix blanche en bas à droite"
    )
    assert describe_shape("white", "diamond", "FR") == "un losange blanc"
    assert describe_shape("purple", "star", "FR") == "une étoile violette"
    assert describe_shape("blue", "triangle", "FR", 1, 0) == (
        "un triangle bleu à gauche"
    )
    assert describe_shape("red", "star", "FR") == "une étoile rouge"
    # Short answers: the colour's noun (masculine), the shape's noun, the
    # position.
    assert answer("vqa_color", "green", "star", "FR", 0, 0) == "vert"
    assert answer("vqa_color", "green", "star", "EN", 0, 0) == "green"
    assert answer("vqa_shape", "green", "star", "FR", 0, 0) == "étoile"
    assert answer("vqa_position", "red", "star", "FR", 2, 0) == (
        "en bas à gauche"
    )
    assert answer("vqa_position", "red", "star", "EN", 1, 1) == "center"
    # Prompts are PaLI's.
    assert prompt("caption", "FR") == "Generate the alt_text in FR"
    assert prompt("vqa_color", "EN") == format_prompt(
        "vqa", "EN", QUESTIONS["vqa_color"]["EN"]
    )
    assert prompt("vqa_position", "FR") == "Answer in FR: où est la forme ?"


def test_every_text_tokenizes_losslessly(proto):
    tokenizer = keras_hub.tokenizers.SentencePieceTokenizer(proto=proto)
    assert tokenizer.vocabulary_size() == 256
    assert [tokenizer.id_to_token(i) for i in range(3)] == [
        "<pad>",
        "</s>",
        "<unk>",
    ]
    texts = all_texts()
    assert len(texts) > 1000
    accented = [t for t in texts if set(t) & set("éàù")]
    assert len(accented) > 100
    longest_prompt = longest_response = 0
    prompts = {
        prompt(task, lang) for task in QUESTION_TASKS for lang in LANGUAGES
    }
    for text in texts:
        ids = [int(i) for i in tokenizer.tokenize(text)]
        assert 2 not in ids, text  # no unknown piece
        assert tokenizer.detokenize(ids) == text
        if text in prompts:
            longest_prompt = max(longest_prompt, len(ids))
        else:
            longest_response = max(longest_response, len(ids))
    # As documented: whole words are pieces.
    assert (longest_prompt, longest_response) == (11, 7)
    # Whatever the dataset draws is among the texts.
    batch = ShapeQuestions(image_size=16, colors=list(COLORS)).sample(
        50, seed=0
    )
    assert set(batch["prompts"]) | set(batch["responses"]) <= set(texts)


def test_vocabulary_is_deterministic(proto):
    assert shape_vocabulary_proto() == proto
    small = shape_vocabulary_proto(96)
    assert small == shape_vocabulary_proto(96) and small != proto
    tokenizer = keras_hub.tokenizers.T5Tokenizer(proto=small)
    assert tokenizer.vocabulary_size() == 96
    assert tokenizer.detokenize(tokenizer.tokenize("où ? à é")) == "où ? à é"
    with pytest.raises(ValueError, match="vocabulary_size"):
        shape_vocabulary_proto(32)
    with pytest.raises(ValueError, match="vocabulary_size"):
        shape_vocabulary_proto(5000)


def test_restricted_tasks_and_languages():
    data = ShapeQuestions(
        image_size=16, tasks=["vqa_color"], languages="FR", seed=0
    )
    batch = data.sample(10, seed=0)
    assert set(batch["task"]) == {"vqa_color"} and set(batch["lang"]) == {"FR"}
    assert set(batch["prompts"]) == {
        "Answer in FR: de quelle couleur est la forme ?"
    }
    assert set(batch["responses"]) <= {"rouge", "vert", "bleu", "jaune"}
    assert data.texts() == sorted(
        ["Answer in FR: de quelle couleur est la forme ?"]
        + ["bleu", "jaune", "rouge", "vert"]
    )


def test_bad_arguments():
    with pytest.raises(ValueError, match="`colors`"):
        ShapeQuestions(colors={"teal": (0, 128, 128)})
    with pytest.raises(ValueError, match="`colors`"):
        ShapeQuestions(colors=["teal"])
    with pytest.raises(ValueError, match="`tasks`"):
        ShapeQuestions(tasks=["ocr"])
    with pytest.raises(ValueError, match="`tasks`"):
        ShapeQuestions(tasks=[])
    with pytest.raises(ValueError, match="`languages`"):
        ShapeQuestions(languages=["DE"])
    data = ShapeQuestions(image_size=16)
    with pytest.raises(ValueError, match="`split`"):
        data.sample(2, split="test")
    with pytest.raises(ValueError, match="`n`"):
        data.sample(-1)
    with pytest.raises(ValueError, match="`seed`"):
        data.sample(2, seed=-3)
    with pytest.raises(ValueError, match="`batch_size`"):
        next(data.as_numpy_batches(batch_size=0))
    with pytest.raises(ValueError, match="`num_batches`"):
        data.as_tf_dataset(num_batches=-1)
    with pytest.raises(ValueError, match="`task`"):
        answer("vqa_size", "red", "star", "EN", 0, 0)
    with pytest.raises(ValueError, match="`languages`"):
        describe_shape("red", "star", "DE")
    with pytest.raises(ValueError, match="`row` and `col`"):
        describe_shape("red", "star", "EN", row=1)
