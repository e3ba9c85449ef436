/**
 * Where the page's token comes from. The app's own backend hands one over in
 * either of two ways (docs/web.md):
 * - `#token=<jwt>` in the URL: read once, then removed from the address bar;
 * - `window.sequentToken`: a function (device id) → token or a promise of one,
 *   defined before app.js loads; called before every connection, so it may
 *   refresh expired tokens.
 * With `serve --demo` the page may instead mint one at POST /demo/token for a
 * typed user name and this browser's device id.
 */
declare global {
  interface Window {
    sequentToken?: (device: string) => string | Promise<string>;
  }
}

export type TokenSource =
  | { kind: 'callback'; getToken: (device: string) => string | Promise<string> }
  | { kind: 'fixed'; token: string }
  | { kind: 'demo'; user: string };

const DEMO_USER_KEY = 'sequent-web.demo-user';

/** The token hand-off from the URL or the window, if the app's backend made one. */
export function handedOffToken(): TokenSource | undefined {
  const fromHash = new URLSearchParams(location.hash.slice(1)).get('token');
  if (fromHash) {
    sessionStorage.setItem('sequent-web.token', fromHash);
    // A token in the address bar ends up in history and screenshots: keep it out of both.
    history.replaceState(null, '', location.pathname + location.search);
    return { kind: 'fixed', token: fromHash };
  }
  if (typeof window.sequentToken === 'function') return { kind: 'callback', getToken: window.sequentToken };
  const kept = sessionStorage.getItem('sequent-web.token');
  return kept ? { kind: 'fixed', token: kept } : undefined;
}

export function rememberedDemoUser(): string | undefined {
  return localStorage.getItem(DEMO_USER_KEY) ?? undefined;
}

export function rememberDemoUser(user: string | undefined): void {
  if (user === undefined) localStorage.removeItem(DEMO_USER_KEY);
  else localStorage.setItem(DEMO_USER_KEY, user);
}

export async function demoToken(user: string, device: string): Promise<string> {
  const response = await fetch('/demo/token', {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ user, device }),
  });
  const reply = (await response.json()) as { token?: string; message?: string };
  if (!response.ok || typeof reply.token !== 'string') throw new Error(reply.message ?? `demo sign-in failed (${response.status})`);
  return reply.token;
}

/** Whether the server has the demo sign-in on (serve --demo). */
export async function demoEnabled(): Promise<boolean> {
  try {
    const response = await fetch('/web-config.json', { cache: 'no-store' });
    return response.ok && ((await response.json()) as { demo?: unknown }).demo === true;
  } catch {
    return false;
  }
}

/** The WebSocket URL of the server that served this page. */
export function socketUrl(): string {
  return `${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}/v1/ws`;
}
