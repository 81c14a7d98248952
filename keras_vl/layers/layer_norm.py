"""Layer normalisation with big_vision's statistics and a fast gradient."""

import keras
from keras import ops

from keras_vl.ops import layer_norm


@keras.saving.register_keras_serializable(package="keras_vl")
class LayerNorm(keras.layers.LayerNormalization):
    """`keras.layers.LayerNormalization` through `keras_vl.ops.layer_norm`.

    Same arguments, weights (`gamma`, `beta`) and config. When it
    normalises the last axis with both a scale and an offset (how the
    transformers here use it), it computes the variance as Flax does and
    uses a written-out gradient, which makes a training step faster on JAX
    and TensorFlow. Anything else is `LayerNormalization`'s own code.

    Example:

    ```python
    norm = keras_vl.layers.LayerNorm(epsilon=1e-6)
    y = norm(np.random.normal(size=(2, 10, 64)))  # (2, 10, 64)
    ```
    """

    def call(self, inputs):
        last_axis = len(inputs.shape) - 1
        if (
            self.rms_scaling
            or not (self.center and self.scale)
            or [axis % len(inputs.shape) for axis in self.axis] != [last_axis]
        ):
            return super().call(inputs)
        outputs = layer_norm(inputs, self.gamma, self.beta, self.epsilon)
        return ops.cast(outputs, self.compute_dtype)
