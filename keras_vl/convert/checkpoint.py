"""Reading flat `.npz` checkpoints and assigning them to Keras variables."""

import os
import zipfile

import numpy as np


def _recover_bfloat16(array: np.ndarray) -> np.ndarray:
    """numpy writes bfloat16 arrays as 2-byte void; widen them to float32."""
    if array.dtype.kind == "V" and array.dtype.itemsize == 2:
        bits = array.view(np.uint16).astype(np.uint32) << 16
        return bits.view(np.float32)
    return array


def load_npz_checkpoint(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """Loads a flat npz checkpoint (keys joined with '/') into a dict.

    Pickled objects are refused (`allow_pickle=False`): loading a checkpoint
    never executes code from it. bfloat16 arrays, which numpy stores as
    2-byte void, come back as float32.

    Args:
        path: Path of the `.npz` file.

    Returns:
        A dict from '/'-joined parameter names to numpy arrays.

    Raises:
        FileNotFoundError: If there is no file at `path`.
        ValueError: If the file is not a readable npz or holds objects.
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"Checkpoint {path!r} does not exist.")
    # Anything but a zip (a JSON, a .npy) would reach numpy's pickle path
    # and be reported as pickled objects.
    if not zipfile.is_zipfile(path):
        raise ValueError(
            f"Checkpoint {path!r} is not a readable .npz file (a zip archive "
            "of arrays)."
        )
    try:
        with np.load(path, allow_pickle=False) as data:
            return {key: _recover_bfloat16(data[key]) for key in data.files}
    except ValueError as error:
        raise ValueError(
            f"Checkpoint {path!r} contains pickled objects, which are not "
            "loaded (they could execute code). Re-save it with plain arrays."
        ) from error
    except (zipfile.BadZipFile, OSError, EOFError) as error:
        raise ValueError(
            f"Checkpoint {path!r} is not a readable .npz file: {error}"
        ) from error


class CheckpointReader:
    """Hands out checkpoint arrays by name and checks nothing is left over.

    Every `take` marks a name as used; `assign` also checks the shape against
    the target Keras variable. `finish()` raises if names were never taken,
    so a converter can neither miss nor silently ignore a parameter.

    Args:
        params: dict from '/'-joined names to arrays.
        source: Where the params came from, for error messages.

    Example:

    >>> import numpy as np
    >>> reader = CheckpointReader({"w": np.zeros(2)}, source="ckpt.npz")
    >>> reader.take("w").shape
    (2,)
    >>> reader.finish()
    """

    def __init__(
        self, params: dict[str, np.ndarray], source: str = "checkpoint"
    ):
        self.params = params
        self.source = source
        self.used: set[str] = set()

    def has(self, name: str) -> bool:
        return name in self.params

    def take(self, name: str) -> np.ndarray:
        if name not in self.params:
            raise ValueError(
                f"Parameter {name!r} is missing from {self.source}."
            )
        self.used.add(name)
        return self.params[name]

    def assign(self, variable, name: str, transform=None) -> None:
        """Copies `params[name]` (optionally transformed) into `variable`."""
        value = self.take(name)
        if transform is not None:
            value = transform(value)
        if tuple(value.shape) != tuple(variable.shape):
            raise ValueError(
                f"Parameter {name!r} of {self.source} has shape "
                f"{tuple(value.shape)} but the model variable "
                f"{variable.path!r} expects {tuple(variable.shape)}."
            )
        variable.assign(value.astype(variable.dtype))

    def ignore(self, prefix: str) -> None:
        """Marks every name under `prefix` as deliberately unused."""
        self.used.update(k for k in self.params if k.startswith(prefix))

    def finish(self) -> None:
        unused = sorted(set(self.params) - self.used)
        if unused:
            shown = ", ".join(unused[:10])
            more = f" and {len(unused) - 10} more" if len(unused) > 10 else ""
            raise ValueError(
                f"{self.source} has parameters the model does not use: "
                f"{shown}{more}. Check that the model config matches the "
                "checkpoint."
            )
