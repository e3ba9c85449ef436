import { describe, expect, it } from 'vitest';
import { dmConvId, parseConvId } from '../../packages/client/src/protocol/index.js';

describe('conversation ids', () => {
  it('parses groups and ordered DMs', () => {
    expect(parseConvId('g:team')).toEqual({ kind: 'group', conv: 'g:team', name: 'team' });
    expect(parseConvId('dm:alice:bob')).toEqual({ kind: 'dm', conv: 'dm:alice:bob', users: ['alice', 'bob'] });
  });

  it.each(['dm:bob:alice', 'dm:a:a', 'dm:a', 'dm:a:b:c', 'g:', 'g:a b', 'x:y', '', 'g:' + 'a'.repeat(65)])(
    'rejects %j',
    (conv) => expect(parseConvId(conv)).toBeNull(),
  );

  it('orders DM members by code point', () => {
    expect(dmConvId('bob', 'alice')).toBe('dm:alice:bob');
    expect(dmConvId('Zed', 'alice')).toBe('dm:Zed:alice');
    expect(() => dmConvId('a', 'a')).toThrow();
  });
});
