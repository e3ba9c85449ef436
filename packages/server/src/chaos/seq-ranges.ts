/**
 * A set of seqs kept as sorted disjoint ranges. What one user saw of one
 * conversation is nearly always a few long runs of consecutive seqs, so this
 * stays small where a Set of every seq would grow with the run. Pure.
 */
export class SeqRanges {
  /** lo0, hi0, lo1, hi1, … ascending, with a gap of at least one between ranges */
  private readonly r: number[] = [];
  private total = 0;

  get size(): number {
    return this.total;
  }

  get min(): number | undefined {
    return this.r[0];
  }

  get max(): number | undefined {
    return this.r.at(-1);
  }

  /** Adds a seq; returns false when it was already there. */
  add(seq: number): boolean {
    const r = this.r;
    const n = r.length;
    // The common case: the next seq after the newest range.
    if (n > 0 && seq === r[n - 1]! + 1) {
      r[n - 1] = seq;
      this.total++;
      return true;
    }
    // Find the first range whose hi >= seq - 1.
    let lo = 0;
    let hi = n / 2;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (r[2 * mid + 1]! < seq - 1) lo = mid + 1;
      else hi = mid;
    }
    const i = 2 * lo;
    if (i < n && r[i]! <= seq && seq <= r[i + 1]!) return false;
    this.total++;
    if (i < n && r[i + 1] === seq - 1) {
      r[i + 1] = seq;
      // Joined the next range?
      if (i + 2 < n && r[i + 2] === seq + 1) r.splice(i + 1, 2);
      return true;
    }
    if (i < n && r[i] === seq + 1) {
      r[i] = seq;
      return true;
    }
    r.splice(i, 0, seq, seq);
    return true;
  }

  has(seq: number): boolean {
    const r = this.r;
    let lo = 0;
    let hi = r.length / 2;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (r[2 * mid + 1]! < seq) lo = mid + 1;
      else hi = mid;
    }
    return 2 * lo < r.length && r[2 * lo]! <= seq;
  }

  /** The ranges, ascending. */
  *ranges(): Generator<[number, number]> {
    for (let i = 0; i < this.r.length; i += 2) yield [this.r[i]!, this.r[i + 1]!];
  }

  /** Up to `max` seqs of [from, to] that are not in the set, ascending, and how many there are in all. */
  missing(from: number, to: number, max: number): { seqs: number[]; count: number } {
    const seqs: number[] = [];
    let count = 0;
    let next = from;
    const take = (a: number, b: number): void => {
      if (b < a) return;
      count += b - a + 1;
      for (let s = a; s <= b && seqs.length < max; s++) seqs.push(s);
    };
    for (const [lo, hi] of this.ranges()) {
      if (hi < next) continue;
      if (lo > to) break;
      take(next, Math.min(lo - 1, to));
      next = hi + 1;
      if (next > to) break;
    }
    take(next, to);
    return { seqs, count };
  }
}
