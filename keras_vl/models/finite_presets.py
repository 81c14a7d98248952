"""Presets of keras_vl models hold finite weights, and files that are what
they claim (see `preset_files`)."""

import contextlib
import contextvars
import os
import warnings

import keras
import numpy as np

from keras_vl.models.preset_files import CheckedPresetFiles, PresetError
from keras_vl.models.resolution import with_image_size

# Set while a model saves itself: a task's check covers its backbone, which
# keras-hub then saves through the backbone's own `save_to_preset`.
_CHECKED = contextvars.ContextVar("keras_vl_preset_checked", default=False)


class FinitePresets(CheckedPresetFiles):
    """Checks the weights of a backbone or task saved to or loaded from a
    preset: all keras_vl backbones and tasks mix it in before their
    keras-hub base class.

    A NaN or an infinity in a preset is almost always a diverged run, and
    goes unnoticed until every output is NaN. `save_to_preset` therefore
    refuses such weights unless told otherwise, and `from_preset` warns
    about them.
    """

    def save_to_preset(
        self,
        preset_dir: str,
        max_shard_size: int | float | None = 10,
        allow_non_finite: bool = False,
    ) -> None:
        """Saves the model to a preset directory.

        Args:
            preset_dir: The local preset directory.
            max_shard_size: Maximum size in GB of each weights file, or
                None for one file.
            allow_non_finite: Whether to save weights holding NaN or
                infinite values; by default that raises a ValueError
                naming the variables.
        """
        if not (allow_non_finite or _CHECKED.get()):
            paths = non_finite_weights(self)
            if paths:
                raise ValueError(
                    f"Refusing to save {type(self).__name__} with non-finite "
                    f"(NaN or infinite) weights: {_listing(paths)}. Pass "
                    "`allow_non_finite=True` to save them anyway."
                )
        token = _CHECKED.set(True)
        try:
            super().save_to_preset(preset_dir, max_shard_size=max_shard_size)
        finally:
            _CHECKED.reset(token)

    @classmethod
    def from_preset(cls, preset: str, *args, image_size=None, **kwargs):
        """Loads a preset, warning if its weights hold NaN or infinity.

        A local preset's configs and assets are checked first (see
        `check_preset_files`); a weights file that does not fit the model
        raises a `PresetError` naming it.

        Args:
            preset: The preset (local directory, handle or name).
            *args: Passed on to keras-hub's `from_preset`.
            image_size: Optional int or `(height, width)`: the input
                resolution to load the model at. A size other than the
                saved one rebuilds the model at that size, resampling
                learned position embeddings as big_vision does for
                high-res fine-tuning (see `resolution.with_image_size`);
                a task's preprocessor then resizes images to it.
            **kwargs: Passed on to keras-hub's `from_preset`.

        Example:

        ```python
        vit = keras_vl.models.ViTBackbone.from_preset(
            "./vit_b16", image_size=384
        )
        ```
        """
        model = super().from_preset(preset, *args, **kwargs)
        paths = non_finite_weights(model)
        if paths:
            warnings.warn(
                f"The weights of preset {preset!r} hold non-finite (NaN or "
                f"infinite) values: {_listing(paths)}.",
                stacklevel=2,
            )
        if image_size is not None:
            model = with_image_size(model, image_size)
        return model

    def load_weights(self, filepath, *args, **kwargs):
        """`keras.Model.load_weights`; a file that is unreadable or does
        not fit the model raises a `PresetError` naming it."""
        with _naming_weights_file(filepath, self):
            return super().load_weights(filepath, *args, **kwargs)

    def save_task_weights(self, filepath):
        """keras-hub's `Task.save_task_weights`, without the optimizer.

        A preset holds a model, not a training run: the optimizer's state
        (moments, step counter) of a compiled and fitted task would only
        make every later `from_preset` warn that it cannot load it.
        """
        if not self.has_task_weights():
            raise ValueError(
                f"{type(self).__name__} has no weights outside its "
                "backbone: `save_task_weights` has nothing to save."
            )
        keras.saving.save_weights(
            self, filepath, objects_to_skip=self._not_task_weights()
        )

    def load_task_weights(self, filepath):
        """keras-hub's `Task.load_task_weights`, with errors naming the
        file as `load_weights` does; optimizer state that older presets
        hold is ignored, without a warning."""
        with _naming_weights_file(filepath, self):
            keras.saving.load_weights(
                self, filepath, objects_to_skip=self._not_task_weights()
            )

    def _not_task_weights(self) -> list:
        """What task weights files leave out: the backbone (saved on its
        own) and the optimizer."""
        skipped = list(self.backbone._flatten_layers())
        if self.optimizer is not None:
            skipped.append(self.optimizer)
        return skipped


@contextlib.contextmanager
def _naming_weights_file(filepath, model):
    try:
        yield
    except FileNotFoundError:
        raise
    except (OSError, ValueError) as error:
        raise PresetError(
            f"Weights file {os.fspath(filepath)!r} does not fit "
            f"{type(model).__name__} (truncated, or saved from another "
            f"configuration): {error}"
        ) from error


def saving_preset() -> bool:
    """Whether a keras_vl model is saving itself to a preset right now
    (so that `get_config` can leave out what travels as an asset)."""
    return _CHECKED.get()


def non_finite_weights(model: keras.Model) -> list[str]:
    """Paths of `model`'s floating-point weights holding NaN or infinity."""
    return [
        weight.path
        for weight in model.weights
        if "float" in weight.dtype
        and not np.isfinite(keras.ops.convert_to_numpy(weight)).all()
    ]


def _listing(paths: list[str], limit: int = 10) -> str:
    shown = ", ".join(paths[:limit])
    more = len(paths) - limit
    return shown + (f" and {more} more" if more > 0 else "")
