/**
 * The checker against hand-made histories: a correct one passes, and each kind
 * of violation, planted alone, is found alone, with evidence that points at it.
 */
import { describe, expect, it } from 'vitest';
import { check, checkHistory, VIOLATION_KINDS, type CheckOptions, type ViolationKind } from '../../packages/server/src/chaos/checker.js';
import type { AckEvent, ConvsResultEvent, FinalLogEvent, FinalViewEvent, HistoryEntry, HistoryEvent, PushEvent, SyncResultEvent } from '../../packages/server/src/chaos/history.js';

const TEAM = 'g:team';
const DM = 'dm:alice:bob';

const sys = (seq: number, body: unknown): HistoryEntry => ({ seq, kind: 'system', mid: `m${seq}`, ts: 1000 + seq, from: 'alice', dev: 'd1', body });
const msg = (seq: number, from: string, cmid: string, dseq: number, mid = `m${seq}`): HistoryEntry => ({
  seq,
  kind: 'msg',
  mid,
  ts: 1000 + seq,
  from,
  dev: 'd1',
  cmid,
  dseq,
  body: `text of ${cmid}`,
});

/** g:team: 1 create(alice, bob, carol) · 2 a1 · 3 a2 · 4 b1 · 5 remove carol · 6 a3 · 7 add dave · 8 b2 */
const TEAM_LOG: HistoryEntry[] = [
  sys(1, { op: 'create', members: ['alice', 'bob', 'carol'] }),
  msg(2, 'alice', 'a1', 1),
  msg(3, 'alice', 'a2', 2),
  msg(4, 'bob', 'b1', 1),
  sys(5, { op: 'members', add: [], remove: ['carol'] }),
  msg(6, 'alice', 'a3', 3),
  sys(7, { op: 'members', add: ['dave'], remove: [] }),
  msg(8, 'bob', 'b2', 2),
];
const DM_LOG: HistoryEntry[] = [msg(1, 'alice', 'x1', 1, 'dm1'), msg(2, 'bob', 'y1', 1, 'dm2')];
/** The chat state: dm:alice:carol — 1 alice c1 · 2 carol d1 · 3 alice deletes 1 */
const CHAT = 'dm:alice:carol';
const CHAT_LOG: HistoryEntry[] = [
  msg(1, 'alice', 'c1', 1, 'ch1'),
  msg(2, 'carol', 'd1', 1, 'ch2'),
  { ...msg(3, 'alice', 'c2', 2, 'ch3'), kind: 'delete', ref: 1, body: null },
];
/** CHAT_LOG as read after the delete: its target without a body. */
const CHAT_READ: HistoryEntry[] = [{ ...CHAT_LOG[0]!, body: null, deleted: 3 }, CHAT_LOG[1]!, CHAT_LOG[2]!];

