"""keras-weightinit: weight initialization for Keras 3, measured.

Initializers for `kernel_initializer=`, greedy RBM (deep belief net)
pretraining, LSUV and activation-aware initialization of whole models,
TensorBoard gradient histograms and signal-propagation diagnostics.

`import keras_weightinit` imports Keras and the modules that register the
classes Keras deserializes by name (`"keras_weightinit>HeNormal"`, saved
`.keras` models), as KerasHub does. The command line lives beside the
package (`keras_weightinit_cli`), so that it answers `--help` and a bad
argument before Keras starts.

TensorFlow is imported only where it is needed: on JAX and PyTorch every
tool runs without it (the RBM, `pretrain_dbn` and `DBNPretrain` train on the
active backend), and the package imports where it is not installed.
"""

from __future__ import annotations

from keras_weightinit.callbacks import DBNPretrain, GradientHistograms, LSUVInit
from keras_weightinit.diagnostics import DiagnosisReport, diagnose
from keras_weightinit.gains import calculate_gain, compute_fans
from keras_weightinit.initializers import (
    DeltaOrthogonal,
    HeNormal,
    HeUniform,
    Orthogonal,
    RandomNormal,
    SmallRandomNormal,
    XavierNormal,
    XavierUniform,
    ZerO,
    get_scheme,
    scheme_names,
)
from keras_weightinit.model_init import LSUVReport, initialize, lsuv
from keras_weightinit.mup import (
    MuAdam,
    MuAdamW,
    MuMultiHeadAttention,
    MuReadout,
    MuSGD,
    mup_multipliers,
    set_base_shapes,
)
from keras_weightinit.pretraining import pretrain_dbn
from keras_weightinit.rbm import RBM
from keras_weightinit.transfer import CoordCheck, coord_check, lr_transfer

__version__ = "0.1.0"

__all__ = [
    "__version__",
    "DBNPretrain",
    "DeltaOrthogonal",
    "DiagnosisReport",
    "GradientHistograms",
    "HeNormal",
    "HeUniform",
    "LSUVInit",
    "LSUVReport",
    "Orthogonal",
    "RBM",
    "RandomNormal",
    "SmallRandomNormal",
    "XavierNormal",
    "XavierUniform",
    "ZerO",
    "calculate_gain",
    "compute_fans",
    "diagnose",
    "get_scheme",
    "initialize",
    "lsuv",
    "pretrain_dbn",
    "scheme_names",
    "CoordCheck",
    "MuAdam",
    "MuAdamW",
    "MuMultiHeadAttention",
    "MuReadout",
    "MuSGD",
    "coord_check",
    "lr_transfer",
    "mup_multipliers",
    "set_base_shapes",
]
