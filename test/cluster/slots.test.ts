/** Slot hashing and rendezvous ownership: stable across releases, spread evenly, and moving as little as possible. */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { assignSlots, checkSlotCount, ownerOf, SlotAssignment, slotOf } from '../../packages/server/src/cluster/slots.js';

const nodeName = fc.stringMatching(/^[a-z][a-z0-9-]{0,11}$/);
const nodeSet = (min: number, max: number) => fc.uniqueArray(nodeName, { minLength: min, maxLength: max });

describe('slotOf', () => {
  it('is the first 4 bytes of SHA-256 modulo the slot count (published SHA-256 test vectors)', () => {
    // FIPS 180-2: SHA-256("abc") = ba7816bf…, SHA-256("") = e3b0c442…
    expect(slotOf('abc', 2 ** 31)).toBe(0xba7816bf % 2 ** 31);
    expect(slotOf('abc', 1024)).toBe(0xba7816bf % 1024);
    expect(slotOf('', 1000)).toBe(0xe3b0c442 % 1000);
  });

  it('hashes the UTF-8 bytes, so the same text in another normal form is another conversation', () => {
    const composed = 'caf\u00e9';
    const decomposed = 'cafe\u0301';
    const slots = 2 ** 31;
    expect(slotOf(composed, slots)).not.toBe(slotOf(decomposed, slots));
  });

  it('is always in range and spreads conversations evenly', () => {
    const slots = 64;
    const counts = new Array<number>(slots).fill(0);
    const n = 64_000;
    for (let i = 0; i < n; i++) {
      const slot = slotOf(`g:room-${i}`, slots);
      expect(slot).toBeGreaterThanOrEqual(0);
      expect(slot).toBeLessThan(slots);
      counts[slot]!++;
    }
    // 1000 expected per slot; a binomial stddev is ~31, so ±20% is over 6 sigma.
    for (const c of counts) expect(Math.abs(c - n / slots)).toBeLessThan(200);
  });

  it('refuses slot counts outside 1..65536', () => {
    for (const bad of [0, -1, 1.5, 65_537, Number.NaN]) expect(() => checkSlotCount(bad)).toThrow(RangeError);
    expect(() => checkSlotCount(1)).not.toThrow();
  });
});

describe('rendezvous ownership', () => {
  it('does not depend on the order or duplicates of the live list', () => {
    fc.assert(
      fc.property(nodeSet(1, 6), fc.integer({ min: 0, max: 4095 }), (nodes, slot) => {
        const reversed = [...nodes].reverse();
        expect(ownerOf(slot, reversed)).toBe(ownerOf(slot, nodes));
        expect(ownerOf(slot, [...nodes, ...nodes])).toBe(ownerOf(slot, nodes));
        expect(nodes).toContain(ownerOf(slot, nodes));
      }),
    );
  });

  it('when a node joins, only slots the newcomer wins move, and all of them move to it', () => {
    fc.assert(
      fc.property(nodeSet(1, 6), nodeName, (nodes, newcomer) => {
        fc.pre(!nodes.includes(newcomer));
        const before = assignSlots(256, nodes);
        const after = assignSlots(256, [...nodes, newcomer]);
        for (let slot = 0; slot < 256; slot++) {
          if (after[slot] !== before[slot]) expect(after[slot]).toBe(newcomer);
        }
      }),
    );
  });

  it('when a node leaves, only its slots move; the others keep theirs', () => {
    fc.assert(
      fc.property(nodeSet(2, 7), fc.nat(), (nodes, pick) => {
        const leaver = nodes[pick % nodes.length]!;
        const before = assignSlots(256, nodes);
        const after = assignSlots(256, nodes.filter((n) => n !== leaver));
        for (let slot = 0; slot < 256; slot++) {
          if (before[slot] !== leaver) expect(after[slot]).toBe(before[slot]);
          else expect(after[slot]).not.toBe(leaver);
        }
      }),
    );
  });

  it('moves about 1/(N+1) of the slots when the (N+1)th node joins, and balances the load', () => {
    const slots = 1024;
    const nodes = ['node-a', 'node-b', 'node-c'];
    const before = assignSlots(slots, nodes);
    const after = assignSlots(slots, [...nodes, 'node-d']);
    const moved = before.filter((owner, slot) => after[slot] !== owner).length;
    // expected 256; the spread is binomial(1024, 1/4): stddev ~14
    expect(moved).toBeGreaterThan(256 - 80);
    expect(moved).toBeLessThan(256 + 80);
    for (const node of [...nodes, 'node-d']) {
      const held = after.filter((o) => o === node).length;
      expect(held).toBeGreaterThan(256 - 80);
      expect(held).toBeLessThan(256 + 80);
    }
  });

  it('SlotAssignment caches by the set of names and gives the same answer as assignSlots', () => {
    const assignment = new SlotAssignment(128);
    const first = assignment.over(['b', 'a', 'c']);
    expect(assignment.over(['c', 'a', 'b', 'a'])).toBe(first);
    expect([...first]).toEqual(assignSlots(128, ['a', 'b', 'c']));
    const won = assignment.wonBy('a', ['a', 'b', 'c']);
    expect(won.every((slot) => first[slot] === 'a')).toBe(true);
    expect(won.length).toBe(first.filter((o) => o === 'a').length);
    expect(assignment.wonBy('a', [])).toEqual([]);
  });
});
