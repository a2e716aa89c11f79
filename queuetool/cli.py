"""Command line: parses options, calls one library function per verb, prints.

No queue logic lives here; every verb has a library function (see docs/api.md).
"""
from __future__ import annotations

import functools
import json
import sys
from pathlib import Path
from typing import Any, Callable

import click

from . import output
from .model import QueuedMessage
from .scan import default_jobs, scan
from .spools import SpoolError, open_spool

EXIT_OK, EXIT_ERROR, EXIT_USAGE, EXIT_UNREADABLE, EXIT_REFUSED = 0, 1, 2, 3, 4


class QueuetoolError(click.ClickException):
    """One line on stderr, exit 1."""

    exit_code = EXIT_ERROR

    def show(self, file=None) -> None:  # one line, no "Error:" decoration noise
        click.echo(f"queuetool: {self.format_message()}", err=True)


def fail_cleanly(func: Callable) -> Callable:
    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except (SpoolError, OSError, ValueError) as exc:
            raise QueuetoolError(str(exc)) from None

    return wrapper


def spool_argument(func: Callable) -> Callable:
    func = click.option("--mta", type=click.Choice(["postfix", "exim", "sendmail", "smtpsvc", "exchange", "eml"]),
                        help="Force a reader instead of detecting the format.")(func)
    func = click.argument("spool", type=click.Path(exists=True, file_okay=False, path_type=Path))(func)
    return func


def format_option(default: str = "table") -> Callable:
    return click.option("--format", "fmt", type=click.Choice(output.FORMATS), default=default,
                        show_default=True, help="Output format.")


def progress_wanted(quiet: bool = False) -> bool:
    return not quiet and sys.stderr.isatty()


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="queuetool")
def main() -> None:
    """Mail-queue forensics and safe cleanup for compromised mail servers.

    \b
    Examples:
      queuetool scan /var/spool/postfix
      queuetool scan /mnt/evidence/server-c --format jsonl > records.jsonl
      queuetool show /var/spool/exim4 1qDO9M-0003B3-2p
    """


@main.command("scan")
@spool_argument
@format_option()
@click.option("--jobs", "-j", type=int, default=None, help="Worker processes [default: all cores].")
@click.option("--full", is_flag=True, help="Read whole messages, not just headers.")
@click.option("--unordered", is_flag=True, help="Print records as workers finish (faster with --jobs).")
@click.option("--headers", "with_headers", is_flag=True, help="Include decoded headers in json/jsonl output.")
@click.option("--quiet", "-q", is_flag=True, help="No progress bar.")
@fail_cleanly
def scan_command(spool: Path, mta: str | None, fmt: str, jobs: int | None, full: bool,
                 unordered: bool, with_headers: bool, quiet: bool) -> None:
    """List every queued message unit as one record.

    Exits 3 when the scan completed but some units were unreadable (their records
    carry `error`).

    \b
    Examples:
      queuetool scan corpora/postfix
      queuetool scan corpora --format jsonl --jobs 2
    """
    errors = 0

    def counted(records):
        nonlocal errors
        for record in records:
            if record.error:
                errors += 1
            yield record

    records = scan(spool, mta=mta, full=full, jobs=jobs or default_jobs(), ordered=not unordered,
                   keep_headers=with_headers, progress=progress_wanted(quiet))
    out = sys.stdout
    output.write_records(counted(records), fmt, out, with_headers=with_headers)
    if errors:
        click.echo(f"queuetool: {errors} unit(s) could not be read completely; see their 'error' field",
                   err=True)
        sys.exit(EXIT_UNREADABLE)


