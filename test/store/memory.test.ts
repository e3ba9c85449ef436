/** The in-memory reference Store against the same conformance suite as every durable adapter. */
import { MemoryStore } from '../../packages/server/src/store/memory.js';
import { describeStoreConformance } from './conformance.js';
import { describeFencesIgnored } from './fences-ignored.js';

describeStoreConformance('memory (reference)', async () => {
  const store = new MemoryStore();
  return { store, dispose: async () => {} };
}, { pipelined: true });

describeFencesIgnored('memory', async () => ({ store: new MemoryStore(), dispose: async () => {} }));
