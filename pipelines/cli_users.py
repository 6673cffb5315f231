"""The `lgd user` and `lgd audit` sub-commands: accounts for `lgd serve`, and who looked at what."""

from __future__ import annotations

import argparse
import getpass
import json
import os
import sys
from pathlib import Path

from pipelines.cli_common import add_archive_option, date_arg, nhs_number_arg
from pipelines.errors import ExitCode, LgdError
from pipelines.search import open_catalogue
from pipelines.service import accounts, audit
from pipelines.service.access import Role

MAX_PASSWORD_FILE = 4096
ROLES = [r.value for r in Role if r is not Role.owner]


def register(sub, archive_of) -> None:
    u = sub.add_parser(
        "user", help="accounts for lgd serve: add, list, disable, passwords, API tokens",
        description="People sign in to `lgd serve` as themselves, with a role: a clerk searches, views, digitises "
        "and may send more pages; a clinician views and decides what is left out (an omission of a page lgd would "
        "send needs a second clinician); a practice admin views, digitises, manages accounts, maintains the archive "
        "and builds packs; an auditor reads the audit log only. The first account of an archive can be added by whoever may open the archive's folder; "
        "after that, say who you are with --as NAME (or LGD_USER).",
        epilog="""examples:
  lgd user add j.smith --role practice-admin --password-file /root/js.pw
  lgd user add dr.patel --role clinician --as j.smith          # asks for the password twice
  lgd user token reports-script --as j.smith                   # prints a token once, for Authorization: Bearer
  lgd user disable dr.patel --as j.smith""",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    actions = u.add_subparsers(dest="user_command", metavar="ACTION", required=True)

    common = add_archive_option

    add = actions.add_parser("add", help="add an account with a role")
    add.add_argument("name", help="user name: 1-64 of a-z 0-9 . _ - @ (e.g. j.smith)")
    add.add_argument("--role", required=True, choices=ROLES)
    add.add_argument("--password-file", type=Path, metavar="F",
                     help="read the password from the first line of F (otherwise asked for on the terminal)")
    add.add_argument("--no-password", action="store_true", help="no password sign-in (API tokens only)")
    common(add)
    add.set_defaults(run=lambda args, out: _add(args, out, archive_of(args.archive)))

    ls = actions.add_parser("list", help="list accounts, roles and whether each is enabled")
    common(ls)
    ls.add_argument("--json", action="store_true")
    ls.set_defaults(run=lambda args, out: _list(args, out, archive_of(args.archive)))

    for name, disabled, text in (("disable", True, "stop an account signing in; its tokens stop working for good"),
                                 ("enable", False, "let a disabled account sign in again (with new tokens)")):
        p = actions.add_parser(name, help=text)
        p.add_argument("name")
        common(p)
        p.set_defaults(run=lambda args, out, d=disabled: _change(args, out, archive_of(args.archive), disabled=d))

    pw = actions.add_parser("passwd", help="set an account's password")
    pw.add_argument("name")
    pw.add_argument("--password-file", type=Path, metavar="F", help="read it from the first line of F")
    common(pw)
    pw.set_defaults(run=lambda args, out: _change(args, out, archive_of(args.archive), password=True))

    tk = actions.add_parser("token", help="make an API token for scripts (printed once, stored hashed)")
    tk.add_argument("name")
    common(tk)
    tk.set_defaults(run=lambda args, out: _token(args, out, archive_of(args.archive)))

    a = sub.add_parser(
        "audit", help="who opened which patient's notes, searched, decided, packed or signed in",
        description="Print the archive's audit log: every patient view, page view, search, decision, pack, "
        "sign-in and account change, with the user, their role, the client address and what was seen. "
        "Reading the log is itself written to it. Needs an auditor (or an archive without accounts).",
        epilog="""examples:
  lgd audit --patient 9434765919 --as a.auditor
  lgd audit --user dr.patel --from 2026-11 --to 2026-12 --csv > audit.csv""",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    common(a)
    a.add_argument("--patient", type=nhs_number_arg, metavar="NHS")
    a.add_argument("--user", metavar="NAME", help="only this user's actions")
    a.add_argument("--from", dest="date_from", type=date_arg("--from", last=False), metavar="DATE")
    a.add_argument("--to", dest="date_to", type=date_arg("--to", last=True), metavar="DATE")
    a.add_argument("--limit", type=int, default=audit.MAX_EVENTS, metavar="N", help="the most recent N events")
    shape = a.add_mutually_exclusive_group()
    shape.add_argument("--json", action="store_true")
    shape.add_argument("--csv", action="store_true", help="CSV for a spreadsheet (formula-safe)")
    a.set_defaults(run=lambda args, out: _audit(args, out, archive_of(args.archive)))


def _as(args: argparse.Namespace) -> str | None:
    return args.as_user or os.environ.get("LGD_USER") or None


def _password(args: argparse.Namespace) -> str:
    if args.password_file is not None:
        try:
            with open(args.password_file, "rb") as f:
                data = f.read(MAX_PASSWORD_FILE + 1)
        except OSError as e:
            raise LgdError(f"cannot read {args.password_file}: {e.strerror}") from None
        if len(data) > MAX_PASSWORD_FILE:
            raise LgdError(f"{args.password_file} is over {MAX_PASSWORD_FILE} bytes; it should hold one password")
        lines = data.decode("utf-8", errors="replace").splitlines()
        return lines[0] if lines else ""
    if not sys.stdin.isatty():
        raise LgdError("give --password-file F, or run this on a terminal to be asked for the password")
    first = getpass.getpass("new password: ")
    if getpass.getpass("again: ") != first:
        raise LgdError("the two passwords differ; nothing was changed")
    return first


def _add(args: argparse.Namespace, out, archive: Path) -> ExitCode:
    password = None if args.no_password else _password(args)
    with open_catalogue(archive) as catalogue:
        who = accounts.shell_who(catalogue, _as(args))
        added = accounts.add_user(catalogue, who, args.name, args.role, password)
    print(f"added {added.name} ({added.role.value})", file=out)
    return ExitCode.ok


def _list(args: argparse.Namespace, out, archive: Path) -> ExitCode:
    with open_catalogue(archive) as catalogue:
        rows = accounts.users(catalogue, accounts.shell_who(catalogue, _as(args)))
    if args.json:
        json.dump({"users": [{"name": r.name, "role": r.role, "disabled": r.disabled, "password": bool(r.password_hash),
                              "created": r.created.isoformat()} for r in rows]}, out, indent=2)
        out.write("\n")
        return ExitCode.ok
    for r in rows:
        print(f"{r.name:24} {r.role:15} {'disabled' if r.disabled else 'enabled':9} "
              f"{'password' if r.password_hash else 'tokens only'}", file=out)
    if not rows:
        print("no accounts yet: lgd user add NAME --role practice-admin", file=out)
    return ExitCode.ok


def _change(args: argparse.Namespace, out, archive: Path, *, disabled: bool | None = None,
            password: bool = False) -> ExitCode:
    new = _password(args) if password else None
    with open_catalogue(archive) as catalogue:
        accounts.change(catalogue, accounts.shell_who(catalogue, _as(args)), args.name, password=new, disabled=disabled)
    print(f"{args.name}: {'password changed' if password else 'disabled' if disabled else 'enabled'}", file=out)
    return ExitCode.ok


def _token(args: argparse.Namespace, out, archive: Path) -> ExitCode:
    with open_catalogue(archive) as catalogue:
        token = accounts.issue_token(catalogue, accounts.shell_who(catalogue, _as(args)), args.name)
    print(token, file=out)
    print("this token is shown once; send it as 'Authorization: Bearer TOKEN'", file=sys.stderr)
    return ExitCode.ok


def _audit(args: argparse.Namespace, out, archive: Path) -> ExitCode:
    with open_catalogue(archive) as catalogue:
        who = accounts.shell_who(catalogue, _as(args))
        found = audit.events(catalogue, who, nhs_number=args.patient, user=args.user, date_from=args.date_from,
                             date_to=args.date_to, limit=args.limit)
    if args.json:
        json.dump({"events": found}, out, indent=2)
        out.write("\n")
    elif args.csv:
        out.write(audit.as_csv(found))
    else:
        for e in found:
            detail = ", ".join(f"{k}={v}" for k, v in sorted(e["detail"].items()) if v is not None)
            print(f"{e['time'][:19]}  {e['user']:16} {e['role'] or '-':14} {e['action']:14} "
                  f"{e['nhs_number'] or '-':10}  {e['client'] or '-':10} {detail}", file=out)
        print(f"{len(found)} events", file=sys.stderr)
    return ExitCode.ok
