"""What a training run shows: a rich progress bar on a terminal, a log line every tenth of the run otherwise."""

from __future__ import annotations

from diffcore.errors import DiffcoreError


class TrainingProgress:
    """Progress of ``total`` steps named ``name``.

    ``mode``: ``True`` (a bar on a terminal, log lines when the console is not one),
    ``"log"`` (log lines only) or ``False`` (nothing). A log line reads
    ``NAME step 250/2500 loss 0.0412 9.8 it/s``.
    """

    def __init__(self, name: str, total: int, mode: bool | str = True, console=None):
        if mode not in (True, False, "log"):
            raise DiffcoreError(f"progress must be True, False or 'log', got {mode!r}")
        self.name, self.total, self.mode = name, total, mode
        self.console = console
        self.bar = None
        self._next_log = 0

    def __enter__(self):
        if self.mode is False:
            return self
        from rich.console import Console

        self.console = self.console or Console(stderr=True)
        if self.mode is True and self.console.is_terminal:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

            self.bar = Progress(
                TextColumn("[bold]{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("loss {task.fields[loss]}"),
                TimeElapsedColumn(),
                TimeRemainingColumn(),
                console=self.console,
                transient=False,
            )
            self.bar.__enter__()
            self.task = self.bar.add_task(self.name, total=self.total, loss="-")
        return self

    def start_at(self, step: int) -> None:
        """A resumed run: the bar starts at ``step`` and the next log line comes a tenth later."""
        self._next_log = step + max(1, self.total // 10)
        if self.bar is not None:
            self.bar.update(self.task, completed=step)

    def update(self, step: int, total: int, loss: float | None, elapsed: float, done_here: int | None = None) -> None:
        """After ``step`` steps of ``total``; ``done_here`` steps of them in ``elapsed`` seconds of this run."""
        self.total = total
        if self.bar is not None:
            self.bar.update(self.task, completed=step, total=total, loss="-" if loss is None else f"{loss:.4f}")
        if self.mode is False or self.bar is not None or loss is None or step < self._next_log:
            return
        done = step if done_here is None else done_here
        rate = done / elapsed if elapsed > 0 else float("nan")
        self.console.print(f"{self.name} step {step}/{total} loss {loss:.4f} {rate:.1f} it/s")
        self._next_log = step + max(1, total // 10)

    def __exit__(self, *exc):
        if self.bar is not None:
            self.bar.__exit__(*exc)
