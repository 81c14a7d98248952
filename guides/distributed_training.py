"""Distributed training: the same `fit` on many devices and many hosts.

CLIPPO, LiT and LIMoE were trained with batches of many thousands of
image-text pairs, and a contrastive batch is only as good as its
negatives: every image is scored against every caption of the *global*
batch. Spreading the work over devices must therefore leave the loss
exactly what it would be on one device with the whole batch. This guide
shows, on a laptop CPU, each way keras_vl spreads a step, and checks that
the numbers do not move:

1. **Data parallelism on JAX.** `keras.distribution.DataParallel` puts a
   copy of the weights on every device and splits each batch over them.
   The training step is still one program over the global batch (XLA adds
   the collectives), so `compute_loss` sees all the embeddings: a tiny
   LIMoE's step on 8 devices reports the loss and the updated weights of
   the same step on one.
2. **Tensor and expert parallelism on JAX.** For weights too large to copy,
   `keras.distribution.ModelParallel` takes a `LayoutMap` that says how
   each weight is split over a 2-D device mesh. Every backbone's
   `get_layout_map(mesh)` splits attention by heads, MLPs by hidden units
   and (LIMoE) the experts of a sparse MLP by expert, over the mesh's
   `"model"` axis, while the batch goes over its `"batch"` axis. A tiny
   LIMoE's step on a 4 x 2 mesh again equals one device's.
3. **Batches larger than memory.** `fit(..., accumulation_steps=k)` runs a
   batch through the towers in `k` micro-batches, yet takes the whole
   batch's gradient: every pair keeps all `B - 1` negatives. Keras' own
   `compile(gradient_accumulation_steps=k)` averages the gradients of `k`
   ordinary steps, each of which sees only its own `B / k` pairs, which is
   the loss of a smaller batch. The guide prints both losses side by side.
4. **TensorFlow.** `tf.distribute.MirroredStrategy` (here over 2 logical
   CPUs) runs one replica per device; the contrastive loss gathers the
   other replicas' embeddings, so the loss is again the global batch's.
   The same model code compiles under `tf.distribute.TPUStrategy` on a TPU
   (the step holds no Python callback and no string tensor); the code is
   printed, not run.
5. **Many hosts.** TPU pod slices and multi-GPU clusters run one process
   per host; `keras.distribution.initialize()` joins them into one JAX
   runtime whose devices form the mesh. The launch commands are printed.
6. **Memory levers.** `remat=True` and `dtype="mixed_bfloat16"`, briefly.

Each runnable section runs on the backend it is written for and prints what
it measured; a section for another backend prints how to run it:

    python guides/distributed_training.py                # JAX: 1, 2, 3
    KERAS_BACKEND=tensorflow python guides/distributed_training.py  # 3, 4
    KERAS_BACKEND=torch python guides/distributed_training.py       # 3

On JAX the guide needs 8 devices. Without accelerators it asks XLA for 8
simulated CPU devices, through `XLA_FLAGS`, which JAX reads once, when it
starts: the flag is set below before Keras (and so JAX) is imported, and a
process that already imported JAX cannot change its device count. The
same goes for TensorFlow's logical CPUs.

Without arguments every section takes three steps of a 4-block model.
`--quick` is a smoke test for CI: one step of a one-block model, and
section 3, which is the same on every backend, only on PyTorch, where it
compiles nothing.
"""

import os

# Pick a backend before Keras is imported; the environment variable wins.
os.environ.setdefault("KERAS_BACKEND", "jax")
BACKEND = os.environ["KERAS_BACKEND"]
NUM_DEVICES = 8  # the JAX sections' mesh: 8 devices, or 4 x 2
NUM_REPLICAS = 2  # MirroredStrategy's logical CPUs

