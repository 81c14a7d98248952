"""keras-hub's model contract, shared by every keras_vl model family.

`ContractTestCase` is keras-hub's own `TestCase` (the checks keras-hub runs
on its models: config and serialization round trips, eager and compiled
calls, mixed precision, quantization, `.keras` saving, presets, fit and
predict through the preprocessor, tf.data and Grain pipelines) plus a few
helpers, so that a family's test file states the contract in a few lines:

```python
class ViTBackboneContractTest(ContractTestCase):
    def test_backbone_contract(self):
        self.run_backbone_contract(
            ViTBackbone, tiny_vit_kwargs(), images(), (2, 8)
        )
```

Models stay tiny (width 16, depth 1, 32 px images cut into a 2 x 2 patch
grid) so that the contract runs in seconds per model on a CPU.
"""

import os

import numpy as np
from keras_hub.src.tests.test_case import TestCase

# The shapes every contract test uses: a batch of two 32 px RGB images cut
# into a 2 x 2 grid of 16 px patches, and tokens of width 16.
BATCH = 2
IMAGE_SIZE = 32
PATCH_SIZE = 16
WIDTH = 16


def tiny_vit_kwargs(**overrides) -> dict:
    """`ViTBackbone` arguments of a one-block ViT on a 2 x 2 patch grid."""
    return {
        "image_size": IMAGE_SIZE,
        "patch_size": PATCH_SIZE,
        "width": WIDTH,
        "depth": 1,
        "mlp_dim": 2 * WIDTH,
        "num_heads": 2,
        **overrides,
    }


def tiny_text_kwargs(**overrides) -> dict:
    """`TextTransformer` arguments of a one-block text tower."""
    return {
        "vocab_size": 16,
        "sequence_length": 4,
        "width": WIDTH,
        "depth": 1,
        "mlp_dim": 2 * WIDTH,
        "num_heads": 2,
        **overrides,
    }


def tiny_limoe_kwargs(**overrides) -> dict:
    """A two-block LIMoE (4 experts) on the contract's shapes."""
    return {
        "vocabulary_size": 16,
        "sequence_length": 4,
        "image_size": IMAGE_SIZE,
        "patch_size": PATCH_SIZE,
        "width": WIDTH,
        "depth": 2,
        "num_heads": 2,
        "mlp_dim": 2 * WIDTH,
        "out_dim": 8,
        "num_experts": 4,
        **overrides,
    }


def encoder_parameters(w, depth, mlp, final_norm=True) -> int:
    """Parameters of `depth` pre-LN blocks of width `w` (and the final
    LayerNorm)."""
    block = 4 * (w * w + w) + 2 * w * mlp + mlp + w + 4 * w
    return depth * block + (2 * w if final_norm else 0)


def dense_parameters(fan_in, units) -> int:
    return fan_in * units + units if units else 0


def map_vit_parameters(w, depth, mlp, patch, tokens) -> int:
    """A MAP-pooled ViT without head: patch and position embeddings, the
    encoder, and the MAP head (probe, attention, MLP, one LayerNorm)."""
    head = w + 4 * (w * w + w) + 2 * w * mlp + mlp + w + 2 * w
    return (
        patch * patch * 3 * w
        + w
        + tokens * w
        + encoder_parameters(w, depth, mlp)
        + head
    )


def random_images(batch=BATCH, size=IMAGE_SIZE, seed=0) -> np.ndarray:
    """Model-ready float32 images in `[-1, 1]`, `[batch, size, size, 3]`."""
    rng = np.random.default_rng(seed)
    return rng.uniform(-1.0, 1.0, (batch, size, size, 3)).astype("float32")


def random_pixels(batch=BATCH, size=IMAGE_SIZE, seed=0) -> np.ndarray:
    """Raw uint8 pixels `[batch, size, size, 3]`, as a preprocessor takes."""
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (batch, size, size, 3), dtype=np.uint8)


