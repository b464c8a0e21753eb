import { expect } from 'chai';
import fc from 'fast-check';

import { MAX_XFCC_CHARS, parseXfcc, XfccError, type XfccElement } from '../src/x509/index.js';
import { anyString, applyEdits, fuzzParameters, onlyThrows, stringEdits, tokenString } from './helpers/fuzz.js';

/** RFC 9110 `tchar`, the characters of an XFCC key. */
const KEY_CHARACTERS = [..."!#$%&'*+-.^_`|~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"];
const ASCII_WHITESPACE = ['\t', '\n', '\v', '\f', '\r', ' '];

interface Pair {
  key: string;
  value: string;
  quoted: boolean;
  /** Whitespace before the key, before `=`, after `=` and after the value, which the parser drops. */
  padding: [string, string, string, string];
}

const key = fc.oneof(
  fc.constantFrom('By', 'Hash', 'Cert', 'Chain', 'Subject', 'URI', 'DNS', 'dns', 'HASH'),
  fc.string({ unit: fc.constantFrom(...KEY_CHARACTERS), minLength: 1, maxLength: 10 }),
);

/** Returns whether a value may be written unquoted: no separator, no quote, and no whitespace at either end. */
function canBeUnquoted(value: string): boolean {
  return !/[,;"]/.test(value) && !/^[\t\n\v\f\r ]|[\t\n\v\f\r ]$/.test(value);
}

const whitespace = fc.string({ unit: fc.constantFrom(...ASCII_WHITESPACE), maxLength: 2 });

const pair: fc.Arbitrary<Pair> = fc
  .record({
    key,
    value: fc.oneof(anyString(40), fc.string({ unit: fc.constantFrom('"', '\\', ',', ';', '=', ' ', 'a', '%', '\t'), maxLength: 20 })),
    preferQuoted: fc.boolean(),
    padding: fc.tuple(whitespace, whitespace, whitespace, whitespace),
  })
  .map(({ key: name, value, preferQuoted, padding }) => ({ key: name, value, quoted: preferQuoted || !canBeUnquoted(value), padding }));

/** Elements as lists of pairs; keys may repeat inside an element, as Envoy repeats `DNS`. */
const elements = fc.array(fc.array(pair, { minLength: 1, maxLength: 5 }), { minLength: 1, maxLength: 4 });

function quote(value: string): string {
  return `"${value.replace(/[\\"]/g, (character) => `\\${character}`)}"`;
}

function serialise(list: Pair[][]): string {
  return list
    .map((element) =>
      element
        .map(({ key: name, value, quoted, padding }) => `${padding[0]}${name}${padding[1]}=${padding[2]}${quoted ? quote(value) : value}${padding[3]}`)
        .join(';'),
    )
    .join(',');
}

function expectedElements(list: Pair[][]): XfccElement[] {
  return list.map((element) => {
    const map: XfccElement = new Map();
    for (const { key: name, value } of element) {
      const values = map.get(name.toLowerCase()) ?? [];
      values.push(value);
      map.set(name.toLowerCase(), values);
    }
    return map;
  });
}

/** Characters that XFCC gives a meaning, plus a few that it does not. */
const XFCC_TOKENS = ['"', '\\', ',', ';', '=', 'a', 'B', ' ', '\t', '%', 'Hash', 'Cert', '\\"', '""', 'ä', '\u0000'];

describe('XFCC parser properties', () => {
  it('round-trips serialised elements', () => {
    fc.assert(
      fc.property(elements, (list) => {
        const text = serialise(list);
        fc.pre(text.length <= MAX_XFCC_CHARS);
        expect(parseXfcc(text)).to.deep.equal(expectedElements(list));
      }),
      fuzzParameters(),
    );
  });

  it('throws only XfccError', () => {
    const input = fc.oneof(
      anyString(300),
      tokenString(XFCC_TOKENS),
      fc.tuple(elements, stringEdits(fc.oneof(fc.constantFrom(...XFCC_TOKENS), anyString(3)))).map(([list, edits]) => applyEdits(serialise(list), edits)),
    );
    fc.assert(
      fc.property(input, (text) => {
        onlyThrows([XfccError], () => {
          const parsed = parseXfcc(text);
          expect(parsed.length, 'elements').to.be.greaterThan(0);
        });
      }),
      fuzzParameters(),
    );
  });

  it('rejects a value over the limit', () => {
    expect(() => parseXfcc(`By=${'a'.repeat(MAX_XFCC_CHARS)}`)).to.throw(XfccError);
  });
});
