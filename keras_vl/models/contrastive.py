"""The contrastive Task base shared by CLIPPO, LiT and LIMoE."""

import functools
import math
import warnings

import keras
import numpy as np
from keras import ops
from keras_hub.models import Task

from keras_vl import distribute
from keras_vl.distribute.inference import batch_predictor
from keras_vl.losses import (
    check_exchange,
    contrastive_logits,
    global_contrastive_accuracy,
    logit_scale_from_log,
    positive_mask,
    sigmoid_contrastive_loss,
    sigmoid_contrastive_loss_and_accuracy,
    softmax_contrastive_loss,
)
from keras_vl.models.contrastive_accumulation import (
    AccumulatesContrastiveGradients,
    check_accumulation_steps,
    check_batches_divide,
)
from keras_vl.models.finite_presets import FinitePresets
from keras_vl.models.preprocessing import check_same_rows, check_token_ids
from keras_vl.models.skip_non_finite_optimizer import SkipsNonFiniteSteps

LOSS_TYPES = ("softmax", "sigmoid")


class ContrastiveTraining(SkipsNonFiniteSteps, AccumulatesContrastiveGradients):
    """Contrastive training for a Keras model with embedding outputs.

    Mixed into `ContrastiveModel` (and LiT's cached-feature model): the
    model's outputs are a dict with L2-normalised `"image_embeddings"` and
    `"text_embeddings"`, and it has the attributes `log_temperature`,
    `logit_bias` (or None), `loss_type`, `max_logit_scale`,
    `image_to_text_accuracy` and `text_to_image_accuracy`, and may set
    `loss_exchange` (see `ContrastiveModel`).
    """

    loss_exchange = "gather"

    @property
    def logit_scale(self):
        """`exp(t)`, clamped at `max_logit_scale`."""
        return logit_scale_from_log(self.log_temperature, self.max_logit_scale)

    def logits(self, image_embeddings, text_embeddings):
        """`exp(t) * Z_img @ Z_txt^T (+ b)` for embeddings of this model."""
        return contrastive_logits(
            image_embeddings,
            text_embeddings,
            self.logit_scale,
            self.logit_bias,
        )

    def compile(
        self,
        optimizer="auto",
        learning_rate: float = 1e-3,
        weight_decay: float = 1e-4,
        global_clipnorm: float = 1.0,
        skip_non_finite_steps: bool = True,
        **kwargs,
    ):
        """Configures training; `compile()` alone gives sensible defaults.

        Args:
            optimizer: `"auto"` for `AdamW(learning_rate, weight_decay,
                global_clipnorm)`, or any Keras optimizer.
            learning_rate: Learning rate of the `"auto"` optimizer.
            weight_decay: Decoupled weight decay of the `"auto"` optimizer.
            global_clipnorm: Gradient clipping of the `"auto"` optimizer.
            skip_non_finite_steps: Whether a step whose loss or any
                gradient is NaN or infinite leaves the weights and the
                optimizer's state untouched (see `SkipNonFiniteOptimizer`,
                which then wraps the optimizer). `fit` logs the running
                count of such steps as `skipped_steps`.
            **kwargs: Other `keras.Model.compile` arguments. The contrastive
                loss is built in; a `loss` given here is added to it.
        """
        if optimizer == "auto":
            optimizer = keras.optimizers.AdamW(
                learning_rate=learning_rate,
                weight_decay=weight_decay,
                global_clipnorm=global_clipnorm,
            )
        optimizer = self._skipping(optimizer, skip_non_finite_steps)
        super().compile(optimizer=optimizer, **kwargs)

    def compute_loss(
        self, x=None, y=None, y_pred=None, sample_weight=None, training=True
    ):
        """The contrastive loss, plus any compiled loss and `self.losses`.

        `y`, when given (the targets of `fit`), is the positives matrix of
        `keras_vl.losses`: a `[batch, batch]` boolean matrix marking which
        texts (columns) describe which images (rows), for batches that
        hold several pairs of one kind; numbers work too (nonzero is
        true). Without `y`, each image's only positive is its own text.
        """
        # The compiled loss (if any) and `self.losses` (auxiliary losses),
        # aggregated (and scaled for tf.distribute) by Keras itself; read
        # before any cross-replica gather, at which MirroredStrategy may
        # switch to another replica's thread, whose forward pass replaces
        # the layers' `losses` with its own.
        extra = None
        if self._compile_loss is not None or self.losses:
            extra = super().compute_loss(
                x=x,
                y=y,
                y_pred=y_pred,
                sample_weight=sample_weight,
                training=training,
            )
        positives = None if y is None else _positives_from_targets(y)
        if self.loss_exchange == "ring":
            # The accuracies come out of the ring with the loss, so no
            # device holds a [B / n, B] block of logits.
            loss, i2t, t2i = sigmoid_contrastive_loss_and_accuracy(
                y_pred["image_embeddings"],
                y_pred["text_embeddings"],
                self.logit_scale,
                self.logit_bias,
                positives=positives,
                exchange="ring",
            )
        else:
            loss = self._contrastive_loss(y, y_pred)
            # In-batch accuracies over the global batch, as on one device.
            i2t, t2i = global_contrastive_accuracy(
                y_pred["image_embeddings"],
                y_pred["text_embeddings"],
                self.logit_scale,
                self.logit_bias,
                positives,
            )
        self.image_to_text_accuracy.update_state(i2t)
        self.text_to_image_accuracy.update_state(t2i)
        if extra is None:
            return loss
        return loss + ops.cast(extra, loss.dtype)

    def _contrastive_loss(self, y, y_pred):
        """The softmax or sigmoid loss of embeddings `y_pred` (a dict),
        with `fit`'s targets `y` as positives."""
        positives = None if y is None else _positives_from_targets(y)
        if self.loss_type == "softmax":
            return softmax_contrastive_loss(
                y_pred["image_embeddings"],
                y_pred["text_embeddings"],
                self.logit_scale,
                positives=positives,
            )
        return sigmoid_contrastive_loss(
            y_pred["image_embeddings"],
            y_pred["text_embeddings"],
            self.logit_scale,
            self.logit_bias,
            positives=positives,
            exchange=self.loss_exchange,
        )


