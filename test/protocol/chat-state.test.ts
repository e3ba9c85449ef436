import { describe, expect, it } from 'vitest';
import { decodeClientFrame, encodeMsgFrame, MAX_REACTION_KEY, type Entry } from '../../packages/client/src/protocol/index.js';

const decode = (text: string) => decodeClientFrame(text, 4096, 1024);
const send = (extra: string) => `{"t":"send","id":4,"conv":"g:team","cmid":"c1","dseq":1,${extra}}`;

describe('chat-state frames', () => {
  it.each([
    ['a plain message with kind msg', send('"kind":"msg","body":{"text":"hi"}')],
    ['an edit', send('"kind":"edit","ref":58,"body":{"text":"hi all"}')],
    ['a delete', send('"kind":"delete","ref":58,"body":null')],
    ['a reaction', send('"kind":"react","ref":58,"body":{"key":"+1","on":true}')],
    ['a reaction key of 32 emoji', send(`"kind":"react","ref":1,"body":{"key":"${'😀'.repeat(MAX_REACTION_KEY)}","on":false}`)],
    ['sync after', '{"t":"sync","id":5,"conv":"g:team","after":0}'],
    ['sync before', '{"t":"sync","id":5,"conv":"g:team","before":500,"limit":50}'],
    ['read', '{"t":"read","id":6,"conv":"g:team","seq":59}'],
    ['a private read', '{"t":"read","id":6,"conv":"dm:a:b","seq":0,"private":true}'],
    ['info', '{"t":"info","id":7,"conv":"g:team"}'],
    ['typing', '{"t":"typing","id":8,"conv":"g:team"}'],
    ['convs since', '{"t":"convs","id":9,"since":1234,"limit":500}'],
    ['convs without since', '{"t":"convs","id":9}'],
  ])('accepts %s', (_name, text) => {
    const result = decode(text);
    expect(result.ok ? 'ok' : result.message).toBe('ok');
  });

  it.each([
    ['an unknown send kind', send('"kind":"poll","body":1')],
    ['a system send', send('"kind":"system","body":1')],
    ['an edit without ref', send('"kind":"edit","body":{"text":"x"}')],
    ['a message with ref', send('"ref":3,"body":{"text":"x"}')],
    ['ref zero', send('"kind":"edit","ref":0,"body":1')],
    ['a delete with a body', send('"kind":"delete","ref":3,"body":{"text":"x"}')],
    ['a reaction without key', send('"kind":"react","ref":3,"body":{"on":true}')],
    ['a reaction with an empty key', send('"kind":"react","ref":3,"body":{"key":"","on":true}')],
    ['a reaction key over 32 characters', send(`"kind":"react","ref":3,"body":{"key":"${'a'.repeat(MAX_REACTION_KEY + 1)}","on":true}`)],
    ['a reaction with on as a string', send('"kind":"react","ref":3,"body":{"key":"+1","on":"yes"}')],
    ['a reaction body that is an array', send('"kind":"react","ref":3,"body":["+1",true]')],
    ['sync with after and before', '{"t":"sync","id":5,"conv":"g:a","after":1,"before":9}'],
    ['sync with neither', '{"t":"sync","id":5,"conv":"g:a"}'],
    ['sync before 0', '{"t":"sync","id":5,"conv":"g:a","before":0}'],
    ['read without seq', '{"t":"read","id":6,"conv":"g:a"}'],
    ['read of a negative seq', '{"t":"read","id":6,"conv":"g:a","seq":-1}'],
    ['read with private as a string', '{"t":"read","id":6,"conv":"g:a","seq":1,"private":"yes"}'],
    ['info without conv', '{"t":"info","id":7}'],
    ['typing in a malformed conv', '{"t":"typing","id":8,"conv":"room"}'],
    ['convs limit over 1000', '{"t":"convs","id":9,"since":0,"limit":1001}'],
    ['convs since negative', '{"t":"convs","id":9,"since":-1}'],
  ])('refuses %s as bad_request, keeping the id', (_name, text) => {
    const result = decode(text);
    expect(result.ok).toBe(false);
    if (!result.ok) {
      expect(result.code).toBe('bad_request');
      expect(result.id).toBe(JSON.parse(text).id);
    }
  });

  it('spells ref, edited and deleted in a push as JSON.stringify does', () => {
    const entry: Entry = { conv: 'g:a', seq: 9, kind: 'edit', mid: '1', ts: 2, from: 'u', dev: 'd', body: null, ref: 3, edited: 7, deleted: 9 };
    expect(encodeMsgFrame(entry)).toBe(JSON.stringify({ t: 'msg', ...entry }));
    expect(JSON.parse(encodeMsgFrame(entry))).toMatchObject({ kind: 'edit', ref: 3, edited: 7, deleted: 9, body: null });
  });
});