if BACKEND == "jax":
    # Simulated host devices, for machines without 8 accelerators. JAX reads
    # the flag when it starts, so it must be set before the first import.
    _flags = os.environ.get("XLA_FLAGS", "")
    if "xla_force_host_platform_device_count" not in _flags:
        os.environ["XLA_FLAGS"] = (
            f"{_flags} --xla_force_host_platform_device_count={NUM_DEVICES}"
        ).strip()
elif BACKEND == "tensorflow":
    import tensorflow as tf

    # Two logical CPUs for MirroredStrategy; possible only before the
    # TensorFlow runtime starts (section 4 says so if it had).
    _cpu = tf.config.list_physical_devices("CPU")[0]
    if tf.config.get_logical_device_configuration(_cpu) is None:
        try:
            tf.config.set_logical_device_configuration(
                _cpu, [tf.config.LogicalDeviceConfiguration()] * NUM_REPLICAS
            )
        except RuntimeError:
            pass

import argparse  # noqa: E402
import dataclasses  # noqa: E402
import re  # noqa: E402

import keras  # noqa: E402
import numpy as np  # noqa: E402

from keras_vl.losses import (  # noqa: E402
    logit_scale_from_log,
    softmax_contrastive_loss,
)
from keras_vl.models import LIMoE, LIMoEBackbone  # noqa: E402

# ---------------------------------------------------------------------------
# Configuration
# ---------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Config:
    """Sizes of one run of the guide.

    Attributes:
        image_size: Side of the square images, in pixels.
        patch_size: Side of the ViT patches.
        width: Token width of every model.
        depth: Encoder blocks.
        moe_layers: Which blocks have a sparse MLP (`LIMoEBackbone`'s
            `moe_layers`).
        num_heads: Attention heads; a multiple of the model axis (2).
        num_experts: Experts per sparse MLP; a multiple of the model axis.
        batch_size: Pairs per step: a multiple of the 8 devices and of
            `accumulation_steps`.
        steps: Training steps compared in every section.
        accumulation_steps: Micro-batches per batch in section 3.
        learning_rate: SGD learning rate (large enough to move weights).
    """

    image_size: int = 32
    patch_size: int = 16
    width: int = 16
    depth: int = 4
    moe_layers: str = "every_2"
    num_heads: int = 2
    num_experts: int = 4
    batch_size: int = 8
    steps: int = 1
    accumulation_steps: int = 4
    learning_rate: float = 0.1


FULL = Config(width=64, num_heads=4, batch_size=32, steps=3)
# A smoke test for CI: one step of a one-block model, whose MLP is sparse
# (the pooling head has a dense one).
QUICK = Config(width=16, depth=1, moe_layers="last_1", batch_size=8, steps=1)

#: Relative tolerance of every loss comparison; weights are compared with
#: the same absolute tolerance.
TOLERANCE = 1e-5
VOCABULARY_SIZE = 16
SEQUENCE_LENGTH = 4

# ---------------------------------------------------------------------------
# Shared pieces: a tiny LIMoE, its data, steps of `fit`
# ---------------------------------------------------------------------------
#
# Every section trains the same tiny LIMoE: one transformer for images and
# texts, a sparse MLP of experts in every second block, the softmax
# contrastive loss over the global batch. It has every kind of weight a
# layout can split (attention, dense MLPs, experts), and CLIPPO and LiT
# distribute the same way. Texts arrive as token ids, as a TPU needs them:
# strings are tokenised in the input pipeline, never inside the step. The
# router's noise is off, so that a micro-batch (section 3) routes as it
# would inside the whole batch. Every run starts from the same initial
# weights; each reports the loss `fit` logs after each step and the
# trainable weights after the last.


def limoe(config: Config) -> LIMoE:
    """A tiny LIMoE taking model-ready inputs (no preprocessor)."""
    backbone = LIMoEBackbone(
        vocabulary_size=VOCABULARY_SIZE,
        sequence_length=SEQUENCE_LENGTH,
        image_size=config.image_size,
        patch_size=config.patch_size,
        width=config.width,
        depth=config.depth,
        moe_layers=config.moe_layers,
        num_heads=config.num_heads,
        mlp_dim=2 * config.width,
        out_dim=config.width,
        num_experts=config.num_experts,
        moe_kwargs={"noise_std": 0.0},
    )
    model = LIMoE(backbone)
    model.preprocessor = None  # fed token ids and [-1, 1] images
    return model


