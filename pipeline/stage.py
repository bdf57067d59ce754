"""The stage runner: what every `python -m pipeline.<stage>` main() shares.

A stage's main() names its own arguments and its work; the runner owns the rest, the same
for all of them: the parser with `--params`, the stage's params.yaml section read with the
active profile (`load_section`), and the one way out. An error that is the user's to fix
(`singanseg.errors.UserError`) prints one line, `<stage>: error: <message>`, on stderr and
exits with status 2; anything else is a bug and keeps its traceback.

    def main(argv=None) -> int:
        stage = Stage("data", __doc__.split("\\n\\n")[0], DataParams)
        stage.parser.add_argument("--out", default="data")
        return stage.run(lambda args, params: work(params, args.out), argv)
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from typing import Any

from pipeline.infra.params import DEFAULT_PARAMS, load_section
from singanseg.errors import UserError, message_for_cli


class Stage:
    def __init__(
        self,
        name: str,
        description: str | None,
        params_cls: type | None = None,
        *,
        section: str | None = None,
        prefix: str | None = None,
        errors: tuple[type[BaseException], ...] = (UserError,),
        params_flag: bool = True,
        cli_flags: dict[str, str] | None = None,
    ) -> None:
        """`name`: the module under pipeline/ (its prog and, by default, its section and the
        error line's prefix); `params_cls`: the dataclass of the section handed to the work
        (None: the work reads nothing, or reads for itself); `errors`: what is printed as
        one line (the user's to fix); `params_flag`: False for a command without --params;
        `cli_flags`: {params form: flag form} for a command line whose user types flags, not
        params keys (singanseg.errors.message_for_cli)."""
        self.name = name
        self.section = section or name
        self.params_cls = params_cls
        self.prefix = f"{name}: " if prefix is None else prefix
        self.errors = errors
        self.cli_flags = cli_flags or {}
        self.parser = argparse.ArgumentParser(
            prog=f"python -m pipeline.{name}",
            description=description,
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        if params_flag:
            self.parser.add_argument("--params", default=str(DEFAULT_PARAMS))

    def run(self, work: Callable[[argparse.Namespace, Any], int | None], argv: list[str] | None = None) -> int:
        """Parse `argv`, load the section, call `work(args, params)`; its int (None: 0) is the
        exit status, a user error's is 2."""
        args = self.parser.parse_args(argv)
        try:
            params = None
            if self.params_cls is not None:
                # a stage with `--profile` (segment) overrides params.yaml's
                profile = getattr(args, "profile", None)
                params = load_section(self.section, self.params_cls, args.params, profile)
            status = work(args, params)
        except self.errors as e:  # the user's to fix (singanseg.errors); a bug keeps its traceback
            print(f"{self.prefix}error: {message_for_cli(e, self.cli_flags)}", file=sys.stderr)
            return 2
        return 0 if status is None else int(status)
