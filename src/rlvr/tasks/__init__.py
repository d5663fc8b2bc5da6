"""Where prompts come from. Importing this package registers the built-in tasks."""

from rlvr.tasks import (
    arithmetic,  # noqa: F401  (registers "arithmetic")
    files,  # noqa: F401  (registers "file")
    humaneval,  # noqa: F401  (registers "humaneval")
    reasoning_gym,  # noqa: F401  (registers "reasoning_gym"; imports the package lazily)
)
from rlvr.tasks.base import Example, Task, get_task, register_task, task_names

__all__ = ["Example", "Task", "get_task", "register_task", "task_names"]
