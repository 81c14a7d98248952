"""PaLI end to end with its real preprocessor: keras-hub's task contract,
`fit` on raw images, prompts and responses, and `generate` returning
strings."""

import warnings

import keras
import keras_hub
import numpy as np
from conftest import to_numpy
from model_contract import ContractTestCase
from pali_fixtures import tiny_backbone, tiny_language

from keras_vl.data import ShapeQuestions, shape_vocabulary_proto
from keras_vl.models import PaLI, PaLIPreprocessor

VOCAB = 256
IMAGE = 16


def tiny_task_parts(seed=0):
    """A tiny PaLI backbone and a preprocessor with the shapes vocabulary.

    The tokenizer is built after seeding: TF's SentencePiece resource does
    not survive a later `keras.utils.set_random_seed`.
    """
    keras.utils.set_random_seed(seed)
    backbone = tiny_backbone(
        tiny_language(vocabulary_size=VOCAB), max_encoder_length=4 + 24
    )
    preprocessor = PaLIPreprocessor(
        keras_hub.tokenizers.T5Tokenizer(proto=shape_vocabulary_proto(VOCAB)),
        encoder_sequence_length=24,
        decoder_sequence_length=8,
        image_size=IMAGE,
        vocabulary_size=VOCAB,
    )
    return backbone, preprocessor


def raw_batch(size=4, seed=0):
    data = ShapeQuestions(image_size=IMAGE)
    return data.sample(size, seed=seed)


class PaLITaskContractTest(ContractTestCase):
    def test_task_contract(self):
        backbone, preprocessor = tiny_task_parts()
        batch = raw_batch()
        self.run_task_contract(
            PaLI,
            {"backbone": backbone, "preprocessor": preprocessor},
            (batch,),
            (4, 8, VOCAB),
        )

    def test_keras_file_reloads_compiled_with_its_sampler(self):
        backbone, preprocessor = tiny_task_parts()
        model = PaLI(backbone, preprocessor=preprocessor, compile=False)
        model.compile(optimizer=keras.optimizers.SGD(0.1), sampler="beam")
        path = f"{self.get_temp_dir()}/pali.keras"
        model.save(path)
        with warnings.catch_warnings():
            warnings.simplefilter("error", UserWarning)
            loaded = keras.saving.load_model(path)
        assert isinstance(loaded.sampler, keras_hub.samplers.BeamSampler)
        assert loaded.skip_non_finite_steps
        assert isinstance(
            loaded.optimizer.inner_optimizer, keras.optimizers.SGD
        )
        np.testing.assert_allclose(
            float(loaded.optimizer.learning_rate), 0.1, rtol=1e-6
        )


def test_fit_on_raw_data_then_generate_the_answers():
    """`fit` on raw images, prompts and responses memorises a few examples;
    `generate` on the same images and prompts then returns the responses
    as strings."""
    backbone, preprocessor = tiny_task_parts(seed=1)
    model = PaLI(backbone, preprocessor=preprocessor, compile=False)
    model.compile(optimizer=keras.optimizers.Adam(3e-3), sampler="greedy")
    batch = raw_batch(size=4, seed=3)
    history = model.fit(batch, batch_size=4, epochs=150, verbose=0)
    losses = history.history["loss"]
    assert losses[-1] < 0.05 * losses[0], losses[::25]
    answers = model.generate(
        {"images": batch["images"], "prompts": batch["prompts"]},
        max_length=8,
    )
    assert answers == list(batch["responses"])


def test_nan_images_skip_the_step():
    """A batch with NaN pixels changes no weight and no optimizer state;
    `fit` counts it in `skipped_steps`, and a clean batch then trains."""
    backbone, preprocessor = tiny_task_parts(seed=2)
    model = PaLI(backbone, compile=False)  # fed model-ready batches
    model.compile(optimizer=keras.optimizers.Adam(1e-3), sampler="greedy")
    x, y, sample_weight = preprocessor(raw_batch(size=4, seed=4))
    model.fit(x, y, sample_weight=sample_weight, verbose=0)
    inner = model.optimizer.inner_optimizer
    weights = [to_numpy(v) for v in model.weights]
    state = [to_numpy(v) for v in inner.variables]
    poisoned = dict(x, images=np.full_like(to_numpy(x["images"]), np.nan))
    history = model.fit(poisoned, y, sample_weight=sample_weight, verbose=0)
    assert history.history["skipped_steps"] == [1.0]
    for old, new in zip(weights, model.weights, strict=True):
        np.testing.assert_array_equal(old, to_numpy(new))
    for old, new in zip(state, inner.variables, strict=True):
        np.testing.assert_array_equal(old, to_numpy(new))
    history = model.fit(x, y, sample_weight=sample_weight, verbose=0)
    assert history.history["skipped_steps"] == [1.0]
    assert int(model.optimizer.iterations) == 2
