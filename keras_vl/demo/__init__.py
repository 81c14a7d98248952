"""The `keras-vl demo` job: train a small CLIPPO from scratch on shapes.

One ViT reads both the images of `keras_vl.data.ShapesDataset` and their
captions rendered as images, and learns to match them with the contrastive
loss alone. Some colour x shape combinations never appear in training; the
demo measures zero-shot top-1 accuracy on seen and on those held-out
combinations (the classifier always chooses among all of them), and
text-to-image recall@1, saves the model as a preset and draws a PNG of the
image-text similarities. Nothing is downloaded.

What lets a model name a red circle it has never seen is in the training
batches, not the model. Captions also name colour or shape alone ("a red
shape", "a circle"), shapes also come in hues no caption names, and the
target of `fit` is the batch's positives matrix
(`ShapesDataset.caption_positives`), so "a red shape" counts as a match
for every red image rather than a negative. The image features of colour
and of shape then stand on their own, and a new combination reuses both.
The zero-shot classifier asks for both the same way: it describes each
class by its colour-only and shape-only captions, never by a phrase naming
the combination, which the model has not read for held-out classes.

The pieces: `demo_config` (`DemoConfig` and the caption phrasings),
`training_batches` (the training stream and its positives), `training`
(the model and `fit`), `evaluator` (the scores), `similarity_figure` (the
PNG) and `run` (`run_demo`, which ties them together and prints a summary).

Example:

```python
from keras_vl.demo import run_demo

metrics = run_demo("demo_output", quick=True)
metrics["held_out_top1"]
```
"""

from keras_vl.demo.demo_config import (
    DEFAULT_CONFIG,
    DEMO_CAPTION_TEMPLATES,
    DEMO_PARTIAL_CAPTION_TEMPLATES,
    QUICK_CONFIG,
    UNNAMED_HUE_TEMPLATES,
    DemoConfig,
)
from keras_vl.demo.evaluator import Evaluator, attribute_prompts
from keras_vl.demo.run import FIGURE_NAME, PRESET_NAME, run_demo
from keras_vl.demo.similarity_figure import save_similarity_figure
from keras_vl.demo.training import build_model, train
from keras_vl.demo.training_batches import training_data, training_datasets

__all__ = [
    "DEFAULT_CONFIG",
    "DEMO_CAPTION_TEMPLATES",
    "DEMO_PARTIAL_CAPTION_TEMPLATES",
    "FIGURE_NAME",
    "PRESET_NAME",
    "QUICK_CONFIG",
    "UNNAMED_HUE_TEMPLATES",
    "DemoConfig",
    "Evaluator",
    "attribute_prompts",
    "build_model",
    "run_demo",
    "save_similarity_figure",
    "train",
    "training_data",
    "training_datasets",
]
