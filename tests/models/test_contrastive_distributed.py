"""One training step of the real contrastive task (a tiny `Clippo`) is the
same on one device and distributed.

The scaffold-model tests in `tests/losses/test_contrastive.py` check the
loss functions; here the whole task goes through `fit`: the preprocessor in
`tf.data`, the text renderer inside the model, `ContrastiveModel`'s
`compute_loss` with its own log-temperature `t` (and bias `b`), the metrics
and the optimizer. One SGD step on a global batch of 8 must give the same
reported loss (1e-5 relative), the same in-batch accuracies (over the
global batch) and the same updated weights, `t` and `b` included (1e-5
absolute), with and without a positives matrix as `fit`'s targets (whose
rows each replica receives, while its text-to-image side needs columns)

- under JAX `keras.distribution.DataParallel` on 4 host devices, and
- under TensorFlow `MirroredStrategy` on 2 logical CPUs, for CLIPPO, LiT
  and LIMoE,

as on one device with the whole batch. Under `MirroredStrategy` the test
also walks the graph of the step `fit` traced and fails on any op a TPU
could not compile: a host callback (`tf.numpy_function`, `tf.py_function`)
or a string tensor (strings are decoded and tokenised in the input
pipeline; CLIPPO renders code points inside the model).

Each scenario runs in a subprocess (the device layout must be fixed
before the framework initialises) that imports this file and calls a
`_report_*` function; the single-device
reference is computed in the same subprocess first, from the same initial
weights. A batch with a NaN in one replica's rows is skipped by all
replicas (no weight changes, `skipped_steps` 1).
"""

import os
from pathlib import Path

import keras
import numpy as np
import pytest
from conftest import backend, run_report
from model_contract import tiny_limoe_kwargs, tiny_text_kwargs, tiny_vit_kwargs

from keras_vl.layers.text_renderer import TextRenderer
from keras_vl.models import (
    Clippo,
    ClippoBackbone,
    ClippoPreprocessor,
    LIMoE,
    LIMoEBackbone,
    LIMoEPreprocessor,
    LiT,
    LiTBackbone,
    LiTPreprocessor,
    TextTransformer,
    ViTBackbone,
)

REPO_ROOT = Path(__file__).resolve().parents[2]
GLOBAL_BATCH = 8
LOSSES = ("softmax", "sigmoid")
LOSS_RTOL = 1e-5
WEIGHT_ATOL = 1e-5
VOCAB = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "a", "cat", "red", "car", "x"]
TEXT_LENGTH = 6
# Ops a TPU cannot run inside a compiled step: callbacks into Python.
HOST_ONLY_OPS = {"PyFunc", "PyFuncStateless", "EagerPyFunc"}


def _tiny_clippo(loss):
    vit = ViTBackbone(
        image_size=32,
        patch_size=16,
        width=32,
        depth=1,
        num_heads=2,
        mlp_dim=64,
        pool_type="map",
        num_classes=16,
        head_zeroinit=False,
    )
    backbone = ClippoBackbone(vit, TextRenderer(image_size=32))
    preprocessor = ClippoPreprocessor(32, sequence_length=8)
    return Clippo(backbone, preprocessor, loss=loss)


def _word_preprocessor(cls):
    """Strings are tokenised in the input pipeline, as a TPU needs."""
    import keras_hub

    tokenizer = keras_hub.tokenizers.WordPieceTokenizer(vocabulary=VOCAB)
    return cls(tokenizer, sequence_length=TEXT_LENGTH, image_size=32)


def _tiny_lit(loss):
    backbone = LiTBackbone(
        ViTBackbone(**tiny_vit_kwargs(pool_type="map")),
        TextTransformer(
            **tiny_text_kwargs(
                vocab_size=len(VOCAB), sequence_length=TEXT_LENGTH
            )
        ),
        image_projection_dim=8,
        text_projection_dim=8,
    )
    return LiT(backbone, _word_preprocessor(LiTPreprocessor), loss=loss)


