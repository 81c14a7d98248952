"""TensorFlow tensors and graphs as seen from Keras code on any backend.

`tf.data` pipelines build TensorFlow graphs whichever backend Keras runs
on, so a preprocessing layer may receive `tf.Tensor` inputs, possibly
symbolic ones, under JAX or PyTorch too. These helpers recognise such
inputs without importing TensorFlow when nobody else has, decode strings
inside a graph, and run code that needs concrete values from inside one.
"""

import sys
from collections.abc import Callable, Sequence
from typing import Any

import keras
import numpy as np

__all__ = [
    "call_in_tf_graph",
    "in_tf_graph",
    "is_tf_tensor",
    "tf_decode_utf8",
]


def is_tf_tensor(x: Any) -> bool:
    """Tells whether `x` is a TensorFlow tensor or variable.

    Never imports TensorFlow: if it is not loaded, no `x` can be one.

    Args:
        x: Any object.

    Returns:
        A Python `bool`.

    Example:

    ```python
    from keras_vl.distribute.tf_interop import is_tf_tensor

    is_tf_tensor(tf.constant("hi"))  # True
    is_tf_tensor(np.zeros(3))  # False
    ```
    """
    tf = sys.modules.get("tensorflow")
    return tf is not None and isinstance(x, tf.Tensor | tf.Variable)


def in_tf_graph() -> bool:
    """Tells whether TensorFlow is building a graph right now.

    True inside a `tf.function` and a `tf.data` transformation (`map`,
    `filter`, ...), on every Keras backend; false in eager code and when
    TensorFlow is not loaded.

    Returns:
        A Python `bool`.

    Example:

    ```python
    from keras_vl.distribute.tf_interop import in_tf_graph

    in_tf_graph()  # False
    tf.function(in_tf_graph)()  # True: the call is traced into a graph.
    ```
    """
    tf = sys.modules.get("tensorflow")
    return tf is not None and not tf.executing_eagerly()


def tf_decode_utf8(
    texts: Any, *, lower_ascii: bool = False, max_chars: int = 0
) -> Any:
    """Decodes a `tf.string` tensor into padded code points, in-graph.

    Pure TensorFlow ops, so it also runs inside `tf.function` and
    `tf.data` graphs. Invalid UTF-8 decodes to U+FFFD.

    Args:
        texts: A `tf.string` tensor of rank 0 or 1.
        lower_ascii: Lowercase ``A-Z`` first (no other letter changes).
        max_chars: Keep only the first `max_chars` code points of each
            string (0: keep all).

    Returns:
        An int32 `tf.Tensor` ``[B, L]`` (``B = 1`` for a scalar) padded
        with -1, where ``L`` is the longest decoded length but at least 1,
        so an all-empty batch still has one (padding) column.

    Example:

    ```python
    from keras_vl.distribute.tf_interop import tf_decode_utf8

    tf_decode_utf8(tf.constant(["Hé", ""]), lower_ascii=True)
    # [[104, 233], [-1, -1]]
    ```
    """
    import tensorflow as tf

    texts = tf.reshape(texts, (-1,))
    if lower_ascii:
        # `tf.strings.lower` without an encoding only maps A-Z.
        texts = tf.strings.lower(texts)
    decoded = tf.strings.unicode_decode(texts, "UTF-8", errors="replace")
    if max_chars:
        decoded = decoded[:, :max_chars]
    codepoints = decoded.to_tensor(default_value=-1)
    pad = tf.maximum(1 - tf.shape(codepoints)[1], 0)
    codepoints = tf.pad(codepoints, [[0, 0], [0, pad]], constant_values=-1)
    return tf.cast(codepoints, tf.int32)


def call_in_tf_graph(
    x: Any,
    traced_fn: Callable[[Any], Any],
    host_fn: Callable[[Any], Any],
    *,
    dtype: str,
    shape: Sequence[int | None],
) -> Any:
    """Applies a function to a tensor of a TensorFlow graph, on any backend.

    With the TensorFlow backend, `keras.ops` accept graph tensors, so this
    returns ``traced_fn(x)`` and the ops become part of the graph. Other
    backends cannot take graph tensors (e.g. in a `tf.data` map under JAX),
    so `host_fn` runs on the concrete numpy value of `x` each time the
    graph executes, through `tf.numpy_function`.

    Args:
        x: A `tf.Tensor`, usually symbolic (see `in_tf_graph`).
        traced_fn: Builds the result from `x` with `keras.ops` or
            TensorFlow ops; used with the TensorFlow backend.
        host_fn: Computes the result from numpy values (a `tf.string`
            tensor arrives as an object array of `bytes`); it may return
            any array-like, which is converted to numpy of `dtype`. Used
            with the other backends.
        dtype: Dtype name of the result, e.g. ``"uint8"``.
        shape: Static shape of the result (None for unknown sizes).

    Returns:
        A `tf.Tensor` of `dtype` whose static shape includes `shape`.

    Example:

    ```python
    from keras_vl.distribute.tf_interop import call_in_tf_graph

    def lengths(texts):
        return call_in_tf_graph(
            texts,
            lambda t: tf.strings.length(t),
            lambda a: np.array([len(s) for s in a], np.int32),
            dtype="int32",
            shape=[None],
        )

    dataset.map(lengths)  # The same numbers on every backend.
    ```
    """
    if keras.backend.backend() == "tensorflow":
        return traced_fn(x)
    import tensorflow as tf

    def on_host(value):
        return np.asarray(keras.ops.convert_to_numpy(host_fn(value)), dtype)

    result = tf.numpy_function(on_host, [x], tf.as_dtype(dtype), stateful=False)
    result.set_shape(shape)
    return result