def render_message(record: QueuedMessage) -> str:
    """Human view of one record: envelope, state, evidence, headers, rule hits."""
    lines = []
    data = record.to_dict()
    for key in ("mta", "id", "queue", "spool", "files", "arrival", "size", "sender", "recipients",
                "done_recipients", "client_ip", "client_name", "helo", "auth_user", "auth_evidence",
                "status", "score", "verdict", "campaign", "error"):
        value = data[key]
        if key == "sender" and value == "":
            value = "<> (null sender)"
        if isinstance(value, list):
            value = ", ".join(map(str, value)) if value else "-"
        lines.append(f"{key + ':':17}{'-' if value is None else value}")
    for hit in record.rules:
        lines.append(f"rule: {hit.rule} ({hit.points:+g}) {hit.why}")
    if record.details:
        lines.append("details:")
        for key, value in record.details.items():
            lines.append(f"  {key}: {json.dumps(value, ensure_ascii=False, default=str)}")
    if record.headers:
        lines.append("headers:")
        lines.extend(f"  {name}: {value}" for name, value in record.headers)
    return "\n".join(lines) + "\n"


@main.command("show")
@spool_argument
@click.argument("message_id")
@click.option("--raw", is_flag=True, help="Write the stored message bytes (RFC 5322) to stdout.")
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True)
@fail_cleanly
def show_command(spool: Path, mta: str | None, message_id: str, raw: bool, fmt: str) -> None:
    """Show one message: envelope, headers, evidence; --raw for its bytes.

    \b
    Examples:
      queuetool show corpora/postfix 4SVLCh0sf8z9HdB
      queuetool show corpora/exim 1qDO9M-0003B3-2p --raw > message.eml
    """
    opened = open_spool(spool, mta=mta)
    if message_id not in opened:
        raise QueuetoolError(f"no queued message with id {message_id!r} in {spool}; list ids with 'queuetool scan'")
    if raw:
        sys.stdout.buffer.write(opened.get_bytes(message_id))
        return
    record = opened.get(message_id)
    if fmt == "json":
        click.echo(json.dumps(record.to_dict(with_headers=True), ensure_ascii=False, indent=2))
    else:
        click.echo(render_message(record), nl=False)
    if record.error:
        sys.exit(EXIT_UNREADABLE)


@main.command("demo")
@click.argument("corpora", type=click.Path(exists=True, file_okay=False, path_type=Path))
@fail_cleanly
def demo_command(corpora: Path) -> None:
    """Demo incident scan over the bundled corpora (what `python3 dev.py demo` runs)."""
    from .demo import run_demo

    run_demo(corpora, sys.stdout)


@main.command("diagnose")
@spool_argument
@click.option("--log", "logs", multiple=True, type=click.Path(exists=True, path_type=Path),
              help="Mail, protocol, W3C or event log (file or directory); repeatable.")
@click.option("--local-domain", "local_domains", multiple=True, help="A domain this server accepts; repeatable.")
@click.option("--config", "config_path", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="queuetool.toml with the server's domains.")
@click.option("--format", "fmt", type=click.Choice(["table", "json", "jsonl"]), default="table",
              show_default=True, help="Output format.")
@click.option("--jobs", "-j", type=int, default=None, help="Worker processes [default: all cores].")
@fail_cleanly
def diagnose_command(spool: Path, mta: str | None, logs: tuple[Path, ...], local_domains: tuple[str, ...],
                     config_path: Path | None, fmt: str, jobs: int | None) -> None:
    """KB 895853's relay troubleshooting walk: NDR codes, block lists, stuck mail, events.

    Prints findings (most severe first), each with evidence, cause, what to check
    (confirm), remedy and references. JSON: {"findings": [...], "inputs": {...}}.

    \b
    Examples:
      queuetool diagnose corpora/postfix/spool --local-domain example.com
      queuetool diagnose /mnt/server-c --log AppEvent.csv --format json
    """
    from .diagnose import diagnose, render_text, settings_for

    result = diagnose(spool, logs=logs, settings=settings_for(local_domains, config_path), mta=mta,
                      jobs=jobs or default_jobs())
    if fmt == "json":
        click.echo(json.dumps(result.to_dict(), ensure_ascii=False, indent=2, default=str))
    elif fmt == "jsonl":
        for finding in result.findings:
            click.echo(output.to_json_line(finding.to_dict()))
    else:
        click.echo(render_text(result), nl=False)


if __name__ == "__main__":
    main()
