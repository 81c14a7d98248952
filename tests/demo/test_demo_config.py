"""The demo's configuration and its caption phrasings."""

import pytest
from conftest import to_numpy

from keras_vl.demo import (
    DEFAULT_CONFIG,
    DEMO_CAPTION_TEMPLATES,
    DEMO_PARTIAL_CAPTION_TEMPLATES,
    UNNAMED_HUE_TEMPLATES,
    DemoConfig,
)
from keras_vl.layers import TextRenderer


def test_config_rejects_steps_not_a_multiple_of_eval_every():
    with pytest.raises(ValueError, match="eval_every"):
        DemoConfig(steps=5, eval_every=2)
    with pytest.raises(ValueError, match="unnamed_hue_fraction"):
        DemoConfig(text_pair_fraction=0.5, unnamed_hue_fraction=0.5)


@pytest.mark.parametrize(
    "template",
    DEMO_CAPTION_TEMPLATES
    + DEMO_PARTIAL_CAPTION_TEMPLATES
    + UNNAMED_HUE_TEMPLATES,
)
def test_longest_demo_captions_fit_the_rendered_image(template):
    # The last character still draws ink, so no caption of the demo loses
    # its colour or shape word off the edge of the rendering.
    config = DEFAULT_CONFIG
    caption = template.format(
        color="yellow", shape="triangle", size="medium-sized"
    )
    assert len(caption) <= config.sequence_length
    renderer = TextRenderer(
        image_size=config.image_size, font_size=config.font_size
    )
    full, cut = to_numpy(renderer([caption, caption[:-1]]))
    assert (full != cut).any(), caption
