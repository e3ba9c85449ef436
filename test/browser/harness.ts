/**
 * Real Chromium (Debian's /usr/bin/chromium, driven by playwright-core) against
 * a real `sequent-server serve --demo` on port 0 in a temp data dir. No
 * network but loopback: the browser resolves no host name but localhost, and
 * its background services are off.
 */
import { existsSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium, type Browser, type BrowserContext, type Page } from 'playwright-core';
import WebSocket from 'ws';
import { MemoryClientStore, SequentClient, webSocketTransport, type Entry, type WebSocketConstructor } from 'sequent-client';
import { spawnServerProcess, type ServerChild } from '../../packages/server/src/chaos/server-process.js';
import { TEST_SECRET } from '../support/cli-server.js';

export const CHROMIUM = process.env['SEQUENT_CHROMIUM'] ?? '/usr/bin/chromium';
export const SHOTS = join(process.cwd(), 'test-results', 'web');
const inCI = process.env['CI'] === 'true';

/** True when Chromium is there; else one loud line (and a failure under CI=true). */
export function chromiumAvailable(): boolean {
  if (existsSync(CHROMIUM)) return true;
  const line = `!!! Chromium is not at ${CHROMIUM} (apt-get install chromium): the browser tests are ${inCI ? 'FAILING (CI=true)' : 'SKIPPED'} !!!`;
  if (inCI) throw new Error(line);
  process.stderr.write(`${line}\n`);
  return false;
}

export function launchBrowser(): Promise<Browser> {
  return chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: [
      '--no-sandbox',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-domain-reliability',
      '--disable-sync',
      '--no-first-run',
      '--no-pings',
      '--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE localhost, EXCLUDE 127.0.0.1',
    ],
  });
}

/** One server process and its data dir; restart() brings it back on the same port and dir. */
export class ServerUnderTest {
  private constructor(
    readonly dataDir: string,
    public process: ServerChild,
  ) {}

  static async start(): Promise<ServerUnderTest> {
    const dataDir = mkdtempSync(join(tmpdir(), 'sequent-browser-'));
    return new ServerUnderTest(dataDir, await spawnServerProcess({ dataDir, port: 0, secret: TEST_SECRET, args: ['--demo'] }));
  }

  get httpUrl(): string {
    return this.process.httpUrl;
  }

  get url(): string {
    return this.process.url;
  }

  async kill(): Promise<void> {
    this.process.child.kill('SIGKILL');
    await this.process.exited;
  }

  async restart(): Promise<void> {
    this.process = await spawnServerProcess({ dataDir: this.dataDir, port: this.process.port, secret: TEST_SECRET, args: ['--demo'] });
  }

  async stop(): Promise<void> {
    if (this.process.child.exitCode === null && this.process.child.signalCode === null) {
      this.process.child.kill('SIGTERM');
      await this.process.exited;
    }
    rmSync(this.dataDir, { recursive: true, force: true });
  }
}

export interface Shown {
  seq: number | undefined;
  text: string;
  state: string | undefined;
  from: string | undefined;
  kind: 'msg' | 'system';
}

/** A browser context signed in as `user` with the demo sign-in, its chat open and online. */
export async function signIn(browser: Browser, server: ServerUnderTest, user: string, viewport = { width: 1100, height: 720 }): Promise<{ context: BrowserContext; page: Page }> {
  const context = await browser.newContext({ viewport });
  const page = await context.newPage();
  page.on('pageerror', (error) => process.stderr.write(`[${user} page error] ${error.message}\n`));
  await page.goto(server.httpUrl);
  await page.getByLabel('Your user name').fill(user);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await waitOnline(page);
  return { context, page };
}

export async function waitOnline(page: Page, timeout = 30_000): Promise<void> {
  await page.locator('#connection[data-state="online"]').waitFor({ timeout });
}

export async function openDm(page: Page, other: string): Promise<void> {
  await page.getByLabel('Message a user').fill(other);
  await page.getByRole('button', { name: 'Open' }).click();
}