/** A correct run: sends and acks, pushes, syncs (one racing an ack, one by the removed member), final logs. */
function good(): HistoryEvent[] {
  const events: HistoryEvent[] = [];
  let at = 0;
  const add = (e: Record<string, unknown>): void => void events.push({ ...e, at: (at += 10) } as unknown as HistoryEvent);
  const team = (seq: number): HistoryEntry => structuredClone(TEAM_LOG[seq - 1]!);
  const sendAck = (conv: string, e: HistoryEntry): void => {
    add({ type: 'send', user: e.from, device: 'd1', conv, cmid: e.cmid, dseq: e.dseq, conn: `${e.from}#1`, attempt: 1 });
    add({ type: 'ack', user: e.from, device: 'd1', conv, cmid: e.cmid, dseq: e.dseq, seq: e.seq, mid: e.mid, ts: e.ts, conn: `${e.from}#1` });
  };
  const push = (user: string, e: HistoryEntry, conv = TEAM): void => add({ type: 'push', conn: `${user}#1`, user, device: 'd1', conv, entry: structuredClone(e) });
  for (const user of ['alice', 'bob', 'carol']) add({ type: 'connect', user, device: 'd1', conn: `${user}#1` });
  add({ type: 'membership', user: 'alice', conv: TEAM, op: 'create', add: ['bob', 'carol'], remove: [], seq: 1 });
  push('bob', team(1));
  push('carol', team(1));
  for (const seq of [2, 3, 4]) {
    sendAck(TEAM, team(seq));
    // a1 is resent and answered again from the server's dedup table: the same ack.
    if (seq === 2) sendAck(TEAM, team(seq));
    for (const user of ['alice', 'bob', 'carol'].filter((u) => u !== team(seq).from)) push(user, team(seq));
  }
  // A sync that started before seq 6 was acked may miss it.
  add({ type: 'sync-start', sync: 's1', user: 'bob', device: 'd1', conv: TEAM, after: 0, limit: 100 });
  add({ type: 'membership', user: 'alice', conv: TEAM, op: 'members', add: [], remove: ['carol'], seq: 5 });
  push('bob', team(5));
  push('carol', team(5));
  add({ type: 'server-kill' });
  add({ type: 'server-start' });
  sendAck(TEAM, team(6));
  add({ type: 'sync-result', sync: 's1', user: 'bob', device: 'd1', conv: TEAM, after: 0, limit: 100, entries: TEAM_LOG.slice(0, 5), last: 5 });
  push('bob', team(6));
  // The removed member syncs after its removal: last is its removal seq.
  add({ type: 'sync-start', sync: 's2', user: 'carol', device: 'd1', conv: TEAM, after: 3, limit: 100 });
  add({ type: 'sync-result', sync: 's2', user: 'carol', device: 'd1', conv: TEAM, after: 3, limit: 100, entries: TEAM_LOG.slice(3, 5), last: 5 });
  add({ type: 'membership', user: 'alice', conv: TEAM, op: 'members', add: ['dave'], remove: [], seq: 7 });
  add({ type: 'client-kill', user: 'bob', device: 'd1' });
  add({ type: 'client-start', user: 'bob', device: 'd1' });
  // From here on every send must be acked within 100 ms.
  add({ type: 'faults-stop', boundMs: 100 });
  sendAck(TEAM, team(8));
  // A newcomer's sync from 0 starts at the entry that added it; a page may stop at its limit.
  add({ type: 'sync-start', sync: 's3', user: 'dave', device: 'd1', conv: TEAM, after: 0, limit: 1 });
  add({ type: 'sync-result', sync: 's3', user: 'dave', device: 'd1', conv: TEAM, after: 0, limit: 1, entries: TEAM_LOG.slice(6, 7), last: 8 });
  sendAck(DM, DM_LOG[0]!);
  push('bob', DM_LOG[0]!, DM);
  sendAck(DM, DM_LOG[1]!);
  // The chat state: bob reads the team up to 6; carol lists her conversations, then alice deletes c1.
  add({ type: 'read-result', user: 'bob', device: 'd1', conv: TEAM, asked: 6, seq: 6, sentAt: at, conn: 'bob#1' });
  sendAck(CHAT, CHAT_LOG[0]!);
  push('carol', CHAT_LOG[0]!, CHAT);
  add({ type: 'convs-result', user: 'carol', device: 'd1', sentAt: at, version: 7, full: true, more: false, rows: [{ conv: CHAT, last: 1, read: 0, unread: 1 }], unread: 1, conn: 'carol#1' });
  sendAck(CHAT, CHAT_LOG[1]!);
  push('alice', CHAT_LOG[1]!, CHAT);
  add({ type: 'send', user: 'alice', device: 'd1', conv: CHAT, cmid: 'c2', dseq: 2, conn: 'alice#1', attempt: 1, kind: 'delete', ref: 1 });
  add({ type: 'ack', user: 'alice', device: 'd1', conv: CHAT, cmid: 'c2', dseq: 2, seq: 3, mid: 'ch3', ts: 1003, conn: 'alice#1' });
  push('carol', CHAT_LOG[2]!, CHAT);
  add({ type: 'sync-start', sync: 's4', user: 'carol', device: 'd1', conv: CHAT, after: 0, limit: 100 });
  add({ type: 'sync-result', sync: 's4', user: 'carol', device: 'd1', conv: CHAT, after: 0, limit: 100, entries: structuredClone(CHAT_READ), last: 3 });
  // A cluster run's epochs, read from the database: a takeover at seq 4, another at 7.
  // A node killed, started again at the second try.
  add({ type: 'node-start-failed', node: 'n2', attempt: 1, error: 'sequent-server serve: cannot use the database given by --postgres (40P01: deadlock detected)' });
  add({ type: 'node-healed', node: 'n2', fault: 'server-kill' });
  add({ type: 'epochs', conv: TEAM, seqs: [1, 2, 3, 4, 5, 6, 7, 8], epochs: [1, 1, 1, 2, 2, 2, 3, 3] });
  const final = (user: string, conv: string, entries: HistoryEntry[], last: number): void =>
    add({ type: 'final-log', user, device: 'd1', conv, entries: structuredClone(entries), last });
  final('alice', TEAM, TEAM_LOG, 8);
  final('bob', TEAM, TEAM_LOG, 8);
  final('carol', TEAM, TEAM_LOG.slice(0, 5), 5);
  final('dave', TEAM, TEAM_LOG.slice(6), 8);
  final('alice', DM, DM_LOG, 2);
  final('bob', DM, DM_LOG, 2);
  final('alice', CHAT, CHAT_READ, 3);
  final('carol', CHAT, CHAT_READ, 3);
  add({
    type: 'final-view', user: 'carol', device: 'd1', conv: CHAT,
    items: [
      { seq: 1, from: 'alice', body: null, deleted: true, reactions: {} },
      { seq: 2, from: 'carol', body: 'text of d1', deleted: false, reactions: {} },
    ],
  });
  return events;
}

