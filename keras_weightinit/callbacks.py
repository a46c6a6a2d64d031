"""The package's Keras callbacks, for `model.fit(callbacks=[...])`.

- `DBNPretrain` and `LSUVInit` initialize a model from data: each runs its
  initializer once, in `on_train_begin` of the first `fit` it is passed to;
  later `fit` calls train on as usual.
- `GradientHistograms` logs the gradients and activations of a probe batch
  to TensorBoard while `fit` trains.

Keras 3's `keras.callbacks.TensorBoard` logs weight histograms only: the
`write_grads` argument of TF1 Keras is gone (tensorflow/tensorflow#31173,
#31542; activation histograms #39755). `GradientHistograms` puts the
gradients, their norms and the layers' activations of a fixed probe batch
beside Keras's own logs, so that vanishing and exploding gradients show in the
same TensorBoard view as the loss curves. Its probe pass is the training
step's forward and backward pass without the update (`keras_weightinit.probe`):
training is the same, to the bit, with and without the callback.
"""

from __future__ import annotations

import math
import os

import keras
import numpy as np

from keras_weightinit import distributed, graph
from keras_weightinit.checks import (
    boolean,
    optional_path,
    positive_int,
    verbose_level,
)
from keras_weightinit.data import (
    Stream,
    describe,
    first_batch,
    fit_model_input,
    is_stream,
)
from keras_weightinit.model_init import check_lsuv_args, lsuv
from keras_weightinit.probe import check_labels, loss_scale, probe
from keras_weightinit.tensorboard import EventWriter, summary_bytes

__all__ = ["DBNPretrain", "GradientHistograms", "LSUVInit"]


class _OnFirstFit(keras.callbacks.Callback):
    """Runs `self._run(model)` once, at the beginning of the first `fit`."""

    def __init__(self):
        super().__init__()
        self.result = None
        self.done = False

    def _run(self, model: keras.Model):
        raise NotImplementedError

    def on_train_begin(self, logs=None):
        if not self.done:
            self.result = self._run(self.model)
            self.done = True

    def _verbose(self, verbose) -> int:
        """`verbose` as an int; `"auto"` follows `fit`'s, as Keras's bar does.

        Outside `fit`, `"auto"` is 1.
        """
        if isinstance(verbose, str) and verbose == "auto":
            verbose = (self.params or {}).get("verbose", 1)
        return verbose_level(verbose)


