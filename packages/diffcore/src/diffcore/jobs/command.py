"""Jobs on the command line: ``diffcore run JOB.toml`` and ``--job`` on plugin commands.

A plugin command becomes a job task by decorating it with :func:`job_option` (above
``@click.command``) and passing the factory of its task::

    @job_option(restore_task)          # restore_task(**options) -> run(item) -> {suffix: bytes}
    @click.command("restore")
    @click.option("--image", required=True)
    def restore(image): ...

``diffcore inverse restore --job JOB.toml`` then runs the job (the command's other options are
not used: the task's settings come from the job file's ``[options]``), and ``diffcore run``
finds the same task by its command path, ``task = "inverse restore"``.

Exit status of a job: 0 when every item is finished, 1 when some item failed (or
``--fail-fast`` stopped the job; the failures are in ``OUT/.diffcore-job/failed/``), 2 for bad
input found before any work (the job file, the items, the task options, the output folder).
"""

from __future__ import annotations

import dataclasses
import functools
import sys
from collections.abc import Callable
from pathlib import Path

import click

from diffcore.errors import DiffcoreError, closest
from diffcore.jobs.records import JOB_DIR
from diffcore.jobs.runner import run_job
from diffcore.jobs.spec import JobSpec, load_job
from diffcore.jobs.tasks import TASKS, Task

JOB_PARAMS = ("job", "fail_fast", "force")
FACTORY_ATTR = "diffcore_job_factory"  # set on the callback of a command that takes --job


def task_name(ctx: click.Context) -> str:
    """A command's task name: its command path without the program (``inverse restore``)."""
    words = ctx.command_path.split()
    return " ".join(words[1:]) or ctx.command_path


def _job_commands(group: click.Group, ctx: click.Context, prefix: tuple[str, ...] = ()):
    for name in group.list_commands(ctx):
        cmd = group.get_command(ctx, name)
        if isinstance(cmd, click.Group):
            yield from _job_commands(cmd, ctx, (*prefix, name))
        elif cmd is not None and hasattr(cmd.callback, FACTORY_ATTR):
            yield " ".join((*prefix, name)), cmd


def find_task(name: str, root: click.Group, ctx: click.Context) -> Task:
    """A built-in task, or the task of a command (any plugin's) that takes ``--job``."""
    if name in TASKS:
        return TASKS[name]
    commands = dict(_job_commands(root, ctx))
    if name in commands:
        factory = getattr(commands[name].callback, FACTORY_ATTR)
        return Task(name, factory, (commands[name].help or "").strip().split("\n")[0])
    known = sorted(TASKS) + sorted(commands)
    hint = closest(name, known)
    raise DiffcoreError(f"unknown task {name!r}; known tasks: {', '.join(known)}" + (f". Did you mean {hint!r}?" if hint else ""))


def run_spec(spec: JobSpec, task: Task, *, force: bool = False, fail_fast: bool = False, out: Path | None = None) -> int:
    """Run a job, print the summary (rank 0) and return the exit status (0 or 1)."""
    if out is not None:
        spec = dataclasses.replace(spec, out=Path(out))
    summary = run_job(spec, task, force=force, fail_fast=fail_fast, progress=sys.stderr.isatty())
    if summary.main:
        click.echo(summary.line())
        for key, error in summary.failures[:10]:
            click.echo(f"failed: {key}: {error}", err=True)
        if summary.failed:
            more = f" (and {summary.failed - 10} more)" if summary.failed > 10 else ""
            click.echo(f"error: {summary.failed} item(s) failed{more}; their errors are in {spec.out / JOB_DIR / 'failed'}", err=True)
    return summary.exit_code


def job_option(factory: Callable[..., Callable]) -> Callable[[click.Command], click.Command]:
    """Give a click command ``--job FILE`` (with ``--fail-fast`` and ``--force``) running ``factory`` as its task.

    Apply it above ``@click.command``. Options the command requires for a single run are
    required only without ``--job``.
    """

    def decorate(command: click.Command) -> click.Command:
        if not isinstance(command, click.Command) or isinstance(command, click.Group):
            raise TypeError("job_option decorates a click command: put it above @click.command")
        taken = [p.name for p in command.params if p.name in JOB_PARAMS]
        if taken:
            raise TypeError(f"command {command.name!r} already has option(s) {', '.join(taken)}, which job_option adds")
        relaxed = [p for p in command.params if p.required]
        for p in relaxed:
            p.required = False
        command.params += [
            click.Option(
                ["--job"],
                type=click.Path(dir_okay=False, path_type=Path),
                metavar="JOB.toml",
                help="Run a job file over many items instead (see docs/scaling.md).",
            ),
            click.Option(["--fail-fast"], is_flag=True, help="With --job: stop at the first failing item."),
            click.Option(["--force"], is_flag=True, help="With --job: take over an output folder holding another job's records."),
        ]
        single = command.callback

        @functools.wraps(single)
        def callback(*args, job=None, fail_fast=False, force=False, **kwargs):
            ctx = click.get_current_context()
            if job is None:
                if fail_fast or force:
                    raise click.UsageError("--fail-fast and --force go with --job", ctx)
                for p in relaxed:
                    if kwargs.get(p.name) in (None, ()):
                        raise click.MissingParameter(ctx=ctx, param=p)
                return single(*args, **kwargs)
            given = [
                p
                for p in command.params
                if p.name not in JOB_PARAMS and ctx.get_parameter_source(p.name) == click.core.ParameterSource.COMMANDLINE
            ]
            if given:
                names = ", ".join(p.opts[0] if p.opts else p.name for p in given)
                raise click.UsageError(f"--job takes the task's settings from the job file's [options]; do not also pass {names}", ctx)
            spec = load_job(job)
            code = run_spec(
                spec, Task(task_name(ctx), factory, (command.help or "").strip().split("\n")[0]), force=force, fail_fast=fail_fast
            )
            ctx.exit(code)

        setattr(callback, FACTORY_ATTR, factory)
        command.callback = callback
        return command

    return decorate
