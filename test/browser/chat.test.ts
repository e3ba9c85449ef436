/**
 * The web chat in real Chromium: two users in two browser contexts chat in a
 * DM and a group (members added and removed on screen), and a third device of
 * one user, a fresh browser, shows the same history.
 */
import type { Browser, BrowserContext } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { dmConvId } from 'sequent-client/protocol';
import {
  asLog,
  chromiumAvailable,
  createGroup,
  launchBrowser,
  nodeClient,
  openDm,
  openFromList,
  send,
  screenshot,
  serverLog,
  shown,
  signIn,
  waitDelivered,
  waitOnline,
  ServerUnderTest,
} from './harness.js';

const available = chromiumAvailable();

describe.skipIf(!available)('web chat in Chromium', { timeout: 120_000 }, () => {
  let browser: Browser;
  let server: ServerUnderTest;
  const contexts: BrowserContext[] = [];

  beforeAll(async () => {
    [browser, server] = await Promise.all([launchBrowser(), ServerUnderTest.start()]);
  }, 60_000);

  afterAll(async () => {
    for (const context of contexts) await context.close();
    await browser?.close();
    await server?.stop();
  });

  it('two users chat in a DM and a group, members change on screen, and both views equal the server log', async () => {
    const ann = await signIn(browser, server, 'ann');
    const bob = await signIn(browser, server, 'bob');
    contexts.push(ann.context, bob.context);
    const dm = dmConvId('ann', 'bob');

    await openDm(ann.page, 'bob');
    await send(ann.page, 'hi bob');
    // Own message: on screen at once, then sent with its seq.
    await expect.poll(async () => (await shown(ann.page)).map((item) => item.text)).toContain('hi bob');
    await waitDelivered(ann.page, ['hi bob']);
    await openFromList(bob.page, dm);
    await waitDelivered(bob.page, ['hi bob']);
    await send(bob.page, 'hello ann');
    await send(bob.page, 'how are you?');
    const dmTexts = ['hi bob', 'hello ann', 'how are you?'];
    const annDm = await waitDelivered(ann.page, dmTexts);
    const bobDm = await waitDelivered(bob.page, dmTexts);
    const dmLog = await serverLog(server, 'ann', dm);
    expect(dmLog.map((entry) => entry.text)).toEqual(dmTexts);
    expect(asLog(annDm)).toEqual(dmLog);
    expect(asLog(bobDm)).toEqual(dmLog);
    const ownOnAnn = annDm.find((item) => item.text === 'hi bob');
    expect(ownOnAnn?.state).toBe('sent');
    await screenshot(ann.page, 'dm-ann');

    await createGroup(ann.page, 'team', ['bob', 'cy']);
    await send(ann.page, 'welcome to team');
    await openFromList(bob.page, 'g:team');
    await waitDelivered(bob.page, ['welcome to team']);
    await send(bob.page, 'thanks!');
    await waitDelivered(ann.page, ['thanks!']);

    // ann adds dan and removes cy; bob sees both changes as system lines.
    await ann.page.locator('#members summary').click();
    await ann.page.getByLabel('Add').fill('dan');
    await ann.page.getByLabel('Remove').fill('cy');
    await ann.page.getByRole('button', { name: 'Apply' }).click();
    await expect.poll(async () => (await shown(bob.page)).filter((item) => item.kind === 'system').length, { timeout: 30_000 }).toBe(2);
    await send(bob.page, 'hi dan');
    const groupTexts = ['welcome to team', 'thanks!', 'hi dan'];
    const annGroup = await waitDelivered(ann.page, groupTexts);
    const bobGroup = await waitDelivered(bob.page, groupTexts);
    const groupLog = await serverLog(server, 'ann', 'g:team');
    expect(groupLog).toHaveLength(5); // create, two messages, the member change, one more
    expect(asLog(annGroup)).toEqual(groupLog);
    expect(asLog(bobGroup)).toEqual(groupLog);
    expect(await bob.page.locator('#messages li.system').last().textContent()).toMatch(/ann added dan and removed cy/);

    // The list has both chats, the group (newest activity) first.
    await expect.poll(() => bob.page.$$eval('#conv-list [data-conv]', (rows) => rows.map((row) => (row as HTMLElement).dataset['conv']))).toEqual(['g:team', dm]);
    await screenshot(bob.page, 'group-bob');
  });

  it('a third device of the same user, a fresh browser, shows the same history', async () => {
    const dm = dmConvId('ann', 'bob');
    const third = await signIn(browser, server, 'ann');
    contexts.push(third.context);
    for (const conv of [dm, 'g:team']) {
      await openFromList(third.page, conv);
      const log = await serverLog(server, 'ann', conv);
      await expect.poll(async () => asLog(await shown(third.page)), { timeout: 30_000 }).toEqual(log);
    }
    // Its own sends are its own; the first device's show as ann's from another device.
    const device = await third.page.locator('#me').textContent();
    const first = contexts[0]!.pages()[0]!;
    expect(device).not.toEqual(await first.locator('#me').textContent());
    await send(third.page, 'from my third device');
    await waitDelivered(first, ['from my third device']);
    await screenshot(third.page, 'third-device');
  });

  it('after a reload the page reads the history its cursor passed: a page at once, the rest on "Load earlier"', async () => {
    const page = contexts[0]!.pages()[0]!;
    const dan = await nodeClient(server, 'dan');
    const conv = dmConvId('ann', 'dan');
    const texts = Array.from({ length: 70 }, (_, i) => `dan says ${i + 1}`);
    try {
      const handles = texts.map((text) => dan.send(conv, { text }));
      await Promise.all(handles.map((handle) => handle.whenSent()));
    } finally {
      await dan.stop();
    }
    await openFromList(page, conv);
    await waitDelivered(page, texts);
    expect(await page.locator('#load-earlier').isVisible()).toBe(false);

    // The SDK keeps cursors, not messages: after the reload the page reads the newest page itself.
    await page.reload();
    await waitOnline(page);
    await waitDelivered(page, texts.slice(-50));
    const firstPage = await shown(page);
    expect(firstPage.map((item) => item.seq)).toEqual(Array.from({ length: 50 }, (_, i) => 21 + i));
    const earlier = page.getByRole('button', { name: 'Load earlier' });
    await earlier.click();
    const all = await waitDelivered(page, texts);
    expect(asLog(all)).toEqual(await serverLog(server, 'ann', conv));
    await expect.poll(() => earlier.isVisible()).toBe(false);
    await screenshot(page, 'load-earlier');
  });

  it('is usable on a phone-sized screen: the list, then the chat with a way back', async () => {
    const phone = await signIn(browser, server, 'bob', { width: 390, height: 780 });
    contexts.push(phone.context);
    await expect(phone.page.locator('#sidebar').isVisible()).resolves.toBe(true);
    await openFromList(phone.page, 'g:team');
    await expect(phone.page.locator('#sidebar').isVisible()).resolves.toBe(false);
    await waitDelivered(phone.page, ['hi dan']);
    const width = await phone.page.evaluate(() => document.documentElement.scrollWidth);
    expect(width).toBeLessThanOrEqual(390);
    await screenshot(phone.page, 'phone');
    await phone.page.getByRole('button', { name: 'Back to the chats' }).click();
    await expect(phone.page.locator('#sidebar').isVisible()).resolves.toBe(true);
  });
});