class DBNPretrain(_OnFirstFit):
    """Greedy layer-wise RBM pretraining of a model's Dense layers.

    See `keras_weightinit.pretrain_dbn` for what it does; this callback runs
    it in `on_train_begin` of the first `fit` and keeps the per-layer
    histories in `self.result`.

    Args:
        x: The pretraining inputs: an array (pretrained in memory), or a
            batched finite `tf.data.Dataset` of `x` or `(x, y)` or a
            `keras.utils.PyDataset`, streamed batch by batch in memory of the
            order of a batch (see `pretrain_dbn`).
        layers: Names of the Dense layers to pretrain; default every Dense
            layer but the last.
        log_dir: If given (a str or `os.PathLike`), TensorBoard scalars per
            layer (`pretrain/<layer>`).
        verbose: `"auto"` (default) follows `fit`'s `verbose`, as Keras's
            callbacks do: nothing inside `fit(verbose=0)`; else 0 silent, 1
            a progress bar per layer, 2 one line per epoch.
        **rbm_args: `visible` (`"auto"`, `"bernoulli"`, `"gaussian"`) and the
            `RBM` arguments (`epochs`, `batch_size`, `learning_rate`,
            `shuffle_buffer` for streamed data, ...), checked here so that a
            bad value fails before `fit`.

    Raises:
        ValueError: At construction, for a bad `layers`, `log_dir`,
            `verbose`, `visible` or RBM argument, or a dataset that cannot
            be streamed (infinite, unbatched, a `PyDataset` without a
            length); in `fit`, for what
            `pretrain_dbn` rejects (the model keeps its weights).

    Example:

    >>> history = model.fit(
    ...     x, y, epochs=10, verbose=0, callbacks=[DBNPretrain(x, epochs=5, verbose=0)]
    ... )

    Streamed, and on other data than `fit`'s (more inputs than labels):

    >>> unlabeled = tf.data.Dataset.from_tensor_slices(x_unlabeled).batch(256)
    >>> callback = DBNPretrain(unlabeled, epochs=5, verbose=0)
    >>> history = model.fit(x, y, epochs=10, verbose=0, callbacks=[callback])
    >>> sorted(callback.result)
    ['dense', 'dense_1']

    Reference:
        Hinton, Osindero & Teh, "A fast learning algorithm for deep belief
        nets", Neural Computation 2006.
    """

    def __init__(
        self,
        x,
        layers: list[str] | None = None,
        log_dir: str | os.PathLike | None = None,
        verbose: int | str = "auto",
        **rbm_args,
    ):
        # here, not at the top: the RBM imports TensorFlow (the other
        # callbacks do not)
        from keras_weightinit.pretraining import check_pretrain_args

        check_pretrain_args(layers, log_dir=log_dir, verbose=verbose, **rbm_args)
        if is_stream(x):
            Stream(x, "x")  # refuses infinite or unbatched datasets now
        super().__init__()
        self.x = x
        self.layers = layers
        self.log_dir = optional_path("log_dir", log_dir)
        self.verbose = verbose
        self.rbm_args = rbm_args

    def _run(self, model):
        from keras_weightinit.pretraining import pretrain_dbn

        return pretrain_dbn(
            model,
            self.x,
            layers=self.layers,
            log_dir=self.log_dir,
            verbose=self._verbose(self.verbose),
            **self.rbm_args,
        )


class LSUVInit(_OnFirstFit):
    """Layer-sequential unit-variance initialization before the first `fit`.

    See `keras_weightinit.lsuv`; the per-layer report (an `LSUVReport`, a
    dict `layer name -> {"var_before", "var_after", "iterations",
    "converged"}`) is kept in `self.result`. An unbuilt Sequential model is
    built for `x`'s shape first. The arguments are checked when the callback
    is created; the data when `fit` starts.

    Args:
        x: A batch of inputs (array), as `lsuv` takes it.
        **lsuv_args: Passed to `lsuv` (`tol`, `max_iters`, `orthogonal`,
            `verbose`, `seed`); `verbose="auto"` follows `fit`'s, as
            Keras's callbacks do (default 0, silent). An unknown keyword is
            named with the accepted ones.

    Example:

    >>> callback = LSUVInit(x[:256], seed=0)
    >>> history = model.fit(x, y, epochs=10, verbose=0, callbacks=[callback])
    >>> callback.result["dense"]["converged"]
    True

    Reference:
        Mishkin & Matas, "All you need is a good init", ICLR 2016.
    """

    def __init__(self, x, **lsuv_args):
        super().__init__()
        check_lsuv_args(**lsuv_args)  # fail here rather than inside `fit`
        self.x = x
        self.lsuv_args = lsuv_args

    def _run(self, model):
        verbose = self._verbose(self.lsuv_args.get("verbose", 0))
        return lsuv(model, self.x, **{**self.lsuv_args, "verbose": verbose})