class ContractTestCase(TestCase):
    """keras-hub's `TestCase` with one call per kind of public class.

    Each `run_*_contract` runs every keras-hub check that applies to that
    kind; keras-hub's own `run_*_test` methods stay available for anything
    more specific.
    """

    def assertAllClose(self, x1, x2, atol=1e-5, rtol=1e-5, msg=None):
        # keras-hub compares one model's outputs along two paths (e.g.
        # `predict` on arrays and on a dataset) within 1e-6. TensorFlow's
        # oneDNN kernels may pick other summation orders per call: PaLI's
        # logits (~0.04) then differ by up to 1.2e-6.
        super().assertAllClose(x1, x2, atol=atol, rtol=rtol, msg=msg)

    def save_preset(self, model, name: str) -> str:
        """Saves `model` (a backbone or a task) as a preset in this test's
        temporary directory and returns the preset's path."""
        path = os.path.join(self.get_temp_dir(), name)
        model.save_to_preset(path)
        return path

    def run_backbone_contract(
        self,
        cls,
        init_kwargs: dict,
        input_data,
        expected_output_shape,
        **backbone_test_kwargs,
    ):
        """keras-hub's backbone test, `.keras` saving and a preset round
        trip (outputs after `from_preset` equal the saved model's).

        Args:
            cls: The backbone class.
            init_kwargs: Its constructor arguments (tiny).
            input_data: A batch of inputs.
            expected_output_shape: The output shape, or a dict of them.
            **backbone_test_kwargs: Passed on to `run_backbone_test`
                (`variable_length_data`, `run_mixed_precision_check`,
                `run_quantization_check`).
        """
        # keras-hub's precision and quantization checks swap the layers in
        # the dict they are given for re-typed copies: hand them a copy.
        self.run_backbone_test(
            cls,
            dict(init_kwargs),
            input_data,
            expected_output_shape,
            **backbone_test_kwargs,
        )
        self.run_model_saving_test(cls, init_kwargs, input_data)
        backbone = cls(**init_kwargs)
        preset = self.save_preset(backbone, "backbone_preset")
        self.run_preset_test(
            cls,
            preset,
            input_data,
            expected_output=backbone(input_data),
            expected_output_shape=expected_output_shape,
        )

    def run_task_contract(
        self,
        cls,
        init_kwargs: dict,
        train_data: tuple,
        expected_output_shape,
        **task_test_kwargs,
    ):
        """keras-hub's task test (fit and predict, with the preprocessor
        inside and split off) and a preset round trip of the task.

        Args:
            cls: The task class.
            init_kwargs: Its constructor arguments, with a tiny backbone and
                a preprocessor.
            train_data: `(x,)` or `(x, y)` of raw inputs, as `fit` takes.
            expected_output_shape: Shapes of `predict`'s outputs.
            **task_test_kwargs: Passed on to `run_task_test`.
        """
        self.run_task_test(
            cls,
            init_kwargs,
            train_data,
            expected_output_shape,
            **task_test_kwargs,
        )
        task = cls(**init_kwargs)
        preset = self.save_preset(task, "task_preset")
        # A task called directly takes what its preprocessor makes.
        inputs = task.preprocessor(*train_data)
        inputs = inputs[0] if isinstance(inputs, tuple) else inputs
        self.run_preset_test(
            cls,
            preset,
            inputs,
            expected_output=task(inputs),
            expected_output_shape=expected_output_shape,
        )

    def run_preprocessor_contract(
        self, cls, init_kwargs: dict, input_data, token_id_key: str
    ):
        """keras-hub's preprocessor test: eager, tf.data (batched and not)
        and Grain agree, and `sequence_length` can change after creation.

        Returns the preprocessor's output on `input_data`.
        """
        # keras-hub's check rebuilds the layer from `self.init_kwargs`.
        self.init_kwargs = init_kwargs
        return self.run_preprocessor_test(
            cls, init_kwargs, input_data, token_id_key=token_id_key
        )
