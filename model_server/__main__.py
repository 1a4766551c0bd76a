"""Entry point: ``python -m model_server --model-dir DIR --name NAME [options]``."""

import os
import sys

from model_server.settings import parse_settings


def main() -> int:
    settings = parse_settings()

    # Several workers on few cores run faster with one BLAS thread each; numpy reads
    # these variables when it is first imported, which happens below.
    if settings.workers > 1:
        for variable in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
            os.environ.setdefault(variable, "1")

    from model_server.server import run

    return run(settings)


if __name__ == "__main__":
    sys.exit(main())