class GradientHistograms(keras.callbacks.Callback):
    """TensorBoard histograms of the gradients and activations of a probe batch.

    Every `freq` epochs, and once before the first training step, the callback
    computes on the fixed probe batch `(x, y)` what a training step would
    compute, and writes to `log_dir/gradients`:

    - histogram `<variable.path>/gradient` for every trainable variable: the
      gradient `dL/dw` of the training loss `L` (the compiled loss plus the
      regularization losses, `model.compute_loss`);
    - scalars `gradient_norm/<layer>`, `||dL/dW||_2`, and
      `gradient_to_weight/<layer>`, `||dL/dW||_2 / ||W||_2`, for every
      kernel-like weight at any depth (`keras_weightinit.graph`: Dense, Conv,
      EinsumDense and `MultiHeadAttention`'s query/key/value/output,
      Depthwise and Separable convolutions, RNN cells, Embedding; the
      Frobenius norms). `<layer>` is the layer path
      (`multi_head_attention/query`); a layer holding several kernel-like
      weights gets one tag per weight, `<layer>/<role>`
      (`separable_conv2d/pointwise_kernel`, `lstm/lstm_cell/recurrent_kernel`);
    - with `activations=True`, histogram `<layer>/activation` and scalar
      `activation_std/<layer>` of the output of every top-level layer of
      `model.layers` whose output is one tensor.

    Steps: the step is the number of epochs trained when the values were
    taken: `initial_epoch` (0) before the first training step, then
    `epoch + 1` at the end of every epoch with `(epoch + 1) % freq == 0`
    (Keras's own epoch scalars use the 0-based `epoch`, so the gradients at
    step `k` are those of the weights whose `epoch_loss` is logged at `k-1`).
    As with Keras's `TensorBoard` callback, a later `fit` that starts over at
    epoch 0 writes its steps again from 0; one continued with `initial_epoch`
    goes on from there (a step already logged is not written twice).

    The probe pass runs in training mode (`training=True`: Dropout drops and
    BatchNorm uses the batch statistics, as in the loss `fit` differentiates)
    inside a `keras.StatelessScope`, so the moving statistics, the random
    layers' seed generators and the metrics are left exactly as they were:
    the history `fit` reports is identical with and without the callback.
    Under mixed precision the optimizer's loss scale is applied before
    differentiating and divided out after; under a `tf.distribute` strategy
    the whole probe batch is computed on one device at the mirrored weights.

    The event files go to their own run directory, `log_dir/gradients`, beside
    `keras.callbacks.TensorBoard(log_dir)`'s `train` and `validation`, with
    their own writer (`keras_weightinit.tensorboard.EventWriter`, no
    TensorFlow needed), which a TensorBoard callback's `update_freq` does not
    reach. The forward and backward pass is the compiled probe
    (`keras_weightinit.probe.probe`: `tf.function`, `jax.jit`, or plain
    autograd on PyTorch), compiled once per model and kept for later `fit`
    calls; the histograms and norms are computed in NumPy from its results
    and written as one `Summary` per step. The cost is about 0.1 s per `fit`
    plus one probe pass per logged epoch (`benchmarks/bench_callbacks.py`).

    Over several processes (`keras.distribution`, JAX), every process passes
    the same probe batch (checked when `fit` starts: a `ValueError` on every
    process otherwise) and computes the same values from the replicated
    weights; process 0 alone writes, so a run has one event file.

    The callback holds data, so it is not serializable (no `get_config`).

    Args:
        log_dir: The TensorBoard log directory; the callback writes to its
            subdirectory `gradients`.
        data: The probe batch: a tuple `(x, y)` of arrays (`(x,)` for a model
            whose loss needs no targets) or a batched `tf.data.Dataset` whose
            first batch is taken. `x` is a single array.
        freq: Log every `freq` epochs (a positive int).
        histograms: Write the gradient histograms.
        norms: Write the `gradient_norm` and `gradient_to_weight` scalars.
        activations: Write the activation histograms and `activation_std`.

    Raises:
        ValueError: At construction for a bad `freq`, `log_dir` or `data`; at
            `on_train_begin` for probe data that does not fit the model.
        RuntimeError: At `on_train_begin` for a model that is not compiled.

    Example:

    >>> run_dir = "logs/run1"
    >>> history = model.fit(
    ...     x, y, epochs=10, verbose=0,
    ...     callbacks=[
    ...         keras.callbacks.TensorBoard(run_dir),
    ...         GradientHistograms(log_dir=run_dir, data=(x[:256], y[:256])),
    ...     ],
    ... )
    >>> sorted(os.listdir(run_dir))
    ['gradients', 'train']

    Reference:
        Glorot & Bengio, "Understanding the difficulty of training deep
        feedforward neural networks", AISTATS 2010 (the gradient histograms
        per layer that show the vanishing); He et al., "Delving deep into
        rectifiers", ICCV 2015.
    """

    def __init__(
        self,
        log_dir: str | os.PathLike,
        data,
        freq: int = 1,
        histograms: bool = True,
        norms: bool = True,
        activations: bool = True,
    ):
        super().__init__()
        if not isinstance(log_dir, (str, os.PathLike)) or not os.fspath(log_dir):
            raise ValueError(
                "Argument `log_dir` must be a non-empty path. "
                f"Received: log_dir={log_dir!r}"
            )
        positive_int("freq", freq)
        for name, value in (
            ("histograms", histograms),
            ("norms", norms),
            ("activations", activations),
        ):
            boolean(name, value)
        self.log_dir = os.fspath(log_dir)
        self.freq = int(freq)
        self.histograms = bool(histograms)
        self.norms = bool(norms)
        self.activations = bool(activations)
        self.x, self.y = first_batch(data, "data")
        self._writer = None
        self._function = None
        self._first = None
        self._pending_initial = False
        self._last_step: int | None = None
        #: The training loss of the probe batch at the last logged step.
        self.last_loss = math.nan

    @property
    def run_dir(self) -> str:
        """The directory the event files go to: `log_dir/gradients`."""
        return os.path.join(self.log_dir, "gradients")

    # -- set-up -----------------------------------------------------------

    def _check_model(self, model):
        if model is None:
            raise RuntimeError(
                "GradientHistograms has no model; pass it to `fit(callbacks=...)` "
                "or call `set_model(model)` first."
            )
        if not getattr(model, "compiled", False) or model.optimizer is None:
            raise RuntimeError(
                "GradientHistograms needs a compiled model: its gradients are "
                "those of the compiled training loss. Call `model.compile(...)` "
                f"first. Received: model={model.name!r}, which is not compiled."
            )
        fit_model_input(model, self.x, "GradientHistograms", name="data")
        check_labels(model, self.x, self.y, "fit", name="data[1]")

    def _build(self):
        """The probe of the fixed batch: loss, gradients and layer outputs.

        The forward and backward pass is `keras_weightinit.probe.probe`'s
        compiled one (cached with the model, so a later `fit` reuses it);
        the histograms, norms and the event write happen in NumPy on its
        results (`_summaries`).
        """
        model = self.model
        variables = list(model.trainable_variables)
        self._variables = variables
        self._kernels = _kernel_tags(model, variables)
        act_layers = list(model.layers) if self.activations else []
        want_grads = self.histograms or self.norms

        def run(x, y, scale):
            result = probe(
                model,
                x,
                y,
                units=act_layers,
                variables=variables if want_grads else (),
                loss="fit",
                training=True,
                scale=scale,
            )
            activations = {
                layer.name: result.outputs[id(layer)]
                for layer in act_layers
                if id(layer) in result.outputs
            }
            return result.loss, result.weight_grads, activations

        return run

    # -- Keras hooks ------------------------------------------------------

    def on_train_begin(self, logs=None):
        with distributed.together("GradientHistograms"):
            self._check_model(self.model)
            distributed.check_same_model(self.model)
            distributed.check_same_across_processes("data", [self.x, self.y])
            self._set_up()

    def _set_up(self):
        if self._writer is None and distributed.is_writer():
            self._writer = EventWriter(self.run_dir)
        self._function = self._build()
        self._x_tensor = keras.tree.map_structure(keras.ops.convert_to_tensor, self.x)
        self._y_tensor = None if self.y is None else keras.ops.convert_to_tensor(self.y)
        try:  # run once: the first log (before any step) reuses it
            self._first = self._function(
                self._x_tensor, self._y_tensor, loss_scale(self.model)
            )
        except Exception as error:
            self._function = None
            y_shape = None if self.y is None else self.y.shape
            raise ValueError(
                "Argument `data` does not fit the model or its loss: the "
                f"probe batch has {describe(self.x, 'x')} and y of shape "
                f"{y_shape}. The probe pass failed with: {error}"
            ) from error
        self._pending_initial = True

    def on_epoch_begin(self, epoch, logs=None):
        if self._pending_initial:
            self._pending_initial = False
            # A fit continued with `initial_epoch` at the last logged step
            # has those weights logged already; one that starts over has not.
            if epoch == 0 or epoch != self._last_step:
                self._log(epoch)
            self._first = None  # the set-up's pass, used by that log or not

    def on_epoch_end(self, epoch, logs=None):
        if (epoch + 1) % self.freq == 0:
            self._log(epoch + 1)

    def on_train_end(self, logs=None):
        if self._writer is not None:
            self._writer.close()
            self._writer = None
        self._function = None

    def _log(self, step: int):
        if self._function is None:
            return
        with distributed.together("GradientHistograms"):
            self._log_step(step)

    def _log_step(self, step: int):
        # Read now, not traced: a dynamic loss scale changes during `fit` (and
        # before the optimizer is built, `scale_loss` gives its initial value).
        scale = loss_scale(self.model)
        first, self._first = self._first, None
        loss, grads, activations = first or self._function(
            self._x_tensor, self._y_tensor, scale
        )
        histograms, scalars = _summaries(
            self._variables,
            self._kernels if self.norms else [],
            [keras.ops.convert_to_numpy(g) for g in grads],
            {
                name: np.asarray(keras.ops.convert_to_numpy(out), dtype="float32")
                for name, out in activations.items()
            },
            self.histograms,
        )
        if self._writer is not None:  # process 0 writes, the others compute
            self._writer.write(step, summary_bytes(histograms, scalars))
        self._last_step = step
        self.last_loss = float(keras.ops.convert_to_numpy(loss))