def _positives_from_targets(y):
    if isinstance(y, dict | list | tuple):
        raise ValueError(
            "A contrastive model's targets `y` must be one [batch, batch] "
            "positives matrix (rows: images, columns: texts), or None. "
            f"Received a {type(y).__name__}."
        )
    return positive_mask(y)


class ContrastiveModel(ContrastiveTraining, FinitePresets, Task):
    """A task that trains paired image/text embeddings contrastively.

    Subclasses pass a backbone whose output is a dict with L2-normalised
    `"image_embeddings"` and `"text_embeddings"` of the same batch size (row
    `i` of each is a pair). This base owns what every contrastive model
    shares:

    - the learnable log-temperature `t` (logit scale `exp(t)`, clamped at
      `max_logit_scale`) and, for the sigmoid loss, the bias `b`;
    - `compute_loss`: the softmax (CLIP) or sigmoid (SigLIP) loss over the
      *global* batch (see `keras_vl.losses`), plus the model's own
      `self.losses` (e.g. mixture-of-experts auxiliary losses);
    - in-batch image->text and text->image top-1 accuracy shown by `fit`;
    - `compile()` defaults (AdamW, weight decay, gradient clipping), so
      `model.compile(); model.fit(dataset)` just works.
    - inference: `encode_images`, `encode_texts` and `similarity`, with
      the same arguments on every task (see their docstrings).

    Args:
        backbone: The backbone (a functional `keras_hub` Backbone).
        preprocessor: Optional preprocessor run on raw inputs by
            `fit`/`predict`/`evaluate`.
        loss: `"softmax"` (CLIP) or `"sigmoid"` (SigLIP).
        temperature_init: Initial logit scale `exp(t)` (10 in big_vision).
        bias_init: Initial sigmoid bias `b`; defaults to -10 for the sigmoid
            loss, and is unused (no bias variable) for softmax.
        max_logit_scale: Ceiling of `exp(t)`; 100 as in CLIP.
        loss_exchange: For the sigmoid loss under a JAX
            `keras.distribution` (e.g. `DataParallel()`): `"gather"` (the
            default; XLA all-gathers the texts, `[B / n, B]` logits per
            device) or `"ring"` (text chunks pass around the devices,
            `[B / n, B / n]` logits at a time; the same loss, gradients and
            accuracies). See `keras_vl.losses.sigmoid_contrastive_loss`.
            Elsewhere both compute the same plain loss. `"ring"` needs
            `loss="sigmoid"`.
        **kwargs: Standard `keras_hub.models.Task` arguments.
    """

    def __init__(
        self,
        backbone,
        preprocessor=None,
        loss: str = "softmax",
        temperature_init: float = 10.0,
        bias_init: float | None = None,
        max_logit_scale: float = 100.0,
        loss_exchange: str = "gather",
        **kwargs,
    ):
        if loss not in LOSS_TYPES:
            raise ValueError(
                f"`loss` must be one of {LOSS_TYPES}. Received: loss={loss!r}"
            )
        check_exchange(loss_exchange, "loss_exchange")
        if loss_exchange == "ring" and loss != "sigmoid":
            raise ValueError(
                '`loss_exchange="ring"` passes the sigmoid loss\'s text '
                'chunks between devices; it needs `loss="sigmoid"`. '
                f"Received: loss={loss!r}"
            )
        if temperature_init <= 0:
            raise ValueError(
                "`temperature_init` must be positive. Received: "
                f"temperature_init={temperature_init}"
            )
        if loss == "sigmoid" and bias_init is None:
            bias_init = -10.0

        # === Layers ===
        self.backbone = backbone
        self.preprocessor = preprocessor

        # === Functional Model ===
        inputs = backbone.input
        outputs = backbone(inputs)
        super().__init__(inputs=inputs, outputs=outputs, **kwargs)

        # === Variables ===
        # float32 under any policy, and never read as bfloat16 (autocast):
        # exp(t) scales every logit.
        self.log_temperature = self.add_weight(
            name="t",
            shape=(1,),
            initializer=keras.initializers.Constant(math.log(temperature_init)),
            dtype="float32",
            autocast=False,
        )
        self.logit_bias = (
            self.add_weight(
                name="b",
                shape=(1,),
                initializer=keras.initializers.Constant(bias_init),
                dtype="float32",
                autocast=False,
            )
            if loss == "sigmoid"
            else None
        )
        self.image_to_text_accuracy = keras.metrics.Mean(name="i2t_accuracy")
        self.text_to_image_accuracy = keras.metrics.Mean(name="t2i_accuracy")

        # === Config ===
        self.loss_type = loss
        self.temperature_init = temperature_init
        self.bias_init = bias_init
        self.max_logit_scale = max_logit_scale
        self.loss_exchange = loss_exchange
        # Helper models over this model's own layers, built on demand. A
        # plain dict set past Keras's attribute tracking, so they are
        # neither tracked as sublayers nor saved.
        object.__setattr__(self, "_helper_models", {})

    @classmethod
    def check_backbone(cls, backbone) -> None:
        """Raises a TypeError unless `backbone` is a `cls.backbone_cls`.

        Subclasses call it first in `__init__`, before they read the
        backbone's attributes to build a default preprocessor.

        Args:
            backbone: The `backbone` argument of the task.

        Example:

        ```python
        keras_vl.models.LIMoE.check_backbone(vit)  # TypeError
        ```
        """
        expected = cls.backbone_cls
        if expected is not None and not isinstance(backbone, expected):
            raise TypeError(
                f"`backbone` of {cls.__name__} must be a "
                f"{expected.__name__}. Received: backbone of type "
                f"{type(backbone).__name__}"
            )

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "loss": self.loss_type,
                "temperature_init": self.temperature_init,
                "bias_init": self.bias_init,
                "max_logit_scale": self.max_logit_scale,
                "loss_exchange": self.loss_exchange,
            }
        )
        return config

    def fit(
        self,
        x=None,
        y=None,
        batch_size=None,
        sample_weight=None,
        shuffle=True,
        validation_split=None,
        validation_data=None,
        accumulation_steps: int = 1,
        **kwargs,
    ):
        """`keras.Model.fit`, with in-memory data reshuffled every epoch,
        and batches larger than memory.

        keras-hub's `Task.fit` batches arrays in their given order and
        ignores `shuffle`. A contrastive batch takes its negatives from its
        own rows, so class-sorted arrays would then train on batches of one
        class, every epoch alike. Here arrays, strings and tensors are
        shuffled every epoch when `shuffle=True`, Keras' default, as
        `keras.Model.fit` does. `validation_split` takes the last rows
        before shuffling, as in Keras. Datasets and generators pass through
        unchanged, and so do arrays with targets `y`: a positives matrix
        describes the rows of its own batch, so those rows must stay
        together. As in keras-hub (`keras.utils.pack_x_y_sample_weight`),
        a `sample_weight` without `y` is not used.

        In-memory inputs are checked before anything runs: the entries of
        a dict must have the same number of rows and integer token ids
        must index the text tower's vocabulary (a ValueError otherwise).
        Batches of a single pair, which have no negatives, raise a
        ValueError; a last batch of one pair warns.

        To resume an interrupted run exactly (e.g. with
        `keras.callbacks.BackupAndRestore`), pass `shuffle=False` or a
        dataset of your own: a restarted `fit` draws a new order for the
        epochs it has left, not the one the first run would have drawn.

        With `accumulation_steps=k`, each batch is split into `k`
        micro-batches that the towers process one at a time, so a batch
        `k` times larger than fits in memory trains as one step: the same
        loss, gradient and update as the whole batch at once (to float
        rounding), every pair a negative of every other, the temperature
        and bias counted once, and dropout and router noise replayed
        between the two passes over each micro-batch. Each step costs one
        more forward pass of the towers. Keras' own
        `compile(gradient_accumulation_steps=k)` would instead give each
        micro-batch only its own `B / k` pairs as negatives: a smaller
        batch's loss, not this one. See `AccumulatesContrastiveGradients`
        for the method and for how losses added by layers (LIMoE's) are
        averaged. `k` must divide every batch's number of pairs.

        Example:

        ```python
        model.compile()
        model.fit({"images": images, "texts": captions}, batch_size=64,
                  epochs=3)  # each epoch draws new batches
        # The same steps, 16 pairs in memory at a time.
        model.fit({"images": images, "texts": captions}, batch_size=64,
                  accumulation_steps=4)
        ```
        """
        steps = check_accumulation_steps(accumulation_steps)
        self._check_inputs(x)
        if shuffle is True and y is None and _in_memory(x):
            if validation_split and validation_data is None:
                x, held_out = _split_last(x, validation_split)
                validation_data = (held_out,)
            batch_size = batch_size or 32
            _check_pairs_per_batch(x, batch_size, steps)
            x = _batches((x, None, None), batch_size, shuffle=True)
            if _in_memory(validation_data):
                validation_data = _batches(
                    keras.utils.unpack_x_y_sample_weight(validation_data),
                    batch_size,
                )
            sample_weight = batch_size = validation_split = None
            shuffle = False  # Done; Keras would warn that it ignores it.
        elif _in_memory(x):
            _check_pairs_per_batch(x, batch_size or 32, steps)
        with self._accumulating(steps):
            return super().fit(
                x,
                y,
                batch_size=batch_size,
                sample_weight=sample_weight,
                shuffle=shuffle,
                validation_split=validation_split,
                validation_data=validation_data,
                **kwargs,
            )

    def preprocess_samples(self, x, y=None, sample_weight=None):
        samples = super().preprocess_samples(x, y, sample_weight)
        return distribute.batch_for_replicas(self, samples)

    def evaluate(self, x=None, y=None, batch_size=None, **kwargs):
        """`keras.Model.evaluate`, checking in-memory inputs first (as
        `fit` does)."""
        self._check_inputs(x)
        if _in_memory(x):
            _check_pairs_per_batch(x, batch_size or 32)
        return super().evaluate(x, y, batch_size=batch_size, **kwargs)

    def predict(self, x, batch_size=None, **kwargs):
        """`keras.Model.predict`, checking in-memory inputs first (as
        `fit` does)."""
        self._check_inputs(x)
        return super().predict(x, batch_size=batch_size, **kwargs)

    def _check_inputs(self, x) -> None:
        """Checks in-memory inputs before any backend or `tf.data` sees
        them: every entry of a dict has one row per example, and integer
        token ids index the text tower's vocabulary."""
        if not isinstance(x, dict) or not _in_memory(x):
            return
        columns = _as_columns(x)
        check_same_rows(columns, "x")
        for key in ("texts", "token_ids"):
            if key in columns:
                self._check_token_ids(columns[key], f"x[{key!r}]")

    def _checked_text_inputs(self, inputs: dict) -> dict:
        """Model-ready text inputs given to `encode_texts`, checked: one
        row per example in every entry, ids inside the vocabulary."""
        check_same_rows(inputs, "texts")
        self._check_token_ids(inputs["token_ids"], "texts['token_ids']")
        return inputs

    def _check_token_ids(self, token_ids, name: str) -> None:
        vocabulary_size = getattr(self.backbone, "text_vocabulary_size", None)
        if vocabulary_size:
            check_token_ids(token_ids, vocabulary_size, name)

    # --- Inference ---------------------------------------------------------
    # Written once for every task. A family says how raw pixels become
    # model-ready images (`_preprocess_pixels`, `_model_ready_range`), how
    # texts become model-ready inputs (`_model_texts`) and how a batch of
    # them is embedded (`_embed_text_batch`: by default the backbone's
    # `embed_texts`); the backbone's `embed_images` embeds images.

    def encode_images(
        self, images, preprocessed: bool = False, batch_size: int = 64
    ) -> np.ndarray:
        """Embeds images.

        Args:
            images: Raw pixels, uint8 or float in `[0, 255]` (a float batch
                whose maximum is <= 1 warns: it is almost black), resized
                and normalised by the task's preprocessor: a batch
                `[B, H, W, C]`, one image `[H, W, C]`, or a list of images
                (arrays or PIL images) of any sizes. With
                `preprocessed=True`, model-ready float images of the
                model's size instead, in the range the preprocessor
                produces (`[-1, 1]` by default).
            preprocessed: Whether `images` are already model-ready.
            batch_size: Images per forward pass. Batches are padded to a
                power of two (at most `batch_size`) rows, so a new number
                of images costs at most one compilation per size class.

        Returns:
            numpy float32 `[B, D]`, L2-normalised.

        Raises:
            ValueError: if `images` has the wrong rank, channels or range
                (uint8 or values outside the model-ready range with
                `preprocessed=True`), or is empty.
            TypeError: if `images` is not numeric.

        Example:

        ```python
        z = model.encode_images(uint8_images)  # [B, D]
        z = model.encode_images([pil_image, other_pil_image])
        ```
        """
        return self._encode_in_batches(
            self._embed_image_batch,
            self._model_images(images, preprocessed),
            batch_size,
        )

    def encode_texts(self, texts, batch_size: int = 64) -> np.ndarray:
        """Embeds texts.

        Args:
            texts: A string or a list of strings (see the task for the other
                forms it takes, e.g. token ids).
            batch_size: Texts per forward pass, padded as in
                `encode_images`.

        Returns:
            numpy float32 `[B, D]`, L2-normalised.

        Example:

        ```python
        z = model.encode_texts(["a red circle", "a blue square"])
        ```
        """
        return self._encode_in_batches(
            self._embed_text_batch, self._model_texts(texts), batch_size
        )

    def similarity(
        self,
        images,
        texts,
        preprocessed: bool = False,
        scaled: bool = True,
        batch_size: int = 64,
    ) -> np.ndarray:
        """Image-text scores: scaled logits, or cosine similarities.

        With `scaled=True` (the default) these are the logits the model is
        trained on, `exp(t) * cos (+ b)`: the cosine similarity of the
        L2-normalised embeddings times the logit scale `exp(t)`, plus the
        bias `b` of a sigmoid-loss model. A softmax over texts turns them
        into the model's probabilities (a sigmoid, for a sigmoid-loss
        model). With `scaled=False`, the plain cosine similarities in
        `[-1, 1]`.

        Args:
            images: Images as `encode_images` takes them.
            texts: Texts as `encode_texts` takes them.
            preprocessed: Whether `images` are already model-ready.
            scaled: Whether to return scaled logits or cosine similarities.
            batch_size: Images and texts per forward pass.

        Returns:
            numpy float32 `[num_images, num_texts]`.

        Example:

        ```python
        logits = model.similarity(images, ["a red circle", "a blue square"])
        best_text = logits.argmax(axis=1)
        cosines = model.similarity(images, texts, scaled=False)
        ```
        """
        cosines = (
            self.encode_images(images, preprocessed, batch_size)
            @ self.encode_texts(texts, batch_size).T
        )
        if not scaled:
            return cosines
        # In numpy: eager backend ops would compile again for every shape.
        logits = cosines * ops.convert_to_numpy(self.logit_scale)
        if self.logit_bias is not None:
            logits = logits + ops.convert_to_numpy(self.logit_bias)
        return logits.astype("float32")

    def _model_texts(self, texts):
        """Texts -> the model-ready inputs of `_embed_text_batch` (a numpy
        array or a dict of them)."""
        raise NotImplementedError(
            f"{type(self).__name__} must implement `_model_texts`."
        )

    def _preprocess_pixels(self, pixels: np.ndarray) -> np.ndarray:
        """Raw float32 pixels `[B, H, W, C]` -> model-ready numpy images."""
        if self.preprocessor is None:
            raise ValueError(
                "This model has no preprocessor: pass model-ready images "
                "with `preprocessed=True`."
            )
        images = self.preprocessor({"images": pixels})["images"]
        return ops.convert_to_numpy(images)

    def _model_ready_range(self) -> tuple[float, float]:
        """`(low, high)` of the images the preprocessor makes."""
        return (-1.0, 1.0)

    def _model_images(self, images, preprocessed: bool) -> np.ndarray:
        """Checks `images` and makes them model-ready: float32 numpy."""
        channels = self.backbone.input["images"].shape[-1]
        groups = _image_arrays(images, channels)
        if preprocessed:
            return self._checked_model_ready(groups)
        for group in groups:
            if (
                group.dtype.kind in "iu"
                and group.dtype != np.uint8
                and (group.min() < 0 or group.max() > 255)
            ):
                raise ValueError(
                    "Raw `images` must hold pixel values in [0, 255]. "
                    f"Received values in [{group.min()}, {group.max()}]."
                )
        if all(g.dtype.kind == "f" for g in groups) and (
            max(float(g.max()) for g in groups) <= 1.0
        ):
            warnings.warn(
                "Raw `images` are expected in [0, 255], but these float "
                "pixels are all <= 1 and will look almost black to the "
                "model. Scale [0, 1] images by 255, or pass model-ready "
                "images with `preprocessed=True`.",
                stacklevel=3,
            )
        if len({g.shape[1:] for g in groups}) == 1:
            pixels = np.concatenate(groups) if len(groups) > 1 else groups[0]
            return self._preprocess_pixels(pixels.astype("float32"))
        # Different sizes: each image is resized on its own.
        return np.concatenate(
            [self._preprocess_pixels(g.astype("float32")) for g in groups]
        )

    def _checked_model_ready(self, groups: list) -> np.ndarray:
        if any(g.dtype.kind != "f" for g in groups):
            raise ValueError(
                "Model-ready `images` (`preprocessed=True`) must be floats. "
                f"Received dtype {groups[0].dtype}; integers are raw "
                "pixels: pass `preprocessed=False`."
            )
        shapes = {g.shape[1:] for g in groups}
        if len(shapes) > 1:
            raise ValueError(
                "Model-ready `images` (`preprocessed=True`) must all have "
                f"the model's size. Received shapes {sorted(shapes)}."
            )
        images = np.concatenate(groups).astype("float32")
        low, high = self._model_ready_range()
        slack = 1e-3 * (high - low)  # Rounding in the preprocessor's ops.
        if images.min() < low - slack or images.max() > high + slack:
            raise ValueError(
                "Model-ready `images` (`preprocessed=True`) must be in "
                f"[{low:g}, {high:g}]. Received values in "
                f"[{images.min():g}, {images.max():g}]; pass raw pixels in "
                "[0, 255] with `preprocessed=False`."
            )
        return images

    def _encode_in_batches(self, embed_batch, inputs, batch_size: int):
        """`embed_batch` over numpy `inputs` (an array or a dict of arrays),
        `batch_size` rows at a time -> numpy float32.

        Each batch's rows are padded (repeating the last) to the next power
        of two, capped at `batch_size`, so any number of rows is traced and
        compiled at most once per power of two, instead of once per batch
        size (and op by op, when run eagerly).
        """
        if not isinstance(batch_size, int | np.integer) or batch_size < 1:
            raise ValueError(
                f"`batch_size` must be an int >= 1. Received: {batch_size!r}"
            )
        batch_size = int(batch_size)
        arrays = inputs if isinstance(inputs, dict) else {None: inputs}
        size = len(next(iter(arrays.values())))
        outputs = []
        for start in range(0, size, batch_size):
            rows = min(batch_size, size - start)
            padding = _bucket_size(rows, batch_size) - rows
            rows_slice = slice(start, start + rows)
            batch = keras.tree.map_structure(
                functools.partial(_padded_rows, rows_slice, padding), inputs
            )
            embeddings = embed_batch(batch)
            outputs.append(np.asarray(embeddings[:rows], "float32"))
        return np.concatenate(outputs, axis=0)

    def _embed_image_batch(self, images: np.ndarray) -> np.ndarray:
        """Model-ready numpy images -> embeddings, compiled."""
        return self._compiled_encoder(self.backbone.embed_images, images)

    def _embed_text_batch(self, texts) -> np.ndarray:
        """Model-ready numpy texts -> embeddings, compiled."""
        return self._compiled_encoder(self.backbone.embed_texts, texts)

    def _compiled_encoder(self, embed, batch) -> np.ndarray:
        """`embed(batch)` through one compiled function per input signature:
        a functional model over `embed` sharing this model's layers, run by
        a `batch_predictor`, so it always sees the current weights."""
        arrays = batch if isinstance(batch, dict) else {None: batch}
        signature = tuple(
            (name, x.shape[1:], x.dtype.name) for name, x in arrays.items()
        )
        key = ("encoder", embed.__name__, signature)
        if key not in self._helper_models:
            symbols = {
                name: keras.Input(x.shape[1:], dtype=x.dtype.name, name=name)
                for name, x in arrays.items()
            }
            inputs = symbols if None not in symbols else symbols[None]
            self._helper_models[key] = batch_predictor(
                keras.Model(inputs, embed(inputs))
            )
        return self._helper_models[key](batch)


