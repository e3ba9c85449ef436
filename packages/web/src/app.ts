/**
 * The chat page's controller: the SDK's events in, the DOM out. Rendering is
 * batched to one pass per animation frame; every list is rebuilt whole (they
 * are short), which keeps the code free of incremental bookkeeping.
 */
import { SequentClientError, type ClientState, type ConversationInfo, type SequentClient } from 'sequent-client';
import { dmConvId, parseConvId } from 'sequent-client/protocol';
import { FrameLog, renderFacts } from './debug.js';
import { byId, clock, h, names } from './dom.js';
import { renderMessages, type Self } from './messages.js';
import { ChatModel, type ChatBody } from './model.js';
import type { Wire } from './wire.js';

/** Entries read per "load earlier". */
const PAGE = 50;

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

  constructor(
    private readonly client: SequentClient<ChatBody>,
    private readonly wire: Wire,
    private readonly self: Self,
  ) {
    this.frames = new FrameLog(byId('frames'));
    this.selectedKey = `sequent-web.open.${self.user}`;
  }

  start(): void {
    const client = this.client;
    client.on('message', ({ conv, entry }) => {
      this.model.log(conv).add(entry);
      this.schedule();
    });
    client.on('send', () => this.schedule());
    client.on('conversations', () => this.schedule());
    client.on('blocked', (info) => this.toast(`Sends to ${this.title(info.conv)} are blocked: ${info.error.message}`));
    client.on('state', ({ to }) => {
      if (to === 'ready' && this.selected) void this.fillHistory(this.selected);
      this.schedule();
    });
    client.on('error', (error) => {
      // Connection trouble is what the indicator shows; the rest is worth a line.
      if (isConnectionTrouble(error)) return;
      this.toast(error.message);
    });
    this.wire.onFrame((record) => {
      this.model.observeFrame(record.direction, record.text, record.page);
      this.frames.add(record);
    });
    this.bindForms();
    byId('me').replaceChildren(h('span', { class: 'user' }, this.self.user), h('span', { class: 'device' }, ` · ${this.self.device}`));
    const reopen = localStorage.getItem(this.selectedKey);
    if (reopen && parseConvId(reopen)) this.open(reopen);
    this.schedule();
  }

  /** Opens a conversation (it may not exist yet: a DM comes to be with its first message). */
  open(conv: string): void {
    this.selected = conv;
    localStorage.setItem(this.selectedKey, conv);
    document.body.classList.add('in-chat');
    this.schedule();
    void this.fillHistory(conv);
    queueMicrotask(() => byId('compose').focus());
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
      }
    });
    composer.addEventListener('submit', (event) => {
      event.preventDefault();
      const text = compose.value.trim();
      if (!this.selected || text.length === 0) return;
      try {
        this.client.send(this.selected, { text });
        compose.value = '';
      } catch (error) {
        this.toast(message(error));
      }
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

  /** The lowest seq the page still lacks below: everything above the SDK's cursor the SDK delivers itself. */
  private lowestHeld(conv: string): number {
    const lowest = this.model.log(conv).lowest();
    const sdkFirst = this.client.cursor(conv) + 1;
    return lowest === undefined ? sdkFirst : Math.min(lowest, sdkFirst);
  }

  private readableFrom(conv: string): number {
    return this.info(conv)?.from ?? 1;
  }

  private hasEarlier(conv: string): boolean {
    return this.lowestHeld(conv) > this.readableFrom(conv);
  }

  /** On opening: show at least a page, reading older entries when the SDK's cursor already passed them. */
  private async fillHistory(conv: string): Promise<void> {
    const log = this.model.log(conv);
    if (log.entries().length < PAGE && this.hasEarlier(conv)) await this.loadEarlier(conv);
  }

  private async loadEarlier(conv: string): Promise<void> {
    const log = this.model.log(conv);
    if (log.loadingEarlier || this.client.state !== 'ready') return;
    log.loadingEarlier = true;
    this.schedule();
    const list = byId('messages');
    const heightBefore = list.scrollHeight;
    try {
      const below = this.lowestHeld(conv);
      let after = Math.max(this.readableFrom(conv) - 1, below - 1 - PAGE);
      while (after < below - 1) {
        const { msgs } = await this.wire.history(conv, after, below - 1 - after);
        if (msgs.length === 0) break;
        for (const entry of msgs) if (entry.seq < below) log.add(entry);
        after = msgs.at(-1)!.seq;
      }
    } catch (error) {
      this.toast(`Could not load earlier messages: ${message(error)}`);
    } finally {
      log.loadingEarlier = false;
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
          : { conv, cursor: this.client.cursor(conv), info: this.info(conv), outbox: this.client.pending(conv), counters: this.model.log(conv).debug, lowestShown: this.model.log(conv).lowest() },
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
  }

  private renderList(): void {
    const convs = this.client.conversations();
    const rows = convs.map((info) => this.listRow(info.conv, info.ts, info.until !== undefined));
    if (this.selected && !convs.some((info) => info.conv === this.selected)) rows.unshift(this.listRow(this.selected, 0, false));
    if (rows.length === 0) rows.push(h('li', { class: 'hint' }, 'No chats yet: message a user or create a group.'));
    byId('conv-list').replaceChildren(...rows);
  }

  private listRow(conv: string, ts: number, removed: boolean): HTMLLIElement {
    const current = conv === this.selected;
    // Unread counts wait for the SDK's read state; the badge shows unsent messages meanwhile.
    const unsent = this.client.pending(conv).length;
    return h(
      'li',
      {},
      h(
        'button',
        { type: 'button', class: current ? 'conv current' : 'conv', 'data-conv': conv, 'aria-current': current ? 'true' : undefined, onclick: () => this.open(conv) },
        h('span', { class: 'conv-name' }, this.title(conv)),
        removed ? h('span', { class: 'hint' }, ' (left)') : null,
        h('span', { class: 'conv-time' }, clock(ts)),
        unsent > 0 ? h('span', { class: 'badge', 'aria-label': `${unsent} unsent` }, unsent) : null,
      ),
    );
  }

  private renderChat(): void {
    const conv = this.selected;
    const composer = byId<HTMLFormElement>('composer');
    const members = byId('members');
    const earlier = byId<HTMLButtonElement>('load-earlier');
    if (!conv) {
      byId('chat-title').textContent = 'Pick a chat';
      composer.hidden = true;
      members.hidden = true;
      earlier.hidden = true;
      byId('messages').replaceChildren();
      return;
    }
    byId('chat-title').textContent = this.title(conv);
    composer.hidden = false;
    members.hidden = parseConvId(conv)?.kind !== 'group';
    const log = this.model.log(conv);
    earlier.hidden = !this.hasEarlier(conv);
    earlier.disabled = log.loadingEarlier || this.client.state !== 'ready';
    earlier.textContent = log.loadingEarlier ? 'Loading…' : 'Load earlier';
    renderMessages(byId('messages'), log.entries(), this.client.view(conv), this.self, (error) => this.toast(message(error)));
  }

  private toast(text: string): void {
    const toast = byId('toast');
    toast.textContent = text;
    toast.hidden = false;
    clearTimeout(this.toastTimer);
    this.toastTimer = setTimeout(() => (toast.hidden = true), 6000);
  }
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
