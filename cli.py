"""The ``ledger`` command: a thin click group; the commands live in ``ledger/commands``."""

from __future__ import annotations

import click

from ledger import __version__
from ledger.commands import core, flows, reconcile
from ledger.commands import reports as report_commands
from ledger.commands.schedule import schedule_cmd


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="ledger")
def main():
    """Custody ledger for P2P lending: post, reconcile, audit.

    Every command takes --db URL (or $LEDGER_DATABASE_URL; default
    sqlite:///ledger.db). Start with `ledger init`.
    """


for command in [*core.COMMANDS, *flows.COMMANDS, schedule_cmd, *reconcile.COMMANDS,
                *report_commands.COMMANDS]:
    main.add_command(command)


if __name__ == "__main__":
    main()
