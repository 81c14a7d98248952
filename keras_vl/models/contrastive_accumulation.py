"""Contrastive gradient accumulation that keeps every negative."""

import contextlib

import keras
from keras import ops

from keras_vl import distribute
from keras_vl.distribute import accumulation


class AccumulatesContrastiveGradients:
    """Trains on a batch in micro-batches, with the whole batch's negatives.

    Mixed into `ContrastiveTraining`; `ContrastiveModel.fit` turns it on
    with `accumulation_steps=k`. Each training step then splits its batch
    of `B` pairs into `k` micro-batches of `B / k` pairs (rows `i, i + k,
    i + 2k, ...` form micro-batch `i`, so that a batch sharded over devices
    leaves every micro-batch spread over all of them) and takes one
    optimizer step whose gradient is that of the loss on the whole batch,
    while the towers' activations are only ever held for one micro-batch:

    1. Every micro-batch is embedded without gradients, and its embeddings
       cached.
    2. The contrastive loss of the whole batch is computed from the cached
       embeddings, with its gradient for every row's embeddings and for
       the temperature `t` and bias `b`. This is the only place `t` and `b`
       get a gradient, so it is counted once.
    3. Each micro-batch is embedded again, now with gradients, and its
       parameter gradient is the vector-Jacobian product of its
       embeddings with their rows of that gradient. This equals the
       gradient, for the towers, of the whole-batch loss in which that
       micro-batch's rows are live and every other row is its cached,
       constant embedding (open_clip's `--accum-freq`); summed over the
       micro-batches it is the whole-batch gradient.

    Keras' own `compile(gradient_accumulation_steps=k)` is not enough for
    a contrastive loss: it runs an ordinary training step on each
    micro-batch and averages their gradients, so each micro-batch's loss
    takes its negatives from its own `B / k` rows only. That is the loss
    of a batch `k` times smaller (easier, and with a different optimum
    temperature), not the large-batch loss, and CLIP-style models depend on
    many negatives.

    Randomness is replayed: the second pass over micro-batch `i` starts
    from the non-trainable state its first pass started from (Keras' seed
    generators live there) and, on PyTorch, from the same global generator
    state, so dropout masks and the mixture-of-experts router noise are the
    ones the cached embeddings saw. Otherwise the recomputed embeddings
    would differ from the cached ones and the gradient would be that of no
    loss at all.

    Losses added by layers (`add_loss`, e.g. mixture-of-experts auxiliary
    losses) and weight regularizers are averaged over the micro-batches.
    This equals their whole-batch value when each is a mean over equal
    parts that no micro-batch splits: regularizers; V-MoE's importance,
    load, GShard and z-losses, which are means over routing groups when
    groups hold whole examples (LIMoE's default) and micro-batches have
    equal numbers of groups. Losses that are not such means differ: LIMoE's
    global entropy loss is a function of the mean routing over the batch,
    and with accumulation it is that of each micro-batch, as it would be
    when training on `B / k` pairs; its local entropy loss is a mean over
    the non-padding text tokens, so it differs slightly when micro-batches
    hold different numbers of them. The routing itself is unchanged when
    groups hold whole examples, as tokens compete for capacity within a
    group only.

    The state written in a forward pass (e.g. LIMoE's routing statistics)
    and so the routing metrics describe the last micro-batch. The logged
    loss and accuracies are those of the whole batch.
    """

    _accumulation_steps = 1

    @contextlib.contextmanager
    def _accumulating(self, steps: int):
        """Trains in `steps` micro-batches inside the block."""
        previous = self._accumulation_steps
        if steps != previous:
            self._accumulation_steps = steps
            self.train_function = None  # Traced for the other setting.
        try:
            yield
        finally:
            if steps != previous:
                self._accumulation_steps = previous
                self.train_function = None

    def train_step(self, *args):
        if self._accumulation_steps == 1:
            return super().train_step(*args)
        return accumulation.train_step(
            self, self._accumulated_gradients, self._accumulated_metrics, args
        )

    def _accumulated_gradients(
        self, trainable, non_trainable, scale_loss, data
    ):
        x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
        steps = self._accumulation_steps
        _check_divides(x, steps)
        micro_batches = [_micro_batch(x, i, steps) for i in range(steps)]

        def forward(trainable, state, inputs):
            return self.stateless_call(
                trainable, state, inputs, training=True, return_losses=True
            )

        # 1. Embeddings without gradients, and where each pass started.
        starts, outputs, extras = [], [], []
        state = non_trainable
        with accumulation.no_gradient():
            for inputs in micro_batches:
                starts.append((state, accumulation.random_state()))
                output, state, losses = forward(trainable, state, inputs)
                outputs.append(
                    keras.tree.map_structure(ops.stop_gradient, output)
                )
                extras.append(self._added_loss(losses))
        random_after = accumulation.random_state()
        y_pred = _interleave(outputs)
        names = sorted(y_pred)

        # 2. The whole batch's loss: gradients for every embedding, t and b.
        def batch_loss(values):
            embeddings = dict(zip(names, values[: len(names)], strict=True))
            mapping = zip(
                self.trainable_variables, values[len(names) :], strict=True
            )
            with keras.StatelessScope(state_mapping=list(mapping)):
                loss = self._embedding_loss(y, embeddings, sample_weight)
            return scale_loss(loss), loss

        _, grads = accumulation.value_and_grad(
            batch_loss, [*(y_pred[name] for name in names), *trainable]
        )
        embedding_grads = dict(zip(names, grads[: len(names)], strict=True))
        grads = list(grads[len(names) :])

        # 3. Each micro-batch again, with gradients and the same randomness.
        for i, inputs in enumerate(micro_batches):
            cotangents = _micro_batch(embedding_grads, i, steps)
            start, random_start = starts[i]

            def replayed(values, start=start, inputs=inputs, rows=cotangents):
                output, _, losses = forward(values, start, inputs)
                total = sum(
                    ops.sum(
                        ops.cast(output[name], "float32")
                        * ops.stop_gradient(ops.cast(rows[name], "float32"))
                    )
                    for name in names
                )
                extra = self._added_loss(losses)
                if extra is not None:
                    total = total + scale_loss(extra / steps)
                return total, None

            accumulation.restore_random_state(random_start)
            _, micro_grads = accumulation.value_and_grad(replayed, trainable)
            grads = [
                accumulation.add_gradients(a, b)
                for a, b in zip(grads, micro_grads, strict=True)
            ]
        accumulation.restore_random_state(random_after)

        extra = None
        if extras[0] is not None:
            extra = ops.sum(ops.stack(extras)) / steps
        return grads, state, (y_pred, extra)

    def _accumulated_metrics(self, data, report):
        """The logs of an accumulated step: `compute_loss` on the cached
        embeddings of the whole batch, with the averaged added losses."""
        x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
        y_pred, extra = report
        self._losses_override = [] if extra is None else [extra]
        try:
            loss = self._compute_loss(
                x=x,
                y=y,
                y_pred=y_pred,
                sample_weight=sample_weight,
                training=True,
            )
        finally:
            self._losses_override = []
        rows = ops.shape(keras.tree.flatten(x)[0])[0]
        # Under tf.distribute the loss is this replica's share of it.
        self._loss_tracker.update_state(
            loss * distribute.num_replicas_in_sync(), sample_weight=rows
        )
        return self.compute_metrics(x, y, y_pred, sample_weight=sample_weight)

    def _embedding_loss(self, y, y_pred, sample_weight):
        """The loss terms that depend on the whole batch's embeddings: the
        contrastive loss and a loss given to `compile`."""
        loss = self._contrastive_loss(y, y_pred)
        if self._compile_loss is not None:
            extra = self._compile_loss(y, y_pred, sample_weight)
            if extra is not None:
                loss = loss + ops.cast(extra, loss.dtype)
        return loss

    def _added_loss(self, losses):
        """The sum of a forward pass's `add_loss` and regularizer losses,
        or None without any."""
        if not losses:
            return None
        total = [
            ops.cast(self._aggregate_additional_loss(loss), "float32")
            for loss in losses
        ]
        return ops.sum(ops.stack(total))


