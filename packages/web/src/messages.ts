/**
 * The message view of one conversation: the SDK's folded messages by seq
 * (each with its newest edit, its reactions, or a tombstone), then own sends
 * on their way. Own edits, deletes and reactions still on their way show on
 * their target at once, and a failed one shows there with Retry and Discard.
 */
import type { SendHandle, SequentClient, SystemBody, ViewItem } from 'sequent-client';
import { clock, h } from './dom.js';
import { textOf, type ChatBody } from './model.js';

/** A message as the SDK folds it (the type is not exported by name). */
export type ChatMessage = ReturnType<SequentClient<ChatBody>['messages']>[number];
type Reaction = ChatMessage['reactions'][number];

/** The reactions offered in the picker; any 1–32 character key works on the wire. */
export const REACTION_KEYS = ['👍', '❤️', '😂', '🎉', '😮'] as const;

export interface Self {
  user: string;
  device: string;
}

/** What the view needs from the page: who is looking, what is open, and what the buttons do. */
export interface MessageUi {
  self: Self;
  group: boolean;
  /** Other members whose read position is at or past `seq`. */
  seenBy(seq: number): string[];
  /** The message whose reaction picker is open, whose delete waits for a yes, and the one being edited. */
  picking: number | undefined;
  confirmingDelete: number | undefined;
  editing: number | undefined;
  react(seq: number, key: string, on: boolean): void;
  togglePicker(seq: number): void;
  edit(message: ChatMessage): void;
  askDelete(seq: number | undefined): void;
  confirmDelete(seq: number): void;
  error(error: unknown): void;
}

function systemText(message: ChatMessage): string {
  const body = message.body as unknown as SystemBody;
  if (body.op === 'create') return `${message.from} created the group with ${body.members.filter((m) => m !== message.from).join(', ') || 'nobody else'}`;
  const parts = [];
  if (body.add.length > 0) parts.push(`added ${body.add.join(', ')}`);
  if (body.remove.length > 0) parts.push(`removed ${body.remove.join(', ')}`);
  return `${message.from} ${parts.join(' and ') || 'changed nothing'}`;
}

/** Own actions on a message not yet delivered as entries, applied on top of the fold's state. */
interface Overlay {
  body: unknown;
  editing: boolean;
  deleting: boolean;
  reactions: Reaction[];
  failed: SendHandle[];
}

function overlay(message: ChatMessage, actions: readonly SendHandle[], self: string): Overlay {
  const result: Overlay = { body: message.body, editing: false, deleting: false, reactions: message.reactions, failed: [] };
  for (const handle of actions) {
    if (handle.state === 'failed') {
      result.failed.push(handle);
      continue;
    }
    if (handle.kind === 'edit') {
      result.body = handle.body;
      result.editing = true;
    } else if (handle.kind === 'delete') {
      result.deleting = true;
    } else if (handle.kind === 'react') {
      const { key, on } = handle.body as { key: string; on: boolean };
      result.reactions = toggled(result.reactions, key, self, on);
    }
  }
  return result;
}

function toggled(reactions: readonly Reaction[], key: string, user: string, on: boolean): Reaction[] {
  const byKey = new Map(reactions.map((reaction) => [reaction.key, new Set(reaction.users)]));
  const users = byKey.get(key) ?? new Set<string>();
  if (on) users.add(user);
  else users.delete(user);
  byKey.set(key, users);
  return [...byKey.entries()]
    .filter(([, set]) => set.size > 0)
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
    .map(([k, set]) => ({ key: k, users: [...set].sort() }));
}

function actionName(handle: SendHandle): string {
  if (handle.kind === 'edit') return 'Edit';
  if (handle.kind === 'delete') return 'Delete';
  if (handle.kind === 'react') return `Reaction ${(handle.body as { key: string }).key}`;
  return 'Message';
}

