/**
 * The order of pipelined commits of a store that runs several transactions at
 * once (PostgreSQL, on a pool of connections). A commit starts only once every
 * earlier commit that touches one of its conversations has settled, so the
 * entries of one conversation are written in seq order and each transaction
 * finds its conversations' rows as the one before left them; commits of
 * disjoint conversations run side by side. Whatever order they finish in, their
 * promises settle in call order, as Store.pipelinesCommits promises.
 *
 * An earlier commit's failure is not passed on here: the later commit runs and
 * meets the store's own order check (its first entry of a conversation must
 * follow the stored last), which refuses it when it depended on what failed and
 * lets it through when it did not.
 */
const ignore = (): void => {};

export class CommitOrder {
  /** Per conversation: settles (never rejects) when the latest commit touching it has settled. */
  private readonly tails = new Map<string, Promise<void>>();
  /** Settles (never rejects) when the latest commit's promise has settled. */
  private last: Promise<void> = Promise.resolve();

  /** Runs `work` after the earlier commits of `convs`; the result settles after every earlier call's. */
  run(convs: Iterable<string>, work: () => Promise<void>): Promise<void> {
    const keys = new Set(convs);
    const before: Promise<void>[] = [];
    for (const conv of keys) {
      const tail = this.tails.get(conv);
      if (tail) before.push(tail);
    }
    const done = (before.length === 0 ? Promise.resolve() : Promise.all(before)).then(work);
    const settled = done.then(ignore, ignore);
    for (const conv of keys) this.tails.set(conv, settled);
    // Forget a conversation once nothing is in flight for it, so the map stays as small as the pipeline.
    void settled.then(() => {
      for (const conv of keys) if (this.tails.get(conv) === settled) this.tails.delete(conv);
    });
    const ordered = this.last.then(() => done);
    this.last = ordered.then(ignore, ignore);
    return ordered;
  }

  /** Settles once every commit called so far has settled. */
  drained(): Promise<void> {
    return this.last;
  }

  /** Conversations with a commit in flight (for tests of the bookkeeping). */
  get pendingConvs(): number {
    return this.tails.size;
  }
}