def _tiny_limoe(loss):
    # No router noise (replicas would draw other noise than one device)
    # and room for every token: a token dropped or kept by an expert's
    # capacity then depends on nothing outside its own example. The
    # routing losses (weighted up to matter) are means over routing
    # groups, each replica's share of the batch's.
    backbone = LIMoEBackbone(
        **tiny_limoe_kwargs(
            vocabulary_size=len(VOCAB),
            sequence_length=TEXT_LENGTH,
            capacity_factor=8.0,
            moe_kwargs={
                "noise_std": 0.0,
                "importance_loss_weight": 0.5,
                "load_loss_weight": 0.5,
            },
        )
    )
    return LIMoE(backbone, _word_preprocessor(LIMoEPreprocessor), loss=loss)


FAMILIES = {"clippo": _tiny_clippo, "lit": _tiny_lit, "limoe": _tiny_limoe}


def _data():
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (GLOBAL_BATCH, 32, 32, 3), dtype=np.uint8)
    # Distinct captions, some longer than the 8 code points kept.
    texts = [
        "a cat",
        "Ein Hund",
        "un oiseau bleu",
        "星空",
        "red car",
        "Привет",
        "two ships at sea",
        "x",
    ]
    return {"images": images, "texts": texts}


def _positives():
    """Extra positive pairs, several across the replicas' row blocks. As
    int32: Keras's TF trainer cannot reduce a bool batch across replicas."""
    positives = np.zeros((GLOBAL_BATCH, GLOBAL_BATCH), "int32")
    positives[[0, 0, 1, 5, 6, 7], [3, 7, 2, 0, 1, 6]] = 1
    return positives


def _initial_weights(loss, family="clippo"):
    """Random initial weights, the same in every process; `t` and `b` move
    off their constant initialisers so every weight is generic."""
    keras.utils.set_random_seed(1)
    model = FAMILIES[family](loss)
    model.log_temperature.assign([np.log(12.0)])
    if model.logit_bias is not None:
        model.logit_bias.assign([-4.0])
    # Paths name the backbone's weights uniquely ("head/kernel", ...); the
    # task's own are "t" and "b" whatever the task is called.
    own = {id(model.log_temperature): "t", id(model.logit_bias): "b"}
    names = [own.get(id(w), w.path) for w in model.weights]
    return model.get_weights(), names


def _fit_one_step(loss, weights, positives=None, family="clippo"):
    """One SGD step on the whole global batch through `fit`; returns the
    logs `fit` reports (loss, accuracies), the updated weights and the
    model."""
    model = FAMILIES[family](loss)
    model.set_weights(weights)
    model.compile(optimizer=keras.optimizers.SGD(learning_rate=0.1))
    history = model.fit(
        _data(), positives, batch_size=GLOBAL_BATCH, shuffle=False, verbose=0
    )
    logs = {k: float(v[0]) for k, v in history.history.items()}
    return logs, model.get_weights(), model


def _nan_step(loss, weights):
    """One step on a global batch with a NaN pixel in row 6, which only
    the last replica holds: every replica must skip it."""
    model = _tiny_clippo(loss)
    model.set_weights(weights)
    model.compile(optimizer=keras.optimizers.SGD(learning_rate=0.1))
    data = _data()
    data["images"] = data["images"].astype("float32")
    data["images"][6, 0, 0, 0] = np.nan
    history = model.fit(data, batch_size=GLOBAL_BATCH, shuffle=False, verbose=0)
    return {
        "skipped_steps": float(history.history["skipped_steps"][0]),
        "unchanged": all(
            np.array_equal(a, b)
            for a, b in zip(weights, model.get_weights(), strict=True)
        ),
        "iterations": int(
            keras.ops.convert_to_numpy(model.optimizer.iterations)
        ),
    }


# LIMoE's routing statistics (non-trainable, for the logs): under
# tf.distribute, the mean of each replica's own.
ROUTING_STATISTICS = (
    "utilization",
    "dropped",
    "auxiliary_loss",
    "entropy_loss",
)


def _compare(names, initial, single, distributed):
    (single_logs, single_weights, _), (logs, weights, _) = single, distributed
    kept = [
        i
        for i, name in enumerate(names)
        if name.rsplit("/", 1)[-1] not in ROUTING_STATISTICS
    ]
    names, initial = [names[i] for i in kept], [initial[i] for i in kept]
    single_weights = [single_weights[i] for i in kept]
    weights = [weights[i] for i in kept]
    return {
        "single_logs": single_logs,
        "distributed_logs": logs,
        "weight_diffs": {
            name: float(np.abs(a - b).max())
            for name, a, b in zip(names, single_weights, weights, strict=True)
        },
        "weight_changes": {
            name: float(np.abs(a - b).max())
            for name, a, b in zip(names, single_weights, initial, strict=True)
        },
    }


