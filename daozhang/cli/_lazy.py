"""A click group whose subcommands live in other modules, loaded on use.

Lets each part of the product own its commands in its own file while the
user sees one `daozhang` tree; a heavy import (paho, psycopg) happens only
when its command runs.
"""

import importlib

import click


class LazyGroup(click.Group):
    """`table` maps a command name to ("module:attribute", "one-line help")."""

    def __init__(self, *args, table=None, **kwargs):
        click.Group.__init__(self, *args, **kwargs)
        self.table = dict(table or {})

    def list_commands(self, ctx):
        return sorted(set(self.table) | set(self.commands))

    def get_command(self, ctx, name):
        if name in self.commands:
            return self.commands[name]
        entry = self.table.get(name)
        if entry is None:
            return None
        module_name, attribute = entry[0].split(":")
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name == module_name:
                return None  # that part is not built yet
            raise
        return getattr(module, attribute)

    def format_commands(self, ctx, formatter):
        rows = []
        for name in self.list_commands(ctx):
            if name in self.table:
                rows.append((name, self.table[name][1]))
            else:
                rows.append((name, self.commands[name].get_short_help_str()))
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)


def lazy_group(name, help_text, table):
    return LazyGroup(name=name, help=help_text, table=table)
