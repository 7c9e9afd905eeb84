"""Regenerate tests/contracts/ from GitHub's official descriptions on the npm registry.

    python scripts/vendor_github_contracts.py            # needs npm

- github-openapi.trimmed.json: the operations loopbot may perform (loopbot/forge/github/operations.py),
  cut from @octokit/openapi's dereferenced api.github.com description: parameters and request bodies.
- webhook-examples.json: the official example payloads of the events loopbot handles, from
  @octokit/webhooks-examples.
- app-webhook-examples.json: every example of the events the App receives as webhooks.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from loopbot.forge.github.operations import ALLOWED  # noqa: E402

OPENAPI = "@octokit/openapi@23.0.2"
EXAMPLES = "@octokit/webhooks-examples@7.6.1"
# The events (and actions) loopbot handles.
EVENTS = {"issues": {"labeled"}, "issue_comment": {"created"}, "pull_request_review": {"submitted"},
          "push": None, "workflow_dispatch": None}
# The events the App (`loopbot serve`) receives as webhooks: every example of each, and ping.
APP_EVENTS = ("ping", "issues", "issue_comment", "pull_request", "pull_request_review", "workflow_run",
              "installation", "installation_repositories")
OUT = ROOT / "tests" / "contracts"


def fetch(spec: str, into: Path) -> Path:
    name = subprocess.run(["npm", "pack", spec, "--silent"], cwd=into, check=True, capture_output=True,
                          text=True).stdout.strip().splitlines()[-1]
    target = into / name.removesuffix(".tgz")
    with tarfile.open(into / name) as archive:
        archive.extractall(target, filter="data")
    return target / "package"


def trim_openapi(package: Path) -> dict:
    full = json.loads((package / "generated" / "api.github.com.deref.json").read_text())
    paths: dict[str, dict] = {}
    for method, template in sorted(ALLOWED):
        if template == "/graphql":
            continue
        operation = full["paths"][template][method.lower()]
        kept = {k: operation[k] for k in ("operationId", "parameters", "requestBody") if k in operation}
        paths.setdefault(template, {})[method.lower()] = kept
    return {"source": OPENAPI, "info": full["info"], "paths": paths}


def pick_examples(package: Path, wanted: dict[str, set[str] | None] = EVENTS) -> dict:
    index = json.loads((package / "api.github.com" / "index.json").read_text())
    events = {}
    for entry in index:
        if entry["name"] in wanted:
            actions = wanted[entry["name"]]
            events[entry["name"]] = [x for x in entry["examples"] if actions is None or x.get("action") in actions]
    return {"source": EXAMPLES, "events": events}


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        openapi = trim_openapi(fetch(OPENAPI, Path(tmp)))
        package = fetch(EXAMPLES, Path(tmp))
        examples = pick_examples(package)
        app_examples = pick_examples(package, dict.fromkeys(APP_EVENTS))
    (OUT / "github-openapi.trimmed.json").write_text(json.dumps(openapi, indent=1, sort_keys=True) + "\n")
    (OUT / "webhook-examples.json").write_text(json.dumps(examples, indent=1, sort_keys=True) + "\n")
    (OUT / "app-webhook-examples.json").write_text(json.dumps(app_examples, indent=1, sort_keys=True) + "\n")
    print(f"{len(openapi['paths'])} paths, {sum(len(v) for v in examples['events'].values())} examples -> {OUT}")


if __name__ == "__main__":
    main()