def _report_jax_data_parallel(loss):
    """Runs under JAX with 4 host devices; see the JAX test."""
    import jax

    initial, names = _initial_weights(loss)
    cases = {"diagonal": None, "positives": _positives()}
    single = {k: _fit_one_step(loss, initial, p) for k, p in cases.items()}
    keras.distribution.set_distribution(keras.distribution.DataParallel())
    return {
        "devices": jax.device_count(),
        "mesh": list(keras.distribution.distribution().device_mesh.shape),
        **{
            k: _compare(
                names, initial, single[k], _fit_one_step(loss, initial, p)
            )
            for k, p in cases.items()
        },
        "nan_batch": _nan_step(loss, initial),
    }


def _report_tf_mirrored(loss):
    """Runs under TF with 2 logical CPUs; see the TF test."""
    import tensorflow as tf

    # One strategy per process: a second MirroredStrategy in the same
    # process can collide on collective keys.
    strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    initial, names = _initial_weights(loss)
    report = {"devices": strategy.num_replicas_in_sync}
    for case, positives in (("diagonal", None), ("positives", _positives())):
        single = _fit_one_step(loss, initial, positives)
        with strategy.scope():
            distributed = _fit_one_step(loss, initial, positives)
        report[case] = _compare(names, initial, single, distributed)
    with strategy.scope():
        report["nan_batch"] = _nan_step(loss, initial)
    return report


# LiT with SigLIP's loss; CLIPPO's sigmoid step is covered above.
FAMILY_LOSSES = {"clippo": "softmax", "lit": "sigmoid", "limoe": "softmax"}


def _report_tf_mirrored_families(_):
    """Every family under `MirroredStrategy`, and the ops of its traced
    step; see the TF test."""
    import tensorflow as tf

    strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    report = {"devices": strategy.num_replicas_in_sync}
    for family, loss in FAMILY_LOSSES.items():
        initial, names = _initial_weights(loss, family)
        single = _fit_one_step(loss, initial, family=family)
        with strategy.scope():
            distributed = _fit_one_step(loss, initial, family=family)
        report[family] = _compare(names, initial, single, distributed)
        report[family]["step_ops"] = _step_op_report(distributed[2])
    return report


def _step_op_report(model):
    """The op types in the graph of the step `fit` traced (nested functions
    included), the host-only ones among them, and the ops that touch a
    string tensor."""
    import tensorflow as tf

    # `fit` calls a tf.function that runs the step on every replica; its
    # traced graphs are the step a TPUStrategy would compile.
    traced = [
        cell.cell_contents
        for cell in model.train_function.__closure__
        if isinstance(
            cell.cell_contents, tf.types.experimental.PolymorphicFunction
        )
    ]
    nodes = []
    for function in traced:
        for concrete in function._list_all_concrete_functions():
            graph = concrete.graph.as_graph_def()
            nodes += list(graph.node)
            for library_function in graph.library.function:
                nodes += list(library_function.node_def)
    string = tf.string.as_datatype_enum
    return {
        "num_ops": len(nodes),
        "types": sorted({node.op for node in nodes}),
        "host_only": sorted({n.op for n in nodes} & HOST_ONLY_OPS),
        "string_ops": sorted(
            {node.op for node in nodes if _touches_dtype(node, string)}
        ),
    }


def _touches_dtype(node, dtype_enum) -> bool:
    for value in node.attr.values():
        if value.type == dtype_enum or dtype_enum in value.list.type:
            return True
    return False


_SUBPROCESS_SCRIPT = """
import json, os, sys
sys.path[:0] = [{tests!r}, {repo!r}]
if os.environ["KERAS_BACKEND"] == "tensorflow":
    import tensorflow as tf

    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(
        cpu, [tf.config.LogicalDeviceConfiguration()] * 2
    )
import importlib.util

spec = importlib.util.spec_from_file_location("_distributed", {path!r})
module = importlib.util.module_from_spec(spec)
spec.loader.exec_module(module)
print("REPORT " + json.dumps(getattr(module, {function!r})({loss!r})))
"""


