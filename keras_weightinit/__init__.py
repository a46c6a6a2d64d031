"""keras-weightinit: weight initialization for Keras 3, measured.

Initializers for `kernel_initializer=`, greedy RBM (deep belief net)
pretraining, LSUV and activation-aware initialization of whole models,
TensorBoard gradient histograms and signal-propagation diagnostics.

The package imports lazily: `import keras_weightinit` loads neither Keras nor
TensorFlow (so `keras-weightinit --help` answers at once), and each public
name imports its module on first use. The classes Keras deserializes by name
(`"keras_weightinit>HeNormal"`, saved `.keras` models) are registered as soon
as Keras is imported, in whichever order the two are imported.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import sys
from typing import TYPE_CHECKING

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

# The module that defines each public name.
_SOURCES = {
    "DBNPretrain": "callbacks",
    "LSUVInit": "callbacks",
    "DiagnosisReport": "diagnostics",
    "diagnose": "diagnostics",
    "calculate_gain": "gains",
    "compute_fans": "gains",
    "GradientHistograms": "callbacks",
    "DeltaOrthogonal": "initializers",
    "HeNormal": "initializers",
    "HeUniform": "initializers",
    "Orthogonal": "initializers",
    "RandomNormal": "initializers",
    "SmallRandomNormal": "initializers",
    "XavierNormal": "initializers",
    "XavierUniform": "initializers",
    "ZerO": "initializers",
    "get_scheme": "initializers",
    "scheme_names": "initializers",
    "LSUVReport": "model_init",
    "initialize": "model_init",
    "lsuv": "model_init",
    "pretrain_dbn": "pretraining",
    "RBM": "rbm",
    "CoordCheck": "mup_checks",
    "coord_check": "mup_checks",
    "lr_transfer": "mup_checks",
    "MuAdam": "mup",
    "MuAdamW": "mup",
    "MuMultiHeadAttention": "mup",
    "MuReadout": "mup",
    "MuSGD": "mup",
    "mup_multipliers": "mup",
    "set_base_shapes": "mup",
}

# Submodules that `kwi.<name>` imports on first access, as the eager package
# used to make them available.
_SUBMODULES = frozenset(
    {
        "callbacks",
        "checks",
        "cli",
        "compare",
        "config",
        "data",
        "diagnostics",
        "distributed",
        "gains",
        "graph",
        "initializers",
        "model_init",
        "pretraining",
        "probe",
        "rbm",
        "mup",
        "mup_checks",
        "mup_cli",
        "seeds",
        "tensorboard",
    }
)

# The modules whose import registers classes with Keras's serialization.
_REGISTERING = ("initializers", "rbm", "mup")

if TYPE_CHECKING:  # what static tools see; at run time `__getattr__` imports
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
    from keras_weightinit.mup_checks import CoordCheck, coord_check, lr_transfer
    from keras_weightinit.pretraining import pretrain_dbn
    from keras_weightinit.rbm import RBM


def __getattr__(name: str):
    """Imports the module behind a public name (or a submodule) on first use."""
    if name in _SOURCES:
        module = importlib.import_module(f"{__name__}.{_SOURCES[name]}")
        value = getattr(module, name)
    elif name in _SUBMODULES:
        value = importlib.import_module(f"{__name__}.{name}")
    else:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))


# ------------------------------------------- registration with Keras, lazily

_WATCHED_TOP = ("keras", "tensorflow")  # `import tensorflow` imports keras
# Loaders made for one file each: one can wrap its `exec_module`.
_FILE_LOADERS = (
    importlib.machinery.SourceFileLoader,
    importlib.machinery.SourcelessFileLoader,
)


def _initializing(name: str, module) -> bool:
    """Whether `module` is half-imported (the flag importlib itself reads)."""
    top = name.partition(".")[0]
    return (top in _WATCHED_TOP or top == __name__) and bool(
        getattr(getattr(module, "__spec__", None), "_initializing", False)
    )


def _register_with_keras(finished: str | None = None) -> None:
    """Imports the registering modules once Keras is loaded and it is safe.

    Safe: no module of Keras, TensorFlow or this package (other than
    `finished`, whose code has just run) is half-imported, since the
    registering modules import from them.
    """
    if "keras" not in sys.modules:
        return
    if any(
        name != finished and name != __name__ and _initializing(name, module)
        for name, module in list(sys.modules.items())
    ):
        return
    _remove_hook()
    for name in _REGISTERING:
        importlib.import_module(f"{__name__}.{name}")


class _RegisterWithKeras(importlib.abc.MetaPathFinder):
    """Runs `_register_with_keras` after Keras, TensorFlow or a submodule loads.

    It finds nothing itself: it asks the finders after it and wraps the
    loader's `exec_module` of the spec they return.
    """

    def find_spec(self, fullname, path=None, target=None):
        top = fullname.partition(".")[0]
        if fullname not in _WATCHED_TOP and top != __name__:
            return None
        for finder in sys.meta_path:
            find_spec = getattr(finder, "find_spec", None)
            if finder is self or find_spec is None:
                continue
            spec = find_spec(fullname, path, target)
            if spec is not None:
                break
        else:
            return None
        loader = spec.loader
        if not isinstance(loader, _FILE_LOADERS):
            return spec  # only a file's own loader is wrapped, not a shared one
        exec_module = loader.exec_module

        def exec_then_register(module):
            try:
                exec_module(module)
            finally:
                vars(loader).pop("exec_module", None)
            _register_with_keras(finished=fullname)

        loader.exec_module = exec_then_register
        return spec


def _remove_hook() -> None:
    sys.meta_path[:] = [
        finder
        for finder in sys.meta_path
        if (type(finder).__module__, type(finder).__qualname__)
        != (__name__, "_RegisterWithKeras")
    ]


_remove_hook()  # one left by an earlier run of this module: a reload
sys.meta_path.insert(0, _RegisterWithKeras())
_register_with_keras()  # at once if Keras is loaded already
