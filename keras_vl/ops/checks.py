"""Argument checks shared by the models."""


def pair(value, name: str, allow_none: bool = False) -> tuple[int, int] | None:
    """A positive int or a pair of them, as `(height, width)`.

    Args:
        value: An int (used for both sides), or a list or tuple of two ints.
        name: The argument's name, for the error message.
        allow_none: Whether `None` is accepted (and returned as is).

    Returns:
        `(height, width)`, or None when `value` is None and that is allowed.

    Raises:
        ValueError: naming `name`, if `value` is anything else (booleans
            and non-positive sizes included).

    Example:

    ```python
    pair(224, "image_size")  # (224, 224)
    pair([16, 8], "patch_size")  # (16, 8)
    ```
    """
    if value is None and allow_none:
        return None
    items = value
    if isinstance(value, int) and not isinstance(value, bool):
        items = (value, value)
    items = tuple(items) if isinstance(items, list | tuple) else (items,)
    if len(items) != 2 or not all(
        isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in items
    ):
        expected = "a positive int or a pair of positive ints"
        if allow_none:
            expected += " or None"
        raise ValueError(
            f"`{name}` must be {expected}. Received: {name}={value!r}"
        )
    return items
