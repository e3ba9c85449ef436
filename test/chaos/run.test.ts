/**
 * A short chaos run, as `sequent chaos` does it: the real server as a child
 * process (SIGKILLed and restarted), a fault proxy, SDK clients on file stores
 * (crashed and restarted), membership changes — and the checker finds nothing.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { parseJsonLines } from '../../src/chaos/history.js';
import { planRun } from '../../src/chaos/plan.js';
import { runChaos } from '../../src/chaos/runner.js';
import { BIN } from '../support/cli-server.js';

const outDir = mkdtempSync(join(tmpdir(), 'sequent-chaos-'));
afterAll(() => rmSync(outDir, { recursive: true, force: true }));

describe('sequent chaos', () => {
  it('keeps every promise through server kills, client crashes, cuts, duplicates and delays', async () => {
    const options = { durationMs: 12_000, users: 4, groups: 2, seed: 11, outDir, settleTimeoutMs: 20_000 };
    const result = await runChaos(options);
    expect(result.violations).toEqual([]);

    const plan = planRun({ ...options, devicesPerUser: 2 });
    const planned = (kind: string) => plan.faults.filter((f) => f.kind === kind).length;
    const { counts, checked } = { counts: result.report.counts, checked: result.report.checked! };
    expect(counts.serverKills).toBe(planned('server-kill'));
    expect(counts.serverKills).toBeGreaterThan(0);
    expect(counts.clientRestarts).toBeGreaterThan(0);
    expect(counts.acked).toBeGreaterThan(100);
    // the proxy duplicates client frames: the server answered some sends from its dedup table
    expect(counts.dedupHits).toBeGreaterThan(0);
    // a message is unacked only when the server refused it (sent after its author was removed)
    expect(counts.unacked).toBeLessThanOrEqual(counts.sendErrors);
    // every device's final log of every conversation it can read was checked
    expect(checked.finalLogs).toBeGreaterThanOrEqual(plan.devices.length);
    expect(checked.acks).toBe(counts.acked);

    const history = parseJsonLines(readFileSync(result.files.history, 'utf8'));
    expect(history.filter((e) => e.type === 'server-kill')).toHaveLength(counts.serverKills);
    expect(history.some((e) => e.type === 'membership' && e.op === 'members')).toBe(true);
    const svg = readFileSync(result.files.svg, 'utf8');
    expect(svg.startsWith('<svg') || svg.startsWith('<?xml')).toBe(true);
    expect(existsSync(result.files.summary)).toBe(true);
  }, 90_000);

  it('names a bad flag', () => {
    const run = spawnSync(process.execPath, [BIN, 'chaos', '--duration', 'soon'], { encoding: 'utf8' });
    expect(run.status).toBe(2);
    expect(run.stderr).toMatch(/--duration takes a duration/);
  });
});
