import re

import keras
import numpy as np
import pytest

from keras_vl.evaluation import ZeroShotClassifier

CLASSES = ["cat", "dog", "car", "tree", "boat", "fish", "lamp"]


class FakeModel:
    """Embeds text by keyword and images by a class id in pixel [0, 0, 0].

    Class `c` maps to basis vector `e_c` (D = 8). A prompt embeds as the
    template's direction `e_7` mixed with its class, so averaging over
    templates and re-normalising must give back a clean class direction.
    Encoders return backend tensors, like a real Keras model.
    """

    dim = 8

    def __init__(self):
        self.text_calls = []
        self.image_calls = []

    def encode_texts(self, texts):
        self.text_calls.append(list(texts))
        out = np.zeros((len(texts), self.dim), np.float32)
        for i, text in enumerate(texts):
            words = re.findall(r"[a-z]+", text)
            for c, name in enumerate(CLASSES):
                if name in words:
                    out[i, c] = 1.0
            if text.startswith("a photo of"):
                out[i, 7] = 1.0
            elif text.startswith("art of"):
                out[i, 7] = -1.0
        out /= np.linalg.norm(out, axis=1, keepdims=True)
        return keras.ops.convert_to_tensor(out)

    def encode_images(self, images):
        images = keras.ops.convert_to_numpy(images)
        self.image_calls.append(len(images))
        out = np.zeros((len(images), self.dim), np.float32)
        for i, image in enumerate(images):
            # Pixel [0, 0, 0] holds the class; pixel [0, 0, 1] a distractor
            # class with weight 0.6 (so the distractor ranks second).
            out[i, int(image[0, 0, 0])] = 1.0
            out[i, int(image[0, 0, 1])] += 0.6
        out /= np.linalg.norm(out, axis=1, keepdims=True)
        return keras.ops.convert_to_tensor(out)


def make_images(classes, distractors):
    images = np.zeros((len(classes), 4, 4, 3), np.float32)
    images[:, 0, 0, 0] = classes
    images[:, 0, 0, 1] = distractors
    return images


def test_class_embeddings_average_templates_and_renormalise():
    model = FakeModel()
    classifier = ZeroShotClassifier(
        model, CLASSES, templates=["a photo of a {}.", "art of a {}"]
    )
    expected = np.eye(8, dtype=np.float32)[: len(CLASSES)]
    np.testing.assert_allclose(classifier.class_embeddings, expected, atol=1e-6)
    # Every class name x template was encoded, class-major.
    texts = [t for call in model.text_calls for t in call]
    assert texts[:3] == [
        "a photo of a cat.",
        "art of a cat",
        "a photo of a dog.",
    ]
    assert len(texts) == 2 * len(CLASSES)


def test_single_template_keeps_template_direction():
    classifier = ZeroShotClassifier(FakeModel(), CLASSES, ["a photo of a {}"])
    expected = np.zeros(8)
    expected[[0, 7]] = 1 / np.sqrt(2)
    np.testing.assert_allclose(
        classifier.class_embeddings[0], expected, atol=1e-6
    )


def test_class_prompts_replace_templates_and_may_differ_in_number():
    model = FakeModel()
    prompts = [
        ["a photo of a cat", "art of a cat"],
        ["dog", "a photo of a dog"],
    ]
    prompts += [[name] for name in CLASSES[2:]]
    classifier = ZeroShotClassifier(
        model, CLASSES, templates=["ignored {}"], class_prompts=prompts
    )
    expected = np.eye(8, dtype=np.float32)[: len(CLASSES)]
    # dog: the mean of e1 and (e1 + e7) / sqrt(2), re-normalised.
    dog = np.zeros(8)
    dog[1], dog[7] = 1 + 1 / np.sqrt(2), 1 / np.sqrt(2)
    expected[1] = dog / np.linalg.norm(dog)
    np.testing.assert_allclose(classifier.class_embeddings, expected, atol=1e-6)
    texts = [t for call in model.text_calls for t in call]
    assert texts == [t for p in prompts for t in p]
    with pytest.raises(ValueError, match="one list of prompts per class"):
        ZeroShotClassifier(model, CLASSES, class_prompts=prompts[:-1])
    with pytest.raises(ValueError, match="one list of prompts per class"):
        ZeroShotClassifier(model, CLASSES[:1], class_prompts="cat")
    with pytest.raises(ValueError, match=r"class_prompts\[1\]"):
        ZeroShotClassifier(
            model,
            CLASSES,
            class_prompts=[["cat"], []] + [[n] for n in CLASSES[2:]],
        )


