"""Tests for etcd_twisted.server.id_gen: etcd's request-id layout."""

from twisted.trial.unittest import SynchronousTestCase

from etcd_twisted.server.id_gen import IdGenerator


class IdGeneratorTests(SynchronousTestCase):
    def test_layout_and_uniqueness(self) -> None:
        """Ids carry the member's low 16 bits on top and increase by one."""
        gen = IdGenerator(0x8E9E05C52164694D, now_ms=0x1234567890)
        first = gen.next()
        self.assertEqual(first >> 48, 0x694D)
        self.assertEqual((first >> 8) & ((1 << 40) - 1), 0x1234567890)
        ids = [first] + [gen.next() for _ in range(1000)]
        self.assertEqual(ids, list(range(first, first + 1001)))

    def test_suffix_wraps_within_48_bits(self) -> None:
        """The time-and-counter suffix wraps without touching the member prefix."""
        gen = IdGenerator(0xABCD, now_ms=(1 << 40) - 1)
        for _ in range(300):
            value = gen.next()
            self.assertEqual(value >> 48, 0xABCD)
