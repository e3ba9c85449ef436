import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { decodeClientFrame, utf8Length } from '../../packages/client/src/protocol/index.js';

const MAX_FRAME = 1024;
const MAX_BODY = 64;
const decode = (text: string) => decodeClientFrame(text, MAX_FRAME, MAX_BODY);

describe('decodeClientFrame', () => {
  it('accepts a well-formed send and keeps unknown fields (extensions)', () => {
    const result = decode('{"t":"send","id":4,"conv":"g:team","cmid":"c1","dseq":17,"body":{"text":"hi"},"ctx":{"seen":55},"x":1}');
    expect(result.ok).toBe(true);
    if (result.ok) expect(result.frame).toMatchObject({ t: 'send', dseq: 17, body: { text: 'hi' }, x: 1 });
  });

  it("gives a send's body as the JSON text the size limit measured", () => {
    const result = decode('{"t":"send","id":4,"conv":"g:team","cmid":"c1","dseq":17,"body": { "n" : 1.50, "s":"\\u00e9" }}');
    expect(result.ok && result.bodyJson).toBe('{"n":1.5,"s":"é"}');
    const ping = decode('{"t":"ping","id":1}');
    expect(ping.ok && ping.bodyJson).toBeUndefined();
  });

  it.each([
    ['not JSON', '{"t":', 'bad_request', undefined],
    ['not an object', '[1,2]', 'bad_request', undefined],
    ['a JSON string', '"hello"', 'bad_request', undefined],
    ['unknown type', '{"t":"dance","id":3}', 'bad_request', 3],
    ['missing type', '{"id":3}', 'bad_request', 3],
    ['wrong id type', '{"t":"convs","id":"3"}', 'bad_request', undefined],
    ['dseq zero', '{"t":"send","id":5,"conv":"g:a","cmid":"c","dseq":0,"body":1}', 'bad_request', 5],
    ['dseq as string', '{"t":"send","id":5,"conv":"g:a","cmid":"c","dseq":"1","body":1}', 'bad_request', 5],
    ['empty cmid', '{"t":"send","id":5,"conv":"g:a","cmid":"","dseq":1,"body":1}', 'bad_request', 5],
    ['cmid too long', `{"t":"send","id":5,"conv":"g:a","cmid":"${'c'.repeat(65)}","dseq":1,"body":1}`, 'bad_request', 5],
    ['missing body', '{"t":"send","id":5,"conv":"g:a","cmid":"c","dseq":1}', 'bad_request', 5],
    ['bad conv id', '{"t":"sync","id":6,"conv":"room:1","after":0}', 'bad_request', 6],
    ['sync limit over max', '{"t":"sync","id":6,"conv":"g:a","after":0,"limit":1001}', 'bad_request', 6],
    ['negative after', '{"t":"sync","id":6,"conv":"g:a","after":-1}', 'bad_request', 6],
    ['member name with a space', '{"t":"create","id":7,"conv":"g:a","members":["a b"]}', 'bad_request', 7],
    ['body over maxBody', `{"t":"send","id":8,"conv":"g:a","cmid":"c","dseq":1,"body":"${'x'.repeat(80)}"}`, 'too_large', 8],
    ['frame over maxFrame', `{"t":"convs","id":9,"pad":"${'x'.repeat(2000)}"}`, 'too_large', 9],
    ['frame over maxFrame, not JSON', `{"t":"convs","id":9,"pad":"${'x'.repeat(2000)}`, 'too_large', undefined],
  ])('refuses %s', (_name, text, code, id) => {
    const result = decode(text);
    expect(result.ok).toBe(false);
    if (!result.ok) {
      expect(result.code).toBe(code);
      expect(result.id).toBe(id);
      expect(result.message.length).toBeGreaterThan(0);
    }
  });

  it('counts the body in UTF-8 bytes, not characters', () => {
    const body = JSON.stringify('é'.repeat(40)); // 40 characters, 80 bytes
    const result = decode(`{"t":"send","id":1,"conv":"g:a","cmid":"c","dseq":1,"body":${body}}`);
    expect(result.ok).toBe(false);
    expect(utf8Length('é')).toBe(2);
  });

  it('refuses a body exactly when its JSON is over maxBody bytes of UTF-8, whatever the characters', () => {
    const bytes = (text: string) => new TextEncoder().encode(text).length;
    fc.assert(
      fc.property(fc.string({ unit: fc.constantFrom('a', 'é', '€', '😀', '\n'), maxLength: 40 }), (body) => {
        const result = decode(`{"t":"send","id":1,"conv":"g:a","cmid":"c","dseq":1,"body":${JSON.stringify(body)}}`);
        const over = bytes(JSON.stringify(body)) > MAX_BODY;
        expect(result.ok).toBe(!over);
        if (!result.ok) expect(result.code).toBe('too_large');
      }),
      { numRuns: 400 },
    );
  });
});
