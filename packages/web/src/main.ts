/**
 * Boot: find a token source (the app backend's hand-off, else the demo
 * sign-in when the server offers it), open this browser's IndexedDB store,
 * start the SDK and hand it to the page.
 */
import { IndexedDbClientStore, SequentClient } from 'sequent-client';
import { isName } from 'sequent-client/protocol';
import { ChatApp } from './app.js';
import { byId } from './dom.js';
import type { ChatBody } from './model.js';
import { demoEnabled, demoToken, handedOffToken, rememberDemoUser, rememberedDemoUser, socketUrl, type TokenSource } from './signin.js';
import { Wire } from './wire.js';

/** One database per demo user, so that signing in as someone else in this browser is a fresh device, not a mismatch. */
function storeName(source: TokenSource): string {
  return source.kind === 'demo' ? `sequent-web.${source.user}` : 'sequent-web';
}

async function chooseSource(): Promise<TokenSource | undefined> {
  const handed = handedOffToken();
  if (handed) return handed;
  if (!(await demoEnabled())) {
    byId('handoff-help').hidden = false;
    byId('signin').hidden = false;
    return undefined;
  }
  const remembered = rememberedDemoUser();
  if (remembered && isName(remembered)) return { kind: 'demo', user: remembered };
  const form = byId<HTMLFormElement>('demo-form');
  form.hidden = false;
  byId('signin').hidden = false;
  const input = byId<HTMLInputElement>('demo-user');
  input.focus();
  return new Promise((resolve) => {
    form.addEventListener('submit', (event) => {
      event.preventDefault();
      const user = input.value.trim();
      if (!isName(user)) return;
      rememberDemoUser(user);
      byId('signin').hidden = true;
      resolve({ kind: 'demo', user });
    });
  });
}

async function boot(): Promise<void> {
  const source = await chooseSource();
  if (!source) return;
  const store = new IndexedDbClientStore({ name: storeName(source) });
  const wire = new Wire();
  const getToken = (device: string): string | Promise<string> => {
    if (source.kind === 'fixed') return source.token;
    if (source.kind === 'callback') return source.getToken(device);
    return demoToken(source.user, device);
  };
  // A short backoff cap: a chat page should be back soon after the network is.
  const client = new SequentClient<ChatBody>({ url: socketUrl(), getToken, store, transport: wire.transport, backoff: { maxMs: 5000 } });
  window.addEventListener('offline', () => wire.drop());
  const device = await client.deviceId();
  const signout = byId('signout');
  signout.hidden = false;
  signout.addEventListener('click', () => {
    void (async () => {
      await client.stop();
      await store.destroy();
      rememberDemoUser(undefined);
      sessionStorage.clear();
      location.reload();
    })();
  });
  await client.start();
  byId('app').hidden = false;
  // The user is known for sure only after the first welcome; a demo user is known already.
  let user = source.kind === 'demo' ? source.user : client.user;
  if (user === undefined) {
    await client.ready();
    user = client.user ?? '';
  }
  const app = new ChatApp(client, wire, { user, device });
  app.start();
  // For tests and the curious: the SDK and the page, from the console.
  (window as unknown as { sequent: unknown }).sequent = { client, app, wire };
}

boot().catch((error: unknown) => {
  const toast = byId('toast');
  toast.textContent = `The chat could not start: ${error instanceof Error ? error.message : String(error)}`;
  toast.hidden = false;
});
