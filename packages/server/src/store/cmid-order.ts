/**
 * Cmids of printable ASCII only. For them JavaScript's string order, SQLite's
 * binary order and PostgreSQL's "C" collation agree, so the range a lane's
 * cmids span means the same in memory and in every store. The SDK's cmids are
 * all such; a cmid with any other character is simply always looked up.
 */
export function isOrderableCmid(cmid: string): boolean {
  return /^[\x20-\x7e]+$/.test(cmid);
}