def _run_report(function, loss, extra_env):
    script = _SUBPROCESS_SCRIPT.format(
        tests=str(REPO_ROOT / "tests"),
        repo=str(REPO_ROOT),
        path=__file__,
        function=function,
        loss=loss,
    )
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", **extra_env}
    return run_report(script, env)


def _check(report, loss):
    for case in ("diagonal", "positives"):
        _check_case(report[case], f"{loss}, {case}")
    # The positives change what the step does.
    logs = [report[case]["single_logs"] for case in ("diagonal", "positives")]
    assert abs(logs[0]["loss"] - logs[1]["loss"]) > 1e-3, logs
    # A NaN in one replica's rows: all replicas skip the step together.
    assert report["nan_batch"] == {
        "skipped_steps": 1.0,
        "unchanged": True,
        "iterations": 0,
    }, report["nan_batch"]


def _check_case(report, loss):
    single, distributed = report["single_logs"], report["distributed_logs"]
    # LIMoE adds routing statistics; those of the batch as a whole (e.g.
    # experts in use) are averages of the replicas' own under tf.distribute.
    assert set(distributed) == set(single), report
    assert {"loss", "i2t_accuracy", "t2i_accuracy", "skipped_steps"} <= set(
        single
    ), report
    np.testing.assert_allclose(
        distributed["loss"], single["loss"], rtol=LOSS_RTOL, err_msg=loss
    )
    # The accuracies cover the global batch too (not each replica's block).
    for key in ("i2t_accuracy", "t2i_accuracy"):
        assert abs(distributed[key] - single[key]) < 1e-6, (key, report)
    # The step visibly moves the ViT, `t` and (sigmoid) `b`...
    changes = report["weight_changes"]
    assert max(changes.values()) > 1e-2, changes
    assert changes["t"] > 1e-3, changes
    if loss.startswith("sigmoid"):
        assert changes["b"] > 1e-3, changes
    else:
        assert "b" not in changes
    # ...and both runs update every weight the same way.
    diffs = report["weight_diffs"]
    worst = max(diffs, key=diffs.get)
    assert diffs[worst] <= WEIGHT_ATOL, (worst, diffs)


@pytest.mark.skipif(
    backend() != "tensorflow", reason="tf.distribute runs on TensorFlow only"
)
def test_tf_mirrored_strategy_trains_every_family_with_a_tpu_ready_step():
    report = _run_report(
        "_report_tf_mirrored_families", None, {"KERAS_BACKEND": "tensorflow"}
    )
    assert report["devices"] == 2, report
    for family, loss in FAMILY_LOSSES.items():
        _check_case(report[family], f"{loss}, {family}")
        ops = report[family]["step_ops"]
        # The walk sees the whole step: forward, gradients, update and the
        # cross-replica gathers of the global-batch loss.
        assert ops["num_ops"] > 500, ops
        for op in ("MatMul", "CollectiveGatherV2", "AssignSubVariableOp"):
            assert op in ops["types"], (family, op)
        assert ops["host_only"] == [], (family, ops["host_only"])
        assert ops["string_ops"] == [], (family, ops["string_ops"])


@pytest.mark.skipif(backend() != "jax", reason="run once, on the JAX backend")
@pytest.mark.parametrize("loss", LOSSES)
def test_jax_data_parallel_matches_single_device(loss):
    flags = os.environ.get("XLA_FLAGS", "")
    report = _run_report(
        "_report_jax_data_parallel",
        loss,
        {
            "KERAS_BACKEND": "jax",
            "JAX_PLATFORMS": "cpu",
            "XLA_FLAGS": f"{flags} --xla_force_host_platform_device_count=4",
        },
    )
    assert report["devices"] == 4 and report["mesh"] == [4], report
    _check(report, loss)


# CLIPPO's softmax step under MirroredStrategy is in the families test;
# here the sigmoid one, with positives and a NaN batch, in every run.
@pytest.mark.skipif(
    backend() != "tensorflow", reason="tf.distribute runs on TensorFlow only"
)
@pytest.mark.parametrize(
    "loss", [pytest.param("softmax", marks=pytest.mark.slow), "sigmoid"]
)
def test_tf_mirrored_strategy_matches_single_device(loss):
    report = _run_report(
        "_report_tf_mirrored", loss, {"KERAS_BACKEND": "tensorflow"}
    )
    assert report["devices"] == 2, report
    _check(report, loss)
