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
from .scan import default_jobs, scan, tune_gc_for_scanning
from .spools import SpoolError, open_spool

EXIT_OK, EXIT_ERROR, EXIT_USAGE, EXIT_UNREADABLE, EXIT_REFUSED = 0, 1, 2, 3, 4


class QueuetoolError(click.ClickException):
    """One line on stderr, exit 1."""

    exit_code = EXIT_ERROR

    def show(self, file=None) -> None:  # one line, no "Error:" decoration noise
        click.echo(f"queuetool: {self.format_message()}", err=True)


def global_flag(name: str) -> bool:
    """The group's --quiet/--verbose, seen from inside any verb (False outside a click context)."""
    ctx = click.get_current_context(silent=True)
    return bool(ctx and isinstance(ctx.find_root().obj, dict) and ctx.find_root().obj.get(name))


def note(message: str) -> None:
    """An informational line on stderr (not an error); `queuetool --quiet` drops it."""
    if not global_flag("quiet"):
        click.echo(f"queuetool: {message}", err=True)


def fail_cleanly(func: Callable) -> Callable:
    """Expected failures (bad input, unreadable file) become one line on stderr, exit 1.

    `queuetool --verbose` prints the traceback first. A closed stdout (`| head`) ends quietly.
    """
    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except BrokenPipeError:
            stop_writing_to_closed_stdout()
            sys.exit(EXIT_ERROR)
        except (SpoolError, OSError, ValueError) as exc:
            raise one_line_error(exc) from None

    return wrapper


def one_line_error(exc: Exception) -> QueuetoolError:
    """The error as one line for the user; with `queuetool --verbose` the traceback first."""
    if global_flag("verbose"):
        import traceback

        traceback.print_exception(exc, file=sys.stderr)
    return QueuetoolError(str(exc))


def stop_writing_to_closed_stdout() -> None:
    """After EPIPE, point stdout at /dev/null so the interpreter's final flush stays silent."""
    import os

    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError, AttributeError):
        pass  # not a real file descriptor (e.g. click's test runner)


def spool_argument(func: Callable) -> Callable:
    func = click.option("--mta", type=click.Choice(["postfix", "exim", "sendmail", "smtpsvc", "exchange", "eml"]),
                        help="Force a reader instead of detecting the format.")(func)
    func = click.argument("spool", type=click.Path(exists=True, file_okay=False, path_type=Path))(func)
    return func


def format_option(default: str = "table") -> Callable:
    return click.option("--format", "fmt", type=click.Choice(output.FORMATS), default=default,
                        show_default=True, help="Output format.")


def log_options(func: Callable) -> Callable:
    """`--log FILE` (repeatable; format detected from content) for every verb that reads a spool."""
    return click.option("--log", "logs", multiple=True, type=click.Path(exists=True, path_type=Path),
                        help="Mail, protocol, W3C or Windows event log (file or directory; .gz ok); "
                             "repeatable.")(func)


jobs_option = click.option("--jobs", "-j", type=int, default=None,
                           help="Worker processes [default: all cores].")
no_logs_below_option = click.option(
    "--no-logs-below", is_flag=True,
    help="Do not read the logs found inside SPOOL when it is a copied server tree (read by default).")


def progress_wanted(quiet: bool = False) -> bool:
    """Progress bars go to stderr, only when it is a terminal and neither -q flag is given."""
    return not quiet and not global_flag("quiet") and sys.stderr.isatty()


