"""Tests for the TensorFlow interop helpers (run on every Keras backend:
`tf.data` builds TensorFlow graphs whichever backend Keras uses)."""

import keras
import numpy as np
import pytest
from conftest import backend, to_numpy

from keras_vl.distribute.tf_interop import (
    call_in_tf_graph,
    in_tf_graph,
    is_tf_tensor,
    tf_decode_utf8,
)

tf = pytest.importorskip("tensorflow")


def test_is_tf_tensor():
    assert is_tf_tensor(tf.constant(["a"]))
    assert is_tf_tensor(tf.constant(1.0))
    assert is_tf_tensor(tf.Variable([1, 2]))
    assert not is_tf_tensor(np.zeros(3))
    assert not is_tf_tensor("a")
    assert not is_tf_tensor(None)
    native = keras.ops.zeros((2,))
    assert is_tf_tensor(native) == (backend() == "tensorflow")


def test_in_tf_graph():
    assert in_tf_graph() is False
    seen = []

    def probe(x):
        seen.append(in_tf_graph())
        return x

    tf.function(probe)(tf.constant(1))
    list(tf.data.Dataset.range(2).map(probe))
    assert seen == [True, True]
    assert in_tf_graph() is False


def test_tf_decode_utf8_values():
    texts = tf.constant(["Hé Z", "", "AbC\U0001f436", "x"])
    expected = [
        [72, 233, 32, 90],
        [-1, -1, -1, -1],
        [65, 98, 67, 0x1F436],
        [120, -1, -1, -1],
    ]
    decoded = tf_decode_utf8(texts)
    assert decoded.dtype == tf.int32
    np.testing.assert_array_equal(decoded.numpy(), expected)

    # ASCII-only lowercasing: "É" stays, "Z" becomes "z".
    lowered = tf_decode_utf8(tf.constant(["ÉZa"]), lower_ascii=True)
    np.testing.assert_array_equal(lowered.numpy(), [[201, 122, 97]])

    cut = tf_decode_utf8(texts, max_chars=2)
    np.testing.assert_array_equal(
        cut.numpy(), [[72, 233], [-1, -1], [65, 98], [120, -1]]
    )


def test_tf_decode_utf8_edge_cases():
    # A scalar becomes a batch of one; all-empty input keeps one column.
    np.testing.assert_array_equal(
        tf_decode_utf8(tf.constant("hi")).numpy(), [[104, 105]]
    )
    np.testing.assert_array_equal(
        tf_decode_utf8(tf.constant(["", ""])).numpy(), [[-1], [-1]]
    )
    assert tf_decode_utf8(tf.constant([], tf.string)).shape == (0, 1)
    # Invalid UTF-8 becomes U+FFFD.
    np.testing.assert_array_equal(
        tf_decode_utf8(tf.constant([b"a\xffb"])).numpy(), [[97, 0xFFFD, 98]]
    )


def test_tf_decode_utf8_in_a_graph():
    dataset = tf.data.Dataset.from_tensor_slices(["Ab", "ΣΣΣ", ""]).batch(3)
    decoded = next(
        iter(dataset.map(lambda t: tf_decode_utf8(t, lower_ascii=True)))
    )
    np.testing.assert_array_equal(
        decoded.numpy(), [[97, 98, -1], [931, 931, 931], [-1, -1, -1]]
    )


def test_call_in_tf_graph_from_tf_data():
    paths = []

    def traced(texts):
        paths.append("traced")
        codepoints = tf_decode_utf8(texts)
        valid = keras.ops.cast(codepoints >= 0, "int32")
        return keras.ops.sum(valid, axis=1)

    def on_host(texts):
        paths.append("host")
        assert isinstance(texts, np.ndarray) and texts.dtype == object
        return [len(t.decode("utf-8")) for t in texts]

    def count(texts):
        return call_in_tf_graph(
            texts, traced, on_host, dtype="int32", shape=[None]
        )

    dataset = tf.data.Dataset.from_tensor_slices(["héllo", "", "🐶x"])
    batches = [b for b in dataset.batch(2).map(count)]
    assert all(b.dtype == tf.int32 for b in batches)
    assert all(b.shape.rank == 1 for b in batches)
    np.testing.assert_array_equal(
        np.concatenate([b.numpy() for b in batches]), [5, 0, 2]
    )
    if backend() == "tensorflow":
        # Traced once into the graph; no host calls.
        assert paths == ["traced"]
    else:
        # Run on the host once per batch.
        assert paths == ["host", "host"]


def test_call_in_tf_graph_sets_the_static_shape():
    def fn(x):
        return call_in_tf_graph(
            x,
            lambda t: keras.ops.ones((3, 2), "uint8"),
            lambda a: np.ones((3, 2), np.uint8),
            dtype="uint8",
            shape=[3, 2],
        )

    result = tf.function(fn)(tf.constant("x"))
    np.testing.assert_array_equal(to_numpy(result), np.ones((3, 2)))
    assert tuple(
        tf.function(fn).get_concrete_function(tf.constant("x")).output_shapes
    ) == (3, 2)
