/** bench:chat's `ejabberd` scenario in the runner's table; it writes its own results (results/chat-ejabberd.*). */
import type { ParsedFlags } from '../src/cli/args.js';
import type { ChatScenario } from './chat-scenario.js';
import { EJABBERD_FLAGS, ejabberdScenarioConfig, runEjabberdScenario } from './chat-xmpp.js';

const BODY_BYTES = 100;
const TIMEOUT_MS = 120_000;

export const ejabberdScenario: ChatScenario = {
  flags: EJABBERD_FLAGS,
  async run(flags: ParsedFlags, log: (line: string) => void) {
    const defaults = Object.entries(EJABBERD_FLAGS).every(([name, spec]) => flags[name] === spec.default);
    const body = 'x'.repeat(Number(flags['body'] ?? BODY_BYTES));
    await runEjabberdScenario(ejabberdScenarioConfig(flags, body, Number(flags['timeout'] ?? TIMEOUT_MS)), defaults, log);
    return { results: { rows: [], ratios: {}, note: 'written to bench/results/chat-ejabberd.*' }, write: false };
  },
};