def _bucket_size(rows: int, batch_size: int) -> int:
    """The rows a batch of `rows` is padded to: the next power of two,
    capped at `batch_size`."""
    return min(batch_size, 1 << (rows - 1).bit_length())


def _padded_rows(rows: slice, padding: int, x: np.ndarray) -> np.ndarray:
    """`x[rows]` with its last row repeated `padding` more times."""
    x = x[rows]
    if not padding:
        return x
    return np.concatenate([x, np.repeat(x[-1:], padding, axis=0)], axis=0)


def _image_arrays(images, channels: int) -> list[np.ndarray]:
    """`images` as a list of numpy batches `[n, H, W, C]`: one for a batch
    or a single image, one per image for a list (whose sizes may differ).
    Checks rank, channels and dtype."""
    expected = (
        f"a batch [B, H, W, {channels}], one image [H, W, {channels}] or a "
        "list of images"
    )
    if isinstance(images, list | tuple) or _is_pil(images):
        items = [images] if _is_pil(images) else list(images)
        arrays = [_pixel_array(item, channels) for item in items]
        for array in arrays:
            if array.ndim != 3:
                raise ValueError(
                    f"`images` must be {expected}. Received an image of "
                    f"shape {array.shape} in the list."
                )
        groups = [array[None] for array in arrays]
    else:
        batch = _pixel_array(images, channels)
        if batch.ndim not in (3, 4):
            raise ValueError(
                f"`images` must be {expected}. Received shape {batch.shape}"
            )
        groups = [batch[None] if batch.ndim == 3 else batch]
    if not groups or not any(len(group) for group in groups):
        raise ValueError("`images` is empty.")
    for group in groups:
        if group.dtype.kind not in "iuf":
            raise TypeError(
                "`images` must be numeric pixel values. Received dtype "
                f"{group.dtype}"
            )
        if group.shape[-1] != channels:
            raise ValueError(
                f"`images` must be {expected}. Received shape "
                f"{group.shape[1:] if len(groups) > 1 else group.shape}"
            )
    return groups


