"""Where the commands write: messages and progress to stderr, results to stdout, files whole or not
at all."""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from rich.console import Console

console = Console(stderr=True, soft_wrap=True)
"""Progress, notes and errors: stderr, so stdout stays the command's result."""
stdout = Console(soft_wrap=True)


def write_json_lines(path: Path, records: Iterable[dict[str, Any]]) -> int:
    """Write all lines or none: a temporary file in the same folder, renamed into place."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    count = 0
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as stream:
            for record in records:
                stream.write(json.dumps(record, ensure_ascii=False) + "\n")
                count += 1
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return count
