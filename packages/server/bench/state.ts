/**
 * `npm run bench:state`: the chat-state reads of the store (the conversation list
 * with read positions and unread counts, `convs since`, a `read` and the unread
 * total) on a user in many conversations holding many entries, each against a
 * naive baseline on the same data in the same run: the same answer computed by a
 * plain SQL scan that counts entries (`count(*)`), as a store without `mcount`
 * and versions would.
 *
 * Data, made through the store's own commit() (unmeasured): one reader in
 * `--convs` conversations (10,000), each shared with one other user; `--entries`
 * messages in them (1,000,000), half in one large group and the rest spread over
 * the others; the reader has read half of every conversation, and a few unread
 * messages are deleted. Then 10 conversations (the large one among them) get one
 * message each: `convs since` from the version before them returns those 10.
 *
 * Timing: every row is warmed up once, then timed in `--rounds` rounds of
 * `--round-ms`, the rows taking turns (round 1 of every row, then round 2, …), so
 * a burst of load from elsewhere on the shared machine lands on all rows alike.
 * A row's number is the median of its rounds. Before timing, every pair is run
 * once and its answers compared: a baseline that disagrees with the store fails
 * the run, so the ratios compare equal answers.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import pg from 'pg';
import type { Entry } from 'sequent-client/protocol';
import { parseFlags, usage, UsageError, type FlagSpec } from '../src/cli/args.js';
import { openPostgresStore } from '../src/store/postgres.js';
import { openSqliteStore } from '../src/store/sqlite.js';
import type { CommitBatch, ConvListing, Store } from '../src/store/types.js';
import { ratio, writeResults, type Row } from './report.js';

const BACKENDS = ['sqlite', 'postgres'] as const;
type Backend = (typeof BACKENDS)[number];

const FLAGS: Record<string, FlagSpec> = {
  convs: { kind: 'int', default: 10_000, min: 20, max: 1_000_000, help: "conversations the reader is in" },
  entries: { kind: 'int', default: 1_000_000, min: 1000, max: 50_000_000, help: 'messages over all of them (half in one large group)' },
  changed: { kind: 'int', default: 10, min: 1, max: 1000, help: 'conversations that change after the version `convs since` starts from' },
  rounds: { kind: 'int', default: 5, min: 1, max: 100, help: 'timed rounds per row, the rows taking turns' },
  'round-ms': { kind: 'int', default: 1000, min: 50, max: 60_000, help: 'length of one round of one row, ms (a row runs at least once a round)' },
  backends: { kind: 'string', default: 'sqlite', help: `comma-separated: ${BACKENDS.join(', ')} (postgres at POSTGRES_URL)` },
  'postgres-url': { kind: 'string', default: process.env['POSTGRES_URL'] ?? 'postgres://postgres@127.0.0.1:5432/test', help: 'PostgreSQL for --backends postgres' },
  'fill-timeout': { kind: 'int', default: 900, min: 10, max: 36_000, help: 'longest the data may take to make, s (the run fails past it)' },
  help: { kind: 'bool', default: false, help: 'print this help' },
};

const READER = 'reader';
const BIG = 'g:big';
const TS0 = 1_700_000_000_000;
const log = (line: string) => process.stderr.write(`${line}\n`);

interface Plan {
  convs: number;
  entries: number;
  changed: number;
  fillTimeoutS: number;
}

const convName = (c: number) => (c === 0 ? BIG : `dm:${READER}:p${c}`);
const partner = (c: number) => `p${c}`;

/** Messages of conversation c: half of all in the large group, the rest spread evenly. */
function messagesOf(plan: Plan, c: number): number {
  const big = Math.floor(plan.entries / 2);
  if (c === 0) return big;
  const rest = plan.entries - big;
  const others = plan.convs - 1;
  return Math.floor(rest / others) + (c - 1 < rest % others ? 1 : 0);
}

