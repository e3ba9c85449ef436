/** The app's body type flows through send(), handles, events and entries (checked by tsc over test/). */
import { expect, expectTypeOf, it } from 'vitest';
import { SequentClient, type SendHandle, type SystemBody, type TypedEntry } from '../../packages/client/src/client/index.js';
import { FakeServer } from './fake-server.js';

interface Chat {
  text: string;
}

it('types entry.body as the app\'s body for messages and as SystemBody for system entries', async () => {
  const fake = new FakeServer();
  fake.createGroup('g:typed', ['alice']);
  const client = new SequentClient<Chat>({ url: 'ws://fake.test/v1/ws', token: 'alice/phone', transport: fake.transport });
  await client.start();
  await client.ready();
  const handle = client.send('g:typed', { text: 'hi' });
  expectTypeOf(handle).toEqualTypeOf<SendHandle<Chat>>();
  expectTypeOf(handle.body).toEqualTypeOf<Chat>();
  // @ts-expect-error a body of another shape is refused at compile time
  expect(() => client.send('g:typed', { txt: 'typo' })).not.toThrow();
  await handle.whenSent();
  const entry = client.entries('g:typed').at(-1)!;
  expectTypeOf(entry).toEqualTypeOf<TypedEntry<Chat>>();
  if (entry.kind === 'msg') expectTypeOf(entry.body).toEqualTypeOf<Chat>();
  else if (entry.kind === 'system') expectTypeOf(entry.body).toEqualTypeOf<SystemBody>();
  else if (entry.kind === 'edit') expectTypeOf(entry.body).toEqualTypeOf<Chat | null>();
  client.on('message', ({ entry: pushed }) => {
    if (pushed.kind === 'msg') expectTypeOf(pushed.body.text).toBeString();
  });
  await client.stop();
});