def domain_options(func: Callable) -> Callable:
    """--local-domain/--relay-domain/--shared-domain (repeatable) and --config, as one `settings`.

    With no domains given they are inferred from SPOOL and the guess is printed on stderr
    (verdicts then carry an `inferred_domains` rule hit). Needs the `spool` argument.
    """
    options = [
        click.option("--local-domain", "local_domains", multiple=True, metavar="D",
                     help="A domain delivered here; repeatable."),
        click.option("--relay-domain", "relay_domains", multiple=True, metavar="D",
                     help="A domain accepted and relayed on (not local); repeatable."),
        click.option("--shared-domain", "shared_domains", multiple=True, metavar="D",
                     help="A domain shared with another server; repeatable."),
        click.option("--config", "config_path", type=click.Path(exists=True, dir_okay=False, path_type=Path),
                     help="queuetool.toml with domains, rule weights and thresholds (docs/rules.md)."),
    ]

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        from .analysis import infer_settings
        from .config import load_settings

        try:
            settings = load_settings(kwargs.pop("config_path"), local_domains=kwargs.pop("local_domains"),
                                     relay_domains=kwargs.pop("relay_domains"),
                                     shared_domains=kwargs.pop("shared_domains"))
            if not settings.our_domains and kwargs.get("spool") is not None:
                settings = infer_settings(kwargs["spool"], settings, mta=kwargs.get("mta"),
                                          jobs=kwargs.get("jobs") or default_jobs())
                note(f"no --local-domain given; inferred: "
                     f"{', '.join(sorted(settings.local_domains)) or 'none'} "
                     f"({settings.inference_evidence}); verdicts are marked 'inferred_domains'")
        except (SpoolError, OSError, ValueError) as exc:
            raise one_line_error(exc) from None
        kwargs["settings"] = settings
        return func(*args, **kwargs)

    for option in reversed(options):
        wrapper = option(wrapper)
    return wrapper


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="queuetool")
@click.option("--quiet", "-q", is_flag=True, help="No progress bars and no informational notes on stderr.")
@click.option("--verbose", "-v", is_flag=True, help="Full tracebacks for errors (for bug reports).")
@click.pass_context
def main(ctx: click.Context, quiet: bool, verbose: bool) -> None:
    """Mail-queue forensics and safe cleanup for compromised mail servers.

    Times are shown in UTC (ISO-8601 with Z; table headings say UTC).
    Exit codes: 0 ok, 1 error, 2 usage, 3 some units unreadable, 4 refused.

    \b
    Examples:
      queuetool scan /var/spool/postfix
      queuetool scan /mnt/evidence/server-c --format jsonl > records.jsonl
      queuetool show /var/spool/exim4 1qDO9M-0003B3-2p
      queuetool -q summary /var/spool/postfix --by account
    \b
    Shell completion (bash; zsh and fish likewise):
      eval "$(_QUEUETOOL_COMPLETE=bash_source queuetool)"
    """
    ctx.obj = {"quiet": quiet, "verbose": verbose}
    tune_gc_for_scanning()


