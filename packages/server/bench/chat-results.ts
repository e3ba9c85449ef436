/**
 * bench:chat's results: one section per scenario in bench/results/chat.{json,md}.
 * A run writes only the scenarios it ran, so that running one scenario again
 * does not throw away the others' last measurements.
 */
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';
import { join } from 'node:path';
import { markdownTable, resultsDir, type Results } from './report.js';

export interface ScenarioResults extends Results {
  machine?: { node: string; cpus: number; cpu: string; at: string; loadavg?: number[] };
}

type ChatFile = { scenarios: Record<string, ScenarioResults> };

function readExisting(path: string): ChatFile {
  if (!existsSync(path)) return { scenarios: {} };
  const parsed = JSON.parse(readFileSync(path, 'utf8')) as Partial<ChatFile> & Partial<ScenarioResults>;
  if (parsed.scenarios) return { scenarios: parsed.scenarios };
  // The first results file held large-groups alone, at the top level.
  if (Array.isArray(parsed.rows)) return { scenarios: { 'large-groups': parsed as ScenarioResults } };
  return { scenarios: {} };
}

/** Replaces the named scenarios' sections, keeps the others, prints the new tables. */
export function writeChatResults(fresh: Record<string, Results>): void {
  const dir = resultsDir();
  mkdirSync(dir, { recursive: true });
  const json = join(dir, 'chat.json');
  const file = readExisting(json);
  const machine = {
    node: process.version,
    cpus: cpus().length,
    cpu: cpus()[0]?.model ?? 'unknown',
    at: new Date().toISOString(),
    loadavg: loadavg().map((n) => Math.round(n * 100) / 100),
  };
  for (const [name, results] of Object.entries(fresh)) {
    file.scenarios[name] = { ...results, machine };
    process.stdout.write(`\n## ${name}\n\n${markdownTable(results)}`);
  }
  writeFileSync(json, JSON.stringify(file, null, 2) + '\n');
  const sections = Object.entries(file.scenarios).map(([name, results]) => {
    const m = results.machine;
    const where = m ? `Measured ${m.at} on ${m.cpus} × ${m.cpu}, Node ${m.node}${m.loadavg ? `, load average ${m.loadavg.join(' ')} at the end` : ''}.` : '';
    return `## ${name}\n\n${where}\n\n${markdownTable(results)}`;
  });
  writeFileSync(join(dir, 'chat.md'), `# chat\n\n${sections.join('\n')}`);
}