def _pixel_array(image, channels: int) -> np.ndarray:
    if _is_pil(image):
        if channels in (1, 3):
            image = image.convert("L" if channels == 1 else "RGB")
        array = np.asarray(image)
        return array[..., None] if array.ndim == 2 else array
    if isinstance(image, np.ndarray):
        return image
    try:
        return np.asarray(ops.convert_to_numpy(image))
    except Exception:  # Not a tensor: a nested list, for example.
        return np.asarray(image)


def _is_pil(image) -> bool:
    """Whether `image` is a PIL image (without importing PIL)."""
    return hasattr(image, "getbands") and hasattr(image, "convert")


def _in_memory(data) -> bool:
    """Whether `data` is arrays, tensors or lists of strings (which Keras
    would slice into batches itself), not a dataset or a generator."""
    if data is None:
        return False
    leaves = [
        leaf
        for leaf in keras.tree.flatten(_as_columns(data))
        if leaf is not None
    ]
    return bool(leaves) and all(
        hasattr(leaf, "shape") and hasattr(leaf, "dtype") for leaf in leaves
    )


def _check_pairs_per_batch(x, batch_size: int, steps: int = 1) -> None:
    """A contrastive batch takes its negatives from its other rows: one
    pair alone has a loss of 0 and an accuracy of 1, and learns nothing.
    Raises if every batch would be one pair; warns if only the last is.
    With `steps` micro-batches, each batch must split into equal ones."""
    rows = len(keras.tree.flatten(_as_columns(x))[0])
    if steps > 1:
        check_batches_divide(rows, batch_size, steps)
    if rows == 1 or batch_size == 1:
        raise ValueError(
            "A contrastive batch needs at least 2 image-text pairs (the "
            f"other rows are its negatives). Received batch_size="
            f"{batch_size} for {rows} rows of `x`."
        )
    if rows % batch_size == 1:
        warnings.warn(
            f"The last batch holds a single pair ({rows} rows of `x` in "
            f"batches of batch_size={batch_size}): it has no negatives and "
            "teaches nothing. Choose a batch_size that leaves 0 or >= 2.",
            stacklevel=3,
        )


