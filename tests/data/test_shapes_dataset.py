"""Tests of `ShapesDataset`: classes, splits, sampling and batches."""

import numpy as np
import pytest

from keras_vl.data import DEFAULT_HELD_OUT, PROMPT_TEMPLATES, ShapesDataset


def test_default_classes_and_latin_square_held_out():
    ds = ShapesDataset()
    assert ds.num_classes == 16
    assert ds.classes[0] == ("red", "circle")
    assert ds.classes[5] == ("green", "square")
    assert ds.class_names[:2] == ["red circle", "red square"]
    assert ds.held_out_classes == [
        ("red", "circle"),
        ("green", "square"),
        ("blue", "triangle"),
        ("yellow", "star"),
    ]
    assert len(ds.seen_classes) == 12
    assert set(ds.seen_classes).isdisjoint(ds.held_out_classes)
    assert ds.class_ids("held_out").tolist() == [0, 5, 10, 15]
    assert ds.prompt_templates == list(PROMPT_TEMPLATES)
    assert all(t.count("{}") == 1 for t in ds.prompt_templates)
    assert DEFAULT_HELD_OUT == "diagonal"


def test_every_color_and_shape_is_seen_in_training():
    ds = ShapesDataset()
    labels = ds.sample(2000, "train", seed=0)["labels"]
    seen = {ds.classes[i] for i in labels}
    assert seen == set(ds.seen_classes)
    assert {c for c, _ in seen} == set(ds.colors)
    assert {s for _, s in seen} == set(ds.shapes)


def test_held_out_classes_never_appear_in_train_split():
    ds = ShapesDataset()
    held = set(ds.class_ids("held_out").tolist())
    for seed in range(3):
        labels = ds.sample(1000, "train", seed=seed)["labels"]
        assert held.isdisjoint(labels.tolist())
    batches = ds.as_numpy_batches("train", 64, 10, seed=0, with_labels=True)
    for batch in batches:
        assert held.isdisjoint(batch["labels"].tolist())
    held_out = ds.sample(500, "held_out", seed=0)["labels"]
    assert set(held_out.tolist()) == held
    every = ds.sample(1000, "all", seed=0)["labels"]
    assert set(every.tolist()) == set(range(16))


def test_sample_shapes_and_dtypes():
    ds = ShapesDataset(image_size=32)
    batch = ds.sample(7, seed=0)
    assert set(batch) == {"images", "captions", "labels"}
    assert batch["images"].shape == (7, 32, 32, 3)
    assert batch["images"].dtype == np.uint8
    assert batch["labels"].shape == (7,)
    assert batch["labels"].dtype == np.int32
    assert isinstance(batch["captions"], list)
    assert len(batch["captions"]) == 7
    assert all(isinstance(c, str) for c in batch["captions"])
    empty = ds.sample(0, seed=0)
    assert empty["images"].shape == (0, 32, 32, 3)
    assert empty["captions"] == []


def test_sampling_is_deterministic():
    a = ShapesDataset(seed=3).sample(32, "all", seed=7)
    b = ShapesDataset(seed=3).sample(32, "all", seed=7)
    np.testing.assert_array_equal(a["images"], b["images"])
    np.testing.assert_array_equal(a["labels"], b["labels"])
    assert a["captions"] == b["captions"]
    c = ShapesDataset(seed=3).sample(32, "all", seed=8)
    d = ShapesDataset(seed=4).sample(32, "all", seed=7)
    assert not np.array_equal(a["images"], c["images"])
    assert not np.array_equal(a["images"], d["images"])


def test_seedless_sampling_continues_a_reproducible_stream():
    first, second = ShapesDataset(seed=1), ShapesDataset(seed=1)
    a1, a2 = first.sample(8, seed=None), first.sample(8, seed=None)
    b1 = second.sample(8, seed=None)
    assert not np.array_equal(a1["images"], a2["images"])
    np.testing.assert_array_equal(a1["images"], b1["images"])


