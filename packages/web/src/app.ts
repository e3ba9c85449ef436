/**
 * The chat page's controller: the SDK's events in, the DOM out. Rendering is
 * batched to one pass per animation frame; every list is rebuilt whole (they
 * are short), which keeps the code free of incremental bookkeeping.
 *
 * The messages are the SDK's fold (messages(conv), older pages by history()),
 * so edits, deletes and reactions show the same whatever order they came in.
 * The open conversation is marked read up to what is on screen whenever the
 * page is visible and scrolled to the bottom.
 */
import { SequentClientError, type ClientState, type ConversationInfo, type SequentClient } from 'sequent-client';
import { dmConvId, parseConvId } from 'sequent-client/protocol';
import { FrameLog, renderFacts } from './debug.js';
import { byId, clock, h, names } from './dom.js';
import { renderMessages, type ChatMessage, type MessageUi, type Self } from './messages.js';
import { ChatModel, textOf, type ChatBody } from './model.js';
import type { Wire } from './wire.js';

/** Entries read per "load earlier". */
const PAGE = 50;
const BASE_TITLE = 'Sequent chat';

const CONNECTION_LABELS: Record<ClientState, [string, string]> = {
  idle: ['connecting', 'connecting'],
  connecting: ['connecting', 'connecting'],
  authenticating: ['connecting', 'connecting'],
  syncing: ['resyncing', 'resyncing'],
  ready: ['online', 'online'],
  waiting: ['offline', 'offline, retrying'],
  stopped: ['offline', 'stopped'],
};

export class ChatApp {
  private readonly model = new ChatModel();
  private selected: string | undefined;
  private queued = false;
  private readonly frames: FrameLog;
  private readonly selectedKey: string;
  private toastTimer: ReturnType<typeof setTimeout> | undefined;
  /** The own message whose text is in the composer for an edit. */
  private editing: { conv: string; seq: number; text: string } | undefined;
  private picking: number | undefined;
  private confirmingDelete: number | undefined;
  /** Members per conversation, from info() (which also primes the SDK's seenBy). */
  private readonly members = new Map<string, string[]>();
  private readonly ui: MessageUi;

  constructor(
    private readonly client: SequentClient<ChatBody>,
    private readonly wire: Wire,
    private readonly self: Self,
  ) {
    this.frames = new FrameLog(byId('frames'));
    this.selectedKey = `sequent-web.open.${self.user}`;
    this.ui = {
      self,
      group: false,
      seenBy: (seq) => (this.selected === undefined ? [] : this.client.seenBy(this.selected, seq)),
      picking: undefined,
      confirmingDelete: undefined,
      editing: undefined,
      react: (seq, key, on) => this.act(() => this.client.react(this.current(), seq, key, on), () => (this.picking = undefined)),
      togglePicker: (seq) => {
        this.picking = this.picking === seq ? undefined : seq;
        this.schedule();
      },
      edit: (message) => this.startEdit(message),
      askDelete: (seq) => {
        this.confirmingDelete = seq;
        this.schedule();
      },
      confirmDelete: (seq) => this.act(() => this.client.delete(this.current(), seq), () => (this.confirmingDelete = undefined)),
      error: (error) => this.toast(message(error)),
    };
  }

  start(): void {
    const client = this.client;
    client.on('message', ({ conv, entry }) => {
      // A message from someone ends their "typing…"; a member change may change who has seen what.
      if (entry.kind === 'msg') this.model.conv(conv).typing.delete(entry.from);
      if (entry.kind === 'system' && conv === this.selected) void this.loadInfo(conv);
      this.schedule();
    });
    client.on('read', () => this.schedule());
    client.on('typing', ({ conv, user, until }) => {
      this.model.conv(conv).typing.set(user, until);
      setTimeout(() => this.schedule(), Math.max(0, until - Date.now()) + 50);
      this.schedule();
    });
    client.on('send', () => this.schedule());
    client.on('conversations', () => this.schedule());
    client.on('blocked', (info) => this.toast(`Sends to ${this.title(info.conv)} are blocked: ${info.error.message}`));
    client.on('state', ({ to }) => {
      if (to === 'ready' && this.selected) {
        void this.fillHistory(this.selected);
        void this.loadInfo(this.selected);
      }
      this.schedule();
    });
    client.on('error', (error) => {
      // Connection trouble is what the indicator shows; the rest is worth a line.
      if (isConnectionTrouble(error)) return;
      this.toast(error.message);
    });
    this.wire.onFrame((record) => {
      this.model.observeFrame(record.direction, record.text);
      this.frames.add(record);
    });
    this.bindForms();
    // Coming back to the tab, or scrolling to the newest message, is reading it.
    document.addEventListener('visibilitychange', () => this.schedule());
    byId('messages').addEventListener('scroll', () => this.markSeen(), { passive: true });
    byId('me').replaceChildren(h('span', { class: 'user' }, this.self.user), h('span', { class: 'device' }, ` · ${this.self.device}`));
    const reopen = localStorage.getItem(this.selectedKey);
    if (reopen && parseConvId(reopen)) this.open(reopen);
    this.schedule();
  }

