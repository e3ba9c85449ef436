/**
 * A few questions to a child Node process over its inspector (started with
 * `--inspect=127.0.0.1:0`): collect garbage and read process.memoryUsage(), so
 * that a memory reading counts live objects, not garbage the heap has not
 * collected yet.
 */
import WebSocket from 'ws';

export interface MemoryUsage {
  rss: number;
  heapTotal: number;
  heapUsed: number;
  external: number;
  arrayBuffers: number;
}

export class Inspector {
  private nextId = 1;
  private readonly waiting = new Map<number, (reply: { result?: unknown; error?: { message: string } }) => void>();

  private constructor(private readonly ws: WebSocket) {
    ws.on('message', (data: Buffer) => {
      const reply = JSON.parse(data.toString('utf8')) as { id?: number; result?: unknown; error?: { message: string } };
      if (reply.id === undefined) return;
      this.waiting.get(reply.id)?.(reply);
      this.waiting.delete(reply.id);
    });
  }

  /** The inspector's URL from what the child printed ("Debugger listening on ws://…"). */
  static async open(output: readonly string[], timeoutMs = 5000): Promise<Inspector> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const url = /Debugger listening on (ws:\/\/\S+)/.exec(output.join(''))?.[1];
      if (url) {
        const ws = new WebSocket(url, { perMessageDeflate: false });
        await new Promise<void>((resolve, reject) => {
          ws.once('open', resolve);
          ws.once('error', reject);
        });
        return new Inspector(ws);
      }
      if (Date.now() > deadline) throw new Error('the server printed no inspector URL');
      await new Promise((r) => setTimeout(r, 50));
    }
  }

  private async post(method: string, params: Record<string, unknown> = {}): Promise<unknown> {
    const id = this.nextId++;
    const reply = new Promise<{ result?: unknown; error?: { message: string } }>((resolve) => this.waiting.set(id, resolve));
    this.ws.send(JSON.stringify({ id, method, params }));
    const got = await reply;
    if (got.error) throw new Error(`${method}: ${got.error.message}`);
    return got.result;
  }

  /** Full garbage collection, then the process's memory. */
  async memoryAfterGc(): Promise<MemoryUsage> {
    await this.post('HeapProfiler.collectGarbage');
    const result = (await this.post('Runtime.evaluate', { expression: 'JSON.stringify(process.memoryUsage())', returnByValue: true })) as {
      result: { value: string };
    };
    return JSON.parse(result.result.value) as MemoryUsage;
  }

  close(): void {
    this.ws.close();
  }
}
