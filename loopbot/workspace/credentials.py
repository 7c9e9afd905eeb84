"""A push credential for one git command, never written anywhere.

With App credentials, loop branches are pushed with the installation token, so the repository's
own workflows run on every loop push (pushes made with the job's GITHUB_TOKEN start no workflows).
The header goes to git through GIT_CONFIG_* environment entries of that one command: not into
`.git/config` or the worktree, and not onto a command line that `ps` shows. The first entry empties
the header list, which drops the checkout's persisted GITHUB_TOKEN header for that command only.
loopbot's own state is still pushed with the checkout's GITHUB_TOKEN, so it starts no workflows.
"""

from __future__ import annotations

import base64


def push_env(server_url: str, token: str) -> dict[str, str]:
    key = f"http.{server_url.rstrip('/')}/.extraheader"
    basic = base64.b64encode(f"x-access-token:{token}".encode()).decode()
    return {"GIT_CONFIG_COUNT": "2", "GIT_CONFIG_KEY_0": key, "GIT_CONFIG_VALUE_0": "",
            "GIT_CONFIG_KEY_1": key, "GIT_CONFIG_VALUE_1": f"AUTHORIZATION: basic {basic}"}
