"""The user's `rules=`: glob patterns on variable paths, each naming what to do.

`initialize(model, rules={"*/mix": "he", "*/class_token": "keep"})` and
`lsuv(..., rules=...)` apply a user's rule to every variable whose path
matches the pattern (`fnmatch`, `*` crosses `/`), the first matching
pattern winning, before their own automatic rules. A rule is `"keep"` (the
variable is left as it is), a scheme name (`"he"`, `"orthogonal"`, ...) or
a `keras.initializers.Initializer` (cloned per variable with a seed of its
own).
"""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable, Mapping

import keras

__all__ = ["KEEP", "Rules"]

KEEP = "keep"


class Rules:
    """Checked `rules=`: `match(path)` gives the rule for a variable path.

    Args:
        rules: None, or a mapping `glob pattern -> "keep" | scheme name |
            keras.initializers.Initializer`.
        paths: The model's variable paths: a pattern that matches none of
            them is refused (a typo would otherwise be ignored).
        schemes: The scheme names accepted.

    Raises:
        ValueError: Naming the argument, the pattern and the value received.

    Example:

    >>> rules = Rules({"block/*": "keep"}, ["block/mix", "dense/kernel"], ["he"])
    >>> rules.match("block/mix"), rules.match("dense/kernel")
    ('keep', None)
    """

    def __init__(
        self, rules: Mapping | None, paths: Iterable[str], schemes: Iterable[str]
    ):
        if rules is None:
            rules = {}
        if not isinstance(rules, Mapping):
            raise ValueError(
                "Argument `rules` must be None or a dict of glob pattern -> "
                "'keep', a scheme name or a keras.initializers.Initializer. "
                f"Received: rules of type {type(rules).__name__}"
            )
        paths, schemes = list(paths), [KEEP, *schemes]
        for pattern, rule in rules.items():
            if not isinstance(pattern, str):
                raise ValueError(
                    "Argument `rules` must have glob patterns (str) as keys. "
                    f"Received: rules key {pattern!r}"
                )
            named = isinstance(rule, str) and rule in schemes
            if not named and not isinstance(rule, keras.initializers.Initializer):
                raise ValueError(
                    f"Argument `rules[{pattern!r}]` must be one of {schemes} or a "
                    f"keras.initializers.Initializer. Received: {rule!r}"
                )
            if not any(fnmatch.fnmatchcase(p, pattern) for p in paths):
                raise ValueError(
                    f"Argument `rules` has pattern {pattern!r}, which matches no "
                    f"variable of the model (paths look like {paths[:3]}). "
                    f"Received: rules={dict(rules)!r}"
                )
        self._rules = list(rules.items())

    def match(self, path: str):
        """The rule of the first pattern matching `path`, or None."""
        for pattern, rule in self._rules:
            if fnmatch.fnmatchcase(path, pattern):
                return rule
        return None

    def covers(self, path: str) -> bool:
        """Whether a pattern matches `path`."""
        return self.match(path) is not None

    def pattern(self, path: str) -> str | None:
        """The first pattern matching `path`, or None."""
        for pattern, _ in self._rules:
            if fnmatch.fnmatchcase(path, pattern):
                return pattern
        return None
