"""The loop's workspace: a git worktree on a loop/* branch."""
