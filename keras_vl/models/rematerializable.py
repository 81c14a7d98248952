"""The `remat` switch shared by every backbone with transformer stacks."""


class Rematerializable:
    """Mixin: a backbone's `remat` reads and sets its stacks' `remat`.

    A class lists its stacks (layers with a bool `remat` attribute, such as
    `TransformerEncoder`) in `remat_stacks`. Setting `remat` after the
    model is built takes effect at the next (re)compiled call.

    Example:

    ```python
    vit = keras_vl.models.ViTBackbone.from_variant("B/16", remat=True)
    vit.remat  # True
    vit.remat = False  # before compiling the train step
    ```
    """

    @property
    def remat_stacks(self) -> list:
        """The layers whose blocks `remat` rematerialises."""
        return [self.encoder]

    @property
    def remat(self) -> bool | None:
        """True when every stack rematerialises its blocks, False when
        none does, None when only some do."""
        flags = {stack.remat for stack in self.remat_stacks}
        return flags.pop() if len(flags) == 1 else None

    @remat.setter
    def remat(self, value: bool) -> None:
        check_remat(value)
        for stack in self.remat_stacks:
            stack.remat = value


def check_remat(value, optional: bool = False) -> None:
    """Raises unless `value` is a bool (or None, when `optional`)."""
    if isinstance(value, bool) or (optional and value is None):
        return
    expected = "a bool or None" if optional else "a bool"
    raise TypeError(f"`remat` must be {expected}. Received: remat={value!r}")
