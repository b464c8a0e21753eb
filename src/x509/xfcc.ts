import { XfccError } from './errors.js';

/**
 * Maximum length of an `x-forwarded-client-cert` value, in characters. Envoy's default limit for
 * all request headers together (`max_request_headers_kb`) is 60 KiB, so a longer value cannot
 * come through an Envoy with default limits. Raise this together with that Envoy setting.
 */
export const MAX_XFCC_CHARS = 64 * 1024;

/** One XFCC element (one proxy hop): lower-case key to its values in header order (`DNS` repeats). */
export type XfccElement = Map<string, string[]>;

/** RFC 9110 token characters, which covers every key Envoy writes. */
const KEY_PATTERN = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;
const ASCII_WHITESPACE = /^[\t\n\v\f\r ]+|[\t\n\v\f\r ]+$/g;
const EQUALS = 0x3d;
const SEMICOLON = 0x3b;
const COMMA = 0x2c;
const QUOTE = 0x22;
const BACKSLASH = 0x5c;

function isAsciiWhitespace(character: string | undefined): boolean {
  return character === ' ' || character === '\t' || character === '\n' || character === '\v' || character === '\f' || character === '\r';
}

function malformed(message: string): XfccError {
  return new XfccError('xfcc_malformed', message);
}

/**
 * Parses an `x-forwarded-client-cert` value into its elements, leftmost first. Elements are
 * separated by `,` and `key=value` pairs by `;`, except inside double quotes. Keys are matched
 * without regard to case and stored lower-case. A pair splits at its first `=`, so unquoted
 * `By`, `URI` and `DNS` values, which Envoy never quotes, may contain `=`. A quoted value
 * turns `\"` into `"` and `\\` into `\` and keeps any other backslash, as Envoy's own parser
 * does. `Cert` and `Chain` values are returned still percent-encoded.
 *
 * Throws `XfccError` (`xfcc_malformed`) for an empty value, an unterminated quote, a pair
 * without `=`, an empty or non-token key, a stray `"` in an unquoted value, text after a
 * closing quote, or a value longer than `MAX_XFCC_CHARS`.
 */
export function parseXfcc(value: string): XfccElement[] {
  if (value.length > MAX_XFCC_CHARS) {
    throw malformed(`value has ${value.length} characters, more than the limit of ${MAX_XFCC_CHARS}`);
  }

  const elements: XfccElement[] = [];
  let element: XfccElement = new Map();
  let index = 0;

  for (;;) {
    const pair = readPair(value, index, elements.length + 1);
    const values = element.get(pair.key);
    if (values) {
      values.push(pair.value);
    } else {
      element.set(pair.key, [pair.value]);
    }

    index = pair.end;
    if (index >= value.length) {
      elements.push(element);
      return elements;
    }
    if (value[index] === ',') {
      elements.push(element);
      element = new Map();
    }
    index++;
  }
}

interface Pair {
  key: string;
  value: string;
  /** Index of the separator after the pair, or the end of the input. */
  end: number;
}

function readPair(input: string, start: number, elementNumber: number): Pair {
  let index = start;
  // Character codes rather than input[index]: this loop and the value loops below run over every character of a
  // header that carries whole PEM chains, and one-character strings cost more per step.
  for (; index < input.length; index++) {
    const code = input.charCodeAt(index);
    if (code === EQUALS || code === SEMICOLON || code === COMMA || code === QUOTE) {
      break;
    }
  }
  if (input[index] !== '=') {
    throw malformed(`element ${elementNumber} has a pair without '=' at character ${start}`);
  }

  const rawKey = input.slice(start, index).replace(ASCII_WHITESPACE, '');
  if (rawKey === '') {
    throw malformed(`element ${elementNumber} has a pair with an empty key at character ${start}`);
  }
  if (!KEY_PATTERN.test(rawKey)) {
    throw malformed(`element ${elementNumber} has an invalid key '${rawKey}'`);
  }
  const key = rawKey.toLowerCase();

  index++;
  while (isAsciiWhitespace(input[index])) {
    index++;
  }

  if (input[index] === '"') {
    return readQuotedValue(input, index, key, elementNumber);
  }

  const valueStart = index;
  for (; index < input.length; index++) {
    const code = input.charCodeAt(index);
    if (code === SEMICOLON || code === COMMA) {
      break;
    }
    if (code === QUOTE) {
      throw malformed(`element ${elementNumber}: unquoted value of '${key}' contains '"'`);
    }
  }
  return { key, value: input.slice(valueStart, index).replace(ASCII_WHITESPACE, ''), end: index };
}

function readQuotedValue(input: string, openingQuote: number, key: string, elementNumber: number): Pair {
  let value = '';
  let index = openingQuote + 1;
  // Start of the characters not yet copied into `value`. Runs between escapes are found with indexOf and copied
  // whole, because a quoted Cert or Chain contains thousands of characters and a per-character loop dominated the Check.
  let runStart = index;
  // The first '"' at or after `index`; found again only once an escape has consumed it, so the scan stays linear.
  let quote = input.indexOf('"', index);

  for (;;) {
    if (quote === -1) {
      throw malformed(`element ${elementNumber}: quoted value of '${key}' has no closing '"'`);
    }
    const backslash = input.indexOf('\\', index);
    if (backslash === -1 || backslash > quote) {
      index = quote;
      break;
    }
    if (backslash + 1 >= input.length) {
      throw malformed(`element ${elementNumber}: quoted value of '${key}' has no closing '"'`);
    }
    const next = input.charCodeAt(backslash + 1);
    if (next === QUOTE || next === BACKSLASH) {
      // Drop the backslash and keep the escaped character as the start of the next run.
      value += input.slice(runStart, backslash);
      runStart = backslash + 1;
      index = backslash + 2;
    } else {
      // Any other backslash is kept as it is.
      index = backslash + 1;
    }
    if (quote < index) {
      quote = input.indexOf('"', index);
    }
  }
  value += input.slice(runStart, index);

  index++;
  while (isAsciiWhitespace(input[index])) {
    index++;
  }
  if (index < input.length && input[index] !== ';' && input[index] !== ',') {
    throw malformed(`element ${elementNumber}: text follows the closing '"' of '${key}' at character ${index}`);
  }
  return { key, value, end: index };
}
