/**
 * Property: whatever the network does — pushes dropped, duplicated or
 * reordered (delayed past later ones), sync replies delayed behind pushes,
 * connections cut at any point, syncs asked at any moment — the client's
 * app restarted on its store (it then holds only what comes after its cursor,
 * and loads the rest as history, after the edits and reactions that act on
 * it) — the client's folded conversation ends up equal to the reference fold
 * of the server's log, and its read position and unread count equal the
 * server's.
 */
import fc from 'fast-check';
import { afterEach, describe, expect, it } from 'vitest';
import type { SequentClient } from '../../packages/client/src/client/client.js';
import type { ServerFrame } from '../../packages/client/src/protocol/frames.js';
import { MemoryClientStore } from '../../packages/client/src/client/store.js';
import { buildLog, referenceFold, stepArb, USERS, type Step } from './chat-log.js';
import { FakeServer, type OutVerdict } from './fake-server.js';
import { eventually, fakeClient } from './helpers.js';

const CONV = 'g:prop';
/** The client under test is this user's phone; the same user's entries come from another device. */
const SELF = USERS[0];
let clients: SequentClient[] = [];

afterEach(async () => {
  await Promise.all(clients.map((client) => client.stop()));
  clients = [];
});

type NetStep = { op: 'cut' } | { op: 'sync' } | { op: 'restart' } | { op: 'read'; pick: number } | { op: 'wait'; ms: number };

/** More reactions on fewer keys than the general mix, so that one user's votes on a key often cross. */
const crossingVotes: fc.Arbitrary<Step> = fc.record({ op: fc.constant('react' as const), pick: fc.nat(3), user: fc.nat(1), key: fc.nat(1), on: fc.boolean() });

const verdictArb: fc.Arbitrary<OutVerdict> = fc.oneof(
  { weight: 4, arbitrary: fc.constant('send' as const) },
  { weight: 1, arbitrary: fc.constant('drop' as const) },
  { weight: 2, arbitrary: fc.constant('duplicate' as const) },
  { weight: 2, arbitrary: fc.integer({ min: 1, max: 15 }).map((delay) => ({ delay })) },
);

const netArb: fc.Arbitrary<NetStep> = fc.oneof(
  fc.constant({ op: 'cut' as const }),
  fc.constant({ op: 'sync' as const }),
  fc.constant({ op: 'restart' as const }),
  fc.record({ op: fc.constant('read' as const), pick: fc.nat() }),
  fc.record({ op: fc.constant('wait' as const), ms: fc.integer({ min: 0, max: 8 }) }),
);

const scriptArb = fc.record({
  steps: fc.array(fc.oneof(stepArb, crossingVotes), { minLength: 15, maxLength: 40, size: 'max' }),
  net: fc.array(fc.option(netArb, { nil: undefined, freq: 3 }), { minLength: 40, maxLength: 40 }),
  verdicts: fc.infiniteStream(verdictArb),
  delivery: fc.constantFrom('ordered' as const, 'immediate' as const),
});

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

describe('the folded view under any interleaving', () => {
  it('equals the reference fold, with the server read position and unread count', async () => {
    await fc.assert(
      fc.asyncProperty(scriptArb, async ({ steps, net, verdicts, delivery }) => {
        const fake = new FakeServer();
        fake.createGroup(CONV, [...USERS]);
        const store = new MemoryClientStore();
        const open = async (): Promise<SequentClient> => {
          const next = fakeClient(fake, SELF, 'phone', { delivery, gapWaitMs: 10, store });
          clients.push(next);
          await next.start();
          return next;
        };
        let client = await open();
        await client.ready();
        const pick = verdicts[Symbol.iterator]();
        fake.onOutgoing = (frame: ServerFrame) => {
          if (frame.t === 'msg' || frame.t === 'read') return pick.next().value as OutVerdict;
          // Replies are never lost (a lost reply is a lost connection), but may come after later pushes.
          if (frame.t === 'batch') {
            const verdict = pick.next().value as OutVerdict;
            return typeof verdict === 'object' ? verdict : 'send';
          }
          return 'send';
        };
        // The script's log, replayed into the fake as other users (and SELF on another device) write it.
        const log = buildLog(steps);
        for (const [index, entry] of log.entries()) {
          fake.append(CONV, { from: entry.from, dev: entry.dev, kind: entry.kind as never, body: entry.body, ...(entry.ref === undefined ? {} : { ref: entry.ref + 1 }) }, undefined);
          const step = net[index];
          if (step?.op === 'cut') fake.live(SELF)[0]?.cut();
          else if (step?.op === 'sync') client.sync(CONV).catch(() => undefined);
          else if (step?.op === 'read') client.markRead(CONV, 1 + (step.pick % fake.log(CONV).length));
          else if (step?.op === 'wait') await sleep(step.ms);
          else if (step?.op === 'restart') {
            await client.stop();
            client = await open();
          }
        }
        // The network heals: one more reconnect catches up on whatever was lost on the way.
        fake.onOutgoing = undefined;
        await sleep(20);
        fake.live(SELF)[0]?.cut();
        await client.ready();
        await eventually(() => expect(client.cursor(CONV)).toBe(fake.log(CONV).length), 3000);
        // "Load earlier" down to the start: what the restarts left out, folded under what came after.
        for (let page = await client.history(CONV, { limit: 4 }); page.more; page = await client.history(CONV, { limit: 4 }));
        const expected = referenceFold(fake.log(CONV));
        await eventually(() => {
          expect(client.cursor(CONV)).toBe(fake.log(CONV).length);
          expect(client.messages(CONV)).toEqual(expected);
          const row = client.conversations().find((c) => c.conv === CONV);
          expect(row).toMatchObject({ read: fake.chat.read(SELF, CONV).own, unread: fake.unread(CONV, SELF) });
        }, 3000);
        await client.stop();
      }),
      { numRuns: 40 },
    );
  }, 120_000);
});