def _as_columns(data):
    """Lists of strings as string arrays, so that every leaf has rows."""
    if isinstance(data, dict):
        return {key: _as_columns(value) for key, value in data.items()}
    if isinstance(data, list | tuple):
        if data and all(isinstance(item, str | bytes) for item in data):
            return np.asarray(data, dtype=object)
        return type(data)(_as_columns(item) for item in data)
    return data


def _split_last(x, validation_split: float):
    """`(train, validation)` rows of `x`: the last `validation_split` of
    them are held out, before any shuffling, as `keras.Model.fit` does."""
    if not 0.0 < validation_split < 1.0:
        raise ValueError(
            "`validation_split` must be in (0, 1). Received: "
            f"validation_split={validation_split}"
        )
    x = _as_columns(x)
    size = len(keras.tree.flatten(x)[0])
    split_at = int(math.floor(size * (1.0 - validation_split)))
    if split_at in (0, size):
        raise ValueError(
            f"`validation_split={validation_split}` leaves no rows for "
            f"training or validation out of {size}."
        )
    train = keras.tree.map_structure(lambda column: column[:split_at], x)
    validation = keras.tree.map_structure(lambda column: column[split_at:], x)
    return train, validation


def _batches(arrays, batch_size: int, shuffle: bool = False):
    """A tf.data pipeline over in-memory `(x, y, sample_weight)` rows,
    reshuffled every epoch if `shuffle`. Only row indices go through the
    shuffle buffer, so the data is held once."""
    import tensorflow as tf

    packed = keras.utils.pack_x_y_sample_weight(
        *(_as_columns(part) for part in arrays)
    )
    columns = keras.tree.map_structure(
        lambda column: tf.convert_to_tensor(
            column
            if isinstance(column, np.ndarray)
            else ops.convert_to_numpy(column)
        ),
        packed,
    )
    size = int(keras.tree.flatten(columns)[0].shape[0])
    rows = tf.data.Dataset.range(size)
    if shuffle:
        rows = rows.shuffle(size, reshuffle_each_iteration=True)
    return rows.batch(batch_size).map(
        lambda index: keras.tree.map_structure(
            lambda column: tf.gather(column, index), columns
        )
    )