/** Applies fn to every observation (final log, sync page, push) of a seq of conv. */
function rewrite(history: HistoryEvent[], conv: string, seq: number, fn: (e: HistoryEntry) => HistoryEntry): void {
  for (const event of history) {
    if (event.type === 'push' && event.conv === conv && event.entry.seq === seq) event.entry = fn(event.entry);
    if ((event.type === 'final-log' || event.type === 'sync-result') && event.conv === conv) {
      event.entries = event.entries.map((e) => (e.seq === seq ? fn(e) : e));
    }
  }
}

const ackOf = (h: HistoryEvent[], conv: string, seq: number): AckEvent =>
  h.find((e): e is AckEvent => e.type === 'ack' && e.conv === conv && e.seq === seq)!;
const finalOf = (h: HistoryEvent[], user: string, conv = TEAM): FinalLogEvent =>
  h.find((e): e is FinalLogEvent => e.type === 'final-log' && e.user === user && e.conv === conv)!;

const BAD: Record<ViolationKind, { plant: (h: HistoryEvent[]) => void; seqs: number[]; options?: CheckOptions }> = {
  'ack-lost': {
    // Another device's message sits at the acked seq in every view.
    plant: (h) => rewrite(h, TEAM, 6, (e) => ({ ...e, dev: 'd2', cmid: 'z1', dseq: 1, mid: 'mX' })),
    seqs: [6],
  },
  'ack-conflict': {
    plant: (h) => {
      const again = { ...ackOf(h, TEAM, 2), ts: 1777 };
      h.splice(h.indexOf(ackOf(h, TEAM, 8)), 0, again);
    },
    seqs: [2, 2],
  },
  duplicate: {
    // a3 stored again at a new seq 9, which every current member's log shows.
    plant: (h) => {
      for (const user of ['alice', 'bob', 'dave']) finalOf(h, user).entries.push({ ...msg(9, 'alice', 'a3', 3), mid: 'm9' });
    },
    seqs: [6, 9],
  },
  gap: {
    plant: (h) => {
      const bob = finalOf(h, 'bob');
      bob.entries = bob.entries.filter((e) => e.seq !== 5);
    },
    seqs: [5],
  },
  divergent: {
    plant: (h) => {
      const push = h.find((e): e is PushEvent => e.type === 'push' && e.user === 'carol' && e.entry.seq === 4)!;
      push.entry = { ...push.entry, body: 'something else' };
    },
    seqs: [4],
  },
  'dseq-order': {
    plant: (h) => {
      rewrite(h, TEAM, 2, (e) => ({ ...e, dseq: 2 }));
      rewrite(h, TEAM, 3, (e) => ({ ...e, dseq: 1 }));
      ackOf(h, TEAM, 2).dseq = 2;
      ackOf(h, TEAM, 3).dseq = 1;
    },
    seqs: [2, 3],
  },
  'ts-decrease': {
    plant: (h) => {
      rewrite(h, TEAM, 4, (e) => ({ ...e, ts: 1001 }));
      ackOf(h, TEAM, 4).ts = 1001;
    },
    seqs: [3, 4],
  },
  'mid-duplicate': {
    plant: (h) => {
      rewrite(h, DM, 1, (e) => ({ ...e, mid: 'm2' }));
      ackOf(h, DM, 1).mid = 'm2';
    },
    seqs: [1],
  },
  'push-order': {
    plant: (h) => {
      const four = h.findIndex((e) => e.type === 'push' && e.user === 'carol' && e.entry.seq === 4);
      h.splice(four + 1, 0, { type: 'push', at: h[four]!.at, conn: 'carol#1', user: 'carol', device: 'd1', conv: TEAM, entry: msg(3, 'alice', 'a2', 2) });
    },
    seqs: [4, 3],
  },
  'after-removal': {
    plant: (h) => {
      const six = h.findIndex((e) => e.type === 'push' && e.user === 'bob' && e.entry.seq === 6);
      h.splice(six + 1, 0, { type: 'push', at: h[six]!.at, conn: 'carol#1', user: 'carol', device: 'd1', conv: TEAM, entry: msg(6, 'alice', 'a3', 3) });
    },
    seqs: [6],
  },
  'before-join': {
    plant: (h) => {
      finalOf(h, 'dave').entries.unshift(msg(6, 'alice', 'a3', 3));
    },
    seqs: [6],
  },
  'sync-stale': {
    // A sync begun after seq 8 was acked is told the conversation ends at 7.
    plant: (h) => {
      const end = h.findIndex((e) => e.type === 'final-log');
      h.splice(
        end,
        0,
        { type: 'sync-start', at: h[end]!.at, sync: 's9', user: 'bob', device: 'd1', conv: TEAM, after: 6, limit: 100 },
        { type: 'sync-result', at: h[end]!.at, sync: 's9', user: 'bob', device: 'd1', conv: TEAM, after: 6, limit: 100, entries: [structuredClone(TEAM_LOG[6]!)], last: 7 },
      );
    },
    seqs: [8],
  },
  'no-final-log': {
    // bob's device took part but its final read of the DM is missing.
    plant: (h) => {
      h.splice(h.indexOf(finalOf(h, 'bob', DM)), 1);
    },
    seqs: [],
  },
  'too-little': {
    // 10 acked messages and 8 final logs: below a floor of 11 acks, the run proved nothing.
    plant: () => {},
    seqs: [],
    options: { floor: { acks: 11 } },
  },
  'future-read': {
    // alice is pushed b2 (seq 8) before bob ever sent it.
    plant: (h) => {
      const send = h.findIndex((e) => e.type === 'send' && e.cmid === 'b2');
      h.splice(send, 0, { type: 'push', at: h[send]!.at, conn: 'alice#1', user: 'alice', device: 'd1', conv: TEAM, entry: structuredClone(TEAM_LOG[7]!) });
    },
    seqs: [8],
  },
  'realtime-order': {
    // In the DM, bob's y1 was first sent after alice's x1 was acked at seq 2, yet took seq 1.
    plant: (h) => {
      const swap = (e: HistoryEntry): HistoryEntry => (e.cmid === 'x1' ? { ...e, seq: 2, ts: 1002 } : { ...e, seq: 1, ts: 1001 });
      for (const event of h) {
        if (event.type === 'push' && event.conv === DM) event.entry = swap(event.entry);
        if (event.type === 'final-log' && event.conv === DM) event.entries = event.entries.map(swap).sort((a, b) => a.seq - b.seq);
        if (event.type === 'ack' && event.conv === DM) [event.seq, event.ts] = event.cmid === 'x1' ? [2, 1002] : [1, 1001];
      }
    },
    seqs: [2, 1],
  },
  'read-backwards': {
    // bob asks again after his read at 6 was answered, and is told 4.
    plant: (h) => {
      const at = h.at(-1)!.at;
      h.push({ type: 'read-result', at: at + 1, user: 'bob', device: 'd1', conv: TEAM, asked: 4, seq: 4, sentAt: at, conn: 'bob#1' });
    },
    seqs: [6, 4],
  },
  'unread-wrong': {
    plant: (h) => {
      const convs = h.find((e): e is ConvsResultEvent => e.type === 'convs-result')!;
      convs.rows[0]!.unread = 0;
      convs.unread = 0;
    },
    seqs: [0, 1],
  },
  'deleted-body': {
    // carol's sync began after the delete was acked, and still returned c1's text.
    plant: (h) => {
      const page = h.find((e): e is SyncResultEvent => e.type === 'sync-result' && e.sync === 's4')!;
      page.entries[0] = structuredClone(CHAT_LOG[0]!);
    },
    seqs: [1],
  },
  'view-divergent': {
    plant: (h) => {
      const view = h.find((e): e is FinalViewEvent => e.type === 'final-view')!;
      view.items[1]!.body = 'an older text';
    },
    seqs: [2],
  },
  'action-invalid': {
    // The server took an edit by carol of alice's message (forbidden, and deleted by then) into the log.
    plant: (h) => {
      for (const e of h) {
        if (e.type !== 'final-log' || e.conv !== CHAT) continue;
        e.entries.push({ ...msg(4, 'carol', 'd2', 2, 'ch4'), kind: 'edit', ref: 1, body: null });
        e.last = 4;
      }
    },
    seqs: [4, 1],
  },
  'epoch-decrease': {
    // seq 6 committed by the owner of epoch 1 after the takeover at seq 4: the fence let an old owner write.
    plant: (h) => {
      const e = h.find((x) => x.type === 'epochs')!;
      if (e.type === 'epochs') e.epochs[5] = 1;
    },
    seqs: [5, 6],
  },
  'head-regress': {
    // bob's sync after seq 8 was acked says the head is 7.
    plant: (h) => {
      const at = h.at(-1)!.at;
      h.push({ type: 'sync-start', at: at + 1, sync: 's9', user: 'bob', device: 'd1', conv: TEAM, after: 8, limit: 100 });
      h.push({ type: 'sync-result', at: at + 2, sync: 's9', user: 'bob', device: 'd1', conv: TEAM, after: 8, limit: 100, entries: [], last: 7 });
    },
    seqs: [7, 8],
  },
  'not-live': {
    // b2 went out after the faults stopped, and was still sending at the end (its own device never saw it either).
    plant: (h) => {
      h.splice(h.indexOf(ackOf(h, TEAM, 8)), 1);
      h.push({ type: 'pending', at: h.at(-1)!.at + 1, user: 'bob', device: 'd1', conv: TEAM, cmid: 'b2', dseq: 2, state: 'sending', reason: 'not acked when the settle time ran out' });
    },
    seqs: [],
  },
  'node-restart': {
    // a node killed -9 never started again under its name
    plant: (h) => {
      const at = h.at(-1)!.at;
      for (let attempt = 1; attempt <= 5; attempt++) h.push({ type: 'node-start-failed', at: at + attempt, node: 'n2', attempt, error: 'sequent-server serve: cannot use the database given by --postgres (40P01: deadlock detected)', ...(attempt === 5 ? { gaveUp: true as const } : {}) });
    },
    seqs: [],
  },
  unaccounted: {
    // bob sent b3, which was never answered, and the run did not list it as pending.
    plant: (h) => {
      const end = h.findIndex((e) => e.type === 'final-log');
      h.splice(end, 0, { type: 'send', at: h[end]!.at, user: 'bob', device: 'd1', conv: TEAM, cmid: 'b3', dseq: 3, conn: 'bob#1', attempt: 1 });
    },
    seqs: [],
  },
};

