/** docs/client.md names every state, event, error code and option the SDK has. */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { CLIENT_STATES } from '../../packages/client/src/client/connection.js';
import { CLIENT_ERROR_CODES } from '../../packages/client/src/client/errors.js';
import type { ClientEvents } from '../../packages/client/src/client/events.js';
import type { ClientOptions } from '../../packages/client/src/client/options.js';

const doc = readFileSync(new URL('../../docs/client.md', import.meta.url), 'utf8');

// Lists typed against the SDK's own types: adding an event or option without listing it here fails to compile.
const EVENTS: Record<keyof ClientEvents, true> = { state: true, message: true, send: true, conversations: true, blocked: true, read: true, typing: true, error: true };
const OPTIONS: Record<keyof ClientOptions, true> = {
  url: true, token: true, getToken: true, store: true, transport: true, delivery: true, gapWaitMs: true,
  ackTimeoutMs: true, sendDeadlineMs: true, backoff: true, pingIntervalMs: true, pingTimeoutMs: true,
  connectTimeoutMs: true, requestTimeoutMs: true, syncPageSize: true, syncConcurrency: true, logger: true,
  random: true, now: true,
};

describe('docs/client.md', () => {
  it('lists every connection state', () => {
    for (const state of CLIENT_STATES) expect(doc).toMatch(new RegExp(`\\b${state}\\b`));
  });
  it('lists every SDK error code', () => {
    for (const code of Object.keys(CLIENT_ERROR_CODES)) expect(doc).toContain(`\`${code}\``);
  });
  it('lists every event and option', () => {
    for (const event of Object.keys(EVENTS)) expect(doc).toContain(`| \`${event}\` |`);
    for (const option of Object.keys(OPTIONS)) expect(doc).toContain(`\`${option}\``);
  });
});
