/**
 * The debug panel: for the open conversation the SDK's cursor, the newest
 * known seq (`last`), the read position and unread count, the outbox (cmid, dseq, state, tries), the gaps seen in
 * pushes and what the SDK's syncs filled; below it the live frame log.
 */
import type { ConversationInfo, SendHandle } from 'sequent-client';
import { h } from './dom.js';
import type { ConvDebug } from './model.js';
import type { FrameRecord } from './wire.js';

const MAX_FRAMES = 300;
const MAX_FRAME_TEXT = 400;

export interface ConvFacts {
  conv: string;
  cursor: number;
  info: ConversationInfo | undefined;
  outbox: SendHandle[];
  counters: ConvDebug;
  lowestShown: number | undefined;
}

function row(name: string, value: string | number, testId: string): HTMLElement {
  return h('div', { class: 'fact' }, h('dt', {}, name), h('dd', { 'data-debug': testId }, String(value)));
}

export function renderFacts(target: HTMLElement, facts: ConvFacts | undefined): void {
  if (!facts) {
    target.replaceChildren(h('p', {}, 'Open a conversation to see its state.'));
    return;
  }
  const { info, counters } = facts;
  const outbox =
    facts.outbox.length === 0
      ? h('p', { 'data-debug': 'outbox-empty' }, 'outbox empty')
      : h(
          'table',
          { class: 'outbox' },
          h('caption', {}, 'Outbox'),
          h('thead', {}, h('tr', {}, h('th', {}, 'dseq'), h('th', {}, 'cmid'), h('th', {}, 'state'), h('th', {}, 'tries'))),
          h(
            'tbody',
            {},
            ...facts.outbox.map((handle) =>
              h('tr', { 'data-cmid': handle.cmid }, h('td', {}, handle.dseq), h('td', { class: 'mono' }, handle.cmid), h('td', {}, handle.state), h('td', {}, handle.tries)),
            ),
          ),
        );
  target.replaceChildren(
    h(
      'dl',
      {},
      row('conversation', facts.conv, 'conv'),
      row('cursor', facts.cursor, 'cursor'),
      row('last', info?.last ?? 0, 'last'),
      row('readable from', info?.from ?? 1, 'from'),
      row('read position', info?.read ?? 0, 'read'),
      row('unread', info?.unread ?? 0, 'unread'),
      info?.until !== undefined ? row('removed at', info.until, 'until') : null,
      row('lowest shown', facts.lowestShown ?? '–', 'lowest'),
      row('gaps detected', counters.gapsDetected, 'gaps'),
      row('SDK syncs', counters.syncs, 'syncs'),
      row('history reads', counters.historyReads, 'history-reads'),
      row('entries filled by sync', counters.filled, 'filled'),
    ),
    outbox,
  );
}

/** Hides the token of a hello: the panel may end up in a screenshot. */
function redact(text: string): string {
  return text.replace(/("token":")[^"]*"/, '$1…"');
}

export class FrameLog {
  private readonly lines: HTMLElement[] = [];
  paused = false;

  constructor(private readonly target: HTMLElement) {}

  add(record: FrameRecord): void {
    if (this.paused) return;
    const text = redact(record.text);
    const line = h(
      'li',
      { class: `frame ${record.direction}` },
      `${new Date(record.at).toISOString().slice(11, 23)} #${record.connection} ${record.direction === 'in' ? '←' : '→'} `,
      text.length > MAX_FRAME_TEXT ? `${text.slice(0, MAX_FRAME_TEXT)}…` : text,
    );
    this.lines.push(line);
    this.target.append(line);
    while (this.lines.length > MAX_FRAMES) this.lines.shift()?.remove();
    this.target.scrollTop = this.target.scrollHeight;
  }

  clear(): void {
    for (const line of this.lines.splice(0)) line.remove();
  }
}
