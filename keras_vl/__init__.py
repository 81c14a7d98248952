"""keras_vl: vision-language models for Keras 3.

CLIPPO, LiT, LIMoE and PaLI on the JAX, TensorFlow and PyTorch backends.

Example:

```python
import keras_vl

images = keras_vl.render_text(["hello world"], image_size=224)
vit = keras_vl.models.ViTBackbone.from_variant("S/16", image_size=224)
```
"""

import importlib
from typing import TYPE_CHECKING, Any

from keras_vl.version import __version__

# Subpackages load on first use, so that `import keras_vl.cli` (the
# `keras-vl` command) starts without importing Keras and its backend.
_SUBPACKAGES = (
    "data",
    "distribute",
    "evaluation",
    "layers",
    "losses",
    "models",
    "ops",
    "utils",
)

if TYPE_CHECKING:
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


def __getattr__(name: str) -> Any:
    if name in _SUBPACKAGES:
        return importlib.import_module(f"keras_vl.{name}")
    if name == "render_text":
        return importlib.import_module("keras_vl.layers").render_text
    raise AttributeError(f"module 'keras_vl' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))


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