def limoe_data(config: Config, seed: int = 0) -> dict:
    """`config.steps` batches of random images and captions."""
    rng = np.random.default_rng(seed)
    rows = config.steps * config.batch_size
    shape = (rows, config.image_size, config.image_size, 3)
    mask = np.ones((rows, SEQUENCE_LENGTH), bool)
    mask[::3, 2:] = False  # some shorter captions
    tokens = rng.integers(1, VOCABULARY_SIZE, (rows, SEQUENCE_LENGTH))
    return {
        "images": rng.uniform(-1, 1, shape).astype("float32"),
        "token_ids": (tokens * mask).astype("int32"),
        "padding_mask": mask,
    }


@dataclasses.dataclass
class Run:
    """What one training run reports."""

    losses: list[float]
    weights: list[np.ndarray]


def train(model, data, config: Config, **fit_kwargs) -> Run:
    """`config.steps` SGD steps of `model` through `fit`, in order."""
    model.compile(
        optimizer=keras.optimizers.SGD(learning_rate=config.learning_rate)
    )
    losses = []
    record = keras.callbacks.LambdaCallback(
        on_train_batch_end=lambda _, logs: losses.append(float(logs["loss"]))
    )
    model.fit(
        data,
        batch_size=config.batch_size,
        shuffle=False,  # the same batches in every run
        verbose=0,
        callbacks=[record],
        **fit_kwargs,
    )
    # Trainable only: the routing statistics describe the last forward
    # pass, which is a micro-batch's under accumulation.
    weights = [keras.ops.convert_to_numpy(w) for w in model.trainable_weights]
    return Run(losses, weights)


def compare(name: str, reference: Run, run: Run) -> dict:
    """Prints and returns how far `run` is from `reference`."""
    loss_gap = max(
        abs(a - b) / abs(b)
        for a, b in zip(run.losses, reference.losses, strict=True)
    )
    weight_gap = max(
        float(np.max(np.abs(a - b)))
        for a, b in zip(run.weights, reference.weights, strict=True)
    )
    print(
        f"  {name}: losses {_floats(run.losses)} vs one device "
        f"{_floats(reference.losses)}; relative gap {loss_gap:.1e}, "
        f"largest weight gap {weight_gap:.1e}"
    )
    return {
        "losses": run.losses,
        "reference_losses": reference.losses,
        "loss_gap": loss_gap,
        "weight_gap": weight_gap,
    }


def _floats(values) -> str:
    return "[" + ", ".join(f"{v:.6f}" for v in values) + "]"


def _skip(section: str, backend: str) -> None:
    print(
        f"\n{section}: runs on {backend}; see it with "
        f"`KERAS_BACKEND={backend} python guides/distributed_training.py`."
    )


def _jax_devices():
    """The devices of the JAX sections: 8 accelerators if there are, else
    the simulated CPU devices (None if the process has fewer)."""
    devices = keras.distribution.list_devices()
    if len(devices) < NUM_DEVICES:
        devices = keras.distribution.list_devices("cpu")
    if len(devices) < NUM_DEVICES:
        print(
            f"  only {len(devices)} JAX devices: JAX started before the "
            "guide could ask for 8. Run the guide in a fresh process."
        )
        return None
    return devices[:NUM_DEVICES]


# ---------------------------------------------------------------------------
# Section 1: data parallelism on JAX
# ---------------------------------------------------------------------------
#
# One call before building the model is all it takes:
#
#     keras.distribution.set_distribution(keras.distribution.DataParallel())
#
# Variables created from then on are replicated on every device, and `fit`
# splits each batch into equal blocks of rows, one per device. The step is
# compiled as one program over the global batch, so the CLIPPO loss, which
# compares every image with every caption, needs no change: XLA inserts the
# all-gathers of the embeddings and the all-reduce of the gradients. The
# batch size must be a multiple of the device count.


