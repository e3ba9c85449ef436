export { startServer } from './server.js';
export type { RunningServer } from './server.js';
export { resolveOptions, OptionError } from './options.js';
export type { ServerOptions, ResolvedOptions } from './options.js';
export { TokenAuthority, resolveSecret } from './auth.js';
export { WS_PATH } from './gateway.js';
export { MetricsListenError } from './metrics-listener.js';
