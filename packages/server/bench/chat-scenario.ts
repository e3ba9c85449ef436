/** What one scenario of bench:chat offers the runner (bench/chat.ts keeps the table of them). */
import type { FlagSpec, ParsedFlags } from '../src/cli/args.js';
import type { Results } from './report.js';

export interface ScenarioOutcome {
  results: Results;
  /** False for a partial run (a subset, smaller sizes): printed, not written over the results. */
  write: boolean;
}

export interface ChatScenario {
  /** Its own flags, merged into bench:chat's. */
  readonly flags: Record<string, FlagSpec>;
  /** Checks the flags it owns; a message names the bad one. */
  check?(flags: ParsedFlags): string | undefined;
  run(flags: ParsedFlags, log: (line: string) => void): Promise<ScenarioOutcome>;
}

export const log = (line: string): void => void process.stderr.write(`${line}\n`);
export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
/** Wall-clock ms with sub-ms precision, comparable across the processes of one machine. */
export const now = (): number => performance.timeOrigin + performance.now();
export const round = (n: number, places = 2): number => Math.round(n * 10 ** places) / 10 ** places;
