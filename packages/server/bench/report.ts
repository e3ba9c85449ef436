/**
 * Writes a benchmark's results as JSON and as a markdown table, and prints the
 * table. Every number in a report is one the benchmark measured in this run.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

export type Row = { name: string } & Record<string, number | string | null>;

export interface Results {
  rows: Row[];
  /** "<ours> / <peer>" → ratio of the two rows' headline numbers. */
  ratios: Record<string, number>;
  [extra: string]: unknown;
}

/** bench/results, whether run from the sources or from dist/bench. */
export function resultsDir(): string {
  const here = dirname(fileURLToPath(import.meta.url));
  const root = here.includes(`${join('dist', 'bench')}`) ? join(here, '..', '..') : join(here, '..');
  return join(root, 'bench', 'results');
}

export function ratio(ours: number, peer: number): number {
  return peer > 0 ? Math.round((ours / peer) * 100) / 100 : Number.NaN;
}

function cell(value: unknown): string {
  if (typeof value === 'number') {
    if (!Number.isFinite(value)) return 'n/a';
    return Math.abs(value) >= 100 ? Math.round(value).toLocaleString('en-US') : String(Math.round(value * 100) / 100);
  }
  return value === null || value === undefined ? '' : String(value);
}

export function markdownTable(results: Results): string {
  const columns = [...new Set(results.rows.flatMap((row) => Object.keys(row)))];
  const lines = [
    `| ${columns.join(' | ')} |`,
    `| ${columns.map((c) => (c === 'name' ? '---' : '---:')).join(' | ')} |`,
    ...results.rows.map((row) => `| ${columns.map((c) => cell(row[c])).join(' | ')} |`),
    '',
    '| ratio | value |',
    '| --- | ---: |',
    ...Object.entries(results.ratios).map(([name, value]) => `| ${name} | ${cell(value)}× |`),
  ];
  return lines.join('\n') + '\n';
}

/** Writes bench/results/<name>.json and <name>.md (with `appendix`, markdown, after the table), prints the table, returns the paths. */
export function writeResults(name: string, results: Results, appendix = ''): { json: string; md: string } {
  const dir = resultsDir();
  mkdirSync(dir, { recursive: true });
  const withMachine = {
    ...results,
    machine: { node: process.version, cpus: cpus().length, cpu: cpus()[0]?.model ?? 'unknown', at: new Date().toISOString() },
  };
  const json = join(dir, `${name}.json`);
  const md = join(dir, `${name}.md`);
  writeFileSync(json, JSON.stringify(withMachine, null, 2) + '\n');
  const table = markdownTable(results) + (appendix === '' ? '' : `\n${appendix}`);
  writeFileSync(md, `# ${name}\n\nMeasured ${withMachine.machine.at} on ${withMachine.machine.cpus} × ${withMachine.machine.cpu}, Node ${process.version}.\n\n${table}`);
  process.stdout.write(table);
  return { json, md };
}