/** Builds the data through the store's commit(), in large batches. Returns the reader's version before the changed conversations. */
async function fill(store: Store, plan: Plan): Promise<{ sinceVersion: number; sinceTs: number }> {
  let ts = TS0;
  let mid = 0;
  const last = new Array<number>(plan.convs).fill(0);
  const dseq = new Array<number>(plan.convs).fill(0);
  const entry = (c: number, kind: Entry['kind'], body: unknown, ref?: number): Entry => {
    const conv = convName(c);
    const seq = ++last[c]!;
    const e: Entry = { conv, seq, kind, mid: String(++mid), ts: ++ts, from: partner(c), dev: 'd', body };
    if (kind !== 'system') {
      e.cmid = `bench-${c}-${seq}`;
      e.dseq = ++dseq[c]!;
    }
    if (ref !== undefined) e.ref = ref;
    return e;
  };
  const t0 = performance.now();
  for (let c = 0; c < plan.convs; c += 1000) {
    const batch: CommitBatch = { newConvs: [], entries: [], memberships: [] };
    for (let k = c; k < Math.min(plan.convs, c + 1000); k++) {
      batch.newConvs.push({ conv: convName(k), kind: k === 0 ? 'group' : 'dm' });
      batch.entries.push(entry(k, 'system', { op: 'create', members: [READER] }));
      batch.memberships.push({ op: 'add', conv: convName(k), user: partner(k), seq: 1 }, { op: 'add', conv: convName(k), user: READER, seq: 1 });
    }
    await store.commit(batch);
  }
  // Messages in rounds over all conversations, so that every conversation's log grows through the file as in life.
  const quota = Array.from({ length: plan.convs }, (_, c) => messagesOf(plan, c));
  const perRound = Math.max(1, Math.ceil(quota[0]! / 20));
  let written = 0;
  for (let round = 0; written < plan.entries; round++) {
    const entries: Entry[] = [];
    for (let c = 0; c < plan.convs; c++) {
      const n = Math.min(c === 0 ? perRound : Math.ceil(quota[c]! / 20), quota[c]!);
      for (let i = 0; i < n; i++) entries.push(entry(c, 'msg', { text: `message ${last[c]! + 1} of ${convName(c)}` }));
      quota[c]! -= n;
      written += n;
      if (entries.length >= 20_000) await store.commit({ newConvs: [], entries: entries.splice(0), memberships: [] });
    }
    if (entries.length > 0) await store.commit({ newConvs: [], entries, memberships: [] });
    const elapsed = (performance.now() - t0) / 1000;
    if (elapsed > plan.fillTimeoutS) throw new Error(`flag --fill-timeout: making the data took over ${plan.fillTimeoutS} s (${written} of ${plan.entries} messages written)`);
    if (round % 5 === 4) log(`state: ${written.toLocaleString('en-US')} of ${plan.entries.toLocaleString('en-US')} messages written (${((performance.now() - t0) / 1000).toFixed(1)} s)`);
  }
  // The reader has read half of every conversation.
  const reads = Array.from({ length: plan.convs }, (_, c) => ({ conv: convName(c), user: READER, seq: Math.floor(last[c]! / 2), public: true }));
  await store.commit({ newConvs: [], entries: [], memberships: [], reads });
  // A deleted unread message in every 100th conversation: the unread count must leave it out.
  const deletes: Entry[] = [];
  for (let c = 0; c < plan.convs; c += 100) deletes.push(entry(c, 'delete', null, last[c]! - 1));
  await store.commit({ newConvs: [], entries: deletes, memberships: [] });
  const sinceVersion = (await store.convsState(READER)).version;
  const sinceTs = ts;
  // `changed` conversations (the large group first) get one message each.
  const changed: Entry[] = [];
  for (let k = 0; k < plan.changed; k++) changed.push(entry(Math.floor((k * plan.convs) / plan.changed), 'msg', { text: 'new' }));
  await store.commit({ newConvs: [], entries: changed, memberships: [] });
  log(`state: data made in ${((performance.now() - t0) / 1000).toFixed(1)} s: ${plan.convs.toLocaleString('en-US')} conversations, ${written.toLocaleString('en-US')} messages (${messagesOf(plan, 0).toLocaleString('en-US')} in ${BIG})`);
  return { sinceVersion, sinceTs };
}

