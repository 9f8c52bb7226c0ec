"""`python -m shipyard.serving.launch serve <bento> ...`: BentoML's CLI, logging JSON lines.

The `bentoml serve` process (the arbiter that starts and watches the workers) logs through
BentoML's logging configuration; setting that up first makes its lines JSON like the
workers', so every line of the service's log parses.
"""

from __future__ import annotations


def main(argv: list[str] | None = None) -> None:
    from shipyard.serving.telemetry import configure_logging

    configure_logging()
    from bentoml_cli.cli import cli

    cli(args=argv, prog_name="bentoml")


if __name__ == "__main__":
    main()
