"""big_vision's own CLIPPO and two-tower models as a benchmark peer.

big_vision (google-research/big_vision) is the code the CLIPPO, LiT and
SigLIP papers' numbers come from. Its model code is not a dependency: it is
found at `$BIG_VISION_PEER`, else at `../shared/peers/big_vision` beside the
checkout, and needs `flax`, `optax`, `ml_collections` and `einops` (the
`bench` extra). When either is missing, `import_big_vision` says why and the
benchmarks print that instead of the rows.

The step mirrors keras_vl's: forward, the contrastive loss on the models'
normalised embeddings times their learned temperature, backward, global-norm
clipping, AdamW (decoupled weight decay scaled by the learning rate, as
Keras'), all in one `jax.jit` with the parameters and optimizer state
donated. big_vision renders CLIPPO's texts in its input pipeline, so its
one-tower step gets rendered text images as inputs.
"""

from __future__ import annotations

import importlib
import os
import sys
import time
import types
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_PEER = REPO_ROOT.parent / "shared" / "peers" / "big_vision"


def import_big_vision() -> tuple[dict | None, str]:
    """`({"one_tower": module, "two_towers": module}, "")`, or `(None, why)`."""
    peer = Path(os.environ.get("BIG_VISION_PEER", DEFAULT_PEER))
    if not (peer / "big_vision").is_dir():
        return None, f"big_vision peer code not found at {peer}"
    missing = [
        name
        for name in ("flax", "optax", "ml_collections", "einops")
        if importlib.util.find_spec(name) is None
    ]
    if missing:
        return None, f"not installed: {', '.join(missing)} (pip: .[bench])"
    if str(peer) not in sys.path:
        sys.path.insert(0, str(peer))
    stubs = _stub_gfile_if_tensorflow_is_absent()
    try:
        modules = {
            "one_tower": importlib.import_module(
                "big_vision.models.proj.clippo.one_tower"
            ),
            "two_towers": importlib.import_module(
                "big_vision.models.proj.image_text.two_towers"
            ),
        }
    finally:
        for name in stubs:
            sys.modules.pop(name, None)
    return modules, ""


def import_render_op() -> tuple[object | None, str]:
    """big_vision's CLIPPO text-rendering op module (`pp_ops`, with its
    `get_pp_render_text`), or `(None, why)`. It needs TensorFlow, not flax.
    """
    peer = Path(os.environ.get("BIG_VISION_PEER", DEFAULT_PEER))
    if not (peer / "big_vision").is_dir():
        return None, f"big_vision peer code not found at {peer}"
    missing = [
        name
        for name in ("tensorflow", "absl")
        if importlib.util.find_spec(name) is None
    ]
    if missing:
        return None, f"not installed: {', '.join(missing)}"
    if str(peer) not in sys.path:
        sys.path.insert(0, str(peer))
    return importlib.import_module("big_vision.pp.proj.clippo.pp_ops"), ""


def _stub_gfile_if_tensorflow_is_absent() -> list[str]:
    """big_vision's utils import `tensorflow.io.gfile` (for checkpoint files
    only); where TensorFlow is not installed, an empty stand-in lets the model
    code import. Returns the stand-in names, removed again after import."""
    if importlib.util.find_spec("tensorflow") is not None:
        return []
    names = ["tensorflow", "tensorflow.io", "tensorflow.io.gfile"]
    for name in names:
        sys.modules[name] = types.ModuleType(name)
    sys.modules["tensorflow"].io = sys.modules["tensorflow.io"]
    sys.modules["tensorflow.io"].gfile = sys.modules["tensorflow.io.gfile"]
    return names


def tower_config(dims, pool_type: str, dtype_mm: str) -> dict:
    return dict(
        width=dims.width,
        depth=dims.depth,
        mlp_dim=dims.mlp_dim,
        num_heads=dims.num_heads,
        pool_type=pool_type,
    ) | ({"dtype_mm": dtype_mm} if dtype_mm else {})


class BigVisionRunner:
    """Trains big_vision's `one_tower` (CLIPPO) or `two_towers` model.

    Args:
        kind: `"one_tower"` or `"two_towers"`.
        dims: the benchmark's sizes (`image_size`, `patch_size`, `width`,
            `depth`, `num_heads`, `mlp_dim`, `seq_len`, `vocab_size`,
            `batch_size`).
        learning_rate, weight_decay, clipnorm: AdamW settings.
        dtype_mm: big_vision's matmul dtype (`"bfloat16"` for mixed
            precision; parameters stay float32).
    """

    def __init__(
        self,
        kind: str,
        dims,
        learning_rate: float,
        weight_decay: float,
        clipnorm: float,
        dtype_mm: str = "float32",
    ):
        import jax
        import jax.numpy as jnp
        import numpy as np
        import optax

        modules, why = import_big_vision()
        if modules is None:
            raise RuntimeError(why)
        patch = (dims.patch_size, dims.patch_size)
        image = tower_config(dims, "map", dtype_mm) | {"patch_size": patch}
        rng = np.random.default_rng(0)
        shape = (dims.batch_size, dims.image_size, dims.image_size, 3)
        images = rng.uniform(-1, 1, shape).astype("float32")
        if kind == "one_tower":
            model = modules["one_tower"].Model(
                image=image, out_dim=dims.width, temperature_init=10.0
            )
            # Texts arrive rendered by the input pipeline.
            texts = rng.uniform(-1, 1, shape).astype("float32")
        elif kind == "two_towers":
            text = tower_config(dims, "last", None) | {
                "vocab_size": dims.vocab_size
            }
            model = modules["two_towers"].Model(
                image=image,
                text=text,
                out_dim=dims.width,
                temperature_init=10.0,
            )
            texts = rng.integers(
                2, dims.vocab_size, (dims.batch_size, dims.seq_len)
            ).astype("int32")
        else:
            raise ValueError(f"unknown big_vision model {kind!r}")
        self.batch = jax.device_put((images, texts))
        params = jax.jit(model.init)(jax.random.PRNGKey(0), *self.batch)
        optimizer = optax.chain(
            optax.clip_by_global_norm(clipnorm),
            optax.adamw(learning_rate, weight_decay=weight_decay),
        )

        def loss_fn(params, images, texts):
            zimg, ztxt, out = model.apply(params, images, texts)
            logits = jnp.dot(zimg, ztxt.T).astype("float32") * out["t"]
            labels = jnp.arange(logits.shape[0])
            rows = optax.softmax_cross_entropy_with_integer_labels(
                logits, labels
            )
            cols = optax.softmax_cross_entropy_with_integer_labels(
                logits.T, labels
            )
            return 0.5 * (rows.mean() + cols.mean())

        def step(params, state, images, texts):
            loss, grads = jax.value_and_grad(loss_fn)(params, images, texts)
            updates, state = optimizer.update(grads, state, params)
            return optax.apply_updates(params, updates), state, loss

        self.step = jax.jit(step, donate_argnums=(0, 1))
        self.params = params
        self.state = optimizer.init(params)

    def run(self, steps: int) -> list[float]:
        times = []
        for _ in range(steps):
            start = time.perf_counter()
            self.params, self.state, loss = self.step(
                self.params, self.state, *self.batch
            )
            float(loss)
            times.append(time.perf_counter() - start)
        return times