describe('checker', () => {
  it('passes a correct history, and judged all of it', () => {
    const result = checkHistory(good());
    expect(result.violations).toEqual([]);
    expect(result.checked).toEqual({ conversations: 3, acks: 10, pushes: 15, syncs: 4, finalLogs: 8, entries: 13 });
    // every rule judged something: none passes for want of input
    for (const kind of VIOLATION_KINDS) expect(result.perRule[kind], kind).toBeGreaterThan(0);
  });

  it('has a planted history for every kind', () => {
    expect(Object.keys(BAD).sort()).toEqual([...VIOLATION_KINDS].sort());
  });

  for (const kind of VIOLATION_KINDS) {
    it(`detects ${kind}, and only that, with evidence`, () => {
      const history = good();
      BAD[kind].plant(history);
      const violations = check(history, BAD[kind].options);
      expect(violations.map((v) => v.kind)).toContain(kind);
      expect(new Set(violations.map((v) => v.kind))).toEqual(new Set([kind]));
      const v = violations[0]!;
      expect(v.message).not.toContain('\n');
      // a run that judged too little has no one conversation to blame
      if (kind !== 'too-little' && kind !== 'node-restart') expect(v.conv).toBeDefined();
      expect(v.seqs).toEqual(BAD[kind].seqs);
      expect(v.events.length).toBeGreaterThan(0);
      expect(v.events.length).toBeLessThanOrEqual(3);
      // Entry lists in the evidence are cut down to the seqs concerned.
      for (const e of v.events) {
        if (e.type === 'final-log' || e.type === 'sync-result') expect(e.entries.every((x) => v.seqs.includes(x.seq))).toBe(true);
      }
    });
  }

  it('finds a hole inside a sync page (an acked message the sync missed) and a page that stops short of last', () => {
    const history = good();
    const page = history.find((e): e is SyncResultEvent => e.type === 'sync-result' && e.sync === 's1')!;
    page.entries = page.entries.filter((e) => e.seq !== 3);
    const short = history.find((e): e is SyncResultEvent => e.type === 'sync-result' && e.sync === 's2')!;
    short.entries = short.entries.slice(0, 1);
    const violations = check(history);
    expect(violations.map((v) => [v.kind, v.seqs])).toEqual(expect.arrayContaining([
      ['gap', [2, 4]],
      ['sync-stale', [3]],
      ['gap', [4, 5]],
    ]));
    expect(violations).toHaveLength(3);
  });

  it('finds an acked message missing from one log (as a gap in that log too)', () => {
    const history = good();
    const carol = finalOf(history, 'carol');
    carol.entries = carol.entries.filter((e) => e.seq !== 3);
    const kinds = check(history).map((v) => `${v.kind}:${v.seqs.join(',')}`);
    expect(kinds.sort()).toEqual(['ack-lost:3', 'gap:3']);
  });
});