function failureLine(handle: SendHandle, ui: MessageUi): HTMLElement {
  return h(
    'span',
    { class: 'failure', 'data-kind': handle.kind },
    `${actionName(handle)} failed: ${handle.error?.message ?? 'not sent'} `,
    h('button', { type: 'button', onclick: () => handle.retry() }, 'Retry'),
    h('button', { type: 'button', onclick: () => handle.discard().catch(ui.error) }, 'Discard'),
  );
}

function reactionRow(message: ChatMessage, reactions: readonly Reaction[], ui: MessageUi): HTMLElement | null {
  const self = ui.self.user;
  const chips: HTMLElement[] = reactions.map((reaction) => {
    const mine = reaction.users.includes(self);
    return h(
      'button',
      {
        type: 'button',
        class: 'reaction',
        'data-key': reaction.key,
        'data-count': reaction.users.length,
        'aria-pressed': String(mine),
        'aria-label': `${reaction.key} ${reaction.users.length}: ${reaction.users.join(', ')}`,
        title: reaction.users.join(', '),
        'data-focus': `${message.seq}:chip:${reaction.key}`,
        onclick: () => ui.react(message.seq, reaction.key, !mine),
      },
      `${reaction.key} ${reaction.users.length}`,
    );
  });
  if (ui.picking === message.seq) {
    const mineKeys = new Set(reactions.filter((reaction) => reaction.users.includes(self)).map((reaction) => reaction.key));
    chips.push(
      h(
        'span',
        { class: 'picker', role: 'group', 'aria-label': 'Reactions' },
        ...REACTION_KEYS.map((key) =>
          h(
            'button',
            { type: 'button', 'aria-label': `React with ${key}`, 'aria-pressed': String(mineKeys.has(key)), 'data-focus': `${message.seq}:pick:${key}`, onclick: () => ui.react(message.seq, key, !mineKeys.has(key)) },
            key,
          ),
        ),
      ),
    );
  }
  return chips.length === 0 ? null : h('span', { class: 'reactions' }, ...chips);
}

function messageActions(message: ChatMessage, mine: boolean, ui: MessageUi): HTMLElement {
  if (ui.confirmingDelete === message.seq) {
    return h(
      'span',
      { class: 'msg-actions confirm' },
      'Delete for everyone? ',
      h('button', { type: 'button', class: 'danger', 'data-focus': `${message.seq}:delete`, onclick: () => ui.confirmDelete(message.seq) }, 'Yes, delete'),
      h('button', { type: 'button', onclick: () => ui.askDelete(undefined) }, 'Cancel'),
    );
  }
  return h(
    'span',
    { class: 'msg-actions' },
    h(
      'button',
      { type: 'button', 'aria-label': 'React', title: 'Add a reaction', 'aria-expanded': String(ui.picking === message.seq), 'data-focus': `${message.seq}:react`, onclick: () => ui.togglePicker(message.seq) },
      '☺︎',
    ),
    mine ? h('button', { type: 'button', onclick: () => ui.edit(message) }, 'Edit') : null,
    mine ? h('button', { type: 'button', 'data-focus': `${message.seq}:delete`, onclick: () => ui.askDelete(message.seq) }, 'Delete') : null,
  );
}

