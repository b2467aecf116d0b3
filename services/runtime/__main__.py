"""``python -m services.runtime package.module:WORKER --config-json '{...}'``: one worker process.

How Kubernetes and the tests start a worker; the local tree forks them from the zygote instead
(:func:`services.runtime.zygote_entry`). Exits with the worker's exit code.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from services.runtime._bootstrap import run
from services.runtime._config import WorkerConfig
from services.runtime._definition import load_definition


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m services.runtime", description=__doc__)
    ap.add_argument("definition", help="the WorkerDefinition to run, as package.module:ATTR")
    source = ap.add_mutually_exclusive_group(required=True)
    source.add_argument("--config-json", help="the WorkerConfig as a JSON object")
    source.add_argument("--config-file", type=Path, help="a file holding the WorkerConfig as JSON")
    args = ap.parse_args(argv)
    raw = args.config_json if args.config_json is not None else args.config_file.read_text()
    try:
        config = WorkerConfig.from_mapping(json.loads(raw))
        definition = load_definition(args.definition)
    except (ValueError, TypeError, ImportError, AttributeError) as exc:
        ap.error(str(exc))
    return run(definition, config)


if __name__ == "__main__":
    sys.exit(main())