describe('checker: membership answers', () => {
  const at = (h: HistoryEvent[]): number => h.at(-1)!.at;
  it('accepts a change that changed nothing, answered with a message seq (the retry of a change whose answer was lost)', () => {
    const history = good();
    const end = history.findIndex((e) => e.type === 'final-log');
    history.splice(
      end,
      0,
      // the first try of "remove carol" lost its answer: no seq…
      { type: 'membership', at: at(history), user: 'alice', conv: TEAM, op: 'members', add: [], remove: ['carol'] },
      // …the retry removes nobody and is answered with the current seq, a message's
      { type: 'membership', at: at(history), user: 'alice', conv: TEAM, op: 'members', add: [], remove: ['carol'], seq: 6 },
      { type: 'membership', at: at(history), user: 'alice', conv: TEAM, op: 'members', add: ['dave'], remove: [], seq: 8 },
    );
    expect(check(history)).toEqual([]);
  });

  it('reports a change acked at a message seq when the membership after it is not what it asked for', () => {
    const history = good();
    const end = history.findIndex((e) => e.type === 'final-log');
    history.splice(end, 0, { type: 'membership', at: at(history), user: 'alice', conv: TEAM, op: 'members', add: ['carol'], remove: [], seq: 6 });
    const violations = check(history);
    expect(violations.map((v) => `${v.kind}:${v.seqs.join(',')}`)).toEqual(['ack-lost:6']);
    expect(violations[0]!.message).toMatch(/add carol/);
  });
});