def data_parallel(config: Config, initial, reference: Run) -> dict | None:
    print(f"\n1. Data parallelism on {NUM_DEVICES} JAX devices")
    devices = _jax_devices()
    if devices is None:
        return None
    keras.distribution.set_distribution(
        keras.distribution.DataParallel(devices=devices)
    )
    try:
        model = limoe(config)  # built under the distribution: replicated
        model.set_weights(initial)
        mesh = keras.distribution.distribution().device_mesh
        print(
            f"  mesh {dict(zip(mesh.axis_names, mesh.shape, strict=True))}, "
            f"{config.batch_size // NUM_DEVICES} pair(s) per device"
        )
        run = train(model, limoe_data(config), config)
    finally:
        keras.distribution.set_distribution(None)
    return {"devices": len(devices), **compare("DataParallel", reference, run)}


# ---------------------------------------------------------------------------
# Section 2: tensor and expert parallelism on JAX
# ---------------------------------------------------------------------------
#
# A 4 x 2 mesh: the batch is split over the first axis and each weight
# listed in the layout map over the second. `get_layout_map` is a class
# method, so the map exists before the model: weights take their layout
# when they are created.
#
#     mesh = keras.distribution.DeviceMesh(
#         (4, 2), ["batch", "model"], keras.distribution.list_devices()
#     )
#     layout_map = LIMoEBackbone.get_layout_map(mesh)
#     keras.distribution.set_distribution(
#         keras.distribution.ModelParallel(
#             layout_map=layout_map, batch_dim_name="batch"
#         )
#     )
#     model = LIMoE(LIMoEBackbone(...))
#
# The splits are Megatron's: query, key and value by heads and the output
# projection by its input heads; an MLP's first kernel by hidden units and
# its second by rows; a sparse MLP's `[E, ...]` weights by expert, so each
# device holds whole experts and the dispatch einsum moves tokens to them.
# One all-reduce per block sums the partial results. Norms, embeddings and
# routers are small and replicated.


def model_parallel(config: Config, initial, reference: Run) -> dict | None:
    print("\n2. Tensor and expert parallelism on a 4 x 2 JAX mesh")
    devices = _jax_devices()
    if devices is None:
        return None
    mesh = keras.distribution.DeviceMesh((4, 2), ["batch", "model"], devices)
    layout_map = LIMoEBackbone.get_layout_map(mesh)
    keras.distribution.set_distribution(
        keras.distribution.ModelParallel(
            layout_map=layout_map, batch_dim_name="batch"
        )
    )
    try:
        model = limoe(config)
        model.set_weights(initial)
        split = _print_layouts(model)
        run = train(model, limoe_data(config), config)
    finally:
        keras.distribution.set_distribution(None)
    return {
        "mesh": [4, 2],
        "split": split,
        **compare("ModelParallel", reference, run),
    }


def _print_layouts(model) -> dict[str, list]:
    """Prints one weight of each kind with its shape and the axes it is
    split over; returns `{path: axes}` for every weight that is split."""
    split = {}
    for variable in model.weights:
        spec = variable.value.sharding.spec
        if any(axis is not None for axis in spec):
            split[variable.path] = [axis for axis in spec]
    kinds = (
        r"query/kernel",
        r"attention_output/kernel",
        r"Dense_0/kernel",
        r"Dense_1/kernel",
        r"kernel_0",
        r"Router/kernel",
    )
    print(f"  {len(split)} of {len(model.weights)} weights are split:")
    rows = []
    for kind in kinds:
        variable = next(
            (v for v in model.weights if re.search(kind + "$", v.path)), None
        )
        if variable is not None:
            spec = variable.value.sharding.spec
            axes = tuple(spec) + (None,) * (len(variable.shape) - len(spec))
            rows.append((variable.path, str(tuple(variable.shape)), axes))
    width = max(len(path) for path, _, _ in rows)
    for path, shape, axes in rows:
        print(f"    {path:<{width}}  {shape:<13} axes {axes}")
    return split


