"""Training steps with non-finite values, dropped: an optimizer wrapper and
the model mixin that installs it."""

import keras
from keras import ops

from keras_vl import distribute


@keras.saving.register_keras_serializable(package="keras_vl")
class SkipNonFiniteOptimizer(keras.optimizers.Optimizer):
    """Applies `inner_optimizer`'s update only when the step is finite.

    A step whose loss or any gradient holds a NaN or an infinity changes
    nothing: neither the weights nor the inner optimizer's state (its
    `iterations`, moments, ...). The variable `skipped_steps` counts the
    steps dropped. Under `tf.distribute` the verdict is all-reduced, so
    every replica skips together; under JAX data parallelism the
    gradients are global arrays already.

    The loss reaches the optimizer only through `scale_loss`, which every
    Keras backend calls on the loss it differentiates: a non-finite loss
    is multiplied by NaN there, so its gradients are NaN and the step is
    dropped, even when the infinite part of the loss (e.g. a constant) has
    no gradient of its own. A finite loss is multiplied by exactly 1.

    Contrastive models install it in `compile(skip_non_finite_steps=True)`,
    the default. Under the `mixed_float16` policy Keras wraps it in a
    `LossScaleOptimizer`, which drops overflowing steps itself as part of
    dynamic loss scaling (and lowers the scale); those steps never reach
    this wrapper, so `skipped_steps` does not count them.

    Args:
        inner_optimizer: The optimizer that computes the updates.
        name: Name of the wrapper.

    Example:

    ```python
    model.compile(optimizer=keras.optimizers.AdamW(1e-3))
    model.optimizer.inner_optimizer  # the AdamW
    int(model.optimizer.skipped_steps)  # steps dropped so far
    ```
    """

    def __init__(
        self,
        inner_optimizer: keras.optimizers.Optimizer,
        name: str | None = None,
    ):
        super().__init__(learning_rate=0.0, name=name)
        self.inner_optimizer = inner_optimizer
        # Made with the optimizer, as its `iterations` are, so that a saved
        # optimizer has it whether or not it was built (setting it as an
        # attribute tracks it). All replicas take the same decision: one
        # copy of the count.
        with keras.name_scope(self.name, caller=self):
            self.skipped_steps = keras.Variable(
                0,
                name="skipped_steps",
                dtype="int",
                trainable=False,
                aggregation="only_first_replica",
            )

    def build(self, var_list):
        self.inner_optimizer.build(var_list)
        super().build(var_list)

    @property
    def variables(self):
        return self._variables + self.inner_optimizer.variables

    # --- The step ----------------------------------------------------------

    def scale_loss(self, loss):
        loss = self.inner_optimizer.scale_loss(loss)
        poison = ops.where(ops.isfinite(loss), 1.0, float("nan"))
        return loss * ops.stop_gradient(ops.cast(poison, loss.dtype))

    def apply(self, grads, trainable_variables=None):
        """Stateful update (TensorFlow, PyTorch, eager JAX)."""
        if not self.built:
            with keras.name_scope(self.name, caller=self):
                self.build(trainable_variables)
            self.built = True

        def step(grads):
            self.inner_optimizer.apply(grads, trainable_variables)

        def skip():
            self.skipped_steps.assign_add(1)

        finite = distribute.all_finite(grads)
        distribute.apply_if(finite, step, skip, args=(list(grads),))

    def stateless_apply(self, optimizer_variables, grads, trainable_variables):
        """Stateless update (JAX's `fit`): the inner optimizer's step, or
        the unchanged state with one more skipped step."""
        own = len(self._variables)
        own_values = list(optimizer_variables[:own])
        inner_values = list(optimizer_variables[own:])
        counter = next(
            i for i, v in enumerate(self._variables) if v is self.skipped_steps
        )

        def step():
            new_trainable, new_inner = self.inner_optimizer.stateless_apply(
                inner_values, grads, trainable_variables
            )
            return list(new_trainable), own_values + list(new_inner)

        def skip():
            skipped = list(own_values)
            skipped[counter] = skipped[counter] + 1
            return list(trainable_variables), skipped + inner_values

        return ops.cond(distribute.all_finite(grads), step, skip)

    # --- The inner optimizer's face ---------------------------------------

    @property
    def iterations(self):
        return self.inner_optimizer.iterations

    @property
    def learning_rate(self):
        return self.inner_optimizer.learning_rate

    @learning_rate.setter
    def learning_rate(self, learning_rate):
        self.inner_optimizer.learning_rate = learning_rate

    def finalize_variable_values(self, var_list):
        self.inner_optimizer.finalize_variable_values(var_list)

    def get_config(self):
        return {
            "name": self.name,
            "inner_optimizer": keras.saving.serialize_keras_object(
                self.inner_optimizer
            ),
        }

    @classmethod
    def from_config(cls, config, custom_objects=None):
        config = dict(config)
        inner = keras.saving.deserialize_keras_object(
            config.pop("inner_optimizer"), custom_objects=custom_objects
        )
        return cls(inner, **config)


class SkipsNonFiniteSteps:
    """Mixed into a Keras model whose `compile` takes
    `skip_non_finite_steps`: wraps the optimizer in a
    `SkipNonFiniteOptimizer`, keeps the option in the compile config, and
    logs the running count of dropped steps as `skipped_steps` in `fit`.

    The model's `compile` resolves its optimizer, passes it through
    `_skipping(optimizer, skip_non_finite_steps)` and compiles with the
    result.
    """

    def _skipping(self, optimizer, skip_non_finite_steps: bool):
        # A compile config saved with the option on holds the wrapper.
        if isinstance(optimizer, SkipNonFiniteOptimizer):
            optimizer = optimizer.inner_optimizer
        self.skip_non_finite_steps = skip_non_finite_steps
        if not skip_non_finite_steps:
            return optimizer
        return SkipNonFiniteOptimizer(keras.optimizers.get(optimizer))

    def get_compile_config(self) -> dict:
        config = super().get_compile_config()
        if config:
            config["skip_non_finite_steps"] = self.skip_non_finite_steps
        return config

    def compile_from_config(self, config: dict) -> None:
        """Compiles as the saved `get_compile_config()` says (Keras skips
        models with a custom `compile`)."""
        self.compile(**keras.saving.deserialize_keras_object(config))
        if self.built:
            # The optimizer's variables, for the saved ones to load into.
            self.optimizer.build(self.trainable_variables)

    def train_step(self, *args):
        """Keras's own step, whose update `SkipNonFiniteOptimizer` may drop;
        its running count of dropped steps is logged as `skipped_steps`."""
        if not isinstance(self.optimizer, SkipNonFiniteOptimizer):
            return super().train_step(*args)
        return distribute.with_train_log(
            self,
            super().train_step,
            args,
            "skipped_steps",
            lambda: self.optimizer.skipped_steps,
        )
