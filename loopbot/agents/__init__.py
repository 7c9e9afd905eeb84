"""External agent CLIs (Claude Code, Codex, aider, a command template) as loopbot's maker."""
