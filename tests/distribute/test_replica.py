"""Tests for the cross-replica helpers.

On every backend outside `tf.distribute` the helpers must behave as a single
replica (identity gather). The TensorFlow multi-replica behaviour is checked
in a subprocess with 2 logical CPUs, because the device layout must be fixed
before TensorFlow initialises; the subprocess imports this file and calls
`_report_mirrored`.
"""

import os
from pathlib import Path

import keras
import numpy as np
import pytest
from conftest import backend, run_report, to_numpy

from keras_vl import distribute

REPO_ROOT = Path(__file__).resolve().parents[2]


def test_single_replica_everywhere_by_default():
    assert distribute.num_replicas_in_sync() == 1
    rid = distribute.replica_id()
    assert keras.backend.standardize_dtype(rid.dtype) == "int32"
    assert int(to_numpy(rid)) == 0
    x = keras.ops.ones((3, 2))
    assert int(to_numpy(distribute.local_batch_offset(x))) == 0


def test_all_gather_is_identity_for_a_single_replica():
    x = keras.ops.reshape(keras.ops.arange(6, dtype="float32"), (3, 2))
    assert distribute.all_gather(x) is x
    nested = {"a": x, "b": (x, x)}
    assert distribute.all_gather(nested, axis=1) is nested


@pytest.mark.skipif(backend() != "tensorflow", reason="TensorFlow only")
def test_tf_cross_replica_scope_counts_as_single_replica():
    import tensorflow as tf

    # One CPU means a single-replica MirroredStrategy here; inside its scope
    # (cross-replica context) and inside `run` the helpers see 1 replica.
    strategy = tf.distribute.MirroredStrategy(["/cpu:0"])
    with strategy.scope():
        assert distribute.num_replicas_in_sync() == 1
    result = strategy.run(lambda: distribute.num_replicas_in_sync())
    assert result == 1


def _report_mirrored():
    """Runs under TF with 2 logical CPUs; see `test_tf_mirrored_*`."""
    import tensorflow as tf

    strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    # Replica 0 holds 2 rows, replica 1 holds 3 (an uneven last batch).
    data = np.arange(10, dtype="float32").reshape(5, 2)
    splits = [(0, 2), (2, 5)]
    local = strategy.experimental_distribute_values_from_function(
        lambda ctx: tf.constant(
            data[slice(*splits[ctx.replica_id_in_sync_group])]
        )
    )

    def step(x):
        with tf.GradientTape() as tape:
            tape.watch(x)
            gathered = distribute.all_gather(x, axis=0)
            nested = distribute.all_gather({"x": x, "y": 2 * x}, axis=0)
            # Replica r weighs the gathered batch by (r + 1), so each local
            # row's gradient is the sum over replicas: 1 + 2 = 3.
            weight = tf.cast(distribute.replica_id() + 1, "float32")
            loss = weight * tf.reduce_sum(gathered)
        return {
            "num_replicas": tf.constant(distribute.num_replicas_in_sync()),
            "replica_id": distribute.replica_id(),
            "offset": distribute.local_batch_offset(x),
            "gathered": gathered,
            "nested_y": nested["y"],
            "grad": tape.gradient(loss, x),
        }

    @tf.function
    def run(x):
        return strategy.run(step, args=(x,))

    result = run(local)
    return {
        key: [
            t.numpy().tolist() for t in strategy.experimental_local_results(v)
        ]
        for key, v in result.items()
    }


_SUBPROCESS_SCRIPT = """
import json, sys
sys.path[:0] = [{tests!r}, {repo!r}]
import tensorflow as tf

cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(
    cpu, [tf.config.LogicalDeviceConfiguration()] * 2
)
import importlib.util

spec = importlib.util.spec_from_file_location("_replica", {path!r})
module = importlib.util.module_from_spec(spec)
spec.loader.exec_module(module)
print("REPORT " + json.dumps(module._report_mirrored()))
"""


@pytest.mark.skipif(
    backend() != "tensorflow", reason="tf.distribute runs on TensorFlow only"
)
def test_tf_mirrored_gather_id_offset_and_gradient():
    script = _SUBPROCESS_SCRIPT.format(
        tests=str(REPO_ROOT / "tests"), repo=str(REPO_ROOT), path=__file__
    )
    env = {
        **os.environ,
        "KERAS_BACKEND": "tensorflow",
        "TF_CPP_MIN_LOG_LEVEL": "2",
    }
    report = run_report(script, env)

    data = np.arange(10, dtype="float32").reshape(5, 2)
    assert report["num_replicas"] == [2, 2]
    assert report["replica_id"] == [0, 1]
    assert report["offset"] == [0, 2]
    for gathered, nested_y in zip(
        report["gathered"], report["nested_y"], strict=True
    ):
        np.testing.assert_array_equal(gathered, data)
        np.testing.assert_array_equal(nested_y, 2 * data)
    np.testing.assert_array_equal(report["grad"][0], np.full((2, 2), 3.0))
    np.testing.assert_array_equal(report["grad"][1], np.full((3, 2), 3.0))