  /** Opens a conversation (it may not exist yet: a DM comes to be with its first message). */
  open(conv: string): void {
    if (conv !== this.selected) {
      this.cancelEdit();
      this.picking = undefined;
      this.confirmingDelete = undefined;
    }
    this.selected = conv;
    localStorage.setItem(this.selectedKey, conv);
    document.body.classList.add('in-chat');
    this.schedule();
    void this.fillHistory(conv);
    void this.loadInfo(conv);
    queueMicrotask(() => byId('compose').focus());
  }

  /** The open conversation; the message buttons exist only while one is. */
  private current(): string {
    if (this.selected === undefined) throw new Error('no conversation is open');
    return this.selected;
  }

  /** Runs an SDK call that queues an edit, delete or reaction; a refusal before it is queued is a toast. */
  private act(call: () => unknown, after: () => void): void {
    try {
      call();
      after();
    } catch (error) {
      this.toast(message(error));
    }
    this.schedule();
  }

  private startEdit(chat: ChatMessage): void {
    const conv = this.current();
    const text = textOf(chat.body);
    this.editing = { conv, seq: chat.seq, text };
    const compose = byId<HTMLTextAreaElement>('compose');
    compose.value = text;
    this.renderComposer();
    compose.focus();
    compose.setSelectionRange(text.length, text.length);
    this.schedule();
  }

  private cancelEdit(): void {
    if (!this.editing) return;
    this.editing = undefined;
    byId<HTMLTextAreaElement>('compose').value = '';
    this.renderComposer();
    this.schedule();
  }

  /** Members and read positions of a conversation (not there yet for a DM without messages: then nothing). */
  private async loadInfo(conv: string): Promise<void> {
    if (this.client.state !== 'ready' || this.info(conv) === undefined) return;
    try {
      const info = await this.client.info(conv);
      this.members.set(conv, info.members);
    } catch {
      // Not a member (any more), or offline: the list and the log say so already.
      return;
    }
    this.schedule();
  }

  /** Marks the open conversation read up to what is on screen, when the page is seen and at the bottom. */
  private markSeen(): void {
    const conv = this.selected;
    if (!conv || document.visibilityState !== 'visible' || !document.body.classList.contains('in-chat')) return;
    const list = byId('messages');
    if (list.clientHeight === 0 || list.scrollHeight - list.scrollTop - list.clientHeight > 40) return;
    const info = this.info(conv);
    if (!info) return;
    const top = Math.max(this.client.cursor(conv), this.client.messages(conv).at(-1)?.seq ?? 0);
    if (top < 1 || top <= info.read) return;
    try {
      this.client.markRead(conv, top);
    } catch (error) {
      this.toast(message(error));
    }
  }