def test_predict_logits_and_batching():
    model = FakeModel()
    classifier = ZeroShotClassifier(model, CLASSES, batch_size=3)
    truth = np.array([0, 1, 2, 3, 4, 5, 6, 2])
    distractor = np.array([1, 2, 3, 4, 5, 6, 0, 0])
    images = make_images(truth, distractor)
    logits = classifier.logits(images)
    assert logits.shape == (8, len(CLASSES))
    norm = np.sqrt(1 + 0.6**2)
    np.testing.assert_allclose(
        logits[0, :3], [1 / norm, 0.6 / norm, 0], atol=1e-6
    )
    np.testing.assert_array_equal(classifier.predict(images), truth)
    # Templates ("{}") are encoded 3 at a time, images too.
    assert [len(call) for call in model.text_calls] == [3, 3, 1]
    assert model.image_calls[-3:] == [3, 3, 2]


def test_evaluate_exact_top1_and_top5():
    classifier = ZeroShotClassifier(FakeModel(), CLASSES)
    # Images show class `shown`; labels claim `label`. Correct for the first
    # 6; for 2 images the label is the distractor (rank 2: top-5 hit), for
    # 2 it is an unrelated class (rank >= 3 but tied at 0 with the others:
    # ties count against, so a top-5 miss).
    shown = np.array([0, 1, 2, 3, 4, 5, 0, 1, 0, 1])
    distractor = np.array([1, 2, 3, 4, 5, 6, 2, 3, 2, 3])
    labels = np.array([0, 1, 2, 3, 4, 5, 2, 3, 6, 6])
    metrics = classifier.evaluate(make_images(shown, distractor), labels)
    assert metrics == {"top1": 0.6, "top5": 0.8}
    metrics = classifier.evaluate(
        make_images(shown, distractor), labels, ks=(1, 2, 7, 10)
    )
    # Only k < num_classes (7) is reported.
    assert metrics == {"top1": 0.6, "top2": 0.8}


def test_top5_omitted_with_few_classes():
    classifier = ZeroShotClassifier(FakeModel(), CLASSES[:3])
    images = make_images(np.array([0, 1, 2]), np.array([1, 2, 0]))
    assert classifier.evaluate(images, [0, 1, 2]) == {"top1": 1.0}


def test_accepts_backend_tensors():
    classifier = ZeroShotClassifier(FakeModel(), CLASSES)
    images = keras.ops.convert_to_tensor(
        make_images(np.array([3, 4]), np.array([0, 0]))
    )
    np.testing.assert_array_equal(classifier.predict(images), [3, 4])
    assert classifier.logits(images[:0]).shape == (0, len(CLASSES))


