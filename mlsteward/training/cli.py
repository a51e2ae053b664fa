"""``mlsteward train``: flags and environment in, one JSON outcome line out, exit code per contracts §3."""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Sequence

from mlsteward.training import errors, outcome, settings


def main(argv: Sequence[str]) -> int:
    logging.basicConfig(
        level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    try:
        config = settings.from_args(argv, os.environ)
    except settings.SettingsError as error:
        print(f"mlsteward train: {error}", file=sys.stderr)
        document = outcome.build(reason="DataInvalid", message=str(error))
        outcome.emit(document, None, None)
        return errors.EXIT_BAD_INPUT
    from mlsteward.training import runner  # heavy imports only once the flags are sound

    document, code = runner.run(config)
    outcome.emit(document, config.output_json, config.termination_message_path)
    return code
