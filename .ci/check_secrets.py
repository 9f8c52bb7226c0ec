"""The secret scan of `make test`: detect-secrets over every tracked file, against the baseline.

`.secrets.baseline` lists what the scan finds today, each entry audited (`is_secret: false`:
test keys, `${secret:...}` references, example URLs). The scan runs on a copy of the baseline
(line numbers move as files change); any finding not audited false fails the gate, with where
it is. To accept a false positive: `detect-secrets scan --baseline .secrets.baseline`, then
`detect-secrets audit .secrets.baseline` and answer for it.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BASELINE = ROOT / ".secrets.baseline"


def main() -> int:
    scanner = Path(sys.executable).with_name("detect-secrets")
    with tempfile.TemporaryDirectory() as scratch:
        copy = Path(scratch) / "baseline.json"
        shutil.copy(BASELINE, copy)
        subprocess.run([str(scanner), "scan", "--baseline", str(copy)], cwd=ROOT, check=True)
        results = json.loads(copy.read_text())["results"]
    found = [
        f"{path}:{item['line_number']}: {item['type']}"
        for path, items in sorted(results.items())
        for item in items
        if item.get("is_secret") is not False
    ]
    audited = sum(len(items) for items in results.values()) - len(found)
    if found:
        print(f"secret scan: {len(found)} finding(s) not audited as false positives:")
        print("\n".join(f"  {line}" for line in found))
        print("  = hint: remove the secret (use ${secret:NAME}), or audit it in .secrets.baseline")
        return 1
    print(f"secret scan: no secrets ({audited} audited false positives)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
