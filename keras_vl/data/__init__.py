"""Embedded synthetic datasets for demos and tests (nothing is downloaded).

Example:

```python
from keras_vl.data import ShapeQuestions, ShapesDataset

ds = ShapesDataset(image_size=64, seed=0)
train = ds.as_tf_dataset("train", batch_size=128)

# Captions and questions in English and French, for PaLI.
questions = ShapeQuestions(image_size=64, seed=0)
batch = questions.sample(8, seed=1)  # images, prompts, responses, ...
```
"""

from keras_vl.data.shape_captions import CAPTION_TEMPLATES, PROMPT_TEMPLATES
from keras_vl.data.shape_drawing import COLORS, SHAPES
from keras_vl.data.shape_questions import (
    LANGUAGES,
    QUESTION_TASKS,
    ShapeQuestions,
    shape_vocabulary_proto,
)
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
    "LANGUAGES",
    "PROMPT_TEMPLATES",
    "QUESTION_TASKS",
    "SHAPES",
    "ShapeQuestions",
    "ShapesDataset",
    "shape_vocabulary_proto",
]
