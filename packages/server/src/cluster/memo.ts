/**
 * A pure function's answers remembered for up to `limit` keys; past that it
 * forgets them all and starts over. Its callers are on the hot path (every send,
 * commit and push) with a small working set, so a full clear now and then costs
 * less than keeping an LRU order on every hit, and memory stays bounded.
 */
export function rememberUpTo<K, V>(limit: number, compute: (key: K) => V): (key: K) => V {
  const known = new Map<K, V>();
  return (key) => {
    let value = known.get(key);
    if (value === undefined) {
      if (known.size >= limit) known.clear();
      value = compute(key);
      known.set(key, value);
    }
    return value;
  };
}
