/**
 * The scheduling of pipelined commits (store/commit-order.ts) with a writer the
 * test controls: which batches run together, which wait, how a failed joined
 * transaction is retried, and that callers are answered in call order.
 */
import { describe, expect, it } from 'vitest';
import { CommitOrder } from '../../packages/server/src/store/commit-order.js';

interface Batch {
  name: string;
  convs: string[];
  size?: number;
  bad?: boolean;
  fence?: number;
}

/** A writer that holds each transaction until the test lets it go. */
function harness(maxRunning: number, maxEntries = 100) {
  const transactions: { names: string[]; finish(): void }[] = [];
  const order = new CommitOrder<Batch>({
    maxRunning,
    maxEntries,
    joinable: (group, next) => group.every((b) => b.fence === next.fence),
    sizeOf: (b) => b.size ?? 1,
    write: (batches) =>
      new Promise<void>((resolve, reject) => {
        const names = batches.map((b) => b.name);
        transactions.push({ names, finish: () => (batches.some((b) => b.bad) ? reject(new Error(`refused ${names.join('+')}`)) : resolve()) });
      }),
  });
  const answered: string[] = [];
  const commit = (b: Batch) => {
    const p = order.run(b.convs, b);
    p.then(
      () => answered.push(`${b.name} ok`),
      () => answered.push(`${b.name} refused`),
    );
    return p;
  };
  const running = () => transactions.filter((t) => t.names.length > 0).map((t) => t.names.join('+'));
  /** Lets the transaction go whose batches are `names`, and waits for what follows from it. */
  const finish = async (names: string) => {
    const i = transactions.findIndex((t) => t.names.join('+') === names);
    expect(i, `transaction ${names} running`).toBeGreaterThanOrEqual(0);
    const [t] = transactions.splice(i, 1);
    t!.finish();
    for (let k = 0; k < 5; k++) await new Promise((r) => setImmediate(r));
  };
  return { order, commit, running, finish, answered };
}

describe('CommitOrder', () => {
  it('runs batches of disjoint conversations side by side and answers them in call order', async () => {
    const h = harness(3);
    h.commit({ name: 'a', convs: ['x'] });
    h.commit({ name: 'b', convs: ['y'] });
    await h.finish('b');
    // b is written, but a was called first: neither is answered yet
    expect(h.answered).toEqual([]);
    await h.finish('a');
    expect(h.answered).toEqual(['a ok', 'b ok']);
  });

  it('a batch sharing a conversation with a running one waits; so does every later batch of that conversation, even one free itself', async () => {
    const h = harness(3);
    h.commit({ name: 'a', convs: ['x'] });
    h.commit({ name: 'b', convs: ['x', 'y'] });
    h.commit({ name: 'c', convs: ['y'] });
    h.commit({ name: 'd', convs: ['z'] });
    await new Promise((r) => setImmediate(r));
    // c touches only y, which nothing runs, but b (earlier, waiting) has y: c must not go first
    expect(h.running()).toEqual(['a', 'd']);
    await h.finish('a');
    expect(h.running()).toEqual(['d', 'b+c']);
    await h.finish('b+c');
    await h.finish('d');
    expect(h.answered).toEqual(['a ok', 'b ok', 'c ok', 'd ok']);
  });

  it('joins waiting batches up to maxEntries and as joinable allows, in call order', async () => {
    const h = harness(1, 10);
    h.commit({ name: 'a', convs: ['x'] });
    h.commit({ name: 'b', convs: ['x'], size: 4 });
    h.commit({ name: 'c', convs: ['y'], size: 4 });
    h.commit({ name: 'd', convs: ['z'], size: 4 });
    h.commit({ name: 'e', convs: ['w'], fence: 1 });
    h.commit({ name: 'f', convs: ['v'] });
    await h.finish('a');
    // d would pass 10 entries, e is under another fence; f fits and shares nothing with them
    expect(h.running()).toEqual(['b+c+f']);
    await h.finish('b+c+f');
    expect(h.running()).toEqual(['d']);
    await h.finish('d');
    await h.finish('e');
    expect(h.answered).toEqual(['a ok', 'b ok', 'c ok', 'd ok', 'e ok', 'f ok']);
  });

  it('a joined transaction that fails is run again batch by batch: only the batch at fault is refused', async () => {
    const h = harness(1);
    h.commit({ name: 'a', convs: ['x'] });
    h.commit({ name: 'b', convs: ['y'] });
    h.commit({ name: 'c', convs: ['z'], bad: true });
    h.commit({ name: 'd', convs: ['w'] });
    await h.finish('a');
    await h.finish('b+c+d');
    expect(h.running()).toEqual(['b']);
    await h.finish('b');
    await h.finish('c');
    await h.finish('d');
    expect(h.answered).toEqual(['a ok', 'b ok', 'c refused', 'd ok']);
    // its conversations are free again
    h.commit({ name: 'e', convs: ['y', 'z', 'w'] });
    await new Promise((r) => setImmediate(r));
    expect(h.running()).toEqual(['e']);
    await h.finish('e');
    await h.order.drained();
    expect(h.answered.at(-1)).toBe('e ok');
  });
});
