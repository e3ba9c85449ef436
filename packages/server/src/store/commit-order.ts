/**
 * The order of pipelined commits of a store that runs several transactions at
 * once (PostgreSQL, on a pool of connections).
 *
 * - A batch starts only once no transaction running touches one of its
 *   conversations, and never ahead of an earlier batch waiting for one of them:
 *   the entries of a conversation are written in seq order, each transaction
 *   finding its conversations' rows as the one before left them. Batches of
 *   disjoint conversations run side by side, up to `maxRunning` transactions.
 * - When a transaction can start, it takes every batch waiting that may start
 *   then (in call order, up to `maxEntries` entries and as `joinable` allows):
 *   under load the batches that queued meanwhile become one commit, so its fixed
 *   costs (round trips, the flush) are paid once, as the SQLite writer does.
 * - A transaction of several batches that fails is run again batch by batch, in
 *   order, so that one batch at fault fails alone.
 * - Whatever order transactions finish in, the callers' promises settle in call
 *   order, as Store.pipelinesCommits promises.
 *
 * An earlier batch's failure is not passed on here: the later batch runs and
 * meets the store's own order check (its first entry of a conversation must
 * follow the stored last), which refuses it when it depended on what failed and
 * lets it through when it did not.
 */

export interface CommitOrderOptions<B> {
  /** Transactions at once. */
  maxRunning: number;
  /** Entries a transaction of several batches stays within (a larger batch runs alone). */
  maxEntries: number;
  /** Whether `next` may share a transaction with the batches in `group`. */
  joinable(group: readonly B[], next: B): boolean;
  /** Size of a batch, counted against maxEntries. */
  sizeOf(batch: B): number;
  /** Commits the batches, in order, in one transaction: all of them or none. */
  write(batches: readonly B[]): Promise<void>;
}

interface Item<B> {
  batch: B;
  convs: ReadonlySet<string>;
  outcome?: { ok: true } | { ok: false; error: unknown };
  resolve(): void;
  reject(error: unknown): void;
}

export class CommitOrder<B> {
  /** Not yet started, in call order. */
  private waiting: Item<B>[] = [];
  /** Every item not yet answered, in call order. */
  private unanswered: Item<B>[] = [];
  /** Conversations of the running transactions. */
  private readonly busy = new Set<string>();
  private running = 0;
  private drainWaiters: (() => void)[] = [];

  constructor(private readonly options: CommitOrderOptions<B>) {}

  /** Commits `batch`, touching `convs`; settles after every earlier call has. */
  run(convs: Iterable<string>, batch: B): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      const item: Item<B> = { batch, convs: new Set(convs), resolve, reject };
      this.waiting.push(item);
      this.unanswered.push(item);
      this.pump();
    });
  }

  /** Settles once every commit called so far has been answered. */
  drained(): Promise<void> {
    if (this.unanswered.length === 0) return Promise.resolve();
    return new Promise((resolve) => this.drainWaiters.push(resolve));
  }

  private pump(): void {
    while (this.running < this.options.maxRunning) {
      const group = this.nextGroup();
      if (group.length === 0) return;
      void this.start(group);
    }
  }

  /** The batches that may start now in one transaction; removed from `waiting`. */
  private nextGroup(): Item<B>[] {
    const group: Item<B>[] = [];
    const held = new Set(this.busy);
    let entries = 0;
    const rest: Item<B>[] = [];
    for (const item of this.waiting) {
      const free = ![...item.convs].some((c) => held.has(c));
      const fits =
        group.length === 0 ||
        (entries + this.options.sizeOf(item.batch) <= this.options.maxEntries &&
          this.options.joinable(
            group.map((g) => g.batch),
            item.batch,
          ));
      if (free && fits) {
        group.push(item);
        entries += this.options.sizeOf(item.batch);
        continue;
      }
      // What stays behind keeps its conversations: no later batch of them may go first.
      for (const c of item.convs) held.add(c);
      rest.push(item);
    }
    this.waiting = rest;
    return group;
  }

  private async start(group: Item<B>[]): Promise<void> {
    this.running++;
    for (const item of group) for (const c of item.convs) this.busy.add(c);
    try {
      if (await this.attempt(group)) return;
      // One batch at fault must not fail the others: each again alone, in order.
      for (const item of group) await this.attempt([item]);
    } finally {
      for (const item of group) for (const c of item.convs) this.busy.delete(c);
      this.running--;
      this.answer();
      this.pump();
    }
  }

  /** True once the group has an outcome: committed, or (a single batch) refused. */
  private async attempt(group: Item<B>[]): Promise<boolean> {
    try {
      await this.options.write(group.map((item) => item.batch));
      for (const item of group) item.outcome = { ok: true };
      return true;
    } catch (error) {
      if (group.length > 1) return false;
      group[0]!.outcome = { ok: false, error };
      return true;
    }
  }

  /** Answers, in call order, every item from the oldest up to the first still without an outcome. */
  private answer(): void {
    let n = 0;
    while (n < this.unanswered.length && this.unanswered[n]!.outcome) n++;
    if (n === 0) return;
    const done = this.unanswered.splice(0, n);
    for (const item of done) {
      const outcome = item.outcome!;
      if (outcome.ok) item.resolve();
      else item.reject(outcome.error);
    }
    if (this.unanswered.length === 0) for (const wake of this.drainWaiters.splice(0)) wake();
  }
}
