/**
 * The promise through the browser's own failures: a context that goes
 * offline, a reload with sends unacked (the IndexedDB outbox), and the server
 * killed with SIGKILL and restarted on the same port and data dir while both
 * users type. Every view must end as the server's log: nothing lost, nothing
 * twice, nothing out of order.
 */
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { dmConvId } from 'sequent-client/protocol';
import {
  asLog,
  chromiumAvailable,
  createGroup,
  launchBrowser,
  openDm,
  openFromList,
  send,
  screenshot,
  serverLog,
  shown,
  signIn,
  unsent,
  waitDelivered,
  waitOnline,
  ServerUnderTest,
} from './harness.js';

const available = chromiumAvailable();

/** The texts of a view's delivered messages, in the order shown. */
function texts(view: Awaited<ReturnType<typeof shown>>): string[] {
  return view.filter((item) => item.kind === 'msg' && item.seq !== undefined).map((item) => item.text);
}

describe.skipIf(!available)('web chat recovery in Chromium', { timeout: 180_000 }, () => {
  let browser: Browser;
  let server: ServerUnderTest;
  let ann: { context: BrowserContext; page: Page };
  let bob: { context: BrowserContext; page: Page };
  const dm = dmConvId('ann', 'bob');

  beforeAll(async () => {
    [browser, server] = await Promise.all([launchBrowser(), ServerUnderTest.start()]);
    ann = await signIn(browser, server, 'ann');
    bob = await signIn(browser, server, 'bob');
    await openDm(ann.page, 'bob');
    await send(ann.page, 'start');
    await openFromList(bob.page, dm);
    await waitDelivered(bob.page, ['start']);
  }, 90_000);

  afterAll(async () => {
    await ann?.context.close();
    await bob?.context.close();
    await browser?.close();
    await server?.stop();
  });

  it('offline: 5 sends show as sending, then after coming back are delivered once, in order, on both sides', async () => {
    await bob.context.setOffline(true);
    await expect.poll(() => bob.page.locator('#connection').getAttribute('data-state'), { timeout: 45_000 }).toBe('offline');
    const offline = ['off 1', 'off 2', 'off 3', 'off 4', 'off 5'];
    for (const text of offline) await send(bob.page, text);
    // The page renders the last send on its next frame: poll rather than read once.
    const pendingOf = async () => (await shown(bob.page)).filter((item) => item.seq === undefined).map((item) => [item.text, item.state]);
    await expect.poll(pendingOf, { timeout: 5_000 }).toEqual(offline.map((text) => [text, 'sending']));
    expect(await unsent(bob.page)).toBe(5);
    await screenshot(bob.page, 'offline-sending');

    await bob.context.setOffline(false);
    await waitOnline(bob.page, 45_000);
    const bobView = await waitDelivered(bob.page, offline);
    const annView = await waitDelivered(ann.page, offline);
    expect(await unsent(bob.page)).toBe(0);
    const log = await serverLog(server, 'bob', dm);
    expect(log.map((entry) => entry.text)).toEqual(['start', ...offline]);
    expect(asLog(bobView)).toEqual(log);
    expect(asLog(annView)).toEqual(log);
    await screenshot(bob.page, 'offline-delivered');
  });

  it('a reload with sends unacked loses and duplicates nothing: the outbox is in IndexedDB', async () => {
    const reloaded = ['r1', 'r2', 'r3', 'r4', 'r5'];
    // Between the page and the server, the acks are lost: the server has the messages, the page does not know.
    let dropAcks = true;
    await ann.page.routeWebSocket(/\/v1\/ws$/, (ws) => {
      const upstream = ws.connectToServer();
      ws.onMessage((message) => upstream.send(message));
      upstream.onMessage((message) => {
        if (dropAcks && typeof message === 'string' && message.startsWith('{"t":"ack"')) return;
        ws.send(message);
      });
    });
    type Paged = { sequent: { wire: { drop(): void; opened: number }; client: { state: string } } };
    const opened = await ann.page.evaluate(() => (window as unknown as Paged).sequent.wire.opened);
    await ann.page.evaluate(() => (window as unknown as Paged).sequent.wire.drop());
    // The dropped socket closes asynchronously and the page says online until its next render: wait for the
    // new connection's catch-up in the SDK itself, so that the sends go out after it (a catch-up that reads
    // them would settle them, and the page would rightly show them sent).
    const reconnected = () => ann.page.evaluate((before) => {
      const { wire, client } = (window as unknown as Paged).sequent;
      return wire.opened > before && client.state === 'ready';
    }, opened);
    await expect.poll(reconnected, { timeout: 30_000 }).toBe(true);
    for (const text of reloaded) await send(ann.page, text);
    await expect.poll(() => outboxSize(ann.page), { timeout: 10_000 }).toBe(reloaded.length);
    await expect.poll(async () => (await serverLog(server, 'ann', dm)).map((entry) => entry.text).filter((text) => reloaded.includes(text)), { timeout: 10_000 }).toEqual(reloaded);
    const sendingOf = async () => (await shown(ann.page)).filter((item) => item.state === 'sending').map((item) => item.text);
    await expect.poll(sendingOf, { timeout: 5_000 }).toEqual(reloaded);
    await screenshot(ann.page, 'reload-before');

    dropAcks = false;
    await ann.page.reload();
    await waitOnline(ann.page);
    const annView = await waitDelivered(ann.page, reloaded);
    const bobView = await waitDelivered(bob.page, reloaded);
    const log = await serverLog(server, 'ann', dm);
    expect(log.filter((entry) => reloaded.includes(entry.text)).map((entry) => entry.text)).toEqual(reloaded);
    // After the reload the page reads what its cursor had passed (its own history read), the SDK the rest.
    expect(asLog(annView)).toEqual(log);
    expect(asLog(bobView)).toEqual(log);
    expect(await outboxSize(ann.page)).toBe(0);
    await ann.page.unrouteAll();
    await screenshot(ann.page, 'reload-after');
  });

  it('SIGKILL and restart of the server while both type: both views end identical to the server log', async () => {
    await createGroup(ann.page, 'crash', ['bob']);
    await openFromList(bob.page, 'g:crash');
    const sent: string[] = [];
    const typeRound = async (round: number): Promise<void> => {
      const a = `ann ${round}`;
      const b = `bob ${round}`;
      sent.push(a, b);
      await Promise.all([send(ann.page, a), send(bob.page, b)]);
    };
    for (let round = 1; round <= 5; round++) await typeRound(round);
    await server.kill();
    for (let round = 6; round <= 10; round++) await typeRound(round);
    await server.restart();
    for (let round = 11; round <= 15; round++) await typeRound(round);
    await Promise.all([waitOnline(ann.page, 60_000), waitOnline(bob.page, 60_000)]);

    const annView = await waitDelivered(ann.page, sent, 90_000);
    const bobView = await waitDelivered(bob.page, sent, 90_000);
    const log = await serverLog(server, 'ann', 'g:crash');
    const logTexts = log.filter((entry) => !entry.text.startsWith('system:')).map((entry) => entry.text);
    expect([...logTexts].sort()).toEqual([...sent].sort()); // each once
    for (const who of ['ann', 'bob']) {
      // Each sender's messages in the order typed.
      expect(logTexts.filter((text) => text.startsWith(who))).toEqual(sent.filter((text) => text.startsWith(who)));
    }
    expect(asLog(annView)).toEqual(log);
    expect(asLog(bobView)).toEqual(log);
    expect(texts(annView)).toEqual(texts(bobView));
    expect(await unsent(ann.page)).toBe(0);
    expect(await unsent(bob.page)).toBe(0);
    await ann.page.getByRole('button', { name: 'Debug' }).click();
    await expect.poll(() => ann.page.locator('[data-debug="cursor"]').textContent()).toBe(String(log.at(-1)!.seq));
    expect(await ann.page.locator('[data-debug="outbox-empty"]').count()).toBe(1);
    await screenshot(ann.page, 'server-killed');
  });
});

/** Unacked sends in the page's IndexedDB outbox, read from the database itself. */
function outboxSize(page: Page): Promise<number> {
  return page.evaluate(async () => {
    const name = (await indexedDB.databases()).map((db) => db.name).find((n) => n?.startsWith('sequent-web'));
    if (!name) return -1;
    const db = await new Promise<IDBDatabase>((resolve, reject) => {
      const request = indexedDB.open(name);
      request.onsuccess = () => resolve(request.result);
      request.onerror = () => reject(request.error);
    });
    try {
      return await new Promise<number>((resolve, reject) => {
        const request = db.transaction('outbox').objectStore('outbox').count();
        request.onsuccess = () => resolve(request.result);
        request.onerror = () => reject(request.error);
      });
    } finally {
      db.close();
    }
  });
}
