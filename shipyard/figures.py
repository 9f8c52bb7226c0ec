"""Report figures: a matplotlib figure written once as PNG, for a file and an inline image."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any


def save_png(figure: Any, path: Path, dpi: int = 90) -> bytes:
    """Lay the figure out, write it to `path` (folders created) and close it; its PNG bytes,
    for a data: URL in a Prefect artifact or an HTML page."""
    import matplotlib.pyplot as plt

    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=dpi)
    plt.close(figure)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(buffer.getvalue())
    return buffer.getvalue()
