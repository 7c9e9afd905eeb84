"""The other events: schedule → plan issues, push → wiki PR, limits; and the policy seam."""

from __future__ import annotations

import os
import subprocess

import httpx
import pytest
from conftest import example, ttl_plan_body

from loopbot.action import run_action
from loopbot.forge.github.forge import connect
from loopbot.forge.github.policy import ForbiddenOperation, RequestPolicy


def run(actions, event, payload) -> int:
    env = actions.runner(event, payload)
    return run_action({**os.environ, **env}, transport=actions.fake.transport(), sleep=actions.slept.append)


def test_schedule_files_plans_as_issues_once(actions):
    fake = actions.fake
    assert run(actions, "schedule", {"schedule": "17 6 * * 1"}) == 0
    plans = [i for i in fake.issues.values() if "loopbot:plan" in [lab["name"] for lab in i["labels"]]]
    assert sorted(i["title"] for i in plans) == ["Add expiration (TTL) support to KVStore",
                                                 "Document KVStore's public API in the README"]
    assert all("<!-- loopbot:plan fingerprint=" in i["body"] and "```yaml" in i["body"] for i in plans)
    assert run(actions, "schedule", {"schedule": "17 6 * * 1"}) == 0  # same findings: nothing new
    assert len([i for i in fake.issues.values() if "loopbot:plan" in [lab["name"] for lab in i["labels"]]]) == 2


def test_push_to_main_opens_a_wiki_pull_request(actions):
    before = subprocess.run(["git", "-C", str(actions.origin), "rev-parse", "main"], capture_output=True,
                            text=True, check=True).stdout.strip()
    payload = example("push")
    payload.update({"ref": "refs/heads/main", "before": "0" * 40, "after": before})
    assert run(actions, "push", payload) == 0
    (pr,) = actions.fake.pulls.values()
    assert pr["head"]["ref"].startswith("loop/wiki-") and pr["base"]["ref"] == "main"
    shown = subprocess.run(["git", "-C", str(actions.origin), "show", f"{pr['head']['ref']}:wiki/10_DOMAIN/expiry.md"],
                           capture_output=True, text=True)
    assert "Expiry (TTL)" in shown.stdout
    assert subprocess.run(["git", "-C", str(actions.origin), "rev-parse", "main"], capture_output=True,
                          text=True).stdout.strip() == before


def test_loop_pr_limits_hold(actions):
    fake = actions.fake
    issue = fake.add_issue("Add expiration (TTL) support to KVStore", ttl_plan_body(), labels=["loopbot:plan"])
    for n in range(2):  # two loop PRs opened in the last hour; the default allows 2 new per hour
        fake._pulls("POST", [], {}, {"head": f"loop/9{n}-other", "base": "main", "title": "t", "draft": True},
                    lambda data, status=200: httpx.Response(status, json=data))
    payload = example("issues", "labeled")
    payload["label"]["name"] = "loopbot:run"
    payload["issue"].update({"number": issue, "body": ttl_plan_body()})
    payload["sender"].update({"login": "alice", "type": "User"})
    assert run(actions, "issues", payload) == 0
    assert actions.outputs()["status"] == "limited" and len(fake.pulls) == 2
    assert "max_new_prs_per_hour" in fake.comments_on(issue)[-1]["body"]


def test_policy_allow_list_enterprise_prefix_and_pacing():
    slept: list[float] = []
    now = [100.0]
    policy = RequestPolicy(base_url="https://ghe.example.com/api/v3", sleep=lambda s: (slept.append(s), now.__setitem__(0, now[0] + s)),
                           clock=lambda: now[0])
    policy(httpx.Request("POST", "https://ghe.example.com/api/v3/repos/o/r/issues/1/comments", json={"body": "x"}))
    policy(httpx.Request("POST", "https://ghe.example.com/api/v3/repos/o/r/issues/1/comments", json={"body": "y"}))
    assert slept == [pytest.approx(1.0)]
    policy(httpx.Request("GET", "https://ghe.example.com/api/v3/repos/o/r/pulls"))
    assert slept == [pytest.approx(1.0)]  # reads are not paced
    for method, path in [("PUT", "/repos/o/r/pulls/1/merge"), ("POST", "/repos/o/r/merges"),
                         ("POST", "/repos/o/r/git/refs"), ("PUT", "/repos/o/r/contents/README.md"),
                         ("DELETE", "/repos/o/r"), ("POST", "/repos/o/r/pulls/1/reviews/2/dismissals")]:
        with pytest.raises(ForbiddenOperation):
            policy(httpx.Request(method, f"https://ghe.example.com/api/v3{path}"))
    with pytest.raises(ForbiddenOperation):
        policy(httpx.Request("POST", "https://ghe.example.com/api/graphql",
                             json={"query": "mutation { mergePullRequest(input: {pullRequestId: \"x\"}) { clientMutationId } }"}))


def test_the_forge_has_no_merge_and_refuses_one(actions):
    forge = connect(owner="acme", repo="kvstore", api_url="https://api.github.com", token="ghs_" + "x" * 36,
                    transport=actions.fake.transport(), sleep=lambda s: None)
    assert not any("merge" in name for name in dir(forge))
    with pytest.raises(ForbiddenOperation):
        forge._call(forge.gh.rest.pulls.merge, 1)
    assert actions.fake.log == []  # refused before anything was sent


def test_app_credentials_mint_an_installation_token(actions):
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption()).decode()
    forge = connect(owner="acme", repo="kvstore", api_url="https://api.github.com", app_id="12345", private_key=pem,
                    transport=actions.fake.transport(), sleep=lambda s: None)
    assert forge.permission("alice") == "write"
    assert actions.fake.auth_seen == ["jwt", "installation-token"]