  private bindForms(): void {
    byId<HTMLFormElement>('dm-form').addEventListener('submit', (event) => {
      event.preventDefault();
      const input = byId<HTMLInputElement>('dm-user');
      const other = input.value.trim();
      if (other === this.self.user) return this.toast('That is you: pick someone else.');
      input.value = '';
      this.open(dmConvId(this.self.user, other));
    });
    byId<HTMLFormElement>('group-form').addEventListener('submit', (event) => {
      event.preventDefault();
      const name = byId<HTMLInputElement>('group-name');
      const members = byId<HTMLInputElement>('group-members');
      const conv = `g:${name.value.trim()}`;
      this.client.create(conv, names(members.value)).then(
        () => {
          name.value = '';
          members.value = '';
          this.open(conv);
        },
        (error: unknown) => this.toast(`Could not create ${conv}: ${message(error)}`),
      );
    });
    byId<HTMLFormElement>('members-form').addEventListener('submit', (event) => {
      event.preventDefault();
      const conv = this.selected;
      if (!conv) return;
      const add = byId<HTMLInputElement>('members-add');
      const remove = byId<HTMLInputElement>('members-remove');
      this.client.members(conv, { add: names(add.value), remove: names(remove.value) }).then(
        () => {
          add.value = '';
          remove.value = '';
        },
        (error: unknown) => this.toast(`Could not change the members: ${message(error)}`),
      );
    });
    const compose = byId<HTMLTextAreaElement>('compose');
    const composer = byId<HTMLFormElement>('composer');
    compose.addEventListener('keydown', (event) => {
      if (event.key === 'Enter' && !event.shiftKey && !event.isComposing) {
        event.preventDefault();
        composer.requestSubmit();
      } else if (event.key === 'Escape' && this.editing) {
        event.preventDefault();
        this.cancelEdit();
      }
    });
    compose.addEventListener('input', () => {
      // The SDK sends at most one typing frame per few seconds, and none while offline.
      if (!this.selected || this.editing || compose.value.trim().length === 0 || this.client.state !== 'ready') return;
      try {
        this.client.typing(this.selected);
      } catch {
        // Stopped: nothing to tell anyone.
      }
    });
    byId('edit-cancel').addEventListener('click', () => {
      this.cancelEdit();
      compose.focus();
    });
    composer.addEventListener('submit', (event) => {
      event.preventDefault();
      const text = compose.value.trim();
      if (!this.selected || text.length === 0) return;
      const editing = this.editing;
      try {
        if (editing && editing.conv === this.selected) {
          if (text !== editing.text) this.client.edit(editing.conv, editing.seq, { text });
          this.editing = undefined;
          this.renderComposer();
        } else {
          this.client.send(this.selected, { text });
        }
        compose.value = '';
      } catch (error) {
        this.toast(message(error));
      }
      this.schedule();
    });
    byId('load-earlier').addEventListener('click', () => {
      if (this.selected) void this.loadEarlier(this.selected);
    });
    byId('back').addEventListener('click', () => {
      document.body.classList.remove('in-chat');
      byId('conv-list').querySelector<HTMLButtonElement>('button')?.focus();
    });
    const toggle = byId('debug-toggle');
    toggle.addEventListener('click', () => {
      const panel = byId('debug');
      panel.hidden = !panel.hidden;
      toggle.setAttribute('aria-expanded', String(!panel.hidden));
      const frames = byId('frames');
      if (!panel.hidden) requestAnimationFrame(() => (frames.scrollTop = frames.scrollHeight));
      this.schedule();
    });
    const pause = byId('frames-pause');
    pause.addEventListener('click', () => {
      this.frames.paused = !this.frames.paused;
      pause.setAttribute('aria-pressed', String(this.frames.paused));
    });
    byId('frames-clear').addEventListener('click', () => this.frames.clear());
  }

  /** Older readable entries remain: as the last history read said, else below what is held (the SDK delivers everything past its cursor). */
  private hasEarlier(conv: string): boolean {
    const more = this.model.conv(conv).more;
    if (more !== undefined) return more;
    const first = this.client.messages(conv)[0]?.seq ?? Number.POSITIVE_INFINITY;
    return Math.min(first, this.client.cursor(conv) + 1) > (this.info(conv)?.from ?? 1);
  }

  /** On opening: show at least a page, reading older entries when the SDK's cursor already passed them. */
  private async fillHistory(conv: string): Promise<void> {
    if (this.client.messages(conv).length < PAGE && this.hasEarlier(conv)) await this.loadEarlier(conv);
  }

  private async loadEarlier(conv: string): Promise<void> {
    const state = this.model.conv(conv);
    if (state.loadingEarlier || this.client.state !== 'ready') return;
    state.loadingEarlier = true;
    this.schedule();
    const list = byId('messages');
    const heightBefore = list.scrollHeight;
    try {
      const page = await this.client.history(conv, { limit: PAGE });
      state.more = page.more;
    } catch (error) {
      this.toast(`Could not load earlier messages: ${message(error)}`);
    } finally {
      state.loadingEarlier = false;
    }
    this.render();
    if (this.selected === conv) list.scrollTop += list.scrollHeight - heightBefore;
  }

  private info(conv: string): ConversationInfo | undefined {
    return this.client.conversations().find((info) => info.conv === conv);
  }

  private title(conv: string): string {
    const ref = parseConvId(conv);
    if (!ref) return conv;
    if (ref.kind === 'group') return `# ${ref.name}`;
    const [, a, b] = conv.split(':');
    return a === this.self.user ? (b ?? conv) : (a ?? conv);
  }

  private schedule(): void {
    if (this.queued) return;
    this.queued = true;
    requestAnimationFrame(() => {
      this.queued = false;
      this.render();
    });
  }

  private render(): void {
    this.renderStatus();
    this.renderList();
    this.renderChat();
    const debug = byId('debug');
    if (!debug.hidden) {
      const conv = this.selected;
      renderFacts(
        byId('debug-facts'),
        conv === undefined
          ? undefined
          : {
              conv,
              cursor: this.client.cursor(conv),
              info: this.info(conv),
              outbox: this.client.pending(conv),
              counters: this.model.conv(conv).debug,
              lowestShown: this.client.messages(conv)[0]?.seq,
            },
      );
    }
  }

  private renderStatus(): void {
    const [state, label] = CONNECTION_LABELS[this.client.state];
    const indicator = byId('connection');
    indicator.dataset['state'] = state;
    indicator.textContent = label;
    const unsent = this.client.pending().length;
    const counter = byId('unsent');
    counter.dataset['count'] = String(unsent);
    counter.textContent = `${unsent} unsent`;
    const unread = this.client.totalUnread();
    const total = byId('unread-total');
    total.dataset['count'] = String(unread);
    total.textContent = `${unread} unread`;
    document.title = unread > 0 ? `(${unread}) ${BASE_TITLE}` : BASE_TITLE;
  }

