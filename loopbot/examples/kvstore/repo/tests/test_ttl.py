"""The TTL specification: written first, failing until KVStore supports expiry."""

import unittest

from kvstore import KVStore


class FakeClock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now

    def advance(self, seconds):
        self.now += seconds


class TTLTest(unittest.TestCase):
    def setUp(self):
        self.clock = FakeClock()
        self.store = KVStore(clock=self.clock)

    def test_readable_before_expiry(self):
        self.store.set("session", "abc", ttl_seconds=10)
        self.clock.advance(9)
        self.assertEqual(self.store.get("session"), "abc")
        self.assertTrue(self.store.exists("session"))

    def test_get_after_expiry(self):
        self.store.set("session", "abc", ttl_seconds=10)
        self.clock.advance(10)
        self.assertIsNone(self.store.get("session"))

    def test_exists_after_expiry(self):
        self.store.set("token", "t", ttl_seconds=3)
        self.clock.advance(4)
        self.assertFalse(self.store.exists("token"))

    def test_keys_skip_expired(self):
        self.store.set("a", 1, ttl_seconds=5)
        self.store.set("b", 2)
        self.store.set("c", 3, ttl_seconds=50)
        self.clock.advance(6)
        self.assertEqual(self.store.keys(), ["b", "c"])
        self.assertEqual(len(self.store), 2)

    def test_no_ttl_never_expires(self):
        self.store.set("k", 1)
        self.clock.advance(10**6)
        self.assertEqual(self.store.get("k"), 1)

    def test_overwrite_without_ttl_clears_expiry(self):
        self.store.set("k", 1, ttl_seconds=1)
        self.store.set("k", 2)
        self.clock.advance(5)
        self.assertEqual(self.store.get("k"), 2)

    def test_ttl_must_be_positive(self):
        with self.assertRaises(ValueError):
            self.store.set("k", 1, ttl_seconds=0)


if __name__ == "__main__":
    unittest.main()
