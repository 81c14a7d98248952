"""Non-overlapping patch embedding for vision transformers."""

import keras


@keras.saving.register_keras_serializable(package="keras_vl")
class PatchEmbedding(keras.layers.Layer):
    """Cuts images into square patches and projects each one linearly.

    A convolution with kernel = stride = `patch_size` and VALID padding, so
    pixels past the last whole patch are ignored. The output keeps the patch
    grid: `[B, H // P, W // P, hidden_dim]`; flatten it when the tokens are
    needed as a sequence.

    Args:
        hidden_dim: int. Width of each patch token.
        patch_size: int or `(height, width)`. Patch side in pixels.
        kernel_initializer: Initializer of the `[P, P, C, hidden_dim]`
            kernel.
        bias_initializer: Initializer of the bias.
        **kwargs: Standard layer arguments (`name`, `dtype`, ...).

    Example:

    ```python
    layer = keras_vl.layers.PatchEmbedding(hidden_dim=64, patch_size=16)
    grid = layer(np.zeros((2, 224, 224, 3)))  # (2, 14, 14, 64)
    ```
    """

    def __init__(
        self,
        hidden_dim: int,
        patch_size: int | tuple[int, int],
        kernel_initializer="lecun_normal",
        bias_initializer="zeros",
        **kwargs,
    ):
        super().__init__(**kwargs)
        if isinstance(patch_size, int):
            patch_size = (patch_size, patch_size)
        patch_size = tuple(int(p) for p in patch_size)
        if len(patch_size) != 2 or min(patch_size) < 1:
            raise ValueError(
                "`patch_size` must be a positive int or a pair of positive "
                f"ints. Received: patch_size={patch_size}"
            )
        self.hidden_dim = int(hidden_dim)
        self.patch_size = patch_size
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.bias_initializer = keras.initializers.get(bias_initializer)
        self.projection = keras.layers.Conv2D(
            self.hidden_dim,
            kernel_size=patch_size,
            strides=patch_size,
            padding="valid",
            kernel_initializer=self.kernel_initializer,
            bias_initializer=self.bias_initializer,
            dtype=self.dtype_policy,
            name="embedding",
        )

    def build(self, input_shape):
        if len(input_shape) != 4:
            raise ValueError(
                "`PatchEmbedding` expects images of rank 4 [B, H, W, C]. "
                f"Received input shape {input_shape}"
            )
        for size, patch, axis in zip(
            input_shape[1:3], self.patch_size, "HW", strict=True
        ):
            if size is not None and size < patch:
                raise ValueError(
                    f"Image {axis} ({size}) is smaller than `patch_size` "
                    f"({patch})."
                )
        self.projection.build(input_shape)

    def call(self, images):
        return self.projection(images)

    def compute_output_shape(self, input_shape):
        batch, height, width = tuple(input_shape)[:3]
        grid = [
            None if size is None else size // patch
            for size, patch in zip(
                (height, width), self.patch_size, strict=True
            )
        ]
        return (batch, *grid, self.hidden_dim)

    def compute_output_spec(self, images):
        # Reads only `images.shape`, so a NumPy batch works as well as a
        # symbolic tensor (Keras' default passes it no shape).
        shape = self.compute_output_shape(tuple(images.shape))
        return keras.KerasTensor(shape, dtype=self.compute_dtype)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "hidden_dim": self.hidden_dim,
                "patch_size": self.patch_size,
                "kernel_initializer": keras.initializers.serialize(
                    self.kernel_initializer
                ),
                "bias_initializer": keras.initializers.serialize(
                    self.bias_initializer
                ),
            }
        )
        return config