describe('checker: every send accounted for', () => {
  const withSend = (extra: (at: number) => HistoryEvent[]): HistoryEvent[] => {
    const history = good();
    const end = history.findIndex((e) => e.type === 'final-log');
    const at = history[end]!.at;
    history.splice(end, 0, { type: 'send', at, user: 'bob', device: 'd1', conv: TEAM, cmid: 'b3', dseq: 3, conn: 'bob#1', attempt: 1 }, ...extra(at));
    return history;
  };
  it('accepts a send refused with a final code, or listed as pending with its reason', () => {
    expect(check(withSend((at) => [{ type: 'error', at, user: 'bob', device: 'd1', conv: TEAM, cmid: 'b3', dseq: 3, code: 'forbidden' }]))).toEqual([]);
    const pending = withSend((at) => [{ type: 'pending', at, user: 'bob', device: 'd1', conv: TEAM, cmid: 'b3', dseq: 3, state: 'sending', reason: 'settle timeout' }]);
    // Still sending at the end after the faults stopped is not live, though accounted for.
    expect(check(pending).map((v) => v.kind)).toEqual(['not-live']);
    expect(check(pending.filter((e) => e.type !== 'faults-stop'))).toEqual([]);
  });
  it('takes its own device reading it back from the log for its ack (the ack was lost)', () => {
    const history = withSend(() => []);
    const end = history.findIndex((e) => e.type === 'final-log');
    const own = { ...msg(9, 'bob', 'b3', 3), ts: 1100 };
    history.splice(end, 0, { type: 'sync-result', at: history[end]!.at, sync: 's7', user: 'bob', device: 'd1', conv: TEAM, after: 8, limit: 100, entries: [own], last: 9 });
    for (const user of ['alice', 'bob', 'dave']) finalOf(history, user).entries.push(structuredClone(own));
    expect(check(history)).toEqual([]);
    // read by another device only, it stays unaccounted
    const other = history.find((e): e is SyncResultEvent => e.type === 'sync-result' && e.sync === 's7')!;
    other.user = 'alice';
    expect(check(history).map((v) => v.kind)).toEqual(['unaccounted']);
  });

  it('does not take "try again" for an answer', () => {
    const history = withSend((at) => [{ type: 'error', at, user: 'bob', device: 'd1', conv: TEAM, cmid: 'b3', dseq: 3, code: 'out_of_order', expected: 2 }]);
    expect(check(history).map((v) => v.kind)).toEqual(['unaccounted']);
  });
});

describe('checker: nothing judged is not a pass', () => {
  it('fails an empty history and a history without final logs', () => {
    expect(check([]).map((v) => v.kind)).toEqual(['too-little']);
    const history = good().filter((e) => e.type !== 'final-log');
    expect(check(history).map((v) => v.kind)).toContain('too-little');
    expect(check(history).map((v) => v.kind)).toContain('no-final-log');
  });
});