/** One listed row, as both sides give it: what the client shows. */
interface Shown {
  conv: string;
  last: number;
  read: number;
  unread: number;
}

const shown = (l: ConvListing): Shown => ({ conv: l.conv, last: l.last, read: l.read, unread: l.unread });

/**
 * The naive way over the same tables: unread is a count of the entries after the
 * read position, and "changed since" is a scan of the user's rows by time.
 */
interface Naive {
  /** Every row of the user's list, unread counted over entries. */
  list(user: string): Promise<Shown[]>;
  /** The rows whose last entry is newer than ts (a scan of all the user's rows), and the user's unread total. */
  since(user: string, ts: number): Promise<{ rows: Shown[]; unread: number }>;
  /** The user's unread total, counted over entries. */
  total(user: string): Promise<number>;
  /** A read position moved in a table of its own (durably, as the store's), then the new total counted. */
  readThenTotal(conv: string, user: string, seq: number): Promise<number>;
  close(): Promise<void>;
}

// Unread of one member_state row s, counted: others' messages after the read position, not deleted.
const COUNT_UNREAD = `(SELECT count(*) FROM entries e WHERE e.conv = s.conv AND e.seq > s.read AND e.kind = 'msg'
                        AND e.deleted IS NULL AND e.from_user <> s.member)`;

function sqliteNaive(path: string): Naive {
  const db = new Database(path);
  db.pragma('journal_mode = WAL');
  db.pragma('synchronous = FULL');
  db.pragma('busy_timeout = 5000');
  db.exec('CREATE TABLE IF NOT EXISTS bench_naive_read (conv TEXT NOT NULL, member TEXT NOT NULL, read INTEGER NOT NULL, PRIMARY KEY (conv, member)) WITHOUT ROWID');
  const list = db.prepare<[string], Shown>(
    `SELECT c.conv, c.last, s.read, ${COUNT_UNREAD} AS unread FROM member_state s JOIN convs c ON c.conv = s.conv
      WHERE s.member = ? ORDER BY c.last_ts DESC, c.conv`,
  );
  const changed = db.prepare<[string, number], Shown>(
    `SELECT c.conv, c.last, s.read, ${COUNT_UNREAD} AS unread FROM member_state s JOIN convs c ON c.conv = s.conv
      WHERE s.member = ? AND c.last_ts > ? ORDER BY c.last_ts, c.conv`,
  );
  const total = db.prepare<[string], { unread: number }>(`SELECT coalesce(sum(${COUNT_UNREAD}), 0) AS unread FROM member_state s WHERE s.member = ?`);
  const move = db.prepare<[string, string, number]>(
    'INSERT INTO bench_naive_read (conv, member, read) VALUES (?, ?, ?) ON CONFLICT (conv, member) DO UPDATE SET read = max(read, excluded.read)',
  );
  return {
    list: async (user) => list.all(user),
    since: async (user, ts) => db.transaction(() => ({ rows: changed.all(user, ts), unread: total.get(user)!.unread }))(),
    total: async (user) => total.get(user)!.unread,
    readThenTotal: async (conv, user, seq) => {
      move.run(conv, user, seq);
      return total.get(user)!.unread;
    },
    close: async () => void db.close(),
  };
}