@main.command("scan")
@spool_argument
@domain_options
@format_option()
@log_options
@jobs_option
@click.option("--full", is_flag=True, help="Read whole messages, not just headers.")
@click.option("--unordered", is_flag=True, help="Print records as workers finish (faster with --jobs).")
@click.option("--headers", "with_headers", is_flag=True, help="Include decoded headers in json/jsonl output.")
@click.option("--quiet", "-q", is_flag=True, help="No progress bar.")
@no_logs_below_option
@fail_cleanly
def scan_command(spool: Path, mta: str | None, settings: Any, fmt: str, logs: tuple[Path, ...],
                 jobs: int | None, full: bool, unordered: bool, with_headers: bool, quiet: bool,
                 no_logs_below: bool) -> None:
    """List every queued message unit as one record, scored: verdict, rules, campaign.

    Exits 3 when the scan completed but some units were unreadable (their records
    carry `error`).

    \b
    Examples:
      queuetool scan corpora/postfix
      queuetool scan corpora --format jsonl --jobs 2
    """
    from .analysis import analyze_lines

    errors = 0

    def counted(batches):
        nonlocal errors
        for lines, unreadable in batches:
            errors += unreadable
            yield lines

    # logs enrich records (logins, envelope, client) before scoring (docs/trace.md, docs/rules.md);
    # workers render the output lines, this process only writes them
    batches = analyze_lines(spool, output.record_renderer(fmt, with_headers), settings=settings, logs=list(logs),
                            mta=mta, full=full, jobs=jobs or default_jobs(), ordered=not unordered,
                            keep_headers=with_headers, progress=progress_wanted(quiet),
                            logs_below=not no_logs_below)
    output.write_record_lines(counted(batches), fmt, sys.stdout)
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
@domain_options
@click.argument("message_id")
@click.option("--raw", is_flag=True, help="Write the stored message bytes (RFC 5322) to stdout.")
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True)
@fail_cleanly
def show_command(spool: Path, mta: str | None, settings: Any, message_id: str, raw: bool, fmt: str) -> None:
    """Show one message: envelope, evidence, rule hits, headers; --raw for its bytes.

    Campaign membership needs the whole spool: see `scan` or `summary --by campaign`.

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
    from .analysis import analyze_records

    record = opened.get(message_id)
    headers = list(record.headers)
    record = next(analyze_records([record], settings))
    record.headers = record.headers or headers
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
    """Demo incident scan over the bundled corpora (what `python3 dev.py demo` runs).

    \b
    Examples:
      queuetool demo corpora
    """
    from .demo import run_demo

    run_demo(corpora, sys.stdout)


# ---- selection and safe operations (quarantine / purge / restore / recover) ----

def selection_options(func: Callable) -> Callable:
    """The shared selection flags; the command receives one `selection` (ops.Selection).

    A bad --where is a usage error (exit 2) whose message points at the column.
    """
    from .model import VERDICTS

    options = [
        click.option("--where", "where", metavar="EXPR",
                     help="Expression over record keys, e.g. 'auth_user == \"scanner\" and age > 2h'."),
        click.option("--id", "ids", multiple=True, metavar="ID", help="Queue id; repeatable."),
        click.option("--verdict", "verdicts", multiple=True, type=click.Choice(VERDICTS), help="Repeatable."),
        click.option("--auth-user", "auth_users", multiple=True, metavar="LOGIN", help="SMTP AUTH login; repeatable."),
        click.option("--sender", "senders", multiple=True, metavar="GLOB", help="Envelope sender glob; repeatable."),
        click.option("--recipient", "recipients", multiple=True, metavar="GLOB", help="Any recipient matches; repeatable."),
        click.option("--campaign", "campaigns", multiple=True, metavar="ID", help="Campaign id; repeatable."),
        click.option("--min-score", "min_score", type=float, default=None, metavar="N"),
        click.option("--older-than", "older_than", metavar="DUR", help="Arrived more than DUR ago (90s, 30m, 2h, 7d)."),
        click.option("--queue", "queues", multiple=True, metavar="NAME", help="MTA queue name (deferred, hold, frozen ...)."),
    ]
    names = ("where", "ids", "verdicts", "auth_users", "senders", "recipients", "campaigns", "min_score",
             "older_than", "queues")

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        from .ops import SelectionError, make_selection

        given = {name: kwargs.pop(name) for name in names}
        try:
            kwargs["selection"] = make_selection(**given)
        except SelectionError as exc:
            pointer = exc.pointer()
            raise click.UsageError(f"--where {exc}" + (f"\n{pointer}" if pointer else "")
                                   if exc.text else str(exc)) from None
        return func(*args, **kwargs)

    for option in reversed(options):
        wrapper = option(wrapper)
    return wrapper


def ops_errors(func: Callable) -> Callable:
    """RefusedError -> exit 4 with its one line; a missing selection -> usage error."""
    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        from .ops import RefusedError, SelectionError

        try:
            return func(*args, **kwargs)
        except RefusedError as exc:
            click.echo(f"queuetool: refused: {exc}", err=True)
            sys.exit(EXIT_REFUSED)
        except SelectionError as exc:
            raise click.UsageError(str(exc)) from None

    return wrapper


def _echo_plan_and_outcome(report: Any, fmt: str, apply: bool) -> None:
    from .ops.plan import PLAN_COLUMNS, plan_rows, plan_table_rows

    out = sys.stdout
    plan = report.plan
    if not apply:
        output.write_rows(plan_table_rows(plan) if fmt == "table" else plan_rows(plan), fmt, out, PLAN_COLUMNS)
        if fmt == "table":
            refused = len(plan.units) - len(plan.actionable)
            files = sum(len(u.files) for u in plan.actionable)
            click.echo(f"plan: {plan.op} {len(plan.actionable)} unit(s), {files} file(s), {plan.total_bytes} bytes "
                       f"from {plan.spool_root} into {report.qdir}" + (f"; {refused} refused" if refused else ""))
            click.echo(f"      {plan.live.why}")
            click.echo("dry run: nothing changed; add --apply to do it")
        refused = [u for u in plan.units if u.refused]
        if refused:
            click.echo(f"queuetool: {len(refused)} unit(s) would be refused for safety ({refused[0].id}: "
                       f"{refused[0].refused}); --apply would exit 4 too", err=True)
            sys.exit(EXIT_REFUSED)
        return
    _echo_outcomes(report, fmt)


def _echo_outcomes(report: Any, fmt: str) -> None:
    columns = (("id", "ID", 16), ("status", "STATUS", 11), ("files", "FILES", 5), ("bytes", "BYTES", 8),
               ("why", "WHY", 0))
    out = sys.stdout
    output.write_rows((o.to_dict() for o in report.result.outcomes), fmt, out, columns)
    if fmt == "table":
        click.echo(f"quarantine directory: {report.qdir} (manifest.jsonl, audit.jsonl)")
    if report.refused:
        first = report.refused[0]
        click.echo(f"queuetool: {len(report.refused)} unit(s) not done for safety ({first.id}: {first.status}, "
                   f"{first.why}); see the list, fix or retry later", err=True)
        sys.exit(EXIT_REFUSED)


def _ops_settings(local_domains: tuple[str, ...], config_path: Path | None) -> Any:
    if not local_domains and config_path is None:
        return None
    from .config import load_settings

    return load_settings(config_path, local_domains=local_domains)


def mta_safety_options(func: Callable) -> Callable:
    func = click.option("--offline", is_flag=True,
                        help="Exchange/IIS SMTP: confirm the SMTP service is stopped or SPOOL is a copy.")(func)
    func = click.option("--mta-config", "mta_config", metavar="DIR",
                        help="Config directory of the MTA instance owning SPOOL (postfix -c DIR).")(func)
    func = click.option("--local-domain", "local_domains", multiple=True,
                        help="A domain this server accepts (for --verdict/--campaign scoring); repeatable.")(func)
    func = click.option("--config", "config_path", type=click.Path(exists=True, dir_okay=False, path_type=Path),
                        help="queuetool.toml with scoring settings.")(func)
    func = click.option("--jobs", "-j", type=int, default=None,
                        help="Worker processes for the scan [default: all cores].")(func)
    return func


@main.command("quarantine")
@spool_argument
@click.option("--to", "qdir", required=True, type=click.Path(path_type=Path),
              help="Quarantine directory (outside the spool; created if missing).")
@selection_options
@click.option("--apply", is_flag=True, help="Do it. Without --apply, only print the plan.")
@mta_safety_options
@log_options
@format_option()
@fail_cleanly
@ops_errors
def quarantine_command(spool: Path, mta: str | None, qdir: Path, selection: Any, apply: bool, offline: bool,
                       mta_config: str | None, local_domains: tuple[str, ...], config_path: Path | None,
                       jobs: int | None, logs: tuple[Path, ...], fmt: str) -> None:
    """Move selected message units into QDIR (dry run unless --apply).

    Every file of a unit is copied, fsynced, verified by sha256, written to
    QDIR/manifest.jsonl, then removed from the spool — journaled, so
    `queuetool recover QDIR` finishes or undoes a crash. Exit 4 when refused.

    \b
    Examples:
      queuetool quarantine /var/spool/postfix --to /root/q --auth-user scanner
      queuetool quarantine /var/spool/postfix --to /root/q --where 'recipients ~ "*@gmail.com"' --apply
    """
    from .ops import quarantine

    report = quarantine(spool, qdir, selection, apply=apply, mta=mta, mta_config=mta_config, offline=offline,
                        jobs=jobs or default_jobs(), settings=_ops_settings(local_domains, config_path),
                        logs=list(logs), progress=progress_wanted())
    _echo_plan_and_outcome(report, fmt, apply)


@main.command("purge")
@spool_argument
@click.option("--to", "qdir", type=click.Path(path_type=Path), default=None,
              help="Where copies and manifest go [default: ./queuetool-purge-<UTC time>].")
@selection_options
@click.option("--apply", is_flag=True, help="Do it. Without --apply, only print the plan.")
@click.option("--discard-copies", is_flag=True,
              help="Also delete the quarantined copies (the manifest with hashes is kept).")
@mta_safety_options
@log_options
@format_option()
@fail_cleanly
@ops_errors
def purge_command(spool: Path, mta: str | None, qdir: Path | None, selection: Any, apply: bool,
                  discard_copies: bool, offline: bool, mta_config: str | None, local_domains: tuple[str, ...],
                  config_path: Path | None, jobs: int | None, logs: tuple[Path, ...], fmt: str) -> None:
    """Remove selected messages from the MTA (quarantined first; dry run unless --apply).

    \b
    Examples:
      queuetool purge /var/spool/postfix --campaign c3f1 --apply
      queuetool purge /var/spool/exim4 --auth-user scanner --apply --discard-copies
    """
    from .ops import purge

    report = purge(spool, selection, to=qdir, apply=apply, discard_copies=discard_copies, mta=mta,
                   mta_config=mta_config, offline=offline, jobs=jobs or default_jobs(),
                   settings=_ops_settings(local_domains, config_path), logs=list(logs), progress=progress_wanted())
    _echo_plan_and_outcome(report, fmt, apply)


@main.command("restore")
@click.argument("qdir", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--id", "ids", multiple=True, metavar="ID", help="Unit id (or transaction id); repeatable.")
@click.option("--into", type=click.Path(exists=True, file_okay=False, path_type=Path), default=None,
              help="Restore into this spool instead of the one recorded in the manifest.")
@click.option("--apply", is_flag=True, help="Do it. Without --apply, only print what would be restored.")
@format_option()
@fail_cleanly
@ops_errors
def restore_command(qdir: Path, ids: tuple[str, ...], into: Path | None, apply: bool, fmt: str) -> None:
    """Put quarantined units back, byte-identical with mode and mtime.

    Each copy's sha256 is verified first; nothing that exists is overwritten (exit 4).

    \b
    Examples:
      queuetool restore /root/q --id 4SVLCh0sf8z9HdB --apply
    """
    from .ops import restore

    report = restore(qdir, ids, into=into, apply=False)
    plan = report.restore_plan
    if not apply:
        rows = ({"id": u.unit, "files": len(u.files), "bytes": u.size, "into": str(plan.targets[u.txn]),
                 "txn": u.txn} for u in plan.units)
        output.write_rows(rows, fmt, sys.stdout,
                          (("id", "ID", 16), ("files", "FILES", 5), ("bytes", "BYTES", 8), ("into", "INTO", 0)))
        for problem in plan.problems:
            click.echo(f"queuetool: would refuse: {problem}", err=True)
        if fmt == "table":
            click.echo("dry run: nothing changed; add --apply to do it")
        if plan.problems:
            sys.exit(EXIT_REFUSED)
        return
    report = restore(qdir, ids, into=into, apply=True, progress=progress_wanted())
    _echo_outcomes(report, fmt)


@main.command("recover")
@click.argument("qdir", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--mta-config", "mta_config", metavar="DIR", help="Config directory of a live Postfix instance.")
@fail_cleanly
@ops_errors
def recover_command(qdir: Path, mta_config: str | None) -> None:
    """Finish or roll back whatever a crash interrupted in QDIR (safe to run twice).

    \b
    Examples:
      queuetool recover /root/q
      queuetool recover /root/q --mta-config /etc/postfix
    """
    from .ops import recover

    result = recover(qdir, mta_config=mta_config)
    click.echo(f"recover: {len(result.completed)} completed, {len(result.rolled_back)} rolled back, "
               f"{len(result.problems)} problem(s)")
    for problem in result.problems:
        click.echo(f"queuetool: {problem}", err=True)
    if result.problems:
        sys.exit(EXIT_REFUSED)


# ---- trace: which account sent it ----

TRACE_COLUMNS = (("verdict", "VERDICT", 11), ("who", "ACCOUNT/CLIENT", 22), ("messages", "MSGS", 5),
                 ("flagged", "FLAG", 5), ("recipients", "RCPTS", 6), ("domains", "DOMS", 5),
                 ("ips", "IPS", 4), ("failed_logins", "FAIL", 0))


@main.command("trace")
@spool_argument
@domain_options
@log_options
@format_option()
@jobs_option
@no_logs_below_option
@fail_cleanly
def trace_command(spool: Path, mta: str | None, settings: Any, logs: tuple[Path, ...], fmt: str,
                  jobs: int | None, no_logs_below: bool) -> None:
    """Which authenticated account (or relay client) sent the queued mail, most suspicious first.

    Evidence: spool metadata, the server's own Received hops, and logs (--log):
    Postfix/Exim/Sendmail mail logs, IIS SMTP W3C + Event 1708 exports (Exchange
    2000/2003), Exchange protocol and tracking logs. JSON: {"accounts": [...]}.

    \b
    Examples:
      queuetool trace corpora/postfix/spool --log corpora/postfix/logs/mail.log
      queuetool trace /mnt/server-c --log AppEvent.csv --log ex261127.log --format json
    """
    from .trace import trace

    result = trace(spool, logs=list(logs), settings=settings,
                   mta=mta, jobs=jobs or default_jobs(), logs_below=not no_logs_below)
    for stats in result.logs:
        if stats["error"] or stats["junk"]:
            problem = stats["error"] or f"{stats['junk']} line(s) not understood, e.g. {stats['junk_examples'][:1]}"
            click.echo(f"queuetool: log {stats['path']}: {problem}", err=True)
    entries = [entry.to_dict() for entry in result.accounts]
    if fmt == "json":
        click.echo(json.dumps(result.to_dict(), ensure_ascii=False, indent=2, default=str))
        return
    rows = entries if fmt == "jsonl" else [
        dict(entry, who=entry["account"] or f"{entry['kind']}:{entry['client']}",
             domains=len(entry["recipient_domains"]), ips=len(entry["client_ips"])) for entry in entries]
    columns = TRACE_COLUMNS if fmt != "csv" else tuple((k, k, 0) for k in entries[0]) if entries else TRACE_COLUMNS
    output.write_rows(rows, fmt, sys.stdout, columns)
    if fmt == "table":
        for entry in entries:
            if entry["verdict"] == "normal" and not entry["evidence"]:
                continue
            click.echo(f"\n{entry['account'] or entry['kind'] + ':' + str(entry['client'])} ({entry['verdict']}):")
            if entry["first_seen"]:
                click.echo(f"  seen: {entry['first_seen']} .. {entry['last_seen']} from "
                           f"{', '.join(entry['client_ips'][:6]) or 'the server itself'}")
            for why in entry["evidence"]:
                click.echo(f"  why: {why}")
            for step in entry["remedy"]:
                click.echo(f"  do:  {step}")


@main.command("diagnose")
@spool_argument
@domain_options
@log_options
@format_option()
@jobs_option
@no_logs_below_option
@fail_cleanly
def diagnose_command(spool: Path, mta: str | None, settings: Any, logs: tuple[Path, ...], fmt: str,
                      jobs: int | None, no_logs_below: bool) -> None:
    """KB 895853's relay troubleshooting walk: NDR codes, block lists, stuck mail, events.

    Prints findings (most severe first), each with evidence, cause, what to check
    (confirm), remedy and references. JSON: {"findings": [...], "inputs": {...}}.

    \b
    Examples:
      queuetool diagnose corpora/postfix/spool --local-domain example.com
      queuetool diagnose /mnt/server-c --log AppEvent.csv --format json
    """
    from .diagnose import diagnose, render_text

    result = diagnose(spool, logs=logs, settings=settings, mta=mta,
                      jobs=jobs or default_jobs(), logs_below=not no_logs_below)
    if fmt == "json":
        click.echo(json.dumps(result.to_dict(), ensure_ascii=False, indent=2, default=str))
    elif fmt == "jsonl":
        for finding in result.findings:
            click.echo(output.to_json_line(finding.to_dict()))
    elif fmt == "csv":
        rows = [dict(f.to_dict(), count=f.evidence.get("count")) for f in result.findings]
        columns = [(key, key, 0) for key in ("severity", "id", "title", "count", "cause", "confirm",
                                             "remedy", "references", "evidence")]
        output.write_rows(rows, fmt, sys.stdout, columns)
    else:
        click.echo(render_text(result), nl=False)


# ---- summary: qshape-like tables ----

@main.command("summary")
@spool_argument
@domain_options
@log_options
@click.option("--by", "by", type=click.Choice(["domain", "age", "account", "campaign", "client", "sender"]),
              default="domain", show_default=True, help="What the rows are (domain: recipient domain x age).")
@click.option("--format", "fmt", type=click.Choice(["table", "json", "jsonl", "csv"]), default="table",
              show_default=True, help="Output format.")
@click.option("--top", type=int, default=None, metavar="N", help="Only the N largest rows.")
@click.option("--full", is_flag=True, help="Run the body rules too (slower).")
@jobs_option
@click.option("--quiet", "-q", is_flag=True, help="No progress bar.")
@no_logs_below_option
@fail_cleanly
def summary_command(spool: Path, mta: str | None, settings: Any, logs: tuple[Path, ...], by: str, fmt: str,
                    top: int | None, full: bool, jobs: int | None, quiet: bool, no_logs_below: bool) -> None:
    """qshape-like summary: messages per recipient domain (or sender, client, account,
    campaign) in geometric age buckets (minutes), with flagged counts.

    \b
    Examples:
      queuetool summary /var/spool/postfix --local-domain example.com
      queuetool summary corpora/sendmail/spool --by campaign --format json
      queuetool summary corpora/postfix/spool --by age --format csv
    """
    from .analysis import analyze
    from .summary import summarize

    records = analyze(spool, settings=settings, logs=list(logs), mta=mta, full=full,
                      jobs=jobs or default_jobs(), ordered=False, progress=progress_wanted(quiet),
                      logs_below=not no_logs_below)
    result = summarize(records, by, top=top)
    if fmt == "json":
        click.echo(json.dumps({"by": by, "messages": result.messages, "rows": result.rows},
                              ensure_ascii=False, indent=2, default=str))
    else:
        output.write_rows(result.rows, fmt, sys.stdout, result.columns)
    if result.pooled_keys:
        note(f"more than {len(result.rows)} distinct rows; the rest are pooled in '(other)'")


# ---- report: the self-contained HTML incident report ----

@main.command("report")
@spool_argument
@domain_options
@log_options
@click.option("--html", "html_path", required=True, type=click.Path(dir_okay=False, writable=True, path_type=Path),
              help="Where to write the report (one self-contained .html file).")
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True,
              help="What to print on stdout besides writing the file: a one-line summary or the report data.")
@jobs_option
@click.option("--quiet", "-q", is_flag=True, help="No progress bar.")
@no_logs_below_option
@fail_cleanly
def report_command(spool: Path, mta: str | None, settings: Any, logs: tuple[Path, ...], html_path: Path,
                   fmt: str, jobs: int | None, quiet: bool, no_logs_below: bool) -> None:
    """Write an incident report: counts by verdict/queue, messages over time per account,
    top recipient domains, campaigns, accounts (trace), findings (diagnose) and
    ready-to-paste quarantine selectors. No network needed to view it.

    \b
    Examples:
      queuetool report corpora/postfix/spool --local-domain example.com --html incident.html
      queuetool report /mnt/server-c --log AppEvent.csv --html server-c.html
    """
    from .report import write_report

    data = write_report(spool, html_path, settings=settings, logs=list(logs), mta=mta,
                        jobs=jobs or default_jobs(), progress=progress_wanted(quiet),
                        logs_below=not no_logs_below)
    if fmt == "json":
        click.echo(json.dumps(data.to_dict(), ensure_ascii=False, indent=2, default=str))
    else:
        verdicts = ", ".join(f"{k} {v}" for k, v in data.by_verdict.items())
        click.echo(f"{html_path}: {data.messages} message(s) ({verdicts}); {len(data.campaigns)} campaign(s), "
                   f"{len(data.accounts)} account(s), {len(data.findings)} finding(s)")


if __name__ == "__main__":
    main()