def test_numpy_batches():
    ds = ShapesDataset(image_size=32)
    batches = list(ds.as_numpy_batches("train", 5, num_batches=3, seed=2))
    assert len(batches) == 3
    for batch in batches:
        assert set(batch) == {"images", "texts"}
        assert batch["images"].shape == (5, 32, 32, 3)
        assert batch["images"].dtype == np.uint8
        assert batch["texts"].shape == (5,)
        assert isinstance(batch["texts"][0], str)
    replay = list(ds.as_numpy_batches("train", 5, num_batches=3, seed=2))
    for a, b in zip(batches, replay, strict=True):
        np.testing.assert_array_equal(a["images"], b["images"])
    assert not np.array_equal(batches[0]["images"], batches[1]["images"])
    endless = ds.as_numpy_batches("train", 2, num_batches=None)
    assert len([next(endless) for _ in range(4)]) == 4


def test_tf_dataset_structure():
    tf = pytest.importorskip("tensorflow")
    ds = ShapesDataset(image_size=32)
    dataset = ds.as_tf_dataset("train", batch_size=4, num_batches=2, seed=0)
    spec = dataset.element_spec
    assert set(spec) == {"images", "texts"}
    assert spec["images"].shape == (4, 32, 32, 3)
    assert spec["images"].dtype == tf.uint8
    assert spec["texts"].shape == (4,)
    assert spec["texts"].dtype == tf.string
    assert int(dataset.cardinality()) == 2
    elements = list(dataset.as_numpy_iterator())
    assert len(elements) == 2
    assert elements[0]["images"].dtype == np.uint8
    assert isinstance(elements[0]["texts"][0], bytes)
    # The pipeline replays the numpy batches for the same seed.
    expected = next(ds.as_numpy_batches("train", 4, 1, seed=0))
    np.testing.assert_array_equal(elements[0]["images"], expected["images"])
    assert [t.decode() for t in elements[0]["texts"]] == list(expected["texts"])
    labelled = ds.as_tf_dataset("held_out", 3, num_batches=1, with_labels=True)
    element = next(iter(labelled))
    assert element["labels"].dtype == tf.int32
    assert set(element["labels"].numpy()) <= set(ds.class_ids("held_out"))
    endless = ds.as_tf_dataset("train", batch_size=2)
    assert len(list(endless.take(3))) == 3


def test_custom_held_out_pairs():
    ds = ShapesDataset(held_out=[("blue", "star"), ("red", "square")])
    # Class order, whatever order the pairs come in.
    assert ds.held_out_classes == [("red", "square"), ("blue", "star")]
    assert ShapesDataset(held_out=None).held_out_classes == []
    with pytest.raises(ValueError, match="no classes"):
        ShapesDataset(held_out=None).sample(1, "held_out")


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"image_size": 8}, "image_size"),
        ({"colors": ["red", "mauve"]}, "colors"),
        ({"colors": []}, "colors"),
        ({"colors": {"red": (300, 0, 0)}}, "colors"),
        ({"shapes": ["circle", "hexagon"]}, "shapes"),
        ({"shapes": ["circle", "circle"]}, "shapes"),
        ({"held_out": "random"}, "held_out"),
        ({"held_out": [("red", "hexagon")]}, "held_out"),
        (
            {
                "held_out": [
                    ("red", s) for s in ("circle", "square", "triangle", "star")
                ]
            },
            "colour 'red'",
        ),
        (
            {
                "held_out": [
                    (c, "star") for c in ("red", "green", "blue", "yellow")
                ]
            },
            "shape 'star'",
        ),
        ({"caption_templates": ["a {colour} {shape}"]}, "caption_templates"),
        ({"caption_templates": []}, "caption_templates"),
        ({"seed": -1}, "seed"),
        ({"radius_range": (0.2, 0.1)}, "radius_range"),
        ({"radius_range": (0.0, 0.1)}, "radius_range"),
        ({"radius_range": (0.1, 0.4)}, "radius_range"),
        ({"radius_range": 0.2}, "radius_range"),
    ],
)
def test_constructor_validation(kwargs, match):
    with pytest.raises(ValueError, match=match):
        ShapesDataset(**kwargs)


def test_method_validation():
    ds = ShapesDataset()
    with pytest.raises(ValueError, match="split"):
        ds.sample(2, split="test")
    with pytest.raises(ValueError, match="`n`"):
        ds.sample(-1)
    with pytest.raises(ValueError, match="seed"):
        ds.sample(2, seed=-3)
    with pytest.raises(ValueError, match="batch_size"):
        next(ds.as_numpy_batches(batch_size=0))
    with pytest.raises(ValueError, match="num_batches"):
        ds.as_tf_dataset(num_batches=-1)
