/**
 * The chat-state types an app writes against are exported from the package
 * root: `npm run typecheck` (tsc over test/) fails if one stops being
 * exported or stops matching what the methods return.
 */
import { expectTypeOf, it } from 'vitest';
import type {
  ChatMessage,
  ConversationMembers,
  HistoryOptions,
  HistoryPage,
  Reaction,
  ReadEvent,
  ReadOptions,
  SequentClient,
  TypingEvent,
} from 'sequent-client';

type Body = { text: string };

it('messages(), history() and info() return the exported types', () => {
  expectTypeOf<SequentClient<Body>['messages']>().returns.toEqualTypeOf<ChatMessage<Body>[]>();
  expectTypeOf<SequentClient<Body>['history']>().parameters.toEqualTypeOf<[string, HistoryOptions?]>();
  expectTypeOf<SequentClient<Body>['history']>().returns.resolves.toEqualTypeOf<HistoryPage<Body>>();
  expectTypeOf<SequentClient<Body>['info']>().returns.resolves.toEqualTypeOf<ConversationMembers>();
  expectTypeOf<ChatMessage<Body>['reactions']>().toEqualTypeOf<Reaction[]>();
});

it('the read and typing events carry the exported types', () => {
  expectTypeOf<Parameters<SequentClient<Body>['markRead']>[2]>().toEqualTypeOf<ReadOptions | undefined>();
  const onRead = (client: SequentClient<Body>): void => void client.on('read', (event) => expectTypeOf(event).toEqualTypeOf<ReadEvent>());
  const onTyping = (client: SequentClient<Body>): void => void client.on('typing', (event) => expectTypeOf(event).toEqualTypeOf<TypingEvent>());
  expectTypeOf(onRead).toBeFunction();
  expectTypeOf(onTyping).toBeFunction();
});
