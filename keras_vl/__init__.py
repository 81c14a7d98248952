"""keras_vl: vision-language models for Keras 3.

CLIPPO, LiT, LIMoE and PaLI on the JAX, TensorFlow and PyTorch backends.

Example:

```python
import keras_vl

images = keras_vl.render_text(["hello world"], image_size=224)
vit = keras_vl.models.ViTBackbone.from_variant("S/16", image_size=224)
```
"""

from keras_vl import (
    data,
    distribute,
    evaluation,
    layers,
    losses,
    models,
    ops,
    utils,
)
from keras_vl.layers import render_text
from keras_vl.version import __version__

__all__ = [
    "__version__",
    "data",
    "distribute",
    "evaluation",
    "layers",
    "losses",
    "models",
    "ops",
    "render_text",
    "utils",
]
