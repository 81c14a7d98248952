"""Tensor- and expert-parallel layouts (`get_layout_map`) of every backbone.

On every backend: each family's layout map matches every variable path
with at most one rule (Keras refuses a path that two rules match), splits
exactly the weights meant to be split (attention heads, MLP units, experts
and, in PaLI, mT5's vocabulary) with a spec of the weight's rank, and the
split dimensions of the tiny models divide by the model axis.

On JAX, in a subprocess with 8 host devices (the device count must be
fixed before JAX starts; one process pays JAX's start-up once for several
families): one SGD step of a task under
`ModelParallel(get_layout_map(DeviceMesh((4, 2), ["batch", "model"])))`
reports the same loss (1e-5 relative) and the same updated weights (1e-5
absolute) as on one device from the same initial weights, and the weights
are really split on the mesh. LIMoE routes with seeded noise, a capacity
that drops tokens, and groups of 3 examples' tokens, which straddle the
batch shards (2 examples each): the step is one global program, so the
groups are those of one device whatever the sharding. One subprocess runs
every family (CLIPPO, LiT, LIMoE, PaLI), paying JAX's start-up once.
"""

import functools
import re
from pathlib import Path

import keras
import numpy as np
import pytest
from conftest import backend, run_on_jax_host_devices
from model_contract import tiny_limoe_kwargs, tiny_text_kwargs, tiny_vit_kwargs

from keras_vl.layers import SparseMoeMlp, TextRenderer
from keras_vl.models import (
    Clippo,
    ClippoBackbone,
    LIMoE,
    LIMoEBackbone,
    LiT,
    LiTBackbone,
    PaLI,
    PaLIBackbone,
    TextTransformer,
    ViTBackbone,
)

PALI_FIXTURES = Path(__file__).resolve().parent / "pali"
BATCH = 8  # 2 rows per batch shard
LOSS_RTOL = 1e-5
WEIGHT_ATOL = 1e-5

# What each family splits over the model axis, by path suffix: written
# independently of the rules, as the statement of intent they must meet.
ATTENTION = (
    "query/kernel",
    "key/kernel",
    "value/kernel",
    "attention_output/kernel",
)
ATTENTION_BIASES = ("query/bias", "key/bias", "value/bias")
MLP = (
    "MlpBlock_0/Dense_0/kernel",
    "MlpBlock_0/Dense_0/bias",
    "MlpBlock_0/Dense_1/kernel",
)
EXPERTS = ("kernel_0", "bias_0", "kernel_1", "bias_1")
MT5 = (
    "attention/query/kernel",
    "attention/key/kernel",
    "attention/value/kernel",
    "attention/output/kernel",
    "mlp_gate/kernel",
    "mlp_linear/kernel",
    "mlp_output/kernel",
    "token_embedding/embeddings",
    "lm_head/kernel",
)
VIT_SPLIT = ATTENTION + ATTENTION_BIASES + MLP + EXPERTS


