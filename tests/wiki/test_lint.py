import subprocess
import sys
from pathlib import Path

import pytest

from loopbot.wiki import lint, skeleton

CODE = {"src/store.py": "class Store:\n    def get(self, key):\n        return key\n"}
NAMES = {"store", "Store", "get", "key"}


def make_wiki(root: Path) -> Path:
    wiki = root / "wiki"
    skeleton.ensure(wiki)
    (wiki / "10_DOMAIN" / "store.md").write_text("# Store\n\n`Store.get()` in `src/store.py` reads a key.\n"
                                                 "See the [schema](../00_SCHEMA.md).\n")
    index = wiki / "index.md"
    index.write_text(index.read_text() + "- [Store](10_DOMAIN/store.md): the store\n")
    return wiki


def findings(wiki: Path):
    files = set(CODE) | {f"wiki/{p}" for p in lint.pages(wiki)}
    return lint.lint(wiki, repo_files=files, symbols=NAMES, wiki_prefix="wiki")


def test_clean_wiki_passes(tmp_path):
    assert findings(make_wiki(tmp_path)) == []


@pytest.mark.parametrize(
    ("plant", "kinds"),
    [
        (lambda w: (w / "10_DOMAIN" / "lonely.md").write_text("# Lonely\n"), {"orphan", "index_missing"}),
        (lambda w: (w / "10_DOMAIN" / "store.md").write_text("# Store\n\nSee [gone](gone.md).\n"), {"broken_link"}),
        (lambda w: (w / "10_DOMAIN" / "store.md").write_text("# Store\n\nLives in `src/old_store.py`.\n"),
         {"missing_file"}),
        (lambda w: (w / "10_DOMAIN" / "store.md").write_text("# Store\n\nCall `Store.fetch_all()`.\n"),
         {"missing_symbol"}),
        (lambda w: (w / "index.md").write_text((w / "index.md").read_text() + "- [Old](20_SYSTEM/old.md)\n"),
         {"index_dead"}),
    ],
    ids=["orphan", "broken_link", "missing_file", "missing_symbol", "index_dead"],
)
def test_each_planted_fault_is_caught(tmp_path, plant, kinds):
    wiki = make_wiki(tmp_path)
    plant(wiki)
    assert {f.kind for f in findings(wiki)} == kinds


def test_run_records_may_name_what_is_gone(tmp_path):
    wiki = make_wiki(tmp_path)
    (wiki / "90_LOG" / "run-1.md").write_text("# run\n\nChanged `src/deleted.py` and `Gone.method()`.\n")
    (wiki / "index.md").write_text((wiki / "index.md").read_text() + "- [run](90_LOG/run-1.md)\n")
    assert findings(wiki) == []


def test_fix_repairs_the_index_when_few_findings(tmp_path):
    wiki = make_wiki(tmp_path)
    (wiki / "10_DOMAIN" / "new.md").write_text("# New concept\n")
    (wiki / "index.md").write_text((wiki / "index.md").read_text() + "- [Old](20_SYSTEM/old.md)\n")
    left = lint.fix(wiki, findings(wiki))
    assert left == [] and findings(wiki) == []
    assert "- [New concept](10_DOMAIN/new.md)" in (wiki / "index.md").read_text()


def test_more_than_ten_findings_is_a_report_only(tmp_path):
    wiki = make_wiki(tmp_path)
    for n in range(6):
        (wiki / "10_DOMAIN" / f"p{n}.md").write_text(f"# P{n}\n")
    before = (wiki / "index.md").read_text()
    found = findings(wiki)
    assert len(found) == 12
    assert lint.fix(wiki, found) == found and (wiki / "index.md").read_text() == before


def test_cli_exit_codes(kv_repo):
    repo, _ = kv_repo
    wiki = repo / "wiki"
    skeleton.ensure(wiki)
    (wiki / "10_DOMAIN" / "kv.md").write_text("# KV\n\n`KVStore.get()` in `kvstore.py`.\n")
    run = lambda *a: subprocess.run([sys.executable, "-m", "loopbot", "wiki", "lint", "--repo", str(repo), *a],  # noqa: E731
                                    capture_output=True, text=True)
    dirty = run()
    assert dirty.returncode == 1 and "orphan" in dirty.stdout and "index_missing" in dirty.stdout
    fixed = run("--fix")
    assert fixed.returncode == 0 and "clean" in fixed.stdout
    assert run().returncode == 0
