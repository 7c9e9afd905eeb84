import unittest

from kvstore import KVStore


class KVStoreTest(unittest.TestCase):
    def test_set_then_get(self):
        store = KVStore()
        store.set("a", 1)
        self.assertEqual(store.get("a"), 1)

    def test_get_missing_returns_default(self):
        store = KVStore()
        self.assertIsNone(store.get("missing"))
        self.assertEqual(store.get("missing", 5), 5)

    def test_exists_and_delete(self):
        store = KVStore()
        store.set("a", 1)
        self.assertTrue(store.exists("a"))
        self.assertTrue(store.delete("a"))
        self.assertFalse(store.exists("a"))
        self.assertFalse(store.delete("a"))

    def test_keys_are_sorted(self):
        store = KVStore()
        for key in ("c", "a", "b"):
            store.set(key, key.upper())
        self.assertEqual(store.keys(), ["a", "b", "c"])
        self.assertEqual(len(store), 3)


if __name__ == "__main__":
    unittest.main()
