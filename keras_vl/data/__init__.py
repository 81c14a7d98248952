"""Embedded synthetic datasets for demos and tests (nothing is downloaded).

Example:

```python
from keras_vl.data import ShapesDataset

ds = ShapesDataset(image_size=64, seed=0)
train = ds.as_tf_dataset("train", batch_size=128)
```
"""

from keras_vl.data.shape_captions import CAPTION_TEMPLATES, PROMPT_TEMPLATES
from keras_vl.data.shape_drawing import COLORS, SHAPES
from keras_vl.data.shapes_dataset import (
    DEFAULT_COLORS,
    DEFAULT_HELD_OUT,
    DEFAULT_SHAPES,
    ShapesDataset,
)

__all__ = [
    "CAPTION_TEMPLATES",
    "COLORS",
    "DEFAULT_COLORS",
    "DEFAULT_HELD_OUT",
    "DEFAULT_SHAPES",
    "PROMPT_TEMPLATES",
    "SHAPES",
    "ShapesDataset",
]
