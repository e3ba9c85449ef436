/** The message view of one conversation: delivered entries by seq, then own sends on their way. */
import type { Entry, SendHandle, SystemBody, ViewItem } from 'sequent-client';
import { clock, h } from './dom.js';
import { textOf } from './model.js';

export interface Self {
  user: string;
  device: string;
}

function systemText(entry: Entry): string {
  const body = entry.body as SystemBody;
  if (body.op === 'create') return `${entry.from} created the group with ${body.members.filter((m) => m !== entry.from).join(', ') || 'nobody else'}`;
  const parts = [];
  if (body.add.length > 0) parts.push(`added ${body.add.join(', ')}`);
  if (body.remove.length > 0) parts.push(`removed ${body.remove.join(', ')}`);
  return `${entry.from} ${parts.join(' and ') || 'changed nothing'}`;
}

export function entryItem(entry: Entry, self: Self): HTMLLIElement {
  if (entry.kind === 'system') {
    return h('li', { class: 'system', 'data-seq': entry.seq }, systemText(entry), h('span', { class: 'meta' }, ` #${entry.seq}`));
  }
  const mine = entry.from === self.user;
  const thisDevice = mine && entry.dev === self.device;
  return h(
    'li',
    { class: mine ? 'msg own' : 'msg', 'data-seq': entry.seq, 'data-from': entry.from, 'data-state': thisDevice ? 'sent' : undefined },
    mine ? null : h('span', { class: 'from' }, entry.from),
    h('span', { class: 'text' }, textOf(entry.body)),
    h('span', { class: 'meta' }, `${clock(entry.ts)} · ${thisDevice ? 'sent ' : ''}#${entry.seq}${mine && !thisDevice ? ` · ${entry.dev}` : ''}`),
  );
}

export function pendingItem(handle: SendHandle, onError: (error: unknown) => void): HTMLLIElement {
  const state = handle.state;
  const status =
    state === 'sent' ? `sent #${handle.seq ?? '?'}` : state === 'failed' ? `failed: ${handle.error?.message ?? 'not sent'}` : 'sending…';
  const actions =
    state === 'failed'
      ? h(
          'span',
          { class: 'actions' },
          h('button', { type: 'button', onclick: () => handle.retry() }, 'Retry'),
          h('button', { type: 'button', onclick: () => handle.discard().catch(onError) }, 'Discard'),
        )
      : null;
  return h(
    'li',
    { class: `msg own pending ${state}`, 'data-cmid': handle.cmid, 'data-dseq': handle.dseq, 'data-state': state },
    h('span', { class: 'text' }, textOf(handle.body)),
    h('span', { class: 'meta' }, status),
    actions,
  );
}

/** Delivered (from the SDK and from history, one per seq), then the SDK's pending sends. */
export function renderMessages(list: HTMLElement, entries: readonly Entry[], view: ViewItem[], self: Self, onError: (error: unknown) => void): void {
  const wasAtBottom = list.scrollHeight - list.scrollTop - list.clientHeight < 40;
  const items: HTMLLIElement[] = entries.map((entry) => entryItem(entry, self));
  for (const item of view) if (item.kind === 'pending') items.push(pendingItem(item.handle, onError));
  if (items.length === 0) items.push(h('li', { class: 'empty' }, 'No messages yet. Say hello.'));
  list.replaceChildren(...items);
  if (wasAtBottom) list.scrollTop = list.scrollHeight;
}