def _kernel_tags(model: keras.Model, variables: list) -> list[tuple[str, int]]:
    """`(tag, index in variables)` of every kernel-like weight.

    The tag is the layer path, and `<layer>/<role>` for a layer holding
    several kernel-like weights.
    """
    kernels = graph.kernel_weights(model)
    position = {id(v): i for i, v in enumerate(variables)}
    per_layer: dict[int, int] = {}
    for weight in kernels:
        per_layer[id(weight.layer)] = per_layer.get(id(weight.layer), 0) + 1
    return [
        (
            weight.name
            if per_layer[id(weight.layer)] == 1
            else f"{weight.name}/{weight.role}",
            position[id(weight.variable)],
        )
        for weight in kernels
        if id(weight.variable) in position
    ]


def _summaries(variables, kernels, grads, activations, histograms: bool):
    """`(histograms, scalars)` of one step, from the probe's NumPy results.

    Args:
        variables: The trainable variables, in the order of `grads`.
        kernels: `(tag, index)` of the kernels whose norms to write.
        grads: The gradient of each variable, NumPy arrays.
        activations: `layer name ->` its output, NumPy arrays.
        histograms: Whether to write the gradient histograms.
    """
    found, scalars = {}, {}
    if histograms:
        for variable, grad in zip(variables, grads, strict=True):
            found[variable.path.replace(":", "_") + "/gradient"] = grad
    for name, i in kernels:
        g_norm = np.linalg.norm(grads[i])
        w_norm = np.sqrt(
            np.sum(
                np.square(np.asarray(variables[i].numpy())),
                dtype="float32",
            )
        )
        scalars[f"gradient_norm/{name}"] = g_norm
        # inf or NaN for an all-zero kernel
        with np.errstate(divide="ignore", invalid="ignore"):
            scalars[f"gradient_to_weight/{name}"] = np.float32(g_norm) / np.float32(
                w_norm
            )
    for name, out in activations.items():
        found[f"{name}/activation"] = out
        scalars[f"activation_std/{name}"] = out.std(dtype="float64")
    return found, scalars
