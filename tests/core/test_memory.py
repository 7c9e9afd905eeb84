from loopbot.core import memory


def test_rewording_maps_to_the_same_approach():
    first = "Add a ttl_seconds parameter to set() and store each key's expiry time"
    rewordings = [
        "Adding TTL support: a ttl_seconds argument on set(), storing the expiry timestamp per key",
        "store the expiry timestamp for each key, via a new ttl_seconds param of set()",
        "Try again: set() gets ttl_seconds and we record the time each key expires",
    ]
    mem, record = memory.record_failure([], first, ["kvstore.py"], iteration=1, signature="s")
    for text in rewordings:
        assert memory.find(mem, text, ["kvstore.py"]) is record, text


def test_different_idea_or_different_files_is_a_different_approach():
    mem, _ = memory.record_failure([], "Add a ttl_seconds parameter to set() and store expiry",
                                   ["kvstore.py"], iteration=1, signature="s")
    assert memory.find(mem, "Rewrite the storage as a heap ordered by deadline", ["kvstore.py"]) is None
    assert memory.find(mem, "Add a ttl_seconds parameter to set() and store expiry", ["other.py"]) is None


def test_blocked_after_three_failures_and_not_before():
    mem = []
    texts = ["Expire keys lazily inside get()", "lazily expire the keys in get", "get() expires keys lazily"]
    for number, text in enumerate(texts, 1):
        assert memory.is_blocked(mem, text, ["kv.py"]) is None
        mem, record = memory.record_failure(mem, text, ["kv.py"], iteration=number, signature=f"e{number}")
    assert record.blocked and len(record.failures) == 3 and len(mem) == 1
    assert memory.is_blocked(mem, "In get(), expire the keys lazily", ["kv.py"]) is record


def test_record_failure_does_not_mutate_its_input():
    mem, _ = memory.record_failure([], "a b c", ["f"], iteration=1, signature="s")
    before = mem[0].model_copy(deep=True)
    memory.record_failure(mem, "a b c", ["f"], iteration=2, signature="s")
    assert mem[0] == before


def test_error_signature_blurs_numbers_and_paths():
    a = memory.error_signature("ok\nFile /tmp/a1/x.py, line 12\nAssertionError: 3 != 4\n")
    b = memory.error_signature("ok\nFile /tmp/b2/x.py, line 99\nAssertionError: 7 != 8\n")
    assert a == b and "AssertionError" in a