def test_rejects_bad_arguments():
    model = FakeModel()
    images = make_images(np.array([0, 1]), np.array([1, 0]))
    with pytest.raises(ValueError, match="class_names"):
        ZeroShotClassifier(model, [])
    with pytest.raises(ValueError, match="class_names"):
        ZeroShotClassifier(model, "cat")
    with pytest.raises(ValueError, match="class_names"):
        ZeroShotClassifier(model, ["cat", 3])
    with pytest.raises(ValueError, match="templates"):
        ZeroShotClassifier(model, CLASSES, templates=[])
    with pytest.raises(ValueError, match="templates"):
        ZeroShotClassifier(model, CLASSES, templates=["a photo"])
    with pytest.raises(ValueError, match="templates"):
        ZeroShotClassifier(model, CLASSES, templates=["{} and {}"])
    with pytest.raises(ValueError, match="batch_size"):
        ZeroShotClassifier(model, CLASSES, batch_size=0)
    with pytest.raises(TypeError, match="model"):
        ZeroShotClassifier(object(), CLASSES)
    classifier = ZeroShotClassifier(model, CLASSES)
    with pytest.raises(ValueError, match="labels"):
        classifier.evaluate(images, [0, 1, 2])
    with pytest.raises(ValueError, match="labels"):
        classifier.evaluate(images, [0, len(CLASSES)])
    with pytest.raises(ValueError, match="labels"):
        classifier.evaluate(images, [[0, 1]])
    with pytest.raises(ValueError, match="ks"):
        classifier.evaluate(images, [0, 1], ks=(0,))
    with pytest.raises(ValueError, match="must not be empty"):
        classifier.evaluate(images[:0], [])


def test_rejects_encoder_with_wrong_output_shape():
    class Broken(FakeModel):
        def encode_texts(self, texts):
            return np.zeros((len(texts) + 1, self.dim), np.float32)

    with pytest.raises(ValueError, match="expected"):
        ZeroShotClassifier(Broken(), CLASSES)


def test_precomputed_image_embeddings_give_the_image_path_numbers():
    model = FakeModel()
    classifier = ZeroShotClassifier(model, CLASSES)
    shown = np.array([0, 1, 2, 3, 4, 5, 0, 1, 0, 1])
    distractor = np.array([1, 2, 3, 4, 5, 6, 2, 3, 2, 3])
    labels = np.array([0, 1, 2, 3, 4, 5, 2, 3, 6, 6])
    images = make_images(shown, distractor)
    embeddings = keras.ops.convert_to_numpy(model.encode_images(images))
    calls = len(model.image_calls)

    logits = classifier.logits_from_embeddings(embeddings)
    assert logits.shape == (10, len(CLASSES)) and logits.dtype == np.float32
    np.testing.assert_allclose(logits, classifier.logits(images), atol=1e-6)
    # The shown class weighs 1, the distractor 0.6, then normalised.
    np.testing.assert_allclose(logits[0, :2], [1, 0.6] / np.sqrt(1.36))
    np.testing.assert_array_equal(
        classifier.predict(image_embeddings=embeddings), shown
    )
    tensor = keras.ops.convert_to_tensor(embeddings)
    np.testing.assert_allclose(
        classifier.logits(image_embeddings=tensor), logits, atol=1e-6
    )
    metrics = classifier.evaluate(labels=labels, image_embeddings=embeddings)
    assert metrics == classifier.evaluate(images, labels)
    assert metrics == {"top1": 0.6, "top5": 0.8}
    # Only the two calls with `images` above encoded images.
    assert len(model.image_calls) == calls + 2


def test_rejects_bad_image_embeddings():
    classifier = ZeroShotClassifier(FakeModel(), CLASSES)
    images = make_images(np.array([0, 1]), np.array([1, 0]))
    good = np.eye(8, dtype=np.float32)[:2]
    with pytest.raises(TypeError, match="image_embeddings"):
        classifier.logits_from_embeddings(good.astype("int32"))
    with pytest.raises(
        ValueError, match=r"image_embeddings.*\[num_images, 8\]"
    ):
        classifier.logits_from_embeddings(good[:, :4])
    with pytest.raises(ValueError, match="image_embeddings"):
        classifier.logits_from_embeddings(good[0])
    with pytest.raises(ValueError, match="NaN"):
        classifier.logits_from_embeddings(good * np.nan)
    with pytest.raises(ValueError, match="exactly one"):
        classifier.predict()
    with pytest.raises(ValueError, match="exactly one"):
        classifier.predict(images, image_embeddings=good)
    with pytest.raises(ValueError, match="labels"):
        classifier.evaluate(image_embeddings=good)
    with pytest.raises(ValueError, match="`image_embeddings` has 2"):
        classifier.evaluate(labels=[0, 1, 2], image_embeddings=good)
