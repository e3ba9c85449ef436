/**
 * The ids generator against each backend: what it keeps in the store (worker
 * leases, the timestamp high-water mark) must hold across restarts, crashes and
 * takeovers, whichever store keeps it. A "process" here is a backend opened on the
 * same store; a crash is a generator that is never closed.
 */
import { describe, it, expect, afterEach } from 'vitest';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { MID_MAX_WORKER, MidGenerator, type MidGeneratorOptions, decodeMid, midWorkerSection } from '../../packages/server/src/seq/ids.js';
import type { SeqBackend } from '../../packages/server/src/seq/backends/types.js';
import { openSqliteSeqBackend } from '../../packages/server/src/seq/backends/sqlite.js';
import { openPostgresSeqBackend } from '../../packages/server/src/seq/backends/postgres.js';
import { POSTGRES_URL, serviceAvailable } from '../support/services.js';
import { MemorySeqBackend } from './support/memory-backend.js';

const postgresUp = await serviceAvailable('postgres', POSTGRES_URL);

const T0 = Date.UTC(2026, 5, 1);

interface Store {
  /** Opens another connection ("process") on the same store; `now` is the store's lease clock where it can be injected. */
  connect(): Promise<SeqBackend>;
  cleanup(): Promise<void>;
}

/** Every "connection" is this one backend, closed only at cleanup. */
function sharedView(shared: SeqBackend): SeqBackend {
  return Object.assign(Object.create(shared) as SeqBackend, { close: async () => {} });
}

const stores: Record<string, (now: () => number) => Store> = {
  memory: (now) => {
    const shared = new MemorySeqBackend(now);
    return { connect: async () => sharedView(shared), cleanup: () => shared.close() };
  },
  sqlite: (now) => {
    const dir = mkdtempSync(join(tmpdir(), 'sequent-ids-'));
    const opened: SeqBackend[] = [];
    return {
      connect: async () => {
        const backend = openSqliteSeqBackend(join(dir, 'seq.db'), { now });
        opened.push(backend);
        return backend;
      },
      cleanup: async () => {
        for (const b of opened) await b.close();
        rmSync(dir, { recursive: true, force: true });
      },
    };
  },
  // Lease times come from the database server's clock: no injected store clock here.
  // One pool serves every "process" (128 pools would exceed max_connections).
  postgres: () => {
    const tablePrefix = `ids_test_${process.pid}_${Math.floor(Math.random() * 1e9)}_`;
    let shared: Promise<SeqBackend> | undefined;
    return {
      connect: async () => sharedView(await (shared ??= openPostgresSeqBackend(POSTGRES_URL, { tablePrefix }))),
      cleanup: async () => {
        if (!shared) return;
        const backend = await shared;
        await backend.close();
        const client = new pg.Client({ connectionString: POSTGRES_URL });
        await client.connect();
        await client.query(`DROP TABLE IF EXISTS "${tablePrefix}sections", "${tablePrefix}meta"`);
        await client.end();
      },
    };
  },
};
const kinds = Object.keys(stores).filter((kind) => kind !== 'postgres' || postgresUp);
const storeClockInjectable = (kind: string) => kind !== 'postgres';

function testTime(start = T0) {
  const t = {
    wall: start,
    mono: 0,
    clock: () => t.wall,
    monotonic: () => (t.mono += 0.01),
  };
  return t;
}

describe.each(kinds)('MidGenerator on the %s backend', (kind) => {
  let storeNow = T0;
  let store: Store;
  const generators: MidGenerator[] = [];
  async function gen(backend: SeqBackend, time: ReturnType<typeof testTime>, options: MidGeneratorOptions = {}) {
    const g = await MidGenerator.open(backend, { clock: time.clock, monotonic: time.monotonic, ...options });
    generators.push(g);
    return g;
  }
  afterEach(async () => {
    for (const g of generators.splice(0)) await g.close();
    await store.cleanup();
  });
  const fresh = () => {
    storeNow = T0;
    store = stores[kind]!(() => storeNow);
  };

  it('persists the high-water mark in the worker section before the first id', async () => {
    fresh();
    const backend = await store.connect();
    const g = await gen(backend, testTime(), { hwmWindowMs: 2_000 });
    expect((await backend.read(midWorkerSection(g.workerId)))?.max).toBe(T0 + 2_000);
    expect(decodeMid(g.next()).time).toBe(T0);
  });

  it('a restart with the clock behind the high-water mark issues larger ids (clean close, same worker id)', async () => {
    fresh();
    const time = testTime(T0 + 60_000);
    const first = await gen(await store.connect(), time);
    const firstIds = Array.from({ length: 1000 }, () => BigInt(first.next()));
    await first.close();
    time.wall = T0; // the clock went back a minute across the restart
    const second = await gen(await store.connect(), time);
    expect(second.workerId).toBe(first.workerId);
    const secondFirst = BigInt(second.next());
    expect(secondFirst).toBeGreaterThan(firstIds[firstIds.length - 1]!);
  });

  it('a restart after a crash (lease still held) takes another worker id and still issues larger ids', async () => {
    fresh();
    const time = testTime(T0 + 60_000);
    const crashed = await gen(await store.connect(), time);
    const last = BigInt(crashed.next());
    time.wall = T0;
    const restarted = await gen(await store.connect(), time);
    expect(restarted.workerId).not.toBe(crashed.workerId);
    expect(BigInt(restarted.next())).toBeGreaterThan(last);
  });

  it('live generators get distinct worker ids, all within the 7-bit field; the 129th is refused', async () => {
    fresh();
    const time = testTime();
    const gens: MidGenerator[] = [];
    for (let i = 0; i <= MID_MAX_WORKER; i++) gens.push(await gen(await store.connect(), time));
    expect(new Set(gens.map((g) => g.workerId)).size).toBe(MID_MAX_WORKER + 1);
    for (const g of gens) {
      expect(g.workerId).toBeGreaterThanOrEqual(0);
      expect(g.workerId).toBeLessThanOrEqual(MID_MAX_WORKER);
    }
    const ids = gens.map((g) => g.next());
    expect(new Set(ids).size).toBe(ids.length);
    await expect(MidGenerator.open(await store.connect(), { clock: time.clock })).rejects.toMatchObject({ code: 'no_worker_id' });
  });

  it.skipIf(!storeClockInjectable(kind))('a takeover of an expired worker id fences the old holder and the two id ranges do not meet', async () => {
    fresh();
    const time = testTime();
    const old = await gen(await store.connect(), time, { leaseMs: 1_000, hwmWindowMs: 1_000 });
    const oldIds = Array.from({ length: 100 }, () => BigInt(old.next()));
    storeNow += 1_001;
    const successor = await gen(await store.connect(), time, { leaseMs: 1_000 });
    expect(successor.workerId).toBe(old.workerId);
    const newIds = Array.from({ length: 100 }, () => BigInt(successor.next()));
    expect(newIds[0]).toBeGreaterThan(oldIds[oldIds.length - 1]!);
    time.wall += 700; // the old holder's next raise is due, and refused
    old.next();
    await expect(old.ready()).rejects.toMatchObject({ code: 'fenced' });
    expect(() => old.next()).toThrow(expect.objectContaining({ code: 'fenced' }));
  });

  it('close frees the worker id for the next generator', async () => {
    fresh();
    const time = testTime();
    const backend = await store.connect();
    const a = await gen(backend, time);
    const b = await gen(backend, time);
    expect([a.workerId, b.workerId]).toEqual([0, 1]);
    await a.close();
    expect((await gen(backend, time)).workerId).toBe(0);
  });
});
