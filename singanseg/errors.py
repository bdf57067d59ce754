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


def message_for_cli(error: BaseException, flags: dict[str, str]) -> str:
    """The one-line message of `error` as a command line prints it.

    Library messages name the params.yaml key a DVC stage user changes (`weights: random`);
    a command-line user types a flag instead (`--weights random`), so each CLI hands its
    own {params form: flag form}; every occurrence is rewritten (issue 18 s4).
    """
    text = " ".join(str(error).split())
    for params_form, flag_form in flags.items():
        text = text.replace(params_form, flag_form)
    return text


__all__ = ["UserError", "WeightsError", "message_for_cli"]
