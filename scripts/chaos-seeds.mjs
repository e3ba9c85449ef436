#!/usr/bin/env node
// Runs `sequent-server chaos` for N random seeds, one after another (the machine is
// shared: one run at a time), and sums up what the runs did and judged:
// faults per minute by kind, operations judged per rule, violations. Not part
// of `npm test`: 20 seeds × 30 s take about a quarter of an hour.
//
//   node scripts/chaos-seeds.mjs [--seeds 20] [--duration 30s] [--out DIR] [-- extra chaos flags]
import { spawnSync } from 'node:child_process';
import { randomInt } from 'node:crypto';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = resolve(fileURLToPath(new URL('..', import.meta.url)));
const args = process.argv.slice(2);
const split = args.indexOf('--');
const own = split === -1 ? args : args.slice(0, split);
const extra = split === -1 ? [] : args.slice(split + 1);
const flag = (name, fallback) => {
  const i = own.indexOf(`--${name}`);
  return i === -1 ? fallback : own[i + 1];
};
const seeds = Number(flag('seeds', '20'));
const duration = flag('duration', '30s');
const out = resolve(flag('out', './chaos-seeds'));
if (!Number.isInteger(seeds) || seeds < 1 || seeds > 1000) {
  process.stderr.write('--seeds takes 1..1000\n');
  process.exit(2);
}
mkdirSync(out, { recursive: true });

const runs = [];
for (let i = 0; i < seeds; i++) {
  const seed = randomInt(0, 2 ** 32 - 1);
  const dir = join(out, String(seed));
  const started = Date.now();
  // Bounded: a run that hangs is stopped after ten times its length plus two minutes.
  const run = spawnSync(process.execPath, [join(root, 'packages', 'server', 'bin', 'sequent-server'), 'chaos', '--duration', duration, '--seed', String(seed), '--out', dir, ...extra], {
    encoding: 'utf8',
    timeout: 10 * 60_000 + 120_000,
    maxBuffer: 64 * 2 ** 20,
  });
  let report;
  try {
    report = JSON.parse(readFileSync(join(dir, 'report.json'), 'utf8'));
  } catch {
    report = undefined;
  }
  const seconds = ((Date.now() - started) / 1000).toFixed(0);
  const violations = report?.violations ?? 'no report';
  process.stdout.write(`seed ${seed}: exit ${run.status ?? run.signal}, ${violations} violation(s), ${report?.counts.acked ?? 0} acked, ${seconds} s\n`);
  if (run.status !== 0) process.stdout.write(run.stdout.split('\n').slice(-15).join('\n') + '\n');
  // The data dirs are large and only needed to replay: the seed and the history are kept.
  spawnSync('rm', ['-rf', join(dir, 'server-data'), join(dir, 'client-stores')]);
  runs.push({ seed, status: run.status, report });
}

const ok = runs.filter((r) => r.status === 0 && r.report?.violations === 0);
const sum = (pick) => runs.reduce((n, r) => n + (r.report ? pick(r.report) : 0), 0);
const kinds = Object.keys(runs.find((r) => r.report)?.report.faults ?? {});
const rules = Object.keys(runs.find((r) => r.report)?.report.perRule ?? {});
const peak = (field) => Math.max(0, ...runs.filter((r) => r.report?.run).map((r) => Number(r.report.run[field] ?? 0)));
const minutes = sum((r) => r.durationMs) / 60_000;
const lines = [
  `${runs.length} seeds × ${duration}: ${ok.length} clean, ${runs.length - ok.length} not`,
  `failed seeds: ${runs.filter((r) => !ok.includes(r)).map((r) => r.seed).join(', ') || 'none'}`,
  '',
  '| fault | fired in all runs | per minute of fault time |',
  '| --- | ---: | ---: |',
  ...kinds.map((k) => {
    const fired = sum((r) => r.faults[k] ?? 0);
    const perMin = runs.reduce((n, r) => n + (r.report?.faultsPerMinute[k] ?? 0), 0) / Math.max(1, runs.filter((r) => r.report).length);
    return `| ${k} | ${fired} | ${perMin.toFixed(1)} |`;
  }),
  '',
  '| rule | operations judged, all runs | per run (min–max) |',
  '| --- | ---: | ---: |',
  ...rules.map((rule) => {
    const per = runs.filter((r) => r.report).map((r) => r.report.perRule[rule]);
    return `| ${rule} | ${per.reduce((a, b) => a + b, 0)} | ${Math.min(...per)}–${Math.max(...per)} |`;
  }),
  '',
  `acked ${sum((r) => r.counts.acked)}, pending at the end ${sum((r) => r.counts.pending)}, dedup hits ${sum((r) => r.counts.dedupHits)}, resends on the same connection ${sum((r) => r.counts.sameConnectionResends)}, over ${minutes.toFixed(1)} min of history`,
  `sends in flight at a kill: median of medians ${[...runs.filter((r) => r.report).map((r) => r.report.inFlightAtKill.median)].sort((a, b) => a - b)[Math.floor(ok.length / 2)] ?? 0}, most ${Math.max(0, ...runs.filter((r) => r.report).map((r) => r.report.inFlightAtKill.max))}`,
  `peak RSS of a run: ${peak('peakRssMB')} MB (server ${peak('peakServerRssMB')} MB, both together ${peak('peakTotalRssMB')} MB)`,
];
writeFileSync(join(out, 'summary.md'), lines.join('\n') + '\n');
process.stdout.write('\n' + lines.join('\n') + '\n');
process.exit(ok.length === runs.length ? 0 : 1);
