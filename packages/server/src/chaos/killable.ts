/** An SDK instance's outside world behind a switch, so that a test or the chaos run can kill the "app" without stop(). */
import type { ClientStore, Transport, TransportConnection } from 'sequent-client';

export interface KillableOptions {
  /** Frames from the server to swallow (e.g. acks, to kill the app mid-send). */
  dropInbound?: (text: string) => boolean;
  /** Frames to the server to swallow (sends that never left the device). */
  dropOutbound?: (text: string) => boolean;
}

export interface Killable {
  transport: Transport;
  store: ClientStore;
  /** From now on the app is dead: its connections close, it hears nothing, connects nowhere, writes nothing. */
  kill(): void;
}

const deadConnection = (): TransportConnection => ({ send() {}, close() {}, onopen: null, onmessage: null, onclose: null, onerror: null });

export function killable(transport: Transport, store: ClientStore, options: KillableOptions = {}): Killable {
  let dead = false;
  const open = new Set<TransportConnection>();
  const ignoreWhenDead =
    <A extends unknown[]>(write: (...args: A) => Promise<void>) =>
    (...args: A): Promise<void> =>
      dead ? Promise.resolve() : write(...args);
  return {
    transport: {
      open(url) {
        if (dead) return deadConnection();
        const inner = transport.open(url);
        open.add(inner);
        const outer: TransportConnection = {
          send(text) {
            if (!dead && !options.dropOutbound?.(text)) inner.send(text);
          },
          close: (code, reason) => inner.close(code, reason),
          onopen: null,
          onmessage: null,
          onclose: null,
          onerror: null,
        };
        inner.onopen = () => !dead && outer.onopen?.();
        inner.onmessage = (text) => !dead && !options.dropInbound?.(text) && outer.onmessage?.(text);
        inner.onerror = (error) => !dead && outer.onerror?.(error);
        inner.onclose = (code, reason) => {
          open.delete(inner);
          if (!dead) outer.onclose?.(code, reason);
        };
        return outer;
      },
    },
    store: {
      load: () => store.load(),
      setIdentity: ignoreWhenDead((identity) => store.setIdentity(identity)),
      enqueue: ignoreWhenDead((entry) => store.enqueue(entry)),
      updateOutbox: ignoreWhenDead((entry) => store.updateOutbox(entry)),
      removeOutbox: ignoreWhenDead((conv, cmid) => store.removeOutbox(conv, cmid)),
      setCursor: ignoreWhenDead((conv, cursor) => store.setCursor(conv, cursor)),
      // Discarding a refused edit or reaction needs replaceOutbox; the read positions and list need saveChat.
      ...(store.replaceOutbox ? { replaceOutbox: ignoreWhenDead((conv: string, entries: Parameters<NonNullable<ClientStore['replaceOutbox']>>[1], next: number) => store.replaceOutbox!(conv, entries, next)) } : {}),
      ...(store.saveChat ? { saveChat: ignoreWhenDead((state: Parameters<NonNullable<ClientStore['saveChat']>>[0]) => store.saveChat!(state)) } : {}),
      close: () => Promise.resolve(),
    },
    kill() {
      dead = true;
      for (const connection of open) connection.close();
      open.clear();
    },
  };
}
