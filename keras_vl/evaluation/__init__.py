"""Backend-agnostic evaluation of contrastive image-text models.

Example:

```python
from keras_vl.evaluation import ZeroShotClassifier, retrieval_recall

classifier = ZeroShotClassifier(model, ["cat", "dog"], ["a photo of a {}."])
classifier.evaluate(images, labels)  # {"top1": ...}
retrieval_recall(model.encode_images(images), model.encode_texts(texts))
```
"""

from keras_vl.evaluation.retrieval import retrieval_recall
from keras_vl.evaluation.zero_shot import ZeroShotClassifier

__all__ = ["ZeroShotClassifier", "retrieval_recall"]
