"""`tonebridge emulator`: run the local TONE3000 API emulator in the foreground.

The first line on stdout is the base URL (e.g. http://127.0.0.1:54321); after it come
the "emails": `otp: <email> <code>` and `magic-link: <email> <url>`, one per line.
stderr says which dialect it speaks and the demo app's publishable key (the OAuth
client_id, registered at start).  Ctrl-C or SIGTERM stops it with exit status 0.
"""

import sys

import click

from tonebridge.cli.common import check_tcp_port
from tonecore.errors import UsageError

from .config import DIALECTS, EmulatorConfig
from .oauth import DEMO_CLIENT_ID


@click.command("emulator")
@click.option("--host", default="127.0.0.1", show_default=True, help="Interface to listen on.")
@click.option("--port", default=0, type=click.IntRange(0, 65535), show_default=True,
              help="API port (0: pick a free one).")
@click.option("--storage-port", default=0, type=click.IntRange(0, 65535), show_default=True,
              help="Port of the storage origin for --storage-redirect (0: any).")
@click.option("--token-ttl", default=3600, type=click.IntRange(1), show_default=True,
              help="Access token lifetime, seconds.")
@click.option("--refresh-ttl", default=EmulatorConfig.refresh_ttl, type=click.IntRange(1), show_default=True,
              help="Refresh token lifetime, seconds.")
@click.option("--no-rotate", is_flag=True, help="Keep the same refresh token on refresh.")
@click.option("--rate-limit", default=100, type=click.IntRange(0), show_default=True,
              help="Requests per minute per token or IP (0: off).")
@click.option("--no-range", is_flag=True, help="Ignore Range requests on downloads.")
@click.option("--storage-redirect", is_flag=True, help="Downloads redirect to presigned URLs on another origin.")
@click.option("--chunked", is_flag=True, help="Send downloads without Content-Length.")
@click.option("--cut-after", default=None, type=click.IntRange(0), help="Cut every download after N body bytes.")
@click.option("--delay-ms", default=0, type=click.IntRange(0), show_default=True, help="Latency added per request.")
@click.option("--fail-5xx", default=0, type=click.IntRange(0), show_default=True,
              help="Answer the next N requests with 503.")
@click.option("--seed", default=EmulatorConfig.seed, type=int, show_default=True, help="Catalogue seed.")
@click.option("--bench-files", is_flag=True, help="Add demo's tone 90 with ~2 MB, ~20 MB, ~4 MB and ~40 KB IRs (for benchmarks).")
@click.option("--many-models", default=0, type=click.IntRange(0, 100000), show_default=True,
              help="Add a public tone (91) of N tiny IRs that demo favorited (the pedal's library bound).")
@click.option("--tls-cert", type=click.Path(exists=True, dir_okay=False),
              help="Serve https with this certificate chain (PEM; its key too unless --tls-key).")
@click.option("--tls-key", type=click.Path(exists=True, dir_okay=False), help="The certificate's private key (PEM).")
@click.option("--tls-host", default="localhost", show_default=True, help="With --tls-cert: the name in the URLs.")
@click.option("--dialect", type=click.Choice(DIALECTS), default="current", show_default=True,
              help="Today's API (OAuth, snake_case, format, architecture) or the seed's v1 (OTP, camelCase).")
def emulator_command(host, port, storage_port, token_ttl, refresh_ttl, no_rotate, rate_limit, no_range,
                     storage_redirect, chunked, cut_after, delay_ms, fail_5xx, seed, bench_files, many_models, tls_cert,
                     tls_key, tls_host, dialect):
    """Run a local TONE3000 API emulator (prints its base URL first).

    Sign in as demo@example.com for tones and favorites; any other email is a new,
    empty user.  Codes and links are printed here and listed at /_emulator/outbox.
    """
    from .server import EmulatorServer  # uvicorn is only needed when serving

    config = EmulatorConfig(host=host, port=port, storage_port=storage_port, seed=seed, bench_files=bench_files,
                            token_ttl=token_ttl,
                            refresh_ttl=refresh_ttl, rotate_refresh=not no_rotate, rate_limit=rate_limit,
                            range_support=not no_range, storage_redirect=storage_redirect, chunked=chunked,
                            cut_after=cut_after, delay_ms=delay_ms, fail_5xx=fail_5xx, dialect=dialect)
    if tls_key and not tls_cert:
        raise click.UsageError("--tls-key needs --tls-cert")
    tls = (tls_cert, tls_key or tls_cert) if tls_cert else None
    try:  # a bad file or a busy port: one line naming it (click's error: the module also runs standalone)
        if tls:
            check_tls_files(*tls)
        check_tcp_port(host, port, "--port")
        check_tcp_port(host, storage_port, "--storage-port")
    except UsageError as error:
        raise click.UsageError(str(error)) from None
    try:
        server = EmulatorServer(config, tls=tls, tls_host=tls_host)
    except OSError as exc:
        raise click.ClickException("cannot listen on %s:%d: %s" % (host, port, exc.strerror or exc))
    if many_models:
        server.state.catalogue.add_many_models(many_models)
    sys.stdout.write(server.base_url + "\n")
    sys.stdout.flush()
    sys.stderr.write("emulator: %s dialect; the demo app's publishable key (client id) is %s\n"
                     % ("today's" if dialect == "current" else "the seed's v1", DEMO_CLIENT_ID))
    sys.stderr.flush()
    server.run_forever()


def check_tls_files(cert, key):
    """Refuse --tls-cert / --tls-key files that are not a PEM certificate chain and its
    private key, saying which file is wrong (not OpenSSL's "[SSL] PEM lib").

    Raises:
        UsageError: a file holds no PEM certificate or key, the key is not the
            certificate's, or OpenSSL refuses them for another reason.
    """
    import ssl

    if not _holds(cert, b"CERTIFICATE-----"):
        raise UsageError("%s is not a PEM certificate/key (--tls-cert)" % cert)
    if not _holds(key, b"PRIVATE KEY-----"):
        if key == cert:
            raise UsageError("%s holds no PEM private key: add it to the file, or give it with --tls-key" % cert)
        raise UsageError("%s is not a PEM private key (--tls-key)" % key)
    try:
        ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER).load_cert_chain(cert, key, password=lambda: b"")
    except ssl.SSLError as error:
        if error.reason == "KEY_VALUES_MISMATCH":
            raise UsageError("the key in %s is not the key of the certificate in %s" % (key, cert)) from None
        reason = (error.reason or str(error)).replace("_", " ").lower()
        raise UsageError("cannot serve https with %s and %s: %s (an encrypted key is not supported)"
                         % (cert, key, reason)) from None


def _holds(path, marker):
    """Whether the file at `path` has a PEM block whose BEGIN line ends with `marker`."""
    try:
        with open(path, "rb") as f:
            text = f.read(1024 * 1024)
    except OSError as error:
        raise UsageError("cannot read %s: %s" % (path, error.strerror or error)) from None
    return b"-----BEGIN " in text and marker in text