function messageItem(message: ChatMessage, actions: readonly SendHandle[], seenLabel: string | undefined, ui: MessageUi): HTMLLIElement {
  if (message.kind === 'system') {
    return h('li', { class: 'system', 'data-seq': message.seq }, systemText(message), h('span', { class: 'meta' }, ` #${message.seq}`));
  }
  const mine = message.from === ui.self.user;
  const thisDevice = mine && message.dev === ui.self.device;
  const classes = ['msg'];
  if (mine) classes.push('own');
  const base = {
    'data-seq': message.seq,
    'data-from': message.from,
    'data-state': thisDevice ? 'sent' : undefined,
  };
  const from = mine ? null : h('span', { class: 'from' }, message.from);
  const stamp = `${clock(message.ts)} · ${thisDevice ? 'sent ' : ''}#${message.seq}${mine && !thisDevice ? ` · ${message.dev}` : ''}`;
  if (message.deleted !== undefined) {
    classes.push('deleted');
    return h('li', { ...base, class: classes.join(' '), 'data-deleted': message.deleted }, from, h('span', { class: 'text tombstone' }, 'message deleted'), h('span', { class: 'meta' }, stamp));
  }
  const shown = overlay(message, actions, ui.self.user);
  if (shown.deleting) classes.push('deleting');
  if (ui.editing === message.seq) classes.push('being-edited');
  const notes: string[] = [];
  if (message.edited !== undefined || shown.editing) notes.push(shown.editing ? 'saving edit…' : 'edited');
  if (shown.deleting) notes.push('deleting…');
  return h(
    'li',
    { ...base, class: classes.join(' '), 'data-edited': message.edited },
    from,
    h('span', { class: 'text' }, textOf(shown.body)),
    reactionRow(message, shown.reactions, ui),
    h(
      'span',
      { class: 'meta' },
      stamp,
      ...notes.map((note) => h('span', { class: note === 'edited' ? 'edited' : 'note' }, ` · ${note}`)),
      seenLabel ? h('span', { class: 'seen' }, ` · ${seenLabel}`) : null,
    ),
    ...shown.failed.map((handle) => failureLine(handle, ui)),
    shown.deleting ? null : messageActions(message, mine, ui),
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

/**
 * "Seen" under an own message: each other member is named once, under the
 * newest own message its read position reached (as most chat apps do), so a
 * long conversation does not repeat the same names under every message.
 */
function seenLabels(messages: readonly ChatMessage[], ui: MessageUi): Map<number, string> {
  const labels = new Map<number, string>();
  const named = new Set<string>();
  for (let i = messages.length - 1; i >= 0; i--) {
    const message = messages[i] as ChatMessage;
    if (message.kind !== 'msg' || message.from !== ui.self.user) continue;
    const fresh = ui.seenBy(message.seq).filter((user) => !named.has(user));
    for (const user of fresh) named.add(user);
    if (fresh.length > 0) labels.set(message.seq, ui.group ? `Seen by ${fresh.join(', ')}` : 'Seen');
  }
  return labels;
}

/** Folded messages (delivered and loaded, one per seq), then the SDK's pending sends. */
export function renderMessages(list: HTMLElement, messages: readonly ChatMessage[], view: readonly ViewItem[], ui: MessageUi): void {
  const wasAtBottom = list.scrollHeight - list.scrollTop - list.clientHeight < 40;
  // The list is rebuilt whole: keep the keyboard focus on the same control.
  const active = document.activeElement;
  const focusKey = active instanceof HTMLElement && list.contains(active) ? active.dataset['focus'] : undefined;
  const actionsByRef = new Map<number, SendHandle[]>();
  const sends: SendHandle[] = [];
  for (const item of view) {
    if (item.kind !== 'pending') continue;
    const handle = item.handle;
    if (handle.kind === 'msg') sends.push(handle);
    else if (handle.ref !== undefined) actionsByRef.set(handle.ref, [...(actionsByRef.get(handle.ref) ?? []), handle]);
  }
  const seen = seenLabels(messages, ui);
  const items: HTMLLIElement[] = [];
  for (const message of messages) {
    items.push(messageItem(message, actionsByRef.get(message.seq) ?? [], seen.get(message.seq), ui));
    actionsByRef.delete(message.seq);
  }
  // Actions on messages not loaded here: only a failure needs the user.
  for (const [ref, handles] of actionsByRef) {
    for (const handle of handles) {
      if (handle.state === 'failed') items.push(h('li', { class: 'msg own pending failed', 'data-ref': ref }, failureLine(handle, ui)));
    }
  }
  for (const handle of sends) items.push(pendingItem(handle, ui.error));
  if (items.length === 0) items.push(h('li', { class: 'empty' }, 'No messages yet. Say hello.'));
  list.replaceChildren(...items);
  if (wasAtBottom) list.scrollTop = list.scrollHeight;
  if (focusKey !== undefined) list.querySelector<HTMLElement>(`[data-focus="${CSS.escape(focusKey)}"]`)?.focus();
}
