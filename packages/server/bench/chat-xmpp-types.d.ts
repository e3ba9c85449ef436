/**
 * The part of `@xmpp/client` 0.14 the chat benchmark uses (the package ships no
 * types, and `@types/xmpp__client` describes an older API).
 */
declare module '@xmpp/client' {
  import type { EventEmitter } from 'node:events';

  export interface Element {
    name: string;
    attrs: Record<string, string | undefined>;
    getChild(name: string, xmlns?: string): Element | undefined;
    is(name: string, xmlns?: string): boolean;
    toString(): string;
  }

  export function xml(name: string, attrs?: Record<string, string>, ...children: (Element | string)[]): Element;

  export interface StreamManagement extends EventEmitter {
    enabled: boolean;
    id: string;
    /** Debounce of the library's own `<r/>` after a send, ms. */
    requestAckDebounce: number;
    requestAckInterval: number;
    on(event: 'ack' | 'fail', listener: (stanza: Element) => void): this;
  }

  export interface Client extends EventEmitter {
    start(): Promise<unknown>;
    stop(): Promise<void>;
    send(element: Element): Promise<void>;
    /** Writes raw XML, past the middleware (so not counted by stream management). */
    write(text: string): Promise<void>;
    streamManagement: StreamManagement;
    on(event: 'stanza' | 'nonza', listener: (element: Element) => void): this;
    on(event: 'error', listener: (error: Error) => void): this;
    on(event: 'offline' | 'online', listener: () => void): this;
  }

  export function client(options: { service: string; domain: string; username: string; password: string; resource?: string }): Client;
}
