"""Where a loop branch can be seen on the web: the repository's page on GitHub, from the remote's
URL (credentials dropped), or None for a remote that is not on github.com (a local path)."""

from __future__ import annotations

import re
from urllib.parse import quote

_NAME = r"[A-Za-z0-9_.-]+"
_HTTPS = re.compile(rf"^https?://(?:[^@/\s]*@)?github\.com/({_NAME})/({_NAME}?)(?:\.git)?/?$", re.IGNORECASE)
_SSH = re.compile(rf"^(?:ssh://)?git@github\.com[:/]({_NAME})/({_NAME}?)(?:\.git)?/?$", re.IGNORECASE)


def repo_web_url(remote_url: str) -> str | None:
    """https://github.com/OWNER/REPO for a github.com remote (https or ssh), else None."""
    for pattern in (_HTTPS, _SSH):
        found = pattern.match(remote_url.strip())
        if found:
            return f"https://github.com/{found.group(1)}/{found.group(2)}"
    return None


def branch_url(web_url: str, branch: str) -> str:
    return f"{web_url.rstrip('/')}/tree/{quote(branch, safe='/')}"


def compare_url(web_url: str, base: str, branch: str) -> str:
    return f"{web_url.rstrip('/')}/compare/{quote(base, safe='/')}...{quote(branch, safe='/')}"
