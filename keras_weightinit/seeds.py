"""Seeds: the one place that checks them and derives independent child seeds."""

from __future__ import annotations

import keras
import numpy as np

from keras_weightinit.checks import is_int

__all__ = ["Seed", "check_seed", "spawn_seeds"]

Seed = int | keras.random.SeedGenerator | None


def check_seed(seed, name: str = "seed") -> Seed:
    """Returns `seed` if it is None, a non-negative int or a `SeedGenerator`.

    A serialized `SeedGenerator` (a dict, as `get_config` stores it) is
    deserialized. Anything else raises `ValueError`.

    Example:

    >>> check_seed(3)
    3
    """
    if isinstance(seed, dict):
        seed = keras.saving.deserialize_keras_object(seed)
    if seed is None or isinstance(seed, keras.random.SeedGenerator):
        return seed
    if is_int(seed) and seed >= 0:
        return int(seed)
    raise ValueError(
        f"Argument `{name}` must be None, a non-negative int or a "
        f"`keras.random.SeedGenerator`. Received: {name}={seed!r}"
    )


def spawn_seeds(seed: Seed, count: int) -> list[int | None]:
    """`count` independent seeds derived from `seed`.

    An int gives distinct ints (NumPy's `SeedSequence.spawn`, so the children
    of seeds 0 and 1 never coincide as `seed + k` would); a `SeedGenerator`
    gives ints drawn from it (advancing it); None gives Nones (fresh values
    wherever they are used).

    Example:

    >>> len(set(spawn_seeds(0, 4)))
    4
    """
    if seed is None:
        return [None] * count
    if isinstance(seed, keras.random.SeedGenerator):
        return [
            int(keras.random.randint((), 0, 2**31 - 1, seed=seed)) for _ in range(count)
        ]
    children = np.random.SeedSequence(int(seed)).spawn(count)
    return [int(child.generate_state(1)[0]) for child in children]
