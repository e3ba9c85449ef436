/**
 * Short chaos runs, as `sequent-server chaos` does them: the real server as a child
 * process (SIGKILLed, paused, its clock stepped), a fault proxy, SDK clients on
 * file stores (crashed and restarted), membership changes whose answers get
 * lost, and the chat state (edits, deletes, reactions, reads, full lists, forbidden
 * tries) in the workload — and the checker finds nothing. Then `sequent-server chaos
 * check` judges the saved history again, and finds what is planted in a copy of it.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { afterAll, describe, expect, it } from 'vitest';
import { readHistoryFile } from '../../packages/server/src/chaos/history-file.js';
import { FAULT_KINDS, type HistoryEntry, type HistoryEvent } from '../../packages/server/src/chaos/history.js';
import { planRun } from '../../packages/server/src/chaos/plan.js';
import { runChaos } from '../../packages/server/src/chaos/runner.js';
import { BIN } from '../support/cli-server.js';
import { POSTGRES_URL, serviceAvailable } from '../support/services.js';

const outDir = mkdtempSync(join(tmpdir(), 'sequent-chaos-'));
afterAll(() => rmSync(outDir, { recursive: true, force: true }));

async function load(path: string): Promise<HistoryEvent[]> {
  const out: HistoryEvent[] = [];
  for await (const e of readHistoryFile(path)) out.push(e);
  return out;
}

describe('sequent-server chaos', () => {
  let historyPath = '';

  it('keeps every promise through every kind of fault, and judges answers to changes that changed nothing', async () => {
    // Every membership change loses its first answer, so its retry is a no-op the server answers with the current seq.
    const rates = { serverPause: 10, halfOpen: 10, clockStep: 15, stall: 15, lostReply: 15, membership: 20 };
    const options = { durationMs: 12_000, users: 4, groups: 2, seed: 11, outDir, settleTimeoutMs: 20_000, rates, lostMembershipReply: 1 };
    const result = await runChaos(options);
    expect(result.violations).toEqual([]);
    historyPath = result.files.history;

    const plan = planRun({ ...options, devicesPerUser: 2 });
    const { counts, checked, faults, perRule } = { ...result.report, checked: result.report.checked!, perRule: result.report.perRule! };
    for (const kind of FAULT_KINDS) expect(faults[kind], kind).toBeGreaterThan(0);
    expect(counts.serverKills).toBe(plan.faults.filter((f) => f.kind === 'server-kill').length);
    expect(counts.clientRestarts).toBeGreaterThan(0);
    expect(counts.acked).toBeGreaterThan(100);
    // every send is acked, read back by its own device after a lost ack, refused for good, or listed at the end with its reason
    expect(counts.unaccounted).toBe(0);
    expect(counts.pending + counts.readBack + counts.refused).toBeGreaterThanOrEqual(counts.unacked);
    // duplicated frames and resends were answered twice, and the answers compared
    expect(perRule['ack-conflict']).toBeGreaterThan(0);
    for (const rule of ['future-read', 'realtime-order', 'unaccounted', 'no-final-log'] as const) expect(perRule[rule], rule).toBeGreaterThan(0);
    expect(checked.finalLogs).toBeGreaterThanOrEqual(plan.devices.length);
    expect(checked.acks).toBe(counts.acked);

    const history = await load(historyPath);
    expect(history.filter((e) => e.type === 'server-kill')).toHaveLength(counts.serverKills);

    // The chat state was in the workload, and each of its rules judged what it did.
    for (const rule of ['read-backwards', 'unread-wrong', 'deleted-body', 'view-divergent', 'action-invalid'] as const) expect(perRule[rule], rule).toBeGreaterThan(0);
    const acked = new Set(history.filter((e) => e.type === 'ack').map((e) => `${e.device}/${e.conv}/${e.cmid}`));
    const sends = history.filter((e) => e.type === 'send');
    for (const kind of ['edit', 'delete', 'react'] as const) {
      expect(sends.some((e) => e.kind === kind && acked.has(`${e.device}/${e.conv}/${e.cmid}`)), kind).toBe(true);
    }
    // Forbidden tries were refused, and the server ignored reads below the position (it answered with the position).
    const errors = history.filter((e) => e.type === 'error');
    expect(errors.some((e) => e.code === 'forbidden')).toBe(true);
    expect(history.some((e) => e.type === 'read-result' && e.asked < e.seq)).toBe(true);
    expect(history.some((e) => e.type === 'convs-result' && e.full && e.unread !== undefined)).toBe(true);
    // Every device's folded view of every conversation it could read, and some show a tombstone and a reaction.
    const views = history.filter((e) => e.type === 'final-view');
    expect(new Set(views.map((e) => e.device)).size).toBe(plan.devices.length);
    expect(views.some((v) => v.items.some((i) => i.deleted))).toBe(true);
    expect(views.some((v) => v.items.some((i) => Object.keys(i.reactions).length > 0))).toBe(true);
    // The old false alarm: a members change acked at a seq that holds a message, an edit or a reaction (the no-op retry).
    const entries = new Map<string, HistoryEntry>();
    for (const e of history) if (e.type === 'final-log') for (const x of e.entries) entries.set(`${e.conv}#${x.seq}`, x);
    const at = (conv: string, seq: number) => entries.get(`${conv}#${seq}`)?.kind;
    const noop = history.filter((e) => e.type === 'membership' && e.op === 'members' && e.seq !== undefined && at(e.conv, e.seq) !== undefined && at(e.conv, e.seq) !== 'system');
    expect(noop.length).toBeGreaterThan(0);
    expect(history.some((e) => e.type === 'membership' && e.op === 'members' && e.seq === undefined)).toBe(true);
    const svg = readFileSync(result.files.svg, 'utf8');
    expect(svg.startsWith('<svg') || svg.startsWith('<?xml')).toBe(true);
    expect(existsSync(result.files.summary)).toBe(true);
  }, 90_000);

  it('re-checks the saved history with `sequent-server chaos check`, and fails a copy missing a final log', () => {
    expect(historyPath).not.toBe('');
    const again = spawnSync(process.execPath, [BIN, 'chaos', 'check', historyPath, '--out', join(outDir, 'recheck')], { encoding: 'utf8' });
    expect(again.stderr).toBe('');
    expect(again.status).toBe(0);
    expect(again.stdout).toMatch(/faults fired: server-kill [1-9]/);
    expect(again.stdout).toMatch(/operations judged per rule: ack-lost [1-9]/);
    expect(again.stdout).toContain('result: OK');

    const lines = readFileSync(historyPath, 'utf8').split('\n');
    const cut = lines.findIndex((l) => l.includes('"type":"final-log"') && l.includes('"conv":"g:'));
    const bad = join(outDir, 'bad.jsonl');
    writeFileSync(bad, lines.filter((_, i) => i !== cut).join('\n'));
    const failed = spawnSync(process.execPath, [BIN, 'chaos', 'check', bad, '--out', join(outDir, 'bad')], { encoding: 'utf8' });
    expect(failed.status).toBe(1);
    expect(failed.stdout).toContain('[no-final-log]');
  });

  it('finds a read position pushed backwards and a deleted body in copies of the saved history', () => {
    const lines = readFileSync(historyPath, 'utf8').split('\n').filter((l) => l !== '');
    const events = lines.map((l) => JSON.parse(l) as HistoryEvent);
    const judge = (name: string, tampered: string[]) => {
      const path = join(outDir, `${name}.jsonl`);
      writeFileSync(path, tampered.join('\n') + '\n');
      return spawnSync(process.execPath, [BIN, 'chaos', 'check', path, '--out', join(outDir, name)], { encoding: 'utf8' });
    };

    // A read push lower than the one just before it on the same connection.
    const at = events.findIndex((e) => e.type === 'read-push' && e.seq > 1 && e.injected === undefined);
    expect(at).toBeGreaterThanOrEqual(0);
    const backwards = judge('read-back', [...lines.slice(0, at + 1), JSON.stringify({ ...events[at]!, seq: 1 }), ...lines.slice(at + 1)]);
    expect(backwards.status).toBe(1);
    expect(backwards.stdout).toContain('[read-backwards]');

    // A final log that returns the body of a deleted message.
    const leak = events.findIndex((e) => e.type === 'final-log' && e.entries.some((x) => x.kind === 'msg' && x.deleted !== undefined));
    expect(leak).toBeGreaterThanOrEqual(0);
    const final = structuredClone(events[leak]!) as Extract<HistoryEvent, { type: 'final-log' }>;
    const target = final.entries.find((x) => x.kind === 'msg' && x.deleted !== undefined)!;
    target.body = '#leaked00';
    const leaked = judge('leak', lines.map((l, i) => (i === leak ? JSON.stringify(final) : l)));
    expect(leaked.status).toBe(1);
    expect(leaked.stdout).toContain('[deleted-body]');
  });

  it('names a bad flag and a missing file', () => {
    const run = spawnSync(process.execPath, [BIN, 'chaos', '--duration', 'soon'], { encoding: 'utf8' });
    expect(run.status).toBe(2);
    expect(run.stderr).toMatch(/--duration takes a duration/);
    const check = spawnSync(process.execPath, [BIN, 'chaos', 'check', join(outDir, 'nope.jsonl')], { encoding: 'utf8' });
    expect(check.status).toBe(2);
    expect(check.stderr).toMatch(/no such file/);
  });
});

const postgres = await serviceAvailable('postgres', POSTGRES_URL);

describe.skipIf(!postgres)('sequent-server chaos --postgres', () => {
  it('runs the same harness against PostgreSQL in a database of its own, dropped afterwards', async () => {
    const lines: string[] = [];
    const result = await runChaos({ durationMs: 8000, users: 3, groups: 1, seed: 5, outDir: join(outDir, 'pg'), postgres: POSTGRES_URL, settleTimeoutMs: 20_000, log: (l) => lines.push(l) });
    expect(result.violations).toEqual([]);
    expect(result.report.run?.['store']).toBe('postgres');
    expect(result.report.counts.serverKills).toBeGreaterThan(0);
    expect(result.report.counts.acked).toBeGreaterThan(50);
    // the chat state on PostgreSQL: unread from its rows, views against the fold of its logs
    for (const rule of ['unread-wrong', 'view-divergent', 'read-backwards'] as const) expect(result.report.perRule?.[rule], rule).toBeGreaterThan(0);
    const name = /PostgreSQL database (\w+)/.exec(lines.join('\n'))?.[1];
    expect(name).toMatch(/^sequent_chaos_/);
    const client = new pg.Client({ connectionString: POSTGRES_URL });
    await client.connect();
    try {
      expect((await client.query('SELECT 1 FROM pg_database WHERE datname = $1', [name])).rowCount).toBe(0);
    } finally {
      await client.end();
    }
  }, 90_000);
});
