/**
 * Run inside a node's network namespace (`ip netns exec NS node ns-relay.js SPEC`):
 * relays between the namespace's loopback and Unix sockets, the only way in and
 * out of a namespace that has no interface but `lo`. SPEC is JSON, a list of
 * `{ listen, target }` endpoints (`{host, port}` or `{path}`). Prints `ready`
 * once every listener is up; exits when its stdin closes (the run ended or died).
 */
import { startLinkProxy, type Endpoint } from './link-proxy.js';

const spec = JSON.parse(process.argv[2] ?? '[]') as { listen: Endpoint; target: Endpoint }[];
const links = await Promise.all(spec.map((s) => startLinkProxy(s.target, s.listen)));
process.stdout.write('ready\n');
process.stdin.resume();
process.stdin.on('end', () => {
  void Promise.all(links.map((l) => l.close())).finally(() => process.exit(0));
});
