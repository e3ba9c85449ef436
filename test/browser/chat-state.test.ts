/**
 * The chat state in the web chat, in real Chromium against a real server:
 * two users in two browser contexts (and a Node SDK client as a third member
 * where one is needed) edit, delete and react, see who has seen their
 * messages, see each other typing, and watch the server's unread counts.
 */
import type { Browser, BrowserContext, Locator, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { dmConvId } from 'sequent-client/protocol';
import { chromiumAvailable, createGroup, launchBrowser, nodeClient, openDm, openFromList, screenshot, send, signIn, waitDelivered, waitOnline, ServerUnderTest } from './harness.js';

const available = chromiumAvailable();
const POLL = { timeout: 30_000 };

/** The delivered message with this seq. */
function bubble(page: Page, seq: number): Locator {
  return page.locator(`#messages > li.msg[data-seq="${seq}"]`);
}

/** Sends `text` and returns its seq once the page shows it delivered. */
async function sendAndSeq(page: Page, text: string): Promise<number> {
  await send(page, text);
  const view = await waitDelivered(page, [text]);
  const seq = view.find((item) => item.text === text && item.seq !== undefined)?.seq;
  if (seq === undefined) throw new Error(`no seq for ${text}`);
  return seq;
}

/** The reactions under a message as the page shows them: key → count. */
async function reactions(page: Page, seq: number): Promise<Record<string, number>> {
  return bubble(page, seq).evaluate((item) =>
    Object.fromEntries(Array.from(item.querySelectorAll<HTMLElement>('.reaction')).map((chip) => [chip.dataset['key'] ?? '', Number(chip.dataset['count'])])),
  );
}

async function react(page: Page, seq: number, key: string): Promise<void> {
  await bubble(page, seq).getByRole('button', { name: 'React', exact: true }).click();
  await bubble(page, seq).getByRole('button', { name: `React with ${key}` }).click();
}

function seenText(page: Page, seq: number): Promise<string> {
  return bubble(page, seq)
    .locator('.seen')
    .allTextContents()
    .then((texts) => texts.join(''));
}

async function rowUnread(page: Page, conv: string): Promise<number> {
  return Number(await page.locator(`#conv-list [data-conv="${conv}"]`).getAttribute('data-unread', { timeout: 30_000 }));
}

describe.skipIf(!available)('chat state in the web chat', { timeout: 120_000 }, () => {
  let browser: Browser;
  let server: ServerUnderTest;
  const contexts: BrowserContext[] = [];
  let ann: Page;
  let bob: Page;
  const dm = dmConvId('ann', 'bob');

  beforeAll(async () => {
    [browser, server] = await Promise.all([launchBrowser(), ServerUnderTest.start()]);
    const [a, b] = await Promise.all([signIn(browser, server, 'ann'), signIn(browser, server, 'bob')]);
    contexts.push(a.context, b.context);
    ann = a.page;
    bob = b.page;
    await openDm(ann, 'bob');
    await sendAndSeq(ann, 'first');
    await openFromList(bob, dm);
    await waitDelivered(bob, ['first']);
  }, 90_000);

  afterAll(async () => {
    for (const context of contexts) await context.close();
    await browser?.close();
    await server?.stop();
  });

  it('shows who is typing, and stops showing it when they stop', async () => {
    const typing = ann.getByRole('status').filter({ hasText: 'typing' });
    await expect.poll(() => ann.locator('#typing').textContent()).toBe('');
    await bob.getByRole('textbox', { name: 'Message', exact: true }).fill('I am writing som');
    await expect.poll(() => typing.textContent(), POLL).toBe('bob is typing…');
    // Only the others see it.
    expect(await bob.locator('#typing').textContent()).toBe('');
    await screenshot(ann, 'state-typing');
    await bob.getByRole('textbox', { name: 'Message', exact: true }).fill('');
    // Shown for about 5 s after the last typing frame, then gone without any other frame.
    await expect.poll(() => ann.locator('#typing').textContent(), { timeout: 15_000 }).toBe('');
  });

  it('edits an own message: both sides show the new text and "edited"; others get no Edit button', async () => {
    const seq = await sendAndSeq(ann, 'helo bob');
    await expect.poll(() => bubble(bob, seq).locator('.text').textContent(), POLL).toBe('helo bob');
    expect(await bubble(bob, seq).getByRole('button', { name: 'Edit' }).count()).toBe(0);
    expect(await bubble(bob, seq).getByRole('button', { name: 'Delete' }).count()).toBe(0);

    await bubble(ann, seq).getByRole('button', { name: 'Edit' }).click();
    const box = ann.getByRole('textbox', { name: 'Message', exact: true });
    await expect.poll(() => box.inputValue()).toBe('helo bob');
    expect(await ann.getByRole('button', { name: 'Save' }).isVisible()).toBe(true);
    await box.fill('hello bob');
    await box.press('Enter');

    for (const page of [ann, bob]) {
      await expect.poll(() => bubble(page, seq).locator('.text').textContent(), POLL).toBe('hello bob');
      await expect.poll(() => bubble(page, seq).locator('.edited').textContent(), POLL).toContain('edited');
    }
    // The edit is an entry of its own, not a new message on screen; the composer is back to sending.
    expect(await bob.locator('#messages li.msg', { hasText: 'hello bob' }).count()).toBe(1);
    expect(await ann.getByRole('button', { name: 'Send' }).isVisible()).toBe(true);

    // Escape leaves an edit without changing anything.
    await bubble(ann, seq).getByRole('button', { name: 'Edit' }).click();
    await box.fill('not this');
    await box.press('Escape');
    expect(await box.inputValue()).toBe('');
    await sendAndSeq(ann, 'after the edit');
    expect(await bubble(bob, seq).locator('.text').textContent()).toBe('hello bob');
    await screenshot(bob, 'state-edited');
  });

  it('deletes an own message: the other user sees "message deleted" and the text is gone, also after a reload', async () => {
    const seq = await sendAndSeq(ann, 'oops, a secret');
    await expect.poll(() => bubble(bob, seq).locator('.text').textContent(), POLL).toBe('oops, a secret');

    await bubble(ann, seq).getByRole('button', { name: 'Delete' }).click();
    // Asked once more before it goes; Cancel keeps it.
    await bubble(ann, seq).getByRole('button', { name: 'Cancel' }).click();
    await bubble(ann, seq).getByRole('button', { name: 'Delete' }).click();
    await bubble(ann, seq).getByRole('button', { name: 'Yes, delete' }).click();

    for (const page of [ann, bob]) {
      await expect.poll(() => bubble(page, seq).locator('.text').textContent(), POLL).toBe('message deleted');
      expect(await bubble(page, seq).getAttribute('class')).toContain('deleted');
      expect(await bubble(page, seq).getByRole('button').count()).toBe(0);
      expect(await page.locator('#messages').textContent()).not.toContain('oops, a secret');
    }
    // After a reload the page reads this history from the server, which dropped the content.
    await bob.reload();
    await waitOnline(bob);
    await expect.poll(() => bubble(bob, seq).locator('.text').textContent(), POLL).toBe('message deleted');
    expect(await bob.content()).not.toContain('oops, a secret');
    await expect.poll(() => bubble(bob, seq - 1).locator('.text').textContent(), POLL).toBe('after the edit');
  });

  it('reactions: add and remove, counted per emoji, the same on both sides', async () => {
    const seq = await sendAndSeq(ann, 'react to me');
    await expect.poll(() => bubble(bob, seq).locator('.text').textContent(), POLL).toBe('react to me');

    await react(bob, seq, '👍');
    await react(ann, seq, '👍');
    await react(ann, seq, '🎉');
    for (const page of [ann, bob]) await expect.poll(() => reactions(page, seq), POLL).toEqual({ '👍': 2, '🎉': 1 });
    const bobThumb = bubble(bob, seq).locator('.reaction[data-key="👍"]');
    expect(await bobThumb.getAttribute('aria-pressed')).toBe('true');
    expect(await bubble(bob, seq).locator('.reaction[data-key="🎉"]').getAttribute('aria-pressed')).toBe('false');
    expect(await bobThumb.getAttribute('aria-label')).toBe('👍 2: ann, bob');
    await screenshot(ann, 'state-reactions');

    // Clicking one's own reaction takes it back; the other's stays.
    await bobThumb.click();
    for (const page of [ann, bob]) await expect.poll(() => reactions(page, seq), POLL).toEqual({ '👍': 1, '🎉': 1 });
    expect(await bubble(bob, seq).locator('.reaction[data-key="👍"]').getAttribute('aria-label')).toBe('👍 1: ann');
    await bubble(ann, seq).locator('.reaction[data-key="🎉"]').click();
    for (const page of [ann, bob]) await expect.poll(() => reactions(page, seq), POLL).toEqual({ '👍': 1 });
  });

  it('"seen" under own messages in a DM, from the other user\'s read position', async () => {
    // bob has the DM open: what arrives there he reads.
    const seq = await sendAndSeq(ann, 'did you see this?');
    await expect.poll(() => seenText(ann, seq), POLL).toBe(' · Seen');
    // Named once, under the newest own message seen: not under the older ones too.
    const older = await ann.$$eval('#messages .seen', (items) => items.length);
    expect(older).toBe(1);
    // Nobody marks one's own messages seen for oneself.
    expect(await bob.locator('#messages .seen').count()).toBe(0);
  });

  it('"seen by" in a group: nobody, then bob on opening it, then cy reading from another client', async () => {
    const cy = await nodeClient(server, 'cy');
    try {
      await createGroup(ann, 'crew', ['bob', 'cy']);
      const seq = await sendAndSeq(ann, 'crew meeting at 10');
      await new Promise((resolve) => setTimeout(resolve, 500));
      expect(await seenText(ann, seq)).toBe('');
      await openFromList(bob, 'g:crew');
      await waitDelivered(bob, ['crew meeting at 10']);
      await expect.poll(() => seenText(ann, seq), POLL).toBe(' · Seen by bob');
      await cy.sync('g:crew');
      cy.markRead('g:crew', seq);
      await expect.poll(() => seenText(ann, seq), POLL).toBe(' · Seen by bob, cy');
      await screenshot(ann, 'state-seen-group');
    } finally {
      await cy.stop();
    }
  });

  it('unread badges per conversation and the total in the header and title, cleared by opening the conversation, the same on a third device', async () => {
    // ann looks at the group; bob writes in the DM.
    await openFromList(ann, 'g:crew');
    await openFromList(bob, dm);
    await sendAndSeq(bob, 'ping 1');
    await sendAndSeq(bob, 'ping 2');
    await expect.poll(() => rowUnread(ann, dm), POLL).toBe(2);
    expect(await ann.locator(`#conv-list [data-conv="${dm}"]`).getByLabel('2 unread').textContent()).toBe('2');
    await expect.poll(() => ann.locator('#unread-total').textContent(), POLL).toBe('2 unread');
    expect(await ann.title()).toBe('(2) Sequent chat');
    // One's own messages are never unread.
    expect(await rowUnread(bob, dm)).toBe(0);
    expect(await bob.locator('#unread-total').textContent()).toBe('0 unread');
    await screenshot(ann, 'state-unread');

    await openFromList(ann, dm);
    await waitDelivered(ann, ['ping 1', 'ping 2']);
    await expect.poll(() => rowUnread(ann, dm), POLL).toBe(0);
    await expect.poll(() => ann.locator('#unread-total').textContent(), POLL).toBe('0 unread');
    expect(await ann.title()).toBe('Sequent chat');
    // Read on the server, not only on this page: a reload counts 0 too, and bob sees it as "Seen".
    const ping2 = (await waitDelivered(bob, ['ping 2'])).find((item) => item.text === 'ping 2')?.seq ?? 0;
    await expect.poll(() => seenText(bob, ping2), POLL).toBe(' · Seen');
    await openFromList(ann, 'g:crew');
    await ann.reload();
    await waitOnline(ann);
    await expect.poll(() => rowUnread(ann, dm), POLL).toBe(0);
    expect(await ann.locator('#unread-total').textContent()).toBe('0 unread');

    // A third device of ann, a fresh browser, gets the same read state from the server.
    await sendAndSeq(bob, 'ping 3');
    await expect.poll(() => rowUnread(ann, dm), POLL).toBe(1);
    const third = await signIn(browser, server, 'ann');
    contexts.push(third.context);
    await expect.poll(() => rowUnread(third.page, dm), POLL).toBe(1);
    await expect.poll(() => third.page.locator('#unread-total').textContent(), POLL).toBe('1 unread');
    await openFromList(third.page, dm);
    await expect.poll(() => rowUnread(third.page, dm), POLL).toBe(0);
    // Read there, it is read on the first device too.
    await expect.poll(() => rowUnread(ann, dm), POLL).toBe(0);
  });

  it('keeps the phone layout: message buttons and reactions fit a phone-sized screen', async () => {
    const phone = await signIn(browser, server, 'bob', { width: 390, height: 780 });
    contexts.push(phone.context);
    await openFromList(phone.page, dm);
    const view = await waitDelivered(phone.page, ['ping 2']);
    const seq = view.find((item) => item.text === 'react to me')?.seq;
    expect(seq).toBeDefined();
    // A fresh device reads the folded state from seq 1: the edit, the tombstone and the reaction are there.
    await expect.poll(() => reactions(phone.page, seq!), POLL).toEqual({ '👍': 1 });
    expect(await phone.page.locator('#messages').textContent()).toContain('hello bob');
    expect(await phone.page.locator('#messages').textContent()).toContain('message deleted');
    await openFromList(ann, dm);
    await react(phone.page, seq!, '❤️');
    await expect.poll(() => reactions(ann, seq!), POLL).toEqual({ '❤️': 1, '👍': 1 });
    const width = await phone.page.evaluate(() => document.documentElement.scrollWidth);
    expect(width).toBeLessThanOrEqual(390);
    await screenshot(phone.page, 'state-phone');
  });
});
