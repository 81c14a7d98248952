"""keras_vl imports and builds models where TensorFlow is not installed."""

import keras
import pytest
from without_tensorflow import run_without_tensorflow


@pytest.mark.skipif(
    keras.backend.backend() == "tensorflow",
    reason="the TensorFlow backend needs TensorFlow",
)
def test_models_import_and_run_without_tensorflow():
    out = run_without_tensorflow(
        "try:\n"
        "    import tensorflow\n"
        "except ImportError:\n"
        "    print('TENSORFLOW_ABSENT')\n"
        "import numpy as np\n"
        "import keras_vl\n"
        "from keras_vl.models import ViTBackbone\n"
        "vit = ViTBackbone(image_size=16, patch_size=8, width=8, depth=1,"
        " num_heads=2, mlp_dim=16, pool_type='gap')\n"
        "print('SHAPE', tuple(vit(np.zeros((2, 16, 16, 3), 'float32'))"
        ".shape))\n"
    )
    assert "TENSORFLOW_ABSENT" in out  # the stand-in host is real
    assert "SHAPE (2, 8)" in out
    assert out.strip().endswith("TENSORFLOW_MODULES 0")
