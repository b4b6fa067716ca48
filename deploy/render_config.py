"""Render deploy/orthanc.json.template: each @NAME@ becomes the JSON value of LUNGSEG_R_NAME.

Values in the environment are JSON text (so strings arrive quoted); the result is checked to be
valid JSON and written with mode 0600 (it holds passwords).

Usage: render_config.py TEMPLATE OUTPUT
"""

import json
import os
import re
import sys


def render(template: str, env: dict) -> str:
    """Replace every ``@NAME@`` with ``env['LUNGSEG_R_NAME']`` (JSON text) and validate."""

    def value(match: re.Match) -> str:
        key = "LUNGSEG_R_" + match.group(1)
        if key not in env:
            raise SystemExit(f"render_config: no value for @{match.group(1)}@ ({key})")
        json.loads(env[key])
        return env[key]

    text = re.sub(r"@([A-Z_]+)@", value, template)
    json.loads(text)
    return text


def main() -> int:
    """Render TEMPLATE to OUTPUT."""
    if len(sys.argv) != 3:
        print(__doc__, file=sys.stderr)
        return 2
    with open(sys.argv[1], encoding="utf-8") as f:
        text = render(f.read(), dict(os.environ))
    fd = os.open(sys.argv[2], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