function postgresNaive(url: string, schema: string): Naive {
  const pool = new pg.Pool({ connectionString: url, max: 2 });
  const count = COUNT_UNREAD.replace(/entries/g, `${schema}.entries`);
  const num = (v: unknown) => Number(v);
  const row = (r: Record<string, unknown>): Shown => ({ conv: String(r['conv']), last: num(r['last']), read: num(r['read']), unread: num(r['unread']) });
  const totalSql = `SELECT coalesce(sum(${count}), 0) AS unread FROM ${schema}.member_state s WHERE s.member = $1`;
  let made: Promise<unknown> | undefined;
  return {
    list: async (user) =>
      (
        await pool.query(
          `SELECT c.conv, c.last, s.read, ${count} AS unread FROM ${schema}.member_state s JOIN ${schema}.convs c ON c.conv = s.conv
            WHERE s.member = $1 ORDER BY c.last_ts DESC, c.conv`,
          [user],
        )
      ).rows.map(row),
    since: async (user, ts) => {
      const client = await pool.connect();
      try {
        await client.query('BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY');
        const rows = await client.query(
          `SELECT c.conv, c.last, s.read, ${count} AS unread FROM ${schema}.member_state s JOIN ${schema}.convs c ON c.conv = s.conv
            WHERE s.member = $1 AND c.last_ts > $2 ORDER BY c.last_ts, c.conv`,
          [user, ts],
        );
        const total = await client.query(totalSql, [user]);
        await client.query('COMMIT');
        return { rows: rows.rows.map(row), unread: num(total.rows[0].unread) };
      } finally {
        client.release();
      }
    },
    total: async (user) => num((await pool.query(totalSql, [user])).rows[0].unread),
    readThenTotal: async (conv, user, seq) => {
      made ??= pool.query(`CREATE TABLE IF NOT EXISTS ${schema}.bench_naive_read (conv TEXT NOT NULL, member TEXT NOT NULL, read BIGINT NOT NULL, PRIMARY KEY (conv, member))`);
      await made;
      await pool.query(
        `INSERT INTO ${schema}.bench_naive_read (conv, member, read) VALUES ($1, $2, $3)
          ON CONFLICT (conv, member) DO UPDATE SET read = greatest(${schema}.bench_naive_read.read, excluded.read)`,
        [conv, user, seq],
      );
      return num((await pool.query(totalSql, [user])).rows[0].unread);
    },
    close: () => pool.end(),
  };
}

/** One timed thing: `op()` once is one operation. */
interface Case {
  name: string;
  op(): Promise<unknown>;
}

interface Pair {
  what: string;
  ours: Case;
  naive: Case;
}