# ---------------------------------------------------------------------------
# Section 3: accumulation with every negative
# ---------------------------------------------------------------------------
#
# `fit(..., accumulation_steps=k)` works on every backend. It embeds the k
# micro-batches without gradients, takes the whole batch's loss (and the
# temperature's gradient) from those embeddings, then runs each micro-batch
# again with gradients against the cached embeddings of all the others.
# Activations are held for one micro-batch at a time, the step costs one
# more forward pass, and the update is the whole batch's.
#
# Keras' `compile(gradient_accumulation_steps=k)` is a different loss: each
# of its k steps computes a contrastive loss over its own B / k pairs, so
# each image competes with B / k - 1 captions instead of B - 1. The guide
# computes that loss from the same embeddings to show the gap.


def accumulation(config: Config, initial, reference: Run) -> dict:
    k = config.accumulation_steps
    print(
        f"\n3. Accumulation: {config.batch_size} pairs in {k} micro-batches "
        f"of {config.batch_size // k}"
    )
    model = limoe(config)
    model.set_weights(initial)
    data = limoe_data(config)
    run = train(model, data, config, accumulation_steps=k)
    result = compare(f"accumulation_steps={k}", reference, run)
    # The contrastive loss of the first batch at the initial weights, and
    # what Keras' accumulation would use instead.
    model.set_weights(initial)
    batch = {key: value[: config.batch_size] for key, value in data.items()}
    outputs = model(batch)
    images, texts, scale = (
        keras.ops.convert_to_numpy(x)
        for x in (
            outputs["image_embeddings"],
            outputs["text_embeddings"],
            logit_scale_from_log(model.log_temperature),
        )
    )
    whole = float(softmax_contrastive_loss(images, texts, scale))
    # Rows i, i + k, ... form micro-batch i, as in `accumulation_steps`.
    micro = float(
        np.mean(
            [
                softmax_contrastive_loss(images[i::k], texts[i::k], scale)
                for i in range(k)
            ]
        )
    )
    print(
        f"  first batch's loss with every negative: {whole:.4f}; the mean "
        f"of the micro-batches' own losses (Keras' accumulation): {micro:.4f}"
    )
    return {**result, "whole_batch_loss": whole, "micro_batch_loss": micro}


# ---------------------------------------------------------------------------
# Section 4: TensorFlow, MirroredStrategy and TPUStrategy
# ---------------------------------------------------------------------------
#
# Under `tf.distribute` each replica runs the step on its own rows, and
# `compute_loss` sees only those. The contrastive loss then gathers the
# other replicas' embeddings (`all_gather`, which passes gradients back),
# offsets its labels by the replica's position and scales its share, so
# the sum over replicas is the global batch's loss. Build and compile the
# model inside `strategy.scope()`; `fit` splits each batch.


TPU_STRATEGY_CODE = """\
# On a Cloud TPU VM with TensorFlow (a `tpu-vm-tf-*` runtime image):
import tensorflow as tf
import keras_vl

resolver = tf.distribute.cluster_resolver.TPUClusterResolver(tpu="local")
tf.config.experimental_connect_to_cluster(resolver)
tf.tpu.experimental.initialize_tpu_system(resolver)
strategy = tf.distribute.TPUStrategy(resolver)

with strategy.scope():
    model = keras_vl.models.Clippo.from_preset("./clippo_preset")
    model.compile(learning_rate=1e-3)
# Strings become code points (token ids, for LiT and LIMoE) in the input
# pipeline; a TPU needs static shapes, so drop the last partial batch.
model.fit(dataset.batch(global_batch_size, drop_remainder=True), epochs=3)
"""


