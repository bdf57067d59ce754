"""The one base class of errors that are the user's to fix (conventions.md "Code").

Bad input, a wrong config key, a corrupted checkpoint, missing pretrained weights, an
unreachable Ray cluster: each subclasses `UserError`, and the command lines and DVC stages
print its one-line message and exit 2. Anything else is a bug and keeps its traceback.
`UserError` is a ValueError, so code that caught ValueError before still catches it.
"""

from __future__ import annotations


class UserError(ValueError):
    """An error the user can fix; the message names the file or key and the problem."""


class WeightsError(UserError):
    """Pretrained weights are missing or unusable; the message says how to provide them
    (offline: a file or folder, or `weights: random` where a consumer allows it)."""


__all__ = ["UserError", "WeightsError"]
