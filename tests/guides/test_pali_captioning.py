"""The PaLI captioning guide, run in its quick (smoke test) mode."""

import contextlib
import io

import numpy as np
import pytest
from conftest import load_guide
from PIL import Image

from keras_vl.data import LANGUAGES, QUESTION_TASKS, ShapeQuestions

SPLITS = ("seen", "held_out")
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# The guide keeps the data's default held-out combinations.
DEFAULT_HELD_OUT_PAIRS = ShapeQuestions().held_out_classes


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """The quick guide's results, printed table and output folder."""
    output_dir = tmp_path_factory.mktemp("pali_guide")
    guide = load_guide("pali_captioning")
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        results = guide.main(
            ["--quick", "--seed", "0", "--output-dir", str(output_dir)]
        )
    return results, printed.getvalue(), output_dir


def test_accuracies_cover_every_task_language_and_split(run):
    results, _, _ = run
    accuracy = results["accuracy"]
    assert set(accuracy) == set(SPLITS)
    for split in SPLITS:
        assert set(accuracy[split]) == set(QUESTION_TASKS)
        for task in QUESTION_TASKS:
            assert set(accuracy[split][task]) == set(LANGUAGES)
            for lang in LANGUAGES:
                value = accuracy[split][task][lang]
                assert 0.0 <= value <= 1.0, (split, task, lang, value)
    training = results["training"]
    assert training["train_seconds"] > 0
    assert training["loss"] > 0


def test_table_has_a_row_per_task_and_a_column_per_split_and_language(run):
    results, table, _ = run
    guide_names = {
        "caption": "caption",
        "vqa_color": "colour",
        "vqa_shape": "shape",
        "vqa_position": "position",
    }
    header = next(
        line for line in table.splitlines() if line.startswith("task")
    )
    columns = header.split()[1:]
    expected = [
        f"{split} {lang}"
        for split in ("seen", "held-out")
        for lang in LANGUAGES
    ]
    assert " ".join(columns) == " ".join(expected)
    for task in QUESTION_TASKS:
        row = next(
            line
            for line in table.splitlines()
            if line.startswith(guide_names[task] + " ")
        )
        printed = [float(cell.rstrip("%")) for cell in row.split()[1:]]
        wanted = [
            100 * results["accuracy"][split][task][lang]
            for split in SPLITS
            for lang in LANGUAGES
        ]
        # The table prints one decimal of a percentage.
        assert printed == pytest.approx(wanted, abs=0.05), task


def test_examples_hold_generated_strings_for_every_prompt(run):
    results, _, _ = run
    examples = results["examples"]
    assert len(examples) == 6
    assert [e["split"] for e in examples] == ["seen"] * 3 + ["held_out"] * 3
    for example in examples:
        assert example["image"].dtype.name == "uint8"
        assert example["image"].shape[-1] == 3
        rows = example["rows"]
        assert len(rows) == len(QUESTION_TASKS) * len(LANGUAGES)
        prompts = {row["prompt"] for row in rows}
        assert len(prompts) == len(rows)  # Every task, both languages.
        for row in rows:
            assert isinstance(row["generated"], str)
            assert isinstance(row["expected"], str) and row["expected"]


def test_figure_is_a_valid_png(run):
    results, _, output_dir = run
    path = output_dir / "answers.png"
    assert results["figure"] == str(path)
    assert path.read_bytes()[:8] == PNG_SIGNATURE
    with Image.open(path) as image:
        assert image.format == "PNG"
        image.verify()  # Chunk checksums and structure.
    with Image.open(path) as image:
        pixels = np.asarray(image.convert("RGB"))
    height, width, _ = pixels.shape
    # Six image tiles of 128 pixels, stacked, with text beside them.
    assert height >= 6 * 128
    assert width > 2 * 128
    # A white page with the test images and black prompts drawn on it.
    white = np.all(pixels == 255, axis=-1).mean()
    black = np.all(pixels == 0, axis=-1).mean()
    assert 0.3 < white < 0.99, white
    assert black > 0.001, black
    # The first example (a seen combination, so unframed) is pasted at the
    # top left, enlarged by pixel repetition.
    first = results["examples"][0]["image"]
    scale = 128 // first.shape[0]
    enlarged = first.repeat(scale, axis=0).repeat(scale, axis=1)
    np.testing.assert_array_equal(
        pixels[28 : 28 + 128, 10 : 10 + 128], enlarged
    )


def test_held_out_examples_show_held_out_combinations(run):
    results, _, _ = run
    held_out = {tuple(pair) for pair in DEFAULT_HELD_OUT_PAIRS}
    for example in results["examples"]:
        expected = {row["prompt"]: row["expected"] for row in example["rows"]}
        pair = (
            expected["Answer in EN: what colour is the shape?"],
            expected["Answer in EN: what shape is it?"],
        )
        # The figure's captions agree with the short answers.
        caption = expected["Generate the alt_text in EN"]
        assert caption.split()[1:3] == list(pair), caption
        assert (pair in held_out) == (example["split"] == "held_out"), pair