def mirrored(config: Config, initial, reference: Run) -> dict | None:
    import tensorflow as tf

    print(f"\n4. MirroredStrategy over {NUM_REPLICAS} replicas")
    cpus = tf.config.list_logical_devices("CPU")
    gpus = tf.config.list_logical_devices("GPU")
    devices = gpus if len(gpus) >= NUM_REPLICAS else cpus
    if len(devices) < NUM_REPLICAS:
        print(
            "  one logical CPU only: TensorFlow started before the guide "
            "could split it. Run the guide in a fresh process."
        )
        return None
    devices = [d.name for d in devices[:NUM_REPLICAS]]
    strategy = tf.distribute.MirroredStrategy(devices)
    with strategy.scope():
        model = limoe(config)
        model.set_weights(initial)
        run = train(model, limoe_data(config), config)
    result = compare("MirroredStrategy", reference, run)
    print("  On a TPU, the same model under TPUStrategy (not run here):")
    print(_indent(TPU_STRATEGY_CODE))
    return {"replicas": strategy.num_replicas_in_sync, **result}


# ---------------------------------------------------------------------------
# Section 5: many hosts
# ---------------------------------------------------------------------------
#
# A TPU pod slice (or a cluster of GPU hosts) runs the same script once per
# host. `keras.distribution.initialize()` connects the processes: on Cloud
# TPU it finds its peers itself; elsewhere it takes the coordinator's
# address, the process count and this process' index (as arguments or
# `KERAS_DISTRIBUTION_*` variables). From then on `list_devices()` returns
# every device of every host, and a mesh over them spans the hosts. Each
# host feeds its own share of every global batch (its `1 / processes` of
# the rows); Keras assembles the global batch from them.

TRAIN_SCRIPT = """\
# train.py: the same file on every host; `dataset` is your tf.data.Dataset
# of {"images": uint8 pixels, "texts": strings}.
import jax
import keras
import keras_vl

keras.distribution.initialize()  # before anything else touches JAX
keras.distribution.set_distribution(
    keras.distribution.DataParallel(auto_shard_dataset=False)
)
# or ModelParallel(layout_map=...get_layout_map(mesh), batch_dim_name=...)
model = keras_vl.models.Clippo.from_preset("./clippo_preset")
model.compile(learning_rate=1e-3)
per_host_batch = 4096 // jax.process_count()
dataset = dataset.shard(jax.process_count(), jax.process_index())
model.fit(dataset.batch(per_host_batch, drop_remainder=True), epochs=3)
"""

TPU_POD_COMMANDS = """\
# A TPU pod slice (here 8 hosts of 4 v5e chips), from your own machine:
gcloud compute tpus tpu-vm create my-slice --zone=europe-west4-b \\
    --accelerator-type=v5litepod-32 --version=v2-alpha-tpuv5-lite
gcloud compute tpus tpu-vm scp --recurse keras-vl train.py my-slice: \\
    --zone=europe-west4-b --worker=all
gcloud compute tpus tpu-vm ssh my-slice --zone=europe-west4-b --worker=all \\
    --command='pip install -U "jax[tpu]" ./keras-vl \\
    && KERAS_BACKEND=jax python3 train.py'
"""

GPU_HOSTS_COMMANDS = """\
# Two GPU hosts (all local GPUs of each join the mesh), each with
# `pip install -U "jax[cuda12]" ./keras-vl`. The job address is host 0's
# (the coordinator's) address and a free port. On host 0:
KERAS_BACKEND=jax \\
KERAS_DISTRIBUTION_JOB_ADDRESSES=10.0.0.1:1234 \\
KERAS_DISTRIBUTION_NUM_PROCESSES=2 \\
KERAS_DISTRIBUTION_PROCESS_ID=0 \\
python train.py
# and the same on host 1 with KERAS_DISTRIBUTION_PROCESS_ID=1. Under SLURM,
# `srun` with one task per host sets what `initialize()` needs.
# One host with several GPUs needs no initialize(): DataParallel() alone.
"""


