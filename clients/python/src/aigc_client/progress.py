"""How `wait` shows a task: a rich progress bar on a terminal, plain lines (one per change) otherwise.

What is shown follows the task's real state, not one number:

- queued (waiting for a provider slot): no percentage, the queue position while the service reports
  one; the bar pulses;
- processing: the provider's own progress when the service reports one (`providerProgress`), else the
  service's estimate from the elapsed and the model's usual time, shown as an estimate (`~20%`): a
  job that finishes sooner than usual goes from there to done, which is what happened;
- completed: 100%; failed or cancelled: the outcome, no percentage (nothing was made).
"""
from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone

from rich.console import Console
from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

from aigc_client.models import Task


def describe(task: Task, *, with_task_no: bool = True) -> str:
    """'TASK-... processing' plus ', queue position 3' while the service reports one."""
    text = f"{task.task_no} {task.status}" if with_task_no else task.status
    if task.queue_position is not None and not task.done:
        text += f", queue position {task.queue_position}"
    return text


@dataclass(frozen=True)
class Stage:
    """Where a task stands, as shown: the state's text and a percentage when there is one."""

    text: str  # "queued, queue position 3", "processing", "completed", "failed"
    percent: int | None  # None: no percentage (waiting for a slot, or ended without a result)
    estimated: bool = False  # the service's time-based estimate, not the provider's measured progress

    @property
    def percent_text(self) -> str:
        if self.percent is None:
            return ""
        return f"~{self.percent}%" if self.estimated else f"{self.percent}%"


def stage(task: Task) -> Stage:
    if task.status == "completed":
        return Stage("completed", 100)
    if task.done:
        return Stage(task.status, None)
    if task.status == "processing":
        measured = task.provider_progress
        if measured is not None:
            return Stage("processing", max(0, min(99, measured)))
        return Stage("processing", max(0, min(99, task.progress)), estimated=True)
    return Stage(describe(task, with_task_no=False), None)  # queued: not started


def line(task: Task) -> str:
    """One plain line (without the time stamp): 'TASK-... processing ~20%'."""
    shown = stage(task)
    return " ".join(part for part in (task.task_no, shown.text, shown.percent_text) if part)


@contextmanager
def progress_view(console: Console) -> Iterator[Callable[[Task], None]]:
    """Yields the `on_progress` callback for `Client.wait`."""
    if console.is_terminal:
        with Progress(SpinnerColumn(), TextColumn("{task.description}"), BarColumn(),
                      TextColumn("{task.fields[shown]:>5}"), TimeElapsedColumn(), console=console) as bar:
            row = bar.add_task("submitted", total=None, shown="")
            named: list[str] = []

            def show(task: Task) -> None:
                if not named:  # the task number once, above the bar, so the bar keeps its width
                    named.append(task.task_no)
                    bar.console.print(task.task_no)
                shown = stage(task)
                if shown.percent is None and not task.done:  # no percentage yet: the bar pulses
                    bar.update(row, description=shown.text, total=None, shown="")
                else:
                    bar.update(row, description=shown.text, total=100, shown=shown.percent_text,
                               completed=shown.percent if shown.percent is not None else 0)

            yield show
        return
    last: list[str] = []

    def show(task: Task) -> None:
        text = line(task)
        if last and last[-1] == text:
            return
        last.append(text)
        stamp = datetime.now(timezone.utc).strftime("%H:%M:%S")
        print(f"{stamp} {text}", file=console.file, flush=True)

    yield show
