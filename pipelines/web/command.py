"""`lgd serve`: run the web service on an archive (uvicorn), on localhost unless told otherwise."""

from __future__ import annotations

import argparse
import ipaddress
import os
import sys
from pathlib import Path

from pipelines.cli_common import add_archive_option
from pipelines.errors import ExitCode, LgdError

from .oidc import OidcConfig

DEFAULT_PORT = 8800


def register(sub, archive_of) -> None:
    s = sub.add_parser(
        "serve", help="the web service: sign in, find patients, search, view pages, audit",
        description="Serve the archive to browsers and scripts: pages to sign in, find a patient, search, view a "
        "page with its entries and evidence, and read the audit (at /), and a JSON API under /api/v1/ (OpenAPI at "
        "/api/v1/openapi.json), for signed-in users (lgd user add). It listens on localhost: in production put it "
        "behind a TLS reverse proxy on the same machine (the README shows one), which makes its cookies Secure.",
        epilog="""examples:
  lgd serve --archive /srv/lgd-archive                 # http://127.0.0.1:8800/
  lgd serve --port 9000 --forwarded-allow-ips 127.0.0.1  # behind nginx or caddy on this machine""",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    add_archive_option(s)
    s.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    s.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"port (default {DEFAULT_PORT})")
    s.add_argument("--forwarded-allow-ips", default="127.0.0.1", metavar="IPS",
                   help="proxies whose X-Forwarded-For/-Proto are believed (default: 127.0.0.1)")
    s.add_argument("--allow-remote", action="store_true",
                   help="listen on a non-loopback address (patient data without TLS crosses the network: "
                        "only on a trusted segment or with TLS in front)")
    s.add_argument("--queue", metavar="URL", default=os.environ.get("LGD_QUEUE"),
                   help="the digitising queue's Redis broker (redis://HOST:6379/0): /work shows its queued, running "
                        "and finished documents, pages per hour and workers (default: $LGD_QUEUE; without it /work "
                        "shows the quarantine and recent digitise runs)")
    sso = s.add_argument_group("single sign-on (OpenID Connect: NHS CIS2 or the practice's identity provider)")
    sso.add_argument("--oidc-issuer", metavar="URL", default=os.environ.get("LGD_OIDC_ISSUER"),
                     help="the provider's issuer URL (its /.well-known/openid-configuration is read); "
                          "adds 'sign in with ...' at /login/oidc (default: $LGD_OIDC_ISSUER)")
    sso.add_argument("--oidc-client-id", metavar="ID", default=os.environ.get("LGD_OIDC_CLIENT_ID"),
                     help="this service's client id at the provider (default: $LGD_OIDC_CLIENT_ID)")
    sso.add_argument("--oidc-client-secret-file", type=Path, metavar="F",
                     help="the client secret, first line of F (a confidential client; without it PKCE alone)")
    sso.add_argument("--oidc-claim", default="preferred_username", metavar="CLAIM",
                     help="the ID-token claim that names the lgd account (default: preferred_username); "
                          "the account's role, not the provider, decides what the person may do")
    s.set_defaults(run=lambda args, out: serve(args, archive_of(args.archive)))


def oidc_config(args: argparse.Namespace) -> OidcConfig | None:
    if not args.oidc_issuer and not args.oidc_client_id:
        return None
    if not (args.oidc_issuer and args.oidc_client_id):
        raise LgdError("single sign-on needs both --oidc-issuer and --oidc-client-id")
    secret = None
    if args.oidc_client_secret_file is not None:
        try:
            with open(args.oidc_client_secret_file, "rb") as f:
                data = f.read(4097)
        except OSError as e:
            raise LgdError(f"cannot read {args.oidc_client_secret_file}: {e.strerror}") from None
        if len(data) > 4096:
            raise LgdError(f"{args.oidc_client_secret_file} is over 4096 bytes; it should hold one client secret")
        secret = (data.decode("utf-8", errors="replace").splitlines() or [""])[0].strip() or None
    return OidcConfig(args.oidc_issuer, args.oidc_client_id, secret, args.oidc_claim)


def serve(args: argparse.Namespace, archive: Path) -> ExitCode:
    import uvicorn

    from .app import create_app

    try:
        loopback = ipaddress.ip_address(args.host).is_loopback
    except ValueError:
        loopback = args.host == "localhost"
    if not loopback and not args.allow_remote:
        raise LgdError(f"--host {args.host} is not this machine only; add --allow-remote to serve it to the network "
                       "(put a TLS reverse proxy in front)", ExitCode.usage, "remote_refused")
    if not 1 <= args.port <= 65535:
        raise LgdError(f"--port {args.port} is not a port number")
    queue = None
    if args.queue:
        from pipelines.queue.tracker import check_url

        queue = check_url(args.queue)
    app = create_app(archive, oidc_config(args), queue)
    print(f"lgd serve: {archive} at http://{args.host}:{args.port}/ (Ctrl-C stops)", file=sys.stderr)
    uvicorn.run(app, host=args.host, port=args.port, proxy_headers=True,
                forwarded_allow_ips=args.forwarded_allow_ips, log_level="warning", server_header=False)
    return ExitCode.ok
