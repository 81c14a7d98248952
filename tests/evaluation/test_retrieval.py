import keras
import numpy as np
import pytest

from keras_vl.evaluation import retrieval_recall


def one_hot(ids, dim):
    return np.eye(dim, dtype=np.float32)[ids]


def test_perfect_pairs():
    emb = one_hot(np.arange(6), 6)
    metrics = retrieval_recall(emb, emb, ks=(1, 5))
    assert metrics == {
        "image_to_text/recall@1": 1.0,
        "image_to_text/recall@5": 1.0,
        "text_to_image/recall@1": 1.0,
        "text_to_image/recall@5": 1.0,
    }


def test_known_ranks_one_to_one():
    # Scores S = I T^T designed so that text i (for image i) and image i
    # (for text i) rank at known places.
    scores = np.array(
        [
            [0.9, 0.1, 0.2, 0.0],  # image 0: own text best   -> rank 0
            [0.8, 0.5, 0.1, 0.0],  # image 1: text 0 beats it -> rank 1
            [0.7, 0.6, 0.3, 0.4],  # image 2: 3 texts beat it -> rank 3
            [0.0, 0.0, 0.0, 0.0],  # image 3: all tied        -> rank 3
        ],
        np.float64,
    )
    # Images as rows of `scores`, texts as the identity: I T^T == scores.
    images, texts = scores, np.eye(4)
    metrics = retrieval_recall(images, texts, ks=(1, 2, 3, 4))
    assert metrics["image_to_text/recall@1"] == 0.25
    assert metrics["image_to_text/recall@2"] == 0.5
    assert metrics["image_to_text/recall@3"] == 0.5
    assert metrics["image_to_text/recall@4"] == 1.0
    # Columns: text 0 -> image 0 (0.9) best: rank 0; text 1 -> image 1
    # (0.5) behind image 2 (0.6): rank 1; text 2 -> image 2 (0.3) best of
    # [0.2, 0.1, 0.3, 0.0]: rank 0; text 3 -> image 3 (0.0) tied with
    # images 0 and 1, behind image 2 (0.4): rank 3.
    assert metrics["text_to_image/recall@1"] == 0.5
    assert metrics["text_to_image/recall@2"] == 0.75
    assert metrics["text_to_image/recall@3"] == 0.75
    assert metrics["text_to_image/recall@4"] == 1.0


def test_degenerate_embeddings_get_no_credit_for_ties():
    emb = np.ones((5, 3), np.float32) / np.sqrt(3)
    metrics = retrieval_recall(emb, emb, ks=(1, 4, 5))
    assert metrics["image_to_text/recall@1"] == 0.0
    assert metrics["image_to_text/recall@4"] == 0.0
    assert metrics["image_to_text/recall@5"] == 1.0
    assert metrics["text_to_image/recall@1"] == 0.0


def test_multiple_captions_per_image():
    # 3 images (one-hot e0, e1, e2); 6 texts, two per image.
    images = one_hot([0, 1, 2], 4)
    texts = np.array(
        [
            [1.0, 0.0, 0.0, 0.0],  # text 0 -> image 0, exact
            [0.0, 0.8, 0.6, 0.0],  # text 1 -> image 0, but looks like 1
            [0.0, 0.6, 0.8, 0.0],  # text 2 -> image 1, looks like image 2
            [0.0, 0.0, 0.0, 1.0],  # text 3 -> image 1, matches nothing
            [0.0, 0.0, 0.8, 0.6],  # text 4 -> image 2
            [0.0, 0.0, 0.0, 1.0],  # text 5 -> image 2, matches nothing
        ],
        np.float32,
    )
    index = np.array([0, 0, 1, 1, 2, 2])
    metrics = retrieval_recall(
        images, texts, ks=(1, 2), text_to_image_index=index
    )
    # Image 0: text 0 scores 1.0, best overall -> hit@1.
    # Image 1: its texts score 0.6 and 0.0; text 1 (0.8) beats -> rank 1.
    # Image 2: its texts score 0.8 and 0.0; text 2 ties at 0.8 -> rank 1.
    assert metrics["image_to_text/recall@1"] == pytest.approx(1 / 3)
    assert metrics["image_to_text/recall@2"] == 1.0
    # Text 0 -> rank 0; text 1 -> image 0 scores 0 < 0.8, 0.6: rank 2;
    # text 2 -> image 1 (0.6) < image 2 (0.8): rank 1; text 3 -> all tie
    # at 0: rank 2; text 4 -> image 2 (0.8) best: rank 0; text 5 -> rank 2.
    assert metrics["text_to_image/recall@1"] == pytest.approx(2 / 6)
    assert metrics["text_to_image/recall@2"] == pytest.approx(3 / 6)


def test_chunking_does_not_change_results():
    rng = np.random.default_rng(0)
    images = rng.normal(size=(37, 16)).astype(np.float32)
    texts = images + rng.normal(scale=1.5, size=(37, 16)).astype(np.float32)
    full = retrieval_recall(images, texts, ks=(1, 5, 10), batch_size=1024)
    chunked = retrieval_recall(images, texts, ks=(1, 5, 10), batch_size=4)
    assert full == chunked
    # Brute force, image -> text.
    ranks = np.argsort(-(images @ texts.T), axis=1)
    expected = np.mean([i in ranks[i, :5] for i in range(37)])
    assert full["image_to_text/recall@5"] == pytest.approx(expected)


def test_accepts_backend_tensors():
    emb = keras.ops.convert_to_tensor(one_hot(np.arange(4), 4))
    index = keras.ops.convert_to_tensor(np.arange(4, dtype="int32"))
    metrics = retrieval_recall(emb, emb, ks=1, text_to_image_index=index)
    assert metrics == {
        "image_to_text/recall@1": 1.0,
        "text_to_image/recall@1": 1.0,
    }


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"text_embeddings": np.eye(3, 4)}, "text_to_image_index"),
        ({"text_embeddings": np.eye(4, 5)}, "embedding size"),
        ({"image_embeddings": np.zeros((0, 4))}, "image_embeddings"),
        ({"image_embeddings": np.zeros(4)}, "image_embeddings"),
        ({"text_embeddings": np.full((4, 4), np.nan)}, "text_embeddings"),
        ({"ks": (0, 1)}, "ks"),
        ({"ks": ()}, "ks"),
        ({"ks": (1.5,)}, "ks"),
        ({"batch_size": 0}, "batch_size"),
        ({"text_to_image_index": np.array([0, 1, 2])}, "text_to_image_index"),
        (
            {"text_to_image_index": np.array([0, 1, 2, 4])},
            "text_to_image_index",
        ),
        ({"text_to_image_index": np.array([0, 1, 1, 2])}, "no text to image"),
        ({"text_to_image_index": np.array([0.0, 1, 2, 3])}, "int array"),
    ],
)
def test_rejects_bad_input(kwargs, match):
    arguments = {
        "image_embeddings": np.eye(4),
        "text_embeddings": np.eye(4),
    }
    arguments.update(kwargs)
    with pytest.raises(ValueError, match=match):
        retrieval_recall(**arguments)