async function timeRound(c: Case, ms: number): Promise<number> {
  let n = 0;
  const t0 = performance.now();
  let t = t0;
  do {
    await c.op();
    n++;
    t = performance.now();
  } while (t - t0 < ms);
  return (n * 1000) / (t - t0);
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

function sameRows(what: string, ours: Shown[], naive: Shown[]): void {
  const key = (r: Shown) => `${r.conv} ${r.last} ${r.read} ${r.unread}`;
  const a = ours.map(key).sort();
  const b = naive.map(key).sort();
  if (a.length !== b.length) throw new Error(`${what}: the store listed ${a.length} rows, the baseline ${b.length}`);
  const i = a.findIndex((k, j) => k !== b[j]);
  if (i >= 0) throw new Error(`${what}: the store and the baseline disagree: ${a[i]} against ${b[i]}`);
}

function sameNumber(what: string, ours: number, naive: number): void {
  if (ours !== naive) throw new Error(`${what}: the store says ${ours}, the baseline ${naive}`);
}

async function measureBackend(backend: Backend, plan: Plan, flags: Record<string, unknown>): Promise<{ rows: Row[]; ratios: Record<string, number> }> {
  const dir = backend === 'sqlite' ? mkdtempSync(join(tmpdir(), 'sequent-bench-state-')) : undefined;
  const schema = `bench_state_${process.pid}`;
  const url = String(flags['postgres-url']);
  let store: Store;
  let naive: Naive;
  if (backend === 'sqlite') {
    const path = join(dir!, 'sequent.db');
    store = openSqliteStore({ path, durability: 'full' });
    await store.init();
    naive = sqliteNaive(path);
  } else {
    store = openPostgresStore({ url, schema });
    await store.init();
    naive = postgresNaive(url, schema);
  }
  try {
    const { sinceVersion, sinceTs } = await fill(store, plan);
    const changedRows = (await store.listConvsSince(READER, sinceVersion, 1000)).length;
    if (changedRows !== plan.changed) throw new Error(`convs since: ${changedRows} rows changed, expected ${plan.changed}`);

    // Compare the answers once before timing anything.
    const full = await store.listConvs(READER, plan.convs + 1);
    sameRows('convs', full.map(shown), await naive.list(READER));
    const state = await store.convsState(READER);
    const naiveSince = await naive.since(READER, sinceTs);
    sameRows('convs since', (await store.listConvsSince(READER, sinceVersion, 500)).map(shown), naiveSince.rows);
    sameNumber('unread total', state.unread, naiveSince.unread);
    sameNumber('unread total = sum of the rows', state.unread, full.reduce((s, l) => s + l.unread, 0));
    log(`state: answers agree: ${full.length} rows, ${plan.changed} changed, unread total ${state.unread.toLocaleString('en-US')}`);

    // The read rows move the large group's position one seq at a time: the large group is one of the
    // changed rows already, so `convs since` keeps returning the same `changed` rows.
    let ourRead = Math.floor(messagesOf(plan, 0) / 2);
    let naiveRead = ourRead;
    const pairs: Pair[] = [
      {
        what: `convs, ${plan.convs.toLocaleString('en-US')} rows`,
        ours: { name: 'store.listConvs (mcount arithmetic)', op: () => store.listConvs(READER, plan.convs + 1) },
        naive: { name: 'SQL list, unread by count(*) over entries', op: () => naive.list(READER) },
      },
      {
        what: `convs since, ${plan.changed} changed`,
        ours: {
          name: 'convsState + listConvsSince (the server\'s since reply)',
          op: async () => [await store.convsState(READER), await store.listConvsSince(READER, sinceVersion, 500)],
        },
        naive: { name: 'SQL scan of the rows by last_ts, count(*) total', op: () => naive.since(READER, sinceTs) },
      },
      {
        what: `convs since, ${plan.changed} changed, rows only`,
        ours: { name: 'listConvsSince (the (member, ver) index)', op: () => store.listConvsSince(READER, sinceVersion, 500) },
        naive: { name: 'SQL scan of the rows by last_ts, count(*) total', op: () => naive.since(READER, sinceTs) },
      },
      {
        what: 'unread total',
        ours: { name: 'store.convsState', op: () => store.convsState(READER) },
        naive: { name: 'SQL sum of count(*) over entries', op: () => naive.total(READER) },
      },
      {
        what: `read (durable) + unread total, ${plan.entries.toLocaleString('en-US')} entries`,
        ours: {
          name: 'commit(read) + store.convsState',
          op: async () => {
            await store.commit({ newConvs: [], entries: [], memberships: [], reads: [{ conv: BIG, user: READER, seq: ++ourRead, public: true }] });
            return store.convsState(READER);
          },
        },
        naive: { name: 'UPDATE of a read table + SQL count(*) total', op: () => naive.readThenTotal(BIG, READER, ++naiveRead) },
      },
    ];
    const cases = pairs.flatMap((p) => [p.ours, p.naive]);
    const rounds = Number(flags['rounds']);
    const roundMs = Number(flags['round-ms']);
    for (const c of cases) await c.op(); // warm: statements prepared, pages cached, JIT
    const samples = cases.map(() => [] as number[]);
    for (let r = 0; r < rounds; r++) {
      // Each round starts with another case, so that neither side always runs right after the fill or the other.
      for (let k = 0; k < cases.length; k++) {
        const i = (k + r) % cases.length;
        samples[i]!.push(await timeRound(cases[i]!, roundMs));
      }
      log(`state ${backend}: round ${r + 1} of ${rounds} done`);
    }
    const after = await store.convsState(READER);
    sameNumber('unread total after the reads', after.unread, await naive.total(READER));
    const rows: Row[] = [];
    const ratios: Record<string, number> = {};
    pairs.forEach((p, k) => {
      const [ours, theirs] = [samples[2 * k]!, samples[2 * k + 1]!];
      const row = (c: Case, s: number[]): Row => ({
        name: `${backend}: ${p.what}: ${c.name}`,
        ops_per_s: Math.round(median(s) * 10) / 10,
        ms_per_op: Math.round((1000 / median(s)) * 1000) / 1000,
        min_ops_per_s: Math.round(Math.min(...s) * 10) / 10,
        max_ops_per_s: Math.round(Math.max(...s) * 10) / 10,
      });
      rows.push(row(p.ours, ours), row(p.naive, theirs));
      ratios[`${backend}: ${p.what}: ours / naive ops/s`] = ratio(median(ours), median(theirs));
      const perRound = ours.map((o, j) => ratio(o, theirs[j]!));
      log(`state ${backend}: ${p.what}: ours ${median(ours).toFixed(1)} ops/s, naive ${median(theirs).toFixed(1)} ops/s, ratio ${ratio(median(ours), median(theirs))}× (rounds ${perRound.join(', ')})`);
    });
    return { rows, ratios };
  } finally {
    await naive.close();
    await store.close();
    if (dir) rmSync(dir, { recursive: true, force: true });
    if (backend === 'postgres') {
      const client = new pg.Client({ connectionString: url });
      await client.connect();
      await client.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`);
      await client.end();
    }
  }
}

async function main(): Promise<number> {
  let flags;
  try {
    flags = parseFlags(process.argv.slice(2), FLAGS);
  } catch (error) {
    if (!(error instanceof UsageError)) throw error;
    process.stderr.write(`bench:state: ${error.message}\n${usage('bench:state', FLAGS)}`);
    return 2;
  }
  if (flags['help']) {
    process.stdout.write(usage('bench:state', FLAGS));
    return 0;
  }
  const backends = String(flags['backends']).split(',');
  for (const b of backends) {
    if (!(BACKENDS as readonly string[]).includes(b)) {
      process.stderr.write(`bench:state: flag --backends: unknown backend ${JSON.stringify(b)}\n${usage('bench:state', FLAGS)}`);
      return 2;
    }
  }
  const plan: Plan = { convs: Number(flags['convs']), entries: Number(flags['entries']), changed: Number(flags['changed']), fillTimeoutS: Number(flags['fill-timeout']) };
  if (plan.changed > plan.convs) {
    process.stderr.write(`bench:state: flag --changed: ${plan.changed} is more than --convs ${plan.convs}\n`);
    return 2;
  }
  if (plan.entries / 2 < plan.convs) {
    process.stderr.write(`bench:state: flag --entries: ${plan.entries} leaves fewer than one message per conversation (--convs ${plan.convs})\n`);
    return 2;
  }
  const loadBefore = loadavg().map((n) => Math.round(n * 100) / 100);
  log(`state: machine ${cpus().length} × ${cpus()[0]?.model ?? '?'}, load average ${loadBefore.join(' ')}`);
  const rows: Row[] = [];
  const ratios: Record<string, number> = {};
  for (const backend of backends as Backend[]) {
    try {
      const measured = await measureBackend(backend, plan, flags);
      rows.push(...measured.rows);
      Object.assign(ratios, measured.ratios);
    } catch (error) {
      // A backend that cannot be reached is skipped with the reason; a disagreement fails the run.
      const reason = error instanceof Error ? error.message : String(error);
      if (backend === 'postgres' && /ECONNREFUSED|connect|password|does not exist/i.test(reason) && !/disagree|says/.test(reason)) {
        log(`state: postgres skipped (${reason})`);
        rows.push({ name: 'postgres', skipped: reason });
        continue;
      }
      throw error;
    }
  }
  const loadAfter = loadavg().map((n) => Math.round(n * 100) / 100);
  const full = plan.convs === FLAGS['convs']!.default && plan.entries === FLAGS['entries']!.default && plan.changed === FLAGS['changed']!.default;
  const results = {
    rows,
    ratios,
    settings: { convs: plan.convs, entries: plan.entries, changed: plan.changed, backends, rounds: Number(flags['rounds']), round_ms: Number(flags['round-ms']), statistic: 'median of rounds' },
    loadavg_before: loadBefore,
    loadavg_after: loadAfter,
  };
  // The default run is SQLite's; a run of other backends at the default sizes gets a file of its own.
  if (full) writeResults(backends.join(',') === 'sqlite' ? 'state' : `state-${backends.join('-')}`, results);
  else process.stdout.write(`${JSON.stringify(results, null, 2)}\n(not the default sizes: bench/results/state.* left as they were)\n`);
  return 0;
}

process.exitCode = await main();