def check_accumulation_steps(accumulation_steps) -> int:
    """`accumulation_steps` as an int >= 1, or a ValueError."""
    if (
        isinstance(accumulation_steps, bool)
        or not isinstance(accumulation_steps, int)
        or accumulation_steps < 1
    ):
        raise ValueError(
            "`accumulation_steps` must be an int >= 1 (the number of "
            "micro-batches each batch is split into). Received: "
            f"accumulation_steps={accumulation_steps!r}"
        )
    return accumulation_steps


def check_batches_divide(rows: int, batch_size: int, steps: int) -> None:
    """Every batch of `rows` in batches of `batch_size` splits into
    `steps` equal micro-batches, or a ValueError."""
    last = rows % batch_size
    sizes = {min(batch_size, rows)} | ({last} if last else set())
    bad = sorted(size for size in sizes if size % steps)
    if bad:
        raise ValueError(
            f"`accumulation_steps={steps}` must divide the number of pairs "
            f"in every batch. Received batch_size={batch_size} for {rows} "
            f"rows, which makes batches of {bad[0]}. Choose a batch_size "
            f"that is a multiple of {steps} and leaves a last batch that "
            "is one too (or none)."
        )


def _check_divides(x, steps: int) -> None:
    rows = keras.tree.flatten(x)[0].shape[0]
    if rows is not None and rows % steps:
        raise ValueError(
            f"`accumulation_steps={steps}` must divide the number of pairs "
            f"in every batch. Received a batch of {rows} pairs."
        )


def _micro_batch(data, index: int, steps: int):
    """Rows `index, index + steps, ...` of every tensor in `data`."""

    def rows(x):
        if x is None:
            return None
        shape = tuple(x.shape[1:])
        return ops.reshape(x, (-1, steps, *shape))[:, index]

    return keras.tree.map_structure(rows, data)


def _interleave(micro_batches: list):
    """The inverse of `_micro_batch`: the batch whose rows `i, i + steps,
    ...` are those of micro-batch `i`."""

    def merge(*parts):
        stacked = ops.stack(parts, axis=1)
        return ops.reshape(stacked, (-1, *tuple(parts[0].shape[1:])))

    return keras.tree.map_structure(merge, *micro_batches)
