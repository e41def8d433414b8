"""`flask usage report` and `flask users set-quota`: what users spent, and their quotas."""
import csv
import sys

import click
from flask import current_app
from flask.cli import AppGroup

from .errors import ApiError
from .quota_text import parse_quota
from .services import usage, users

usage_cli = AppGroup("usage", help="What the models cost, per user, day, model or conversation.")
COLUMNS = ("prompt_tokens", "completion_tokens", "total_tokens", "messages")
DAY = click.DateTime(formats=["%Y-%m-%d"])


@usage_cli.command("report")
@click.option("--from", "first", type=DAY, help="First day (UTC), inclusive; default 29 "
                                                "days before --to.")
@click.option("--to", "last", type=DAY, help="Last day (UTC), inclusive; default today.")
@click.option("--user", "name", help="Only this account's usage.")
@click.option("--group-by", type=click.Choice(usage.GROUPS), default="user", show_default=True)
@click.option("--format", "output", type=click.Choice(["table", "csv"]), default="table",
              show_default=True)
def report(first, last, name, group_by, output):
    """Total the tokens spent from --from to --to."""
    user_id = None if name is None else account(name).id
    try:
        first, last = usage.date_range(first and first.date(), last and last.date())
    except ApiError as error:
        raise click.ClickException(f"--from: {' '.join(error.details['from'])}") from None
    groups, total = usage.report(group_by, first, last, user_id)
    if output == "csv":
        writer = csv.writer(sys.stdout, lineterminator="\n")
        writer.writerow((group_by, *COLUMNS))
        writer.writerows((spreadsheet_safe(group["key"]), *(group[column] for column in COLUMNS))
                         for group in groups)
        return
    click.echo(f"usage from {first} to {last}, by {group_by}")
    width = max([len(group_by), 5] + [len(str(group["key"])) for group in groups])
    click.echo(f"{group_by:<{width}}  " + "  ".join(f"{column:>17}" for column in COLUMNS))
    for group in groups + [{"key": "total", **total}]:
        click.echo(f"{str(group['key']):<{width}}  "
                   + "  ".join(f"{group[column]:>17,}" for column in COLUMNS))


def spreadsheet_safe(cell):
    """A cell a spreadsheet will not take for a formula (a username may start with `-`)."""
    text = "" if cell is None else str(cell)
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


def account(name):
    try:
        return users.get_by_username(name)
    except ApiError:
        raise click.ClickException(f"no user named {name!r}") from None


@click.command("set-quota")
@click.argument("name")
@click.argument("quota")
def set_quota(name, quota):
    """Set an account's token quota: `<tokens> per day|week|month`, `none` (no quota) or
    `default` (TOKEN_QUOTA's)."""
    user = account(name)
    if quota.strip().lower() == "default":
        chosen = None
    else:
        try:
            chosen = parse_quota(quota) or "none"
        except ValueError as error:
            raise click.ClickException(str(error)) from None
    users.set_token_quota(user, chosen)
    effective = chosen if chosen is not None else (
        f"default (TOKEN_QUOTA: {current_app.config['TOKEN_QUOTA'] or 'none'})")
    click.echo(f"token quota of {user.username}: {effective}")