def launch_commands() -> dict[str, str]:
    print("\n5. Many hosts (printed, not run)")
    commands = {
        "train_script": TRAIN_SCRIPT,
        "tpu_pod": TPU_POD_COMMANDS,
        "gpu_hosts": GPU_HOSTS_COMMANDS,
    }
    for text in commands.values():
        print(_indent(text))
    return commands


# ---------------------------------------------------------------------------
# Section 6: memory levers
# ---------------------------------------------------------------------------

MEMORY_LEVERS = """\
# Recompute each transformer block in the backward pass instead of keeping
# its activations (about one more forward pass per step):
vit = keras_vl.models.ViTBackbone(..., remat=True)
# bfloat16 matmuls and activations; the temperature, bias, norms, softmax
# and losses stay float32:
keras.config.set_dtype_policy("mixed_bfloat16")  # or dtype= on a backbone
"""


def memory_levers() -> None:
    print("\n6. Memory levers (printed, not run)")
    print(_indent(MEMORY_LEVERS))


def _indent(text: str) -> str:
    return "\n".join("    " + line if line else "" for line in text.split("\n"))


# ---------------------------------------------------------------------------
# Putting it together
# ---------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> dict:
    """Runs the guide's sections for the current backend.

    Args:
        argv: Command-line arguments (`--quick`); defaults to
            `sys.argv[1:]`.

    Returns:
        `{"backend", "reference_losses", "reference_change",
        "data_parallel", "model_parallel", "accumulation", "mirrored",
        "commands"}`, with `reference_change` the largest change of a
        weight in the one-device run. A section that did not
        run (another backend's, or too few devices) is None. Each run's
        entry has `losses`, `reference_losses` (one device, whole batch),
        `loss_gap` (largest relative difference) and `weight_gap` (largest
        absolute difference of the final weights); `data_parallel` adds
        `devices`, `model_parallel` `mesh` and `split` (`{path: axes}` of
        the split weights), `accumulation` `whole_batch_loss` and
        `micro_batch_loss`, `mirrored` `replicas`.
    """
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--quick",
        action="store_true",
        help="one step of one-block models: a smoke test",
    )
    args = parser.parse_args(argv)
    config = QUICK if args.quick else FULL
    print(f"Backend: {BACKEND}")

    # The reference of every section: the whole batches on one device.
    keras.utils.set_random_seed(0)
    model = limoe(config)
    initial = model.get_weights()
    before = [keras.ops.convert_to_numpy(w) for w in model.trainable_weights]
    reference = train(model, limoe_data(config), config)
    # How far the steps moved the weights: the scale of the gaps below.
    change = max(
        float(np.max(np.abs(a - b)))
        for a, b in zip(reference.weights, before, strict=True)
    )
    results = {
        "backend": BACKEND,
        "reference_losses": reference.losses,
        "reference_change": change,
        "data_parallel": None,
        "model_parallel": None,
        "mirrored": None,
    }
    print(
        f"One device, whole batches: losses {_floats(reference.losses)}, "
        f"largest weight change {change:.1e}"
    )
    if BACKEND == "jax":
        results["data_parallel"] = data_parallel(config, initial, reference)
        results["model_parallel"] = model_parallel(config, initial, reference)
    else:
        _skip("1. Data parallelism", "jax")
        _skip("2. Tensor and expert parallelism", "jax")
    if args.quick and BACKEND != "torch":
        # CI budget: the quick test runs this backend-neutral section where
        # it compiles nothing, on PyTorch.
        print("\n3. Accumulation: not in quick mode on this backend.")
        results["accumulation"] = None
    else:
        results["accumulation"] = accumulation(config, initial, reference)
    if BACKEND == "tensorflow":
        results["mirrored"] = mirrored(config, initial, reference)
    else:
        _skip("4. MirroredStrategy and TPUStrategy", "tensorflow")
    results["commands"] = launch_commands()
    memory_levers()
    return results


if __name__ == "__main__":
    main()
