"""How `wait` shows a task: a rich progress bar on a terminal, plain lines (one per change) otherwise."""
from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime, timezone

from rich.console import Console
from rich.progress import BarColumn, Progress, SpinnerColumn, TaskProgressColumn, TextColumn, TimeElapsedColumn

from aigc_client.models import Task


def describe(task: Task, *, with_task_no: bool = True) -> str:
    """'TASK-... processing' plus ', queue position 3' while the service reports one."""
    text = f"{task.task_no} {task.status}" if with_task_no else task.status
    if task.queue_position is not None and not task.done:
        text += f", queue position {task.queue_position}"
    return text


@contextmanager
def progress_view(console: Console) -> Iterator[Callable[[Task], None]]:
    """Yields the `on_progress` callback for `Client.wait`."""
    if console.is_terminal:
        with Progress(SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), TaskProgressColumn(),
                      TimeElapsedColumn(), console=console) as bar:
            row = bar.add_task("submitted", total=100)
            named: list[str] = []

            def show(task: Task) -> None:
                if not named:  # the task number once, above the bar, so the bar keeps its width
                    named.append(task.task_no)
                    bar.console.print(task.task_no)
                bar.update(row, description=describe(task, with_task_no=False), completed=task.progress)

            yield show
        return
    last: list[tuple] = []

    def show(task: Task) -> None:
        state = (task.status, task.progress, task.queue_position)
        if last and last[-1] == state:
            return
        last.append(state)
        stamp = datetime.now(timezone.utc).strftime("%H:%M:%S")
        print(f"{stamp} {describe(task)} {task.progress}%", file=console.file, flush=True)

    yield show
