"""`flask users ...`: account administration for operators."""
import sys

import click
from flask import current_app
from flask.cli import AppGroup
from marshmallow import ValidationError

from .cli_usage import account, set_quota, usage_cli
from .errors import ApiError
from .schemas.auth import RegisterSchema
from .services import account_deletion, users
from .texts import DEFAULT_LANGUAGE

users_cli = AppGroup("users", help="Manage user accounts.")


def read_password(from_stdin):
    if from_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    return click.prompt("Password", hide_input=True, confirmation_prompt=True)


def valid_password(password):
    field = RegisterSchema().fields["password"]
    try:
        field.deserialize(password)
    except ValidationError as error:
        raise click.ClickException(f"password: {' '.join(error.messages)}") from None
    return password


@users_cli.command("create")
@click.argument("name")
@click.option("--email", required=True)
@click.option("--admin", is_flag=True, help="Give the account the admin role.")
@click.option("--password-stdin", is_flag=True, help="Read the password from standard input.")
def create(name, email, admin, password_stdin):
    """Create an account."""
    password = read_password(password_stdin)
    try:
        fields = RegisterSchema().load({"username": name, "email": email, "password": password})
    except ValidationError as error:
        problems = "; ".join(f"{field}: {' '.join(msgs)}" for field, msgs in error.messages.items())
        raise click.ClickException(problems) from None
    try:
        user = users.create_user(**fields, role="admin" if admin else "user",
                                 language=DEFAULT_LANGUAGE)
    except ApiError as error:
        problems = "; ".join(f"{field}: {' '.join(msgs)}" for field, msgs in error.details.items())
        raise click.ClickException(problems) from None
    click.echo(f"created user {user.username} (id {user.id}, role {user.role})")


@users_cli.command("list")
def list_accounts():
    """List every account."""
    click.echo(f"{'id':>5}  {'username':<32}  {'email':<40}  {'role':<5}  {'active':<6}  created")
    for user in users.list_users():
        click.echo(f"{user.id:>5}  {user.username:<32}  {user.email:<40}  {user.role:<5}  "
                   f"{'yes' if user.is_active else 'no':<6}  {user.created_at:%Y-%m-%d %H:%M}")


@users_cli.command("set-password")
@click.argument("name")
@click.option("--password-stdin", is_flag=True, help="Read the password from standard input.")
def set_password(name, password_stdin):
    """Set an account's password: every token of the account ends."""
    user = account(name)
    users.set_password(user, valid_password(read_password(password_stdin)))
    click.echo(f"password of {user.username} changed")


@users_cli.command("deactivate")
@click.argument("name")
def deactivate(name):
    """Deactivate an account: its tokens stop working at once (and for good) and it cannot
    log in."""
    user = account(name)
    users.set_active(user, False)
    click.echo(f"{user.username} deactivated")


@users_cli.command("activate")
@click.argument("name")
def activate(name):
    """Reactivate an account."""
    user = account(name)
    users.set_active(user, True)
    click.echo(f"{user.username} activated")


@users_cli.command("delete")
@click.argument("name")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
def delete(name, yes):
    """Delete an account and everything it owns (its answers being written are stopped)."""
    user = account(name)
    if not yes:
        click.confirm(f"Delete {user.username} and all of their conversations?", abort=True)
    account_deletion.delete_account(user, current_app.extensions["chatapi.answers"])
    click.echo(f"{name} deleted")


def init_app(app):
    users_cli.add_command(set_quota)
    app.cli.add_command(users_cli)
    app.cli.add_command(usage_cli)