  private renderList(): void {
    const convs = this.client.conversations();
    const rows = convs.map((info) => this.listRow(info.conv, info.ts, info.until !== undefined, info.unread));
    if (this.selected && !convs.some((info) => info.conv === this.selected)) rows.unshift(this.listRow(this.selected, 0, false, 0));
    if (rows.length === 0) rows.push(h('li', { class: 'hint' }, 'No chats yet: message a user or create a group.'));
    byId('conv-list').replaceChildren(...rows);
  }

  private listRow(conv: string, ts: number, removed: boolean, unread: number): HTMLLIElement {
    const current = conv === this.selected;
    const unsent = this.client.pending(conv).length;
    const classes = ['conv'];
    if (current) classes.push('current');
    if (unread > 0) classes.push('has-unread');
    return h(
      'li',
      {},
      h(
        'button',
        { type: 'button', class: classes.join(' '), 'data-conv': conv, 'data-unread': unread, 'aria-current': current ? 'true' : undefined, onclick: () => this.open(conv) },
        h('span', { class: 'conv-name' }, this.title(conv)),
        removed ? h('span', { class: 'hint' }, ' (left)') : null,
        h('span', { class: 'conv-time' }, clock(ts)),
        unread > 0 ? h('span', { class: 'badge unread', 'aria-label': `${unread} unread` }, unread) : null,
        unsent > 0 ? h('span', { class: 'badge unsent-badge', 'aria-label': `${unsent} unsent` }, unsent) : null,
      ),
    );
  }

  private renderChat(): void {
    const conv = this.selected;
    const composer = byId<HTMLFormElement>('composer');
    const members = byId('members');
    const earlier = byId<HTMLButtonElement>('load-earlier');
    const typing = byId('typing');
    if (!conv) {
      byId('chat-title').textContent = 'Pick a chat';
      composer.hidden = true;
      members.hidden = true;
      earlier.hidden = true;
      typing.textContent = '';
      byId('messages').replaceChildren();
      this.renderComposer();
      return;
    }
    byId('chat-title').textContent = this.title(conv);
    composer.hidden = false;
    const group = parseConvId(conv)?.kind === 'group';
    members.hidden = !group;
    const known = this.members.get(conv);
    byId('members-known').textContent = known ? `Members: ${known.join(', ')}` : '';
    const state = this.model.conv(conv);
    earlier.hidden = !this.hasEarlier(conv);
    earlier.disabled = state.loadingEarlier || this.client.state !== 'ready';
    earlier.textContent = state.loadingEarlier ? 'Loading…' : 'Load earlier';
    typing.textContent = typingText(state.typers(Date.now()));
    Object.assign(this.ui, { group, picking: this.picking, confirmingDelete: this.confirmingDelete, editing: this.editing?.seq });
    renderMessages(byId('messages'), this.client.messages(conv), this.client.view(conv), this.ui);
    this.renderComposer();
    this.markSeen();
  }

  private renderComposer(): void {
    const editing = this.editing !== undefined && this.editing.conv === this.selected ? this.editing : undefined;
    byId('editing').hidden = editing === undefined;
    if (editing) byId('editing-what').textContent = `Editing your message #${editing.seq} (Escape cancels)`;
    byId('compose-send').textContent = editing ? 'Save' : 'Send';
    byId('compose').setAttribute('placeholder', editing ? 'Edited message' : 'Message');
  }

  private toast(text: string): void {
    const toast = byId('toast');
    toast.textContent = text;
    toast.hidden = false;
    clearTimeout(this.toastTimer);
    this.toastTimer = setTimeout(() => (toast.hidden = true), 6000);
  }
}

function typingText(users: readonly string[]): string {
  if (users.length === 0) return '';
  if (users.length === 1) return `${users[0]} is typing…`;
  if (users.length <= 3) return `${users.slice(0, -1).join(', ')} and ${users.at(-1)} are typing…`;
  return `${users.length} people are typing…`;
}

function message(error: unknown): string {
  if (error instanceof SequentClientError) return `${error.message} (${error.code})`;
  return error instanceof Error ? error.message : String(error);
}

/** Errors the connection indicator already tells: the server or the network is away, and the SDK retries. */
function isConnectionTrouble(error: SequentClientError): boolean {
  if (error.code === 'connection_lost' || error.code === 'timeout' || error.code === 'connect_failed') return true;
  // A demo token the page could not fetch because the server is down (fetch rejects with a TypeError).
  return error.code === 'unauthorized' && error.cause instanceof TypeError;
}
