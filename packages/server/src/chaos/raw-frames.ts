/**
 * A side door into a device's own connection, for the few frames its SDK
 * would never send: a `read` below the position (which the server must
 * ignore) and a full `convs` list (the SDK asks only for changes since its
 * version). It sits between the SDK and the recording tap, so these frames
 * and their answers are in the history like any other; their request ids
 * come from a range the SDK never reaches, and their answers are kept from
 * the SDK, which did not ask.
 */
import type { Transport, TransportConnection } from 'sequent-client';

/** Request ids from here up belong to the side door. */
export const RAW_ID_BASE = 2 ** 40;

export interface RawFrames {
  transport: Transport;
  /** Sends a request on the newest authenticated connection; false when there is none. */
  send(frame: Record<string, unknown>): boolean;
}

export function rawFrames(inner: Transport): RawFrames {
  let current: TransportConnection | undefined;
  let nextId = RAW_ID_BASE;
  return {
    transport: {
      open(url) {
        const connection = inner.open(url);
        const outer: TransportConnection = {
          send: (text) => connection.send(text),
          close: (code, reason) => connection.close(code, reason),
          onopen: null,
          onmessage: null,
          onclose: null,
          onerror: null,
        };
        connection.onopen = () => outer.onopen?.();
        connection.onmessage = (text) => {
          if (isOurs(text)) return;
          if (text.includes('"t":"welcome"')) current = connection;
          outer.onmessage?.(text);
        };
        connection.onerror = (error) => outer.onerror?.(error);
        connection.onclose = (code, reason) => {
          if (current === connection) current = undefined;
          outer.onclose?.(code, reason);
        };
        return outer;
      },
    },
    send(frame) {
      if (!current) return false;
      current.send(JSON.stringify({ ...frame, id: nextId++ }));
      return true;
    },
  };
}

/** An answer to one of ours: its id has at least 13 digits (2^40 has 13); the SDK's ids count up from 1. */
function isOurs(text: string): boolean {
  const match = /"id":(\d{13,})[,}]/.exec(text);
  return match !== null && Number(match[1]) >= RAW_ID_BASE;
}
