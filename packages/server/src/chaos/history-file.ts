/**
 * A history on disk, one event per line, written while the run goes and read
 * back line by line: a long run produces gigabytes of events, which must never
 * sit in one string or one array (a 30-user, 60-second run once died joining
 * its history into a single string).
 */
import { closeSync, createReadStream, openSync, writeSync } from 'node:fs';
import { createInterface } from 'node:readline';
import { parseEventLine, type HistoryEvent, type HistorySink } from './history.js';

/** Lines are gathered up to this many bytes, then written with one syscall. */
const FLUSH_AT = 1 << 20;

export class HistoryFile implements HistorySink {
  private readonly fd: number;
  private buffer: string[] = [];
  private buffered = 0;
  private closed = false;
  /** Bytes written so far, for the report. */
  bytes = 0;

  constructor(readonly path: string) {
    this.fd = openSync(path, 'w');
  }

  write(event: HistoryEvent): void {
    if (this.closed) return;
    const line = JSON.stringify(event) + '\n';
    this.buffer.push(line);
    this.buffered += line.length;
    if (this.buffered >= FLUSH_AT) this.flush();
  }

  /** Synchronous on purpose: events are recorded from many callbacks, and their order in the file is their order in time. */
  flush(): void {
    if (this.buffer.length === 0) return;
    const chunk = this.buffer.join('');
    this.buffer = [];
    this.buffered = 0;
    this.bytes += writeSync(this.fd, chunk);
  }

  close(): void {
    if (this.closed) return;
    this.flush();
    this.closed = true;
    closeSync(this.fd);
  }
}

/** The events of a history file in order, one line at a time. */
export async function* readHistoryFile(path: string): AsyncGenerator<HistoryEvent> {
  const lines = createInterface({ input: createReadStream(path, { encoding: 'utf8', highWaterMark: 1 << 20 }), crlfDelay: Infinity });
  let n = 0;
  for await (const line of lines) {
    n++;
    if (line.trim() !== '') yield parseEventLine(line, n);
  }
}