export async function createGroup(page: Page, name: string, members: string[]): Promise<void> {
  await page.getByLabel('New group').fill(name);
  await page.getByLabel('Members', { exact: true }).fill(members.join(', '));
  await page.getByRole('button', { name: 'Create' }).click();
  await page.locator('#chat-title', { hasText: `# ${name}` }).waitFor();
}

/** Opens a conversation from the list, once it is there. */
export async function openFromList(page: Page, conv: string): Promise<void> {
  await page.locator(`#conv-list [data-conv="${conv}"]`).click({ timeout: 30_000 });
}

export async function send(page: Page, text: string): Promise<void> {
  const box = page.getByRole('textbox', { name: 'Message', exact: true });
  await box.fill(text);
  await box.press('Enter');
}

/** The message view as a reader sees it: delivered entries (with seq) and pending sends. */
export function shown(page: Page): Promise<Shown[]> {
  return page.$$eval('#messages > li.msg, #messages > li.system', (items) =>
    items.map((item) => {
      const element = item as HTMLElement;
      return {
        seq: element.dataset['seq'] === undefined ? undefined : Number(element.dataset['seq']),
        text: element.querySelector('.text')?.textContent ?? element.firstChild?.textContent ?? '',
        state: element.dataset['state'],
        from: element.dataset['from'],
        kind: element.classList.contains('system') ? ('system' as const) : ('msg' as const),
      };
    }),
  );
}

/** Waits until every text is shown delivered (with a seq), then returns the view; works in hooks too. */
export async function waitDelivered(page: Page, texts: readonly string[], timeoutMs = 60_000): Promise<Shown[]> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const view = await shown(page);
    const delivered = new Set(view.filter((item) => item.seq !== undefined).map((item) => item.text));
    const missing = texts.filter((text) => !delivered.has(text));
    if (missing.length === 0) return view;
    if (Date.now() > deadline) throw new Error(`not delivered within ${timeoutMs} ms: ${JSON.stringify(missing)}; shown: ${JSON.stringify(view)}`);
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
}

export async function unsent(page: Page): Promise<number> {
  return Number(await page.locator('#unsent').getAttribute('data-count'));
}

export async function screenshot(page: Page, name: string): Promise<void> {
  mkdirSync(SHOTS, { recursive: true });
  await page.screenshot({ path: join(SHOTS, `${name}.png`) });
}

/** A Node SDK client of `user` on a fresh memory store (it reads every conversation from seq 1), connected. */
export async function nodeClient(server: ServerUnderTest, user: string): Promise<SequentClient> {
  const reply = await fetch(`${server.httpUrl}/demo/token`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ user, device: `node-${Date.now()}-${Math.floor(Math.random() * 1e6)}` }),
  });
  const { token } = (await reply.json()) as { token: string };
  const client = new SequentClient({ url: server.url, token, store: new MemoryClientStore(), transport: webSocketTransport(WebSocket as unknown as WebSocketConstructor) });
  await client.start();
  await client.ready(20_000);
  return client;
}

/** The server's log of a conversation, read with the SDK as one more device of a member. */
export async function serverLog(server: ServerUnderTest, user: string, conv: string): Promise<{ seq: number; text: string }[]> {
  const client = await nodeClient(server, user);
  try {
    await client.sync(conv);
    return client.entries(conv).map((entry) => ({ seq: entry.seq, text: describe(entry as Entry) }));
  } finally {
    await client.stop();
  }
}

/** What the page shows for an entry: the message text, or its system line. */
function describe(entry: Entry): string {
  if (entry.kind === 'msg') {
    const body = entry.body as { text?: unknown };
    return typeof body.text === 'string' ? body.text : JSON.stringify(entry.body);
  }
  return `system:${entry.seq}`;
}

/** The page's delivered view in the same shape as serverLog (system lines by seq). */
export function asLog(view: readonly Shown[]): { seq: number; text: string }[] {
  return view
    .filter((item): item is Shown & { seq: number } => item.seq !== undefined)
    .map((item) => ({ seq: item.seq, text: item.kind === 'system' ? `system:${item.seq}` : item.text }));
}
