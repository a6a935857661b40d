"""Task names → task classes. Adding a task: write its module in `bertkit/tasks/`, add one line here."""

from __future__ import annotations

import importlib
from typing import Any

from bertkit.tasks.base import Task

# name -> "module:Class"; imported on first use, so a task's optional dependencies stay optional
TASKS: dict[str, str] = {
    "classification": "bertkit.tasks.classification:ClassificationTask",
    "qa": "bertkit.tasks.qa:QaTask",
    "multiple_choice": "bertkit.tasks.multiple_choice:MultipleChoiceTask",
    "ner": "bertkit.tasks.ner:NerTask",
}


def task_class(name: str) -> type[Task]:
    """The task class registered as `name`; an unknown name is a clear error."""
    if name not in TASKS:
        raise ValueError(f"unknown task {name!r}; choose one of {sorted(TASKS)}")
    module, _, attr = TASKS[name].partition(":")
    return getattr(importlib.import_module(module), attr)


def task_from_json(name: str, settings: dict[str, Any]) -> Task:
    """Rebuild a task from what `bertkit.json` stores (`"task"` and `"settings"`)."""
    return task_class(name).from_json(settings)