def _pali_fixtures():
    import importlib.util

    spec = importlib.util.spec_from_file_location(
        "pali_fixtures", PALI_FIXTURES / "pali_fixtures.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _vmoe_vit():
    """A ViT with a sparse MLP in its second block (V-MoE)."""
    return ViTBackbone(
        **tiny_vit_kwargs(depth=2, pool_type="map", num_classes=8),
        mlp_factory=lambda i: (
            SparseMoeMlp(
                num_experts=4, mlp_dim=32, group_size=4, name=f"moe_{i}"
            )
            if i % 2
            else None
        ),
    )


def _clippo_backbone():
    vit = ViTBackbone(
        **tiny_vit_kwargs(pool_type="map", num_classes=8, head_zeroinit=False)
    )
    return ClippoBackbone(vit, TextRenderer(image_size=32))


def _lit_backbone():
    return LiTBackbone(
        ViTBackbone(**tiny_vit_kwargs(num_classes=8, head_zeroinit=False)),
        TextTransformer(**tiny_text_kwargs(num_classes=8)),
    )


def _pali_backbone():
    fixtures = _pali_fixtures()
    language = fixtures.tiny_language(
        num_encoder_layers=1, num_decoder_layers=1
    )
    return fixtures.tiny_backbone(language)


def _limoe_backbone(**overrides):
    # Seeded routing noise; a capacity without rounding up, which drops.
    moe_kwargs = {"seed": 3, "capacity_multiple_of": None}
    kwargs = tiny_limoe_kwargs(
        depth=1, moe_layers=[0], moe_kwargs=moe_kwargs, **overrides
    )
    return LIMoEBackbone(**kwargs)


def _pali_task():
    # The task: its output projection `lm_head` is not in the backbone's
    # graph, and on some backends not among the backbone's variables.
    return PaLI(_pali_backbone(), compile=False)


# family -> (model builder, suffixes of the weights it splits)
FAMILIES = {
    "vit": (_vmoe_vit, VIT_SPLIT),
    "clippo": (_clippo_backbone, VIT_SPLIT),
    "lit": (_lit_backbone, VIT_SPLIT),
    "limoe": (_limoe_backbone, VIT_SPLIT),
    "pali": (_pali_task, VIT_SPLIT + MT5),
}


def _mesh(shape=(1, 2), names=("batch", "model")):
    """A mesh description; layout maps need no real devices."""
    devices = [f"cpu:{i}" for i in range(int(np.prod(shape)))]
    return keras.distribution.DeviceMesh(shape, list(names), devices)


@pytest.fixture(scope="module")
def backbones():
    keras.utils.set_random_seed(0)
    return {name: build() for name, (build, _) in FAMILIES.items()}


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_every_weight_matches_at_most_one_rule(backbones, family):
    model = backbones[family]
    backbone = getattr(model, "backbone", model)
    layout_map = type(backbone).get_layout_map(_mesh())
    split = {}
    for variable in model.variables:
        path, shape = variable.path, tuple(variable.shape)
        rules = [p for p in layout_map if re.fullmatch(p, path)]
        assert len(rules) <= 1, (path, rules)
        layout = layout_map[path]  # Keras' own lookup accepts it too
        if layout is None:
            continue
        assert len(layout.axes) == len(shape), (path, layout.axes, shape)
        for axis, size in zip(layout.axes, shape, strict=True):
            assert axis in (None, "model"), (path, layout.axes)
            if axis == "model":
                assert size % 2 == 0, (path, shape)
        if "model" in layout.axes:
            split[path] = layout.axes
    expected = {
        v.path for v in model.variables if v.path.endswith(FAMILIES[family][1])
    }
    assert set(split) == expected
    assert len(expected) >= 10, expected


def test_layouts_split_heads_units_experts_and_vocabulary(backbones):
    limoe = LIMoEBackbone.get_layout_map(_mesh())
    block = "Transformer/encoderblock_1/"
    attention = block + "MultiHeadDotProductAttention_0/"
    assert limoe[attention + "query/kernel"].axes == (None, "model", None)
    assert limoe[attention + "value/bias"].axes == ("model", None)
    assert limoe[attention + "attention_output/kernel"].axes == (
        "model",
        None,
        None,
    )
    assert limoe[attention + "attention_output/bias"] is None
    assert limoe[block + "moe_1/kernel_0"].axes == ("model", None, None)
    assert limoe[block + "moe_1/bias_1"].axes == ("model", None)
    assert limoe[block + "moe_1/Router/kernel"] is None
    assert limoe["token_embedding/embeddings"] is None
    assert limoe[
        "Transformer/encoderblock_0/MlpBlock_0/Dense_1/kernel"
    ].axes == (
        "model",
        None,
    )
    pali = PaLIBackbone.get_layout_map(_mesh())
    assert pali["decoder/block_1/cross_attention/key/kernel"].axes == (
        None,
        "model",
    )
    assert pali["encoder/block_0/self_attention/output/kernel"].axes == (
        "model",
        None,
    )
    assert pali["token_embedding/embeddings"].axes == ("model", None)
    assert pali["lm_head/kernel"].axes == (None, "model")
    assert pali["encoder/relative_attention_bias"] is None


def test_layout_map_uses_the_given_axis_names():
    mesh = _mesh((2, 2), ("data", "tensor"))
    layout_map = ClippoBackbone.get_layout_map(
        mesh, model_parallel_dim_name="tensor", data_parallel_dim_name="data"
    )
    path = "MAPHead_0/MlpBlock_0/Dense_0/kernel"
    assert layout_map[path].axes == (None, "tensor")
    assert layout_map.device_mesh is mesh
    # A pure tensor-parallel mesh has no data axis.
    tensor_only = ViTBackbone.get_layout_map(
        _mesh((2,), ("model",)), data_parallel_dim_name=None
    )
    assert tensor_only[path].axes == (None, "model")


# --- One training step on a 4 x 2 mesh of host devices (JAX) ---

MESH_FAMILIES = ("clippo", "lit", "limoe", "pali")


def _codepoints(texts, length):
    out = np.full((len(texts), length), -1, "int32")
    for row, text in enumerate(texts):
        points = [ord(c) for c in text[:length]]
        out[row, : len(points)] = points
    return out


def _contrastive_data(rng, family):
    images = rng.uniform(-1, 1, (BATCH, 32, 32, 3)).astype("float32")
    if family == "clippo":
        texts = ["a cat", "Ein Hund", "un oiseau", "星空", "red car", "x"]
        texts += ["two ships", "Привет"]
        image_texts = np.full((BATCH, 4), -1, "int32")
        image_texts[5] = _codepoints(["blue"], 4)[0]  # a rendered "image"
        return {
            "images": images,
            "texts": _codepoints(texts, 8),
            "image_texts": image_texts,
        }
    token_ids = rng.integers(1, 16, (BATCH, 4)).astype("int32")
    if family == "lit":
        return {"images": images, "token_ids": token_ids}
    padding_mask = np.ones((BATCH, 4), bool)
    padding_mask[::3, 2:] = False
    return {
        "images": images,
        "token_ids": token_ids * padding_mask,
        "padding_mask": padding_mask,
    }


def _task(family):
    """A tiny task of `family` taking model-ready inputs."""
    if family == "clippo":
        task = Clippo(_clippo_backbone())
    elif family == "lit":
        task = LiT(_lit_backbone(), lock="UU")
    elif family == "limoe":
        # Groups of 3 examples' tokens: 64 tokens pad to 3 groups, which
        # straddle the batch shards (2 examples each).
        task = LIMoE(_limoe_backbone(group_size=24))
    else:
        task = PaLI(_pali_backbone(), compile=False)
    task.preprocessor = None
    return task


def _batch(family):
    rng = np.random.default_rng(0)
    if family != "pali":
        return _contrastive_data(rng, family), None, None
    x = _pali_fixtures().tiny_inputs(batch=BATCH)
    y = rng.integers(1, 100, x["decoder_token_ids"].shape).astype("int32")
    weights = np.ones(y.shape, "float32")
    weights[::2, -2:] = 0.0  # shorter responses in half the rows
    return x, y, weights


def _train_step(family, initial):
    keras.utils.set_random_seed(1)
    task = _task(family)
    if initial is None:
        initial = task.get_weights()
    task.set_weights(initial)
    task.compile(optimizer=keras.optimizers.SGD(learning_rate=0.01))
    x, y, sample_weight = _batch(family)
    logs = task.train_on_batch(x, y, sample_weight, return_dict=True)
    return task, initial, float(logs["loss"])


def _named(task, values):
    """`{"<index>:<path>": value}` over the task's weights (paths repeat:
    LiT's two towers both have a `head`)."""
    return {
        f"{i}:{v.path}": value
        for i, (v, value) in enumerate(zip(task.weights, values, strict=True))
    }


def _max_diffs(first, second):
    return [
        float(np.abs(a - b).max()) for a, b in zip(first, second, strict=True)
    ]


def _report_layouts(families):
    """Runs under JAX with 8 host devices: one step per family on one
    device, then on the 4 x 2 mesh from the same initial weights."""
    import jax

    report = {"devices": jax.device_count()}
    for family in families:
        keras.distribution.set_distribution(None)
        single, initial, single_loss = _train_step(family, None)
        mesh = keras.distribution.DeviceMesh(
            (4, 2), ["batch", "model"], keras.distribution.list_devices()
        )
        layout_map = type(single.backbone).get_layout_map(mesh)
        keras.distribution.set_distribution(
            keras.distribution.ModelParallel(
                layout_map=layout_map, batch_dim_name="batch"
            )
        )
        task, _, loss = _train_step(family, initial)
        after, updated = single.get_weights(), task.get_weights()
        report[family] = {
            "single_loss": single_loss,
            "loss": loss,
            "weight_diffs": _named(task, _max_diffs(after, updated)),
            "weight_changes": _named(task, _max_diffs(after, initial)),
            "split": _named(
                task,
                [
                    [a for a in v.value.sharding.spec if a is not None]
                    for v in task.weights
                ],
            ),
            "dropped": [
                float(np.max(keras.ops.convert_to_numpy(mlp.dropped_stat)))
                for mlp in getattr(single.backbone, "moe_mlps", [])
            ],
        }
    return report


@functools.cache
def _mesh_report(families):
    """One subprocess for `families`, run once per test session. Less LLVM
    optimisation halves the compile time of the steps, which dominates;
    both runs compile alike."""
    return run_on_jax_host_devices(
        __file__, "_report_layouts", (families,), fast_compile=True
    )


ON_JAX = pytest.mark.skipif(
    backend() != "jax", reason="runs once, on the JAX backend (host devices)"
)


@ON_JAX
@pytest.mark.parametrize("family", MESH_FAMILIES)
def test_model_parallel_step_matches_one_device(family):
    _check_mesh_step(_mesh_report(MESH_FAMILIES), family)


def _check_mesh_step(mesh_report, family):
    assert mesh_report["devices"] == 8, mesh_report["devices"]
    report = mesh_report[family]
    np.testing.assert_allclose(
        report["loss"], report["single_loss"], rtol=LOSS_RTOL
    )
    changes = report["weight_changes"]
    assert max(changes.values()) > 1e-3, changes
    diffs = report["weight_diffs"]
    worst = max(diffs, key=diffs.get)
    assert diffs[worst] <= WEIGHT_ATOL, (worst, diffs[worst])
    # The weights were really split: only over the model axis, and the
    # kernels meant to be split all were.
    split = {k: axes for k, axes in report["split"].items() if axes}
    assert all(axes == ["model"] for axes in split.values()), split
    suffixes = VIT_SPLIT + (MT5 if family == "pali" else ())
    assert set(split) == {k for k in diffs if k.endswith(suffixes)}
    if family == "limoe":
        # Some tokens found no slot: the capacity binds.
        assert max(report["dropped"]) > 0, report["dropped"]
